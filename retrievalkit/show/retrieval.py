"""Report of one or several ranks files: per query, its thumbnail and the top results of each method.

Each result carries its ground-truth category (``e`` easy positive, ``h`` hard positive, ``j`` junk, ``w``
wrong, ``u`` unlabelled); which categories count as positive or ignored depends on the revisitop protocol,
which the page switches without regenerating. Per-query AP comes from :mod:`retrievalkit.evaluate` on the
whole ranked list (not only the shown top-k).
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrievalkit.configs.checks import stage_config
from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.evaluate.groundtruth import PROTOCOLS, GroundTruth, load_gnd
from retrievalkit.evaluate.retrieval import RetrievalMetrics, evaluate_retrieval
from retrievalkit.evaluate.stage import align_ranks
from retrievalkit.images.discover import strip_extension
from retrievalkit.io.output import writes_output
from retrievalkit.io.ranks import Ranks, read_ranks
from retrievalkit.show.config import ShowConfig
from retrievalkit.show.thumbs import Thumbnails


@dataclass
class Method:
    """One ranks file, aligned to the report's query rows.

    Attributes:
        label: the name shown (the file name, made unique).
        ranks: the file's content.
        rows: (R,) row of ``ranks`` for each report row (-1: the file lacks that query).
        categories: (R, K) uint8 ground-truth category code of each ranked result (ord of e/h/j/w/u).
        metrics: revisitop metrics over the ground truth's queries (None without ground truth).
        aps: protocol -> (R,) per-query AP in [0, 1], NaN for queries without positives.
    """

    label: str
    ranks: Ranks
    rows: np.ndarray
    categories: np.ndarray
    metrics: RetrievalMetrics | None
    aps: dict[str, np.ndarray]


def categories_of(aligned: np.ndarray, gnd: GroundTruth) -> np.ndarray:
    """(Q, K) category codes of a ranking aligned to ``gnd`` (the index ``len(gnd.imlist)`` = not listed)."""
    n = gnd.num_database
    out = np.full(aligned.shape, ord("w"), np.uint8)
    table = np.full(n + 1, ord("w"), np.uint8)
    for q in range(gnd.num_queries):
        table[gnd.junk_base[q]] = ord("j")
        table[gnd.hard[q]] = ord("h")
        table[gnd.easy[q]] = ord("e")
        out[q] = table[aligned[q]]
        table[:] = ord("w")
    return out


def _unique_labels(paths: Sequence[Path]) -> list[str]:
    labels = [p.name for p in paths]
    if len(set(labels)) < len(labels):
        labels = [str(p) for p in paths]
    if len(set(labels)) < len(labels):
        labels = [f"{i + 1}: {p}" for i, p in enumerate(paths)]
    return labels


def load_methods(ranks_paths: Sequence[Path], gnd: GroundTruth | None, gnd_path: Path | None
                 ) -> tuple[list[str], list[Method]]:
    """Read the ranks files; return the report's query names and one :class:`Method` per file.

    With ground truth the rows are its queries (every ranks file must hold them all); without, the first
    file's queries, the other files' rows matched by name (extension ignored).
    """
    labels = _unique_labels(ranks_paths)
    methods = []
    query_names: list[str] | None = None
    for path, label in zip(ranks_paths, labels):
        r = read_ranks(path)
        if gnd is not None:
            aligned, gx = align_ranks(r, gnd, path, gnd_path)
            metrics = evaluate_retrieval(aligned, gx)
            aps = {p: metrics.protocols[p].aps for p in PROTOCOLS}
            cats = categories_of(aligned, gnd)
            pos = {strip_extension(n): i for i, n in enumerate(r.query_names)}
            rows = np.array([pos[q] for q in gnd.qimlist], np.int64)
            if query_names is None:
                query_names = [r.query_names[i] for i in rows]
        else:
            if query_names is None:
                query_names = list(r.query_names)
            pos = {strip_extension(n): i for i, n in enumerate(r.query_names)}
            rows = np.array([pos.get(strip_extension(q), -1) for q in query_names], np.int64)
            if (rows < 0).all():
                raise BadInputError(f"{path}: none of its queries are in {ranks_paths[0]} (e.g. "
                                    f"{r.query_names[0] if r.query_names else 'none'!r}); compare rankings of "
                                    "the same queries")
            cats = np.full((len(query_names), r.indices.shape[1]), ord("u"), np.uint8)
            metrics, aps = None, {}
        methods.append(Method(label, r, rows, cats, metrics, aps))
    assert query_names is not None
    return query_names, methods


def select_queries(names: Sequence[str], only: Sequence[str]) -> list[int]:
    """Report rows picked by ``--only``: each entry a query name (extension optional) or a 0-based index."""
    if not only:
        return list(range(len(names)))
    by_name: dict[str, int] = {}
    for i, n in enumerate(names):
        by_name.setdefault(n, i)
        by_name.setdefault(strip_extension(n), i)
    out: list[int] = []
    for item in only:
        key = item.strip()
        if not key:
            continue
        if key in by_name or strip_extension(key) in by_name:
            i = by_name.get(key, by_name.get(strip_extension(key)))
        elif key.lstrip("-").isdigit():
            i = int(key)
            if not 0 <= i < len(names):
                raise UsageError(f"--only {key}: index outside the {len(names)} queries (0 to {len(names) - 1})")
        else:
            close = difflib.get_close_matches(key, list(by_name), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UsageError(f"--only {key!r}: no such query{hint}")
        if i not in out:
            out.append(i)
    if not out:
        raise UsageError("--only: no query given")
    return out


def default_sort(config: ShowConfig, has_gnd: bool, n_methods: int) -> str:
    if config.sort is not None:
        if config.sort in ("ap", "diff") and not has_gnd:
            raise UsageError(f"--sort {config.sort} needs ground truth (--gnd); use name or file")
        if config.sort == "diff" and n_methods < 2:
            raise UsageError("--sort diff compares methods: give two or more ranks files")
        return config.sort
    if not has_gnd:
        return "file"
    return "diff" if n_methods > 1 else "ap"


def order_rows(rows: list[int], names: Sequence[str], methods: Sequence[Method], sort: str, protocol: str
               ) -> list[int]:
    """Rows in display order. ``ap``: worst AP of the first method first (queries without positives last);
    ``diff``: largest spread of AP between methods first; ties and ``name``: by name."""
    if sort == "file":
        return list(rows)
    if sort == "name":
        return sorted(rows, key=lambda i: names[i])
    if sort == "ap":
        aps = methods[0].aps[protocol]
        return sorted(rows, key=lambda i: (math.isnan(aps[i]), 0.0 if math.isnan(aps[i]) else aps[i], names[i]))
    spread = np.stack([m.aps[protocol] for m in methods])
    with np.errstate(all="ignore"):
        d = np.nanmax(spread, axis=0) - np.nanmin(spread, axis=0)
    return sorted(rows, key=lambda i: (math.isnan(d[i]), -0.0 if math.isnan(d[i]) else -d[i], names[i]))


def _round(x: float) -> float:
    return float(f"{x:.4g}")


def _ap(x: float) -> float | None:
    return None if math.isnan(x) else round(float(x), 4)


class ImageTable:
    """Images of the page: index → (display name, thumbnail path relative to the page)."""

    def __init__(self, thumbs: Thumbnails, prefix: str):
        self.thumbs = thumbs
        self.prefix = prefix
        self.names: list[str] = []
        self.files: list[str] = []
        self._pos: dict[tuple, int] = {}

    def add(self, name: str, box=None) -> int:
        key = (name, None if box is None else tuple(box))
        if key not in self._pos:
            self._pos[key] = len(self.names)
            self.names.append(name)
            self.files.append(f"{self.prefix}/{self.thumbs.get(name, box)}")
        return self._pos[key]


@writes_output("output", inputs=("ranks_paths", "gnd_path", "queries_locals", "database_locals"))
def build_ranks_report(
    ranks_paths: Sequence[str | os.PathLike],
    images: str | os.PathLike,
    output: str | os.PathLike,
    config: ShowConfig | None = None,
    *,
    gnd_path: str | os.PathLike | None = None,
    queries_locals: str | os.PathLike | None = None,
    database_locals: str | os.PathLike | None = None,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write the HTML report of one or several ranks files; return its path.

    Args:
        ranks_paths: ranks files (several: methods side by side, which queries each wins).
        output: the page to write; thumbnails and plots go to ``<stem>_files/`` beside it.
        images: the folder the ranks file's image names are relative to.
        gnd_path: revisitop ground truth: labels, per-query AP, metrics table, plots (None: unlabelled).
        config: :class:`ShowConfig`.
        queries_locals, database_locals: local features; with ``config.matches`` the inlier matches of each
            query's top results are drawn (recomputed with :mod:`retrievalkit.verify`).
        progress: called with the number of query rows done.
    """
    from retrievalkit.show.page import files_folder, write_page

    config = stage_config(config, ShowConfig)
    config.check()
    output = Path(output)
    images = Path(images)
    if not images.is_dir():
        raise BadInputError(f"{images}: not a folder; give --images, the folder the ranks file's names are relative to")
    paths = [Path(p) for p in ranks_paths]
    if not paths:
        raise UsageError("give at least one ranks file")
    if config.matches and len(paths) != 1:
        raise UsageError("--matches draws the pairs of one ranks file; give one")
    if config.matches and (queries_locals is None or database_locals is None):
        raise UsageError("--matches needs the local features: --queries q.locals.h5 --database db.locals.h5")
    if not config.matches and (queries_locals is not None or database_locals is not None):
        raise UsageError("--queries/--database locals are only read with --matches")
    gnd = load_gnd(gnd_path) if gnd_path is not None else None
    names, methods = load_methods(paths, gnd, Path(gnd_path) if gnd_path else None)
    sort = default_sort(config, gnd is not None, len(methods))
    rows = order_rows(select_queries(names, config.only), names, methods, sort, config.protocol)

    folder = files_folder(output)
    thumbs = Thumbnails(folder, images, config.thumb_size)
    table = ImageTable(thumbs, folder.name)
    k = config.results_shown()
    drawer = None
    if config.matches:
        from retrievalkit.show.matches import MatchDrawer

        drawer = MatchDrawer(methods[0].ranks, queries_locals, database_locals, images, folder)
    boxes = gnd.boxes() if gnd is not None else [None] * len(names)
    qrows = []
    for i in rows:
        box = boxes[i]
        entry = {"name": names[i], "q": table.add(names[i], box), "box": box is not None, "row": i, "r": []}
        for m in methods:
            ri = int(m.rows[i])
            res = {"i": [], "s": [], "c": "", "ap": {p: _ap(m.aps[p][i]) for p in m.aps}}
            if ri >= 0:
                idx = m.ranks.indices[ri, :k]
                keep = idx >= 0
                res["i"] = [table.add(m.ranks.db_names[j]) for j in idx[keep]]
                res["s"] = [_round(s) for s in m.ranks.scores[ri, :k][keep]]
                res["c"] = bytes(m.categories[i, :k][keep]).decode()
            else:
                res["missing"] = True
            entry["r"].append(res)
        if drawer is not None and methods[0].rows[i] >= 0:
            entry["m"] = drawer.draw_query(int(methods[0].rows[i]), k, box)
        qrows.append(entry)
        if progress:
            progress(1)

    plots = {}
    if gnd is not None:
        from retrievalkit.show.plots import plot_comparison, plot_retrieval, retrieval_curves

        curves = [retrieval_curves(m, gnd) for m in methods]
        plots["pr"] = plot_retrieval(folder / "pr.png", [m.label for m in methods], curves,
                                     [m.aps for m in methods])
        if len(methods) > 1:
            plots["compare"] = plot_comparison(folder / "compare.png", [m.label for m in methods],
                                               [m.aps for m in methods])
    data = {
        "kind": "ranks",
        "protocols": list(PROTOCOLS) if gnd is not None else [],
        "protocol": config.protocol,
        "sort": sort,
        "page_size": config.page_size,
        "methods": [m.label for m in methods],
        "images": table.files,
        "names": table.names,
        "queries": qrows,
    }
    summary = {
        "methods": [{"label": m.label, "path": str(m.ranks.path), "metrics": m.metrics.to_dict() if m.metrics else None,
                     "wins": None} for m in methods],
        "wins": wins(methods, rows) if gnd is not None and len(methods) > 1 else None,
        "plots": {key: f"{folder.name}/{Path(v).name}" for key, v in plots.items()},
        "missing": thumbs.missing,
        "gnd": str(gnd_path) if gnd_path else None,
        "images": str(images),
        "shown": len(qrows),
        "total": len(names),
        "top_k": k,
        "matches": bool(config.matches),
    }
    return write_page(output, "ranks", data, summary)


def wins(methods: Sequence[Method], rows: Sequence[int]) -> dict[str, dict[str, list[int]]]:
    """protocol -> {"wins": per method the number of shown queries where it has the strictly best AP,
    "ties": [n]} (queries without positives are not counted)."""
    out = {}
    for p in PROTOCOLS:
        a = np.stack([m.aps[p][list(rows)] for m in methods])  # (M, R)
        ok = ~np.isnan(a).any(axis=0)
        a = a[:, ok]
        best = a.max(axis=0, initial=-1.0) if a.size else np.zeros(0)
        top = a == best[None, :]
        single = top.sum(axis=0) == 1
        out[p] = {"wins": [int((top[j] & single).sum()) for j in range(len(methods))],
                  "ties": [int((~single).sum())]}
    return out
