"""Late fusion of rankings (``rkit index fuse``): per-query standardised scores, summed.

Typical use: a global-descriptor search and ASMK searches (deep locals, RootSIFT) of the same queries and
database, each kept long (``-k`` the database size), fused into one ranks file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from retrievalkit.configs.checks import stage_config
from retrievalkit.configs.search import FuseConfig
from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.io.output import writes_output
from retrievalkit.io.ranks import Ranks, read_ranks, write_ranks


def fuse_scores(rows: list[np.ndarray]) -> np.ndarray:
    """Late fusion of several rankings of one query: the sum of per-query standardised scores.

    Args:
        rows: one (N,) score row per method over the same N database images, NaN where the method did
            not list the image (it gets that method's lowest listed score, i.e. "at most as similar as its
            last listed image"). A row without any listed image (e.g. a query without local features)
            contributes nothing.
    Returns:
        (N,) float64 fused scores: Σ_m (s_m − mean(s_m)) / std(s_m), each method weighted equally, so
        methods on different scales (cosine similarity, ASMK score) need no tuned weights.
    """
    out = None
    for r in rows:
        r = np.asarray(r, dtype=np.float64)
        out = np.zeros_like(r) if out is None else out
        listed = np.isfinite(r)
        if not listed.any():
            continue
        r = np.where(listed, r, r[listed].min())
        sd = r.std()
        out += (r - r.mean()) / (sd if sd > 0 else 1.0)
    if out is None:
        raise ValueError("fuse_scores: no score rows given")
    return out


def fuse_ranks(ranks: list[Ranks], k: int = 100, progress: Callable[[int], None] | None = None) -> Ranks:
    """Fuse ranks objects (e.g. global search and ASMK) of the same queries and database by
    :func:`fuse_scores`; images are matched by name, the first ranks fixes the order of names.
    Lists should be long (ideally the whole database): an image missing from a list scores as its last entry.
    """
    if len(ranks) < 2:
        raise ValueError("fuse_ranks: need at least two rankings")
    base = ranks[0]
    db = list(base.db_names)
    dpos = {n: i for i, n in enumerate(db)}
    n = len(db)
    k = min(k, n)
    idx = np.full((len(base.query_names), k), -1, np.int64)
    sc = np.zeros((len(base.query_names), k), np.float32)
    maps = []
    for r in ranks:
        qp = {q: i for i, q in enumerate(r.query_names)}
        dmap = np.array([dpos.get(x, -1) for x in r.db_names], np.int64)
        maps.append((r, qp, dmap))
    for qi, qn in enumerate(base.query_names):
        rows = []
        for r, qp, dmap in maps:
            row = np.full(n, np.nan)
            j = r.indices[qp[qn]]
            ok = j >= 0
            d = dmap[j[ok]]
            row[d[d >= 0]] = r.scores[qp[qn]][ok][d >= 0]
            rows.append(row)
        f = fuse_scores(rows)
        order = np.argsort(-f, kind="stable")[:k]
        idx[qi], sc[qi] = order, f[order]
        if progress:
            progress(1)
    return Ranks(list(base.query_names), db, idx, sc, {"method": "fusion", "k": int(k),
                                                      "fused": [r.config.get("method") for r in ranks]})


@writes_output("output", inputs=("inputs",))
def fuse_ranks_files(inputs: Sequence[str | os.PathLike], output: str | os.PathLike, config: FuseConfig | None = None,
                     *, progress: Callable[[int], None] | None = None) -> Path:
    """Read two or more ranks files of the same queries and database, fuse them (:func:`fuse_ranks`), write one.

    Typical use: a global-descriptor search and ASMK searches (deep locals, RootSIFT), each with ``-k`` the
    database size. Raises BadInputError when a file lacks a query or database image of the first.
    """
    k = stage_config(config, FuseConfig).top_k
    inputs = list(inputs)
    if len(inputs) < 2:
        raise UsageError("fusion needs at least two ranks files")
    rs = [read_ranks(p) for p in inputs]
    for p, r in zip(inputs[1:], rs[1:]):
        miss_q = set(rs[0].query_names) - set(r.query_names)
        miss_d = set(rs[0].db_names) ^ set(r.db_names)
        if miss_q or miss_d:
            what = f"query {sorted(miss_q)[0]!r}" if miss_q else f"database image {sorted(miss_d)[0]!r}"
            raise BadInputError(f"{p}: {what} differs from {inputs[0]}; fuse rankings of the same queries and "
                                "database")
    out = fuse_ranks(rs, k=k, progress=progress)
    out.config["inputs"] = [str(p) for p in inputs]
    return write_ranks(output, out, inputs={f"ranks{i}": str(p) for i, p in enumerate(inputs)})


__all__ = ["fuse_scores", "fuse_ranks", "fuse_ranks_files"]
