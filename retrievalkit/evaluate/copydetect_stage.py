"""``rkit evaluate RESULT --gt ground_truth.csv``: DISC21 µAP of a matching CSV or a descriptor-track HDF5."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from retrievalkit.errors import BadInputError
from retrievalkit.evaluate.copydetect import (
    Predictions,
    descriptor_track_predictions,
    read_ground_truth_csv,
    read_predictions_csv,
)
from retrievalkit.evaluate.copydetect import evaluate_copy_detection as _score


def evaluate_copy_detection(result_path: str | os.PathLike, gt_path: str | os.PathLike) -> dict:
    """Score a matching-track CSV or a descriptor-track HDF5 against a ground-truth CSV.

    The descriptor track is scored as the challenge does: exact L2 search keeping the globally best
    10 × (number of queries) pairs, score = −distance².

    Returns:
        ``{"uap", "recall_at_p90", "threshold_at_p90", "predictions", "queries", "positives", "track"}``,
        fractions in [0, 1] to 4 decimals; ``queries`` counts the ground truth's queries.
    """
    gt = read_ground_truth_csv(gt_path)
    pred, track = load_predictions(result_path)
    _check_query_ids(pred, gt, result_path, gt_path)
    m = _score(pred, gt, source=str(result_path)).to_dict()
    m["queries"] = len(gt.query_ids)
    m["track"] = track
    if m["uap"] is None:
        raise BadInputError(f"{gt_path}: the ground truth has no (query, reference) pair; µAP is undefined")
    return m


def load_predictions(result_path: str | os.PathLike) -> tuple[Predictions, str]:
    """The predictions of a matching-track CSV or a descriptor-track HDF5, and the track's name.

    The descriptor track is searched as the challenge does (exact L2, the globally best 10 × queries pairs).
    """
    result_path = Path(result_path)
    if h5py.is_hdf5(result_path):
        from retrievalkit.copydetect.submission import read_descriptors

        qids, xq, rids, xr = read_descriptors(result_path)
        return descriptor_track_predictions(qids, xq, rids, xr), "descriptor"
    try:
        with open(result_path, "rb") as f:
            head = f.read(4096)
    except OSError as e:
        raise BadInputError(f"{result_path}: cannot read ({e.__class__.__name__})") from None
    if b"\x00" in head:
        raise BadInputError(f"{result_path}: neither a matches CSV nor a descriptor-track HDF5")
    return read_predictions_csv(result_path), "matching"


def _check_query_ids(pred, gt, result_path, gt_path) -> None:
    """Predictions for queries the ground truth does not list count as wrong (as in DISC21), with a warning;
    when no predicted query is known the files do not belong together: refused."""
    import warnings

    from retrievalkit.errors import RkitWarning

    known = set(gt.query_ids)
    asked = set(np.asarray(pred.query_ids).tolist())
    unknown = sorted(asked - known)
    if not unknown:
        return
    if len(unknown) == len(asked):
        raise BadInputError(f"{result_path}: none of its {len(asked)} query ids is in the ground truth {gt_path} "
                            f"(e.g. {unknown[0]!r}); check that the predictions and the ground truth belong together")
    warnings.warn(f"{result_path}: {len(unknown)} of its {len(asked)} query ids are not in the ground truth "
                  f"{gt_path} (e.g. {unknown[0]!r}); their predictions count as wrong", RkitWarning, stacklevel=2)
