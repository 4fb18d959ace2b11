"""DISC21 copy-detection metrics: micro average precision (µAP) and recall at 90 % precision.

The metric of the Image Similarity Challenge 2021 (matching and descriptor tracks):

- every prediction ``(query_id, reference_id, score)`` of every query goes into one pool, sorted by
  score, highest first; among equal scores the wrong predictions come first (ties are broken
  pessimistically, so a tie never helps);
- after the i-th prediction, ``precision_i = tp_i / i`` and ``recall_i = tp_i / G``, where G is the
  number of ground-truth (query, reference) pairs (distractor queries have none);
- ``µAP = sum_i precision_i * (recall_i - recall_{i-1})``, i.e. the mean over the G pairs of the
  precision at the position where each pair is predicted (0 for pairs never predicted);
- recall at 90 % precision: the largest ``recall_i`` with ``precision_i >= 0.9`` (0 if there is none);
  its threshold is the score of that prediction.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrievalkit.errors import BadInputError, MissingInputError, UsageError

PRECISION_TARGET = 0.9


@dataclass(frozen=True)
class CopyGroundTruth:
    """DISC21 ground truth.

    Attributes:
        query_ids: every query of the file (distractors included), in file order, without repeats.
        pairs: the (query_id, reference_id) pairs that are true copies.
    """

    query_ids: tuple[str, ...]
    pairs: frozenset[tuple[str, str]]

    @property
    def num_positives(self) -> int:
        return len(self.pairs)

    @classmethod
    def from_pairs(cls, rows: Iterable[tuple[str, str | None]], source: str = "ground truth") -> CopyGroundTruth:
        """From ``(query_id, reference_id)`` rows; a ``None`` or empty reference marks a distractor query.

        Raises:
            BadInputError: a (query, reference) pair listed twice.
        """
        queries: dict[str, None] = {}
        pairs: set[tuple[str, str]] = set()
        for q, r in rows:
            queries.setdefault(q, None)
            if r:
                if (q, r) in pairs:
                    raise BadInputError(f"{source}: pair ({q}, {r}) is listed twice; remove the duplicate")
                pairs.add((q, r))
        return cls(tuple(queries), frozenset(pairs))


@dataclass(frozen=True)
class Predictions:
    """Predicted matches: P rows of (query id, reference id, score); higher score = more likely a copy.

    Attributes:
        query_ids: (P,) object array of str.
        reference_ids: (P,) object array of str.
        scores: (P,) float64.
    """

    query_ids: np.ndarray
    reference_ids: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @classmethod
    def from_triples(cls, rows: Iterable[tuple[str, str, float]]) -> Predictions:
        """From ``(query_id, reference_id, score)`` rows."""
        rows = list(rows)
        q = np.empty(len(rows), dtype=object)
        r = np.empty(len(rows), dtype=object)
        q[:] = [row[0] for row in rows]
        r[:] = [row[1] for row in rows]
        s = np.array([float(row[2]) for row in rows], dtype=np.float64)
        return cls(q, r, s)


@dataclass(frozen=True)
class CopyDetectionMetrics:
    """Result of :func:`evaluate_copy_detection`, fractions in [0, 1], full precision.

    Attributes:
        micro_ap: µAP, ``None`` when the ground truth has no pair.
        recall_at_p90: best recall with precision >= 0.9 (0.0 if none), ``None`` without pairs.
        threshold_at_p90: score threshold of that operating point, ``None`` if there is none.
        precisions, recalls, thresholds: (P,) the curve, in evaluation order (score descending, wrong first on ties).
        num_predictions: P.
        num_positives: G, the number of ground-truth pairs.
    """

    micro_ap: float | None
    recall_at_p90: float | None
    threshold_at_p90: float | None
    precisions: np.ndarray
    recalls: np.ndarray
    thresholds: np.ndarray
    num_predictions: int
    num_positives: int

    def to_dict(self) -> dict[str, Any]:
        """``{"uap", "recall_at_p90", "threshold_at_p90", "predictions", "positives"}``; fractions to 4 decimals."""
        return {
            "uap": None if self.micro_ap is None else round(self.micro_ap, 4),
            "recall_at_p90": None if self.recall_at_p90 is None else round(self.recall_at_p90, 4),
            "threshold_at_p90": self.threshold_at_p90,
            "predictions": self.num_predictions,
            "positives": self.num_positives,
        }


def precision_recall_curve(
    is_correct: np.ndarray, scores: np.ndarray, num_positives: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall after each prediction of the pooled, pessimistically ordered list.

    Args:
        is_correct: (P,) bool, whether each prediction is a ground-truth pair.
        scores: (P,) float, higher = more confident.
        num_positives: G > 0, number of ground-truth pairs.

    Returns:
        ``(precisions, recalls, thresholds)``, each (P,), in evaluation order; ``thresholds`` are the scores.
    """
    is_correct = np.asarray(is_correct, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    if num_positives <= 0:
        raise UsageError(f"precision_recall_curve needs num_positives > 0, got {num_positives}")
    # lexsort: last key is primary. Score descending, then wrong (False) before correct (True).
    order = np.lexsort((is_correct, -scores))
    tp = np.cumsum(is_correct[order])
    precisions = tp / np.arange(1, order.size + 1)
    recalls = tp / num_positives
    return precisions, recalls, scores[order]


def micro_average_precision(precisions: np.ndarray, recalls: np.ndarray) -> float:
    """µAP from a curve of :func:`precision_recall_curve`: ``sum_i precision_i * (recall_i - recall_{i-1})``."""
    if len(recalls) == 0:
        return 0.0
    steps = np.diff(np.asarray(recalls, dtype=np.float64), prepend=0.0)
    return float(np.sum(steps * np.asarray(precisions, dtype=np.float64)))


def _check_predictions(pred: Predictions, source: str) -> None:
    n = len(pred)
    if pred.query_ids.shape != (n,) or pred.reference_ids.shape != (n,):
        raise UsageError(f"{source}: query_ids, reference_ids and scores must all have length {n}")
    if not np.all(np.isfinite(pred.scores)):
        i = int(np.flatnonzero(~np.isfinite(pred.scores))[0])
        raise BadInputError(f"{source}: prediction {i} has score {pred.scores[i]}; scores must be finite numbers")
    seen: set[tuple[str, str]] = set()
    for q, r in zip(pred.query_ids.tolist(), pred.reference_ids.tolist(), strict=True):
        if (q, r) in seen:
            raise BadInputError(f"{source}: pair ({q}, {r}) is predicted twice; keep one score per pair")
        seen.add((q, r))


def evaluate_copy_detection(
    predictions: Predictions, ground_truth: CopyGroundTruth, source: str = "predictions"
) -> CopyDetectionMetrics:
    """DISC21 µAP and recall at 90 % precision of pooled predictions.

    Predictions for queries that are not in the ground truth, or distractor queries, count as wrong.

    Args:
        predictions: the matches to score.
        ground_truth: the true pairs.
        source: names the predictions (a file path) in error messages.

    Returns:
        :class:`CopyDetectionMetrics`.

    Raises:
        BadInputError: a (query, reference) pair predicted twice, or a non-finite score.

    Example:
        >>> gt = CopyGroundTruth.from_pairs([("q1", "r1"), ("q2", "r2")])
        >>> pred = Predictions.from_triples([("q1", "r1", 0.5), ("q1", "r9", 0.45), ("q2", "r2", 0.4)])
        >>> round(evaluate_copy_detection(pred, gt).micro_ap, 4)  # (1/1 + 2/3) / 2
        0.8333
    """
    _check_predictions(predictions, source)
    g = ground_truth.num_positives
    n = len(predictions)
    if g == 0:
        empty = np.empty(0)
        return CopyDetectionMetrics(None, None, None, empty, empty, empty, n, 0)
    pairs = ground_truth.pairs
    is_correct = np.fromiter(
        ((q, r) in pairs for q, r in zip(predictions.query_ids.tolist(), predictions.reference_ids.tolist())),
        dtype=bool,
        count=n,
    )
    precisions, recalls, thresholds = precision_recall_curve(is_correct, predictions.scores, g)
    uap = micro_average_precision(precisions, recalls)
    ok = np.flatnonzero(precisions >= PRECISION_TARGET)
    if ok.size:
        # First index of the largest recall: with pessimistic ties this is a reachable threshold.
        best = int(ok[np.argmax(recalls[ok])])
        rp90, tp90 = float(recalls[best]), float(thresholds[best])
    else:
        rp90, tp90 = 0.0, None
    return CopyDetectionMetrics(uap, rp90, tp90, precisions, recalls, thresholds, n, g)


def _read_csv(path: Path, required: Sequence[str]) -> tuple[dict[str, int], list[tuple[int, list[str]]]]:
    """Header column positions and (line number, row) pairs; blank lines skipped."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            lines = list(csv.reader(f))
    except FileNotFoundError:
        raise MissingInputError(f"{path}: file not found; check the path") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadInputError(f"{path}: cannot read CSV ({exc}); give a UTF-8 CSV file") from None
    numbered = [(i + 1, row) for i, row in enumerate(lines) if any(cell.strip() for cell in row)]
    want = ",".join(required)
    if not numbered:
        raise BadInputError(f"{path}: empty file; expected the header '{want}' and one row per line")
    header = [cell.strip() for cell in numbered[0][1]]
    missing = [c for c in required if c not in header]
    if missing:
        raise BadInputError(f"{path}: first line must be the header '{want}' (missing {', '.join(missing)}); add it")
    return {c: header.index(c) for c in required}, numbered[1:]


def _cell(row: list[str], col: int) -> str:
    return row[col].strip() if col < len(row) else ""


def read_ground_truth_csv(path: str | Path) -> CopyGroundTruth:
    """Read a DISC21 ground truth: header ``query_id,reference_id``; empty reference = distractor query.

    Raises:
        BadInputError: missing header, empty query id, or a pair listed twice (the message names the file).
    """
    path = Path(path)
    cols, rows = _read_csv(path, ("query_id", "reference_id"))
    out: list[tuple[str, str | None]] = []
    for line, row in rows:
        q = _cell(row, cols["query_id"])
        if not q:
            raise BadInputError(f"{path}: line {line} has an empty query_id; every row needs one")
        out.append((q, _cell(row, cols["reference_id"]) or None))
    return CopyGroundTruth.from_pairs(out, source=str(path))


def read_predictions_csv(path: str | Path) -> Predictions:
    """Read DISC21 matching-track predictions: header ``query_id,reference_id,score``.

    Raises:
        BadInputError: missing header, an empty id, a score that is not a finite number, or a pair
        predicted twice (the message names the file and line).
    """
    path = Path(path)
    cols, rows = _read_csv(path, ("query_id", "reference_id", "score"))
    triples: list[tuple[str, str, float]] = []
    seen: dict[tuple[str, str], int] = {}
    for line, row in rows:
        q, r, s = (_cell(row, cols[c]) for c in ("query_id", "reference_id", "score"))
        if not q or not r:
            raise BadInputError(f"{path}: line {line} needs both query_id and reference_id")
        try:
            score = float(s)
        except ValueError:
            score = float("nan")
        if not np.isfinite(score):
            raise BadInputError(f"{path}: line {line} has score {s!r}; give a finite number")
        if (q, r) in seen:
            raise BadInputError(
                f"{path}: pair ({q}, {r}) on line {line} repeats line {seen[(q, r)]}; keep one score per pair"
            )
        seen[(q, r)] = line
        triples.append((q, r, score))
    return Predictions.from_triples(triples)


def descriptor_track_predictions(
    query_ids: Sequence[str],
    xq: np.ndarray,
    ref_ids: Sequence[str],
    xr: np.ndarray,
    budget: int | None = None,
    block_queries: int = 1024,
    block_refs: int = 8192,
) -> Predictions:
    """Descriptor track: exact L2 search keeping the globally best ``budget`` (query, reference) pairs.

    Distances are computed tile by tile (``block_queries`` x ``block_refs``) in float32 with numpy, so
    memory stays bounded; a pair's score is ``-||xq_i - xr_j||^2``. Pairs tied with the last kept
    score may be kept or dropped arbitrarily.

    Args:
        query_ids: Q query ids, row i of ``xq`` belongs to ``query_ids[i]``.
        xq: (Q, D) query descriptors.
        ref_ids: R reference ids.
        xr: (R, D) reference descriptors.
        budget: number of pairs to keep over all queries; default ``10 * Q`` (the DISC21 rule).

    Returns:
        :class:`Predictions` sorted by score, highest first.

    Example:
        >>> p = descriptor_track_predictions(["q"], np.zeros((1, 2)), ["a", "b"], np.array([[1, 0], [3, 0.]]), 1)
        >>> list(p.reference_ids), p.scores.tolist()
        (['a'], [-1.0])
    """
    xq = np.asarray(xq, dtype=np.float32)
    xr = np.asarray(xr, dtype=np.float32)
    if xq.ndim != 2 or xr.ndim != 2 or xq.shape[1] != xr.shape[1]:
        raise BadInputError(
            f"descriptors: expected (Q, D) queries and (R, D) references, got {xq.shape} and {xr.shape}"
        )
    if len(query_ids) != xq.shape[0] or len(ref_ids) != xr.shape[0]:
        raise BadInputError(
            f"descriptors: {len(query_ids)} query ids for {xq.shape[0]} rows and "
            f"{len(ref_ids)} reference ids for {xr.shape[0]} rows; they must match"
        )
    if budget is None:
        budget = 10 * len(query_ids)
    if budget < 0:
        raise UsageError(f"budget must be >= 0, got {budget}")
    if block_queries < 1 or block_refs < 1:
        raise UsageError("block_queries and block_refs must be >= 1")
    nq, nr = xq.shape[0], xr.shape[0]
    budget = min(int(budget), nq * nr)

    best_s = np.empty(0, dtype=np.float64)
    best_q = np.empty(0, dtype=np.int64)
    best_r = np.empty(0, dtype=np.int64)
    if budget > 0:
        nrm_q = np.einsum("ij,ij->i", xq, xq, dtype=np.float64)
        nrm_r = np.einsum("ij,ij->i", xr, xr, dtype=np.float64)
        for q0 in range(0, nq, block_queries):
            q1 = min(q0 + block_queries, nq)
            for r0 in range(0, nr, block_refs):
                r1 = min(r0 + block_refs, nr)
                dot = xq[q0:q1] @ xr[r0:r1].T
                d2 = nrm_q[q0:q1, None] + nrm_r[None, r0:r1] - 2.0 * dot.astype(np.float64)
                scores = -np.maximum(d2, 0.0)
                flat = scores.ravel()
                if best_s.size >= budget:
                    # Only pairs that beat the current last kept one can enter.
                    cand = np.flatnonzero(flat > best_s.min())
                else:
                    cand = np.arange(flat.size)
                if cand.size == 0:
                    continue
                if cand.size > budget:
                    cand = cand[np.argpartition(-flat[cand], budget - 1)[:budget]]
                width = r1 - r0
                best_s = np.concatenate([best_s, flat[cand]])
                best_q = np.concatenate([best_q, q0 + cand // width])
                best_r = np.concatenate([best_r, r0 + cand % width])
                if best_s.size > budget:
                    keep = np.argpartition(-best_s, budget - 1)[:budget]
                    best_s, best_q, best_r = best_s[keep], best_q[keep], best_r[keep]
    order = np.lexsort((best_r, best_q, -best_s))
    qids = np.empty(order.size, dtype=object)
    rids = np.empty(order.size, dtype=object)
    qarr = np.asarray(query_ids, dtype=object)
    rarr = np.asarray(ref_ids, dtype=object)
    qids[:] = qarr[best_q[order]]
    rids[:] = rarr[best_r[order]]
    return Predictions(qids, rids, best_s[order])
