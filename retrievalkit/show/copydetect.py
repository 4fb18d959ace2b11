"""Copy-detection report: the highest-scoring false positives and the missed copies, query next to reference,
with the precision-recall curve (µAP and the 90 %-precision point) from :mod:`retrievalkit.evaluate.copydetect`.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from retrievalkit.configs.checks import stage_config
from retrievalkit.errors import BadInputError
from retrievalkit.io.output import writes_output
from retrievalkit.show.config import ShowConfig
from retrievalkit.show.thumbs import Thumbnails, stem_index


def _fmt(x: float) -> str:
    return f"{x:.4g}"


@writes_output("output", inputs=("result", "gnd_path"))
def build_copydetect_report(
    result: str | os.PathLike,
    gnd_path: str | os.PathLike,
    queries: str | os.PathLike,
    database: str | os.PathLike,
    output: str | os.PathLike,
    config: ShowConfig | None = None,
    *,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write the HTML report of a copy-detection result (matching CSV or descriptor-track HDF5); return its path.

    Args:
        result: ``rkit copy-detect`` output.
        output: the page; thumbnails and the plot go to ``<stem>_files/`` beside it.
        gnd_path: DISC21 ground truth CSV (``query_id,reference_id``).
        queries, database: folders of the query and reference images (ids are file stems).
        config: :class:`ShowConfig` (``examples``: pairs listed per section, ``thumb_size``).
        progress: called once, with the number of pairs listed, when the thumbnails are made.
    """
    from retrievalkit.evaluate.copydetect import evaluate_copy_detection, read_ground_truth_csv
    from retrievalkit.evaluate.copydetect_stage import load_predictions
    from retrievalkit.show.page import files_folder, write_page
    from retrievalkit.show.plots import plot_copy_detection

    config = stage_config(config, ShowConfig)
    config.check()
    output = Path(output)
    for what, d in (("--queries", queries), ("--database", database)):
        if not Path(d).is_dir():
            raise BadInputError(f"{d}: not a folder; give {what} the folder of the images (ids are file stems)")
    gt = read_ground_truth_csv(gnd_path)
    pred, track = load_predictions(result)
    metrics = evaluate_copy_detection(pred, gt, source=str(result))
    if metrics.micro_ap is None:
        raise BadInputError(f"{gnd_path}: the ground truth has no (query, reference) pair; nothing to show")
    qfiles, rfiles = stem_index(Path(queries)), stem_index(Path(database))
    folder = files_folder(output)
    thumbs = Thumbnails(folder, None, config.thumb_size)

    def thumb(ids: dict[str, Path], i: str) -> str:
        p = ids.get(i)
        return f"{folder.name}/{thumbs.get(str(p) if p is not None else i)}"

    qs = pred.query_ids.tolist()
    rs = pred.reference_ids.tolist()
    sc = pred.scores
    by_query: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for q, r, s in zip(qs, rs, sc.tolist()):
        by_query[q].append((s, r))
    for v in by_query.values():
        v.sort(key=lambda t: -t[0])
    truth: dict[str, list[str]] = defaultdict(list)
    for q, r in sorted(gt.pairs):
        truth[q].append(r)
    score_of = {(q, r): s for q, r, s in zip(qs, rs, sc.tolist())}
    thr = metrics.threshold_at_p90

    def rank_in_query(q: str, r: str) -> int:
        return 1 + [x[1] for x in by_query[q]].index(r)

    wrong = np.array([(q, r) not in gt.pairs for q, r in zip(qs, rs)], bool)
    fp_rows = np.flatnonzero(wrong)
    fp_rows = fp_rows[np.lexsort((np.array(qs, object)[fp_rows].astype(str), -sc[fp_rows]))][: config.examples]
    fps = []
    for i in fp_rows.tolist():
        q, r, s = qs[i], rs[i], float(sc[i])
        info = [f"score {_fmt(s)}", f"rank {rank_in_query(q, r)} of this query's predictions"]
        if thr is not None and s >= thr:
            info.append("above the 90 %-precision threshold")
        info.append(f"true copy of: {', '.join(truth[q])}" if truth.get(q) else "distractor query (no copy)")
        fps.append({"query": q, "reference": r, "qimg": thumb(qfiles, q), "rimg": thumb(rfiles, r), "cls": "w",
                    "info": info, "other": None})

    missed_pairs = []
    for q, r in gt.pairs:
        s = score_of.get((q, r))
        if s is None or (thr is not None and s < thr):
            missed_pairs.append((-math.inf if s is None else s, q, r))
    missed_pairs.sort()
    missed = []
    for s, q, r in missed_pairs[: config.examples]:
        info = ["not predicted" if s == -math.inf else
                f"score {_fmt(s)}, rank {rank_in_query(q, r)} of this query's predictions"
                + (f" (below the 90 %-precision threshold {_fmt(thr)})" if thr is not None else "")]
        top = by_query.get(q)
        entry = {"query": q, "reference": r, "qimg": thumb(qfiles, q), "rimg": thumb(rfiles, r), "cls": "pe",
                 "info": info, "other": None}
        if top and top[0][1] != r:
            entry.update(other=top[0][1], oimg=thumb(rfiles, top[0][1]), other_score=_fmt(top[0][0]))
        missed.append(entry)
    n_missing_pred = sum(1 for s, _, _ in missed_pairs if s == -math.inf)
    if progress:
        progress(len(fps) + len(missed))
    plot = plot_copy_detection(folder / "pr.png", metrics, Path(result).name)
    m = metrics.to_dict()
    m["queries"] = len(gt.query_ids)
    summary = {
        "title": f"rkit show: {Path(result).name} (copy detection, {track} track)",
        "result": str(result), "gnd": str(gnd_path), "queries_dir": str(queries), "database_dir": str(database),
        "metrics": m,
        "plot": f"{folder.name}/{plot.name}",
        "missing": thumbs.missing,
        "sections": [
            {"id": "false-positives", "title": "Highest-scoring false positives", "pairs": fps,
             "note": f"{int(wrong.sum())} of {len(pred)} predictions are wrong; the {len(fps)} best-scored are "
                     "shown: query (left), predicted reference (red)."},
            {"id": "missed", "title": "Missed copies", "pairs": missed,
             "note": f"{len(missed_pairs)} of {gt.num_positives} true pairs are missed ({n_missing_pred} never "
                     "predicted" + (f", the others scored below the 90 %-precision threshold {_fmt(thr)}"
                                    if thr is not None else "") +
                     f"); {len(missed)} shown, never-predicted first, then lowest score: query, true reference "
                     "(green), the query's top prediction (red)."},
        ],
    }
    return write_page(output, "copydetect", None, summary)
