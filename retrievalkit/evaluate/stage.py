"""Stage function of ``rkit evaluate`` for rankings: a ranks file + revisitop ground truth → metrics."""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from retrievalkit.errors import BadInputError
from retrievalkit.evaluate.groundtruth import GroundTruth, load_gnd
from retrievalkit.evaluate.retrieval import evaluate_retrieval
from retrievalkit.images.discover import strip_extension
from retrievalkit.io.ranks import Ranks, read_ranks


def align_ranks(ranks: Ranks, gnd: GroundTruth, ranks_path, gnd_path) -> tuple[np.ndarray, GroundTruth]:
    """Map a ranks file onto the ground truth's query and database order.

    Names are compared without image extensions. Database items the ground truth does not list (or
    padding, -1) become one extra irrelevant index; database images the ranking lacks (e.g. failed to
    decode) simply count as not retrieved. Every ground-truth query must be in the ranks file.
    """
    db_pos = {n: i for i, n in enumerate(gnd.imlist)}
    sentinel = len(gnd.imlist)
    remap = np.array([db_pos.get(strip_extension(n), sentinel) for n in ranks.db_names] + [sentinel], np.int64)
    if ranks.db_names and (remap[:-1] == sentinel).all():
        raise BadInputError(
            f"{ranks_path}: none of its database names appear in {gnd_path}'s imlist "
            f"(e.g. {ranks.db_names[0]!r}); was the database extracted with this --gnd?"
        )
    q_pos = {strip_extension(n): i for i, n in enumerate(ranks.query_names)}
    missing = [q for q in gnd.qimlist if q not in q_pos]
    if missing:
        raise BadInputError(
            f"{ranks_path}: {len(missing)} of the {len(gnd.qimlist)} ground-truth queries are "
            f"missing (e.g. {missing[0]!r}); search with the queries of {gnd_path}"
        )
    rows = ranks.indices[[q_pos[q] for q in gnd.qimlist]]
    aligned = remap[np.where(rows < 0, len(ranks.db_names), rows)]
    extended = dataclasses.replace(gnd, imlist=list(gnd.imlist) + ["<not in ground truth>"])
    return aligned, extended


def evaluate_ranks_file(ranks_path: str | os.PathLike, gnd_path: str | os.PathLike) -> dict:
    """revisitop mAP / mP@k / recall@k (percent) of a ranks file; the JSON that ``rkit evaluate`` prints."""
    gnd = load_gnd(gnd_path)
    ranks = read_ranks(ranks_path)
    aligned, gnd_x = align_ranks(ranks, gnd, ranks_path, gnd_path)
    return evaluate_retrieval(aligned, gnd_x).to_dict()
