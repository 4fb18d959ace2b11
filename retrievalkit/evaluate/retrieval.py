"""Retrieval metrics with revisitop semantics: mAP, mP@k and recall@k per protocol.

Conventions (all shared with revisitop's ``compute_map``):

- ``ranks`` is ``(Q, K)``: row q lists database indices, best first, possibly truncated (K < N).
  revisitop itself stores ``(K, Q)``; pass ``ranks.T`` for such arrays.
- Junk images are deleted from each ranked list before anything is measured, so a positive behind
  ``m`` junk images moves ``m`` places up.
- AP is the trapezoidal rule of revisitop's ``compute_ap``: for the j-th found positive (j = 0, 1, ...)
  at junk-removed 0-based rank r, ``p0 = j / r`` (1 when r = 0) and ``p1 = (j + 1) / (r + 1)``, and
  ``AP = sum_j (p0 + p1) / 2 / npos``. ``npos`` counts every positive, so positives missing from a
  truncated list contribute nothing.
- mP@k: with ``pos`` the 1-based junk-removed ranks of the found positives, ``kq = min(max(pos), k)``
  and ``P = #(pos <= kq) / kq``. A query whose truncated list holds no positive gets 0 (revisitop
  never meets that case: its lists are complete).
- recall@k (not in revisitop): 1 if at least one positive is among the first k junk-removed results,
  else 0; averaged over queries.
- Queries without positives are left out of every mean; a mean over no query is ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.evaluate.groundtruth import PROTOCOLS, GroundTruth, Protocol

DEFAULT_KAPPAS: tuple[int, ...] = (1, 5, 10)

# Work on at most this many (query, rank) cells at a time, so R1M-sized full rankings fit in memory.
_BLOCK_CELLS = 1 << 22


def compute_ap(pos: Sequence[int] | np.ndarray, npos: int) -> float:
    """Average precision of one query from the ranks of its found positives (revisitop ``compute_ap``).

    Args:
        pos: 0-based, junk-removed ranks of the positives found in the list, ascending.
        npos: number of positives of the query (found or not); must be > 0.

    Returns:
        AP in [0, 1].

    Example:
        >>> round(compute_ap([0, 2], 2), 4)  # (1 + 1)/2 * 0.5 + (1/2 + 2/3)/2 * 0.5
        0.7917
    """
    if npos <= 0:
        raise UsageError(f"compute_ap needs npos > 0, got {npos}")
    r = np.asarray(pos, dtype=np.float64).ravel()
    if r.size == 0:
        return 0.0
    j = np.arange(r.size, dtype=np.float64)
    p0 = np.where(r > 0, j / np.maximum(r, 1.0), 1.0)
    p1 = (j + 1.0) / (r + 1.0)
    return float(np.sum(p0 + p1) / (2.0 * npos))


@dataclass(frozen=True)
class ProtocolResult:
    """Metrics of one protocol as fractions in [0, 1], full precision.

    Attributes:
        map: mean AP over queries with positives, ``None`` when no query has any.
        aps: (Q,) AP per query, NaN for queries without positives.
        mp: k -> mean precision at k (revisitop mP@k), ``None`` when no query has positives.
        prs: (Q, len(kappas)) precision at k per query, NaN rows for queries without positives.
        recall: k -> fraction of queries with a positive in the first k (junk removed).
        hits: (Q, len(kappas)) 1.0 / 0.0 per query, NaN rows for queries without positives.
        kappas: the k values, in the column order of ``prs`` and ``hits``.
        num_evaluated: number of queries with at least one positive.
    """

    map: float | None
    aps: np.ndarray
    mp: dict[int, float | None]
    prs: np.ndarray
    recall: dict[int, float | None]
    hits: np.ndarray
    kappas: tuple[int, ...]
    num_evaluated: int


@dataclass(frozen=True)
class RetrievalMetrics:
    """Per-protocol results of :func:`evaluate_retrieval`; ``to_dict()`` gives the report."""

    protocols: dict[str, ProtocolResult]
    queries: int
    kappas: tuple[int, ...] = field(default=DEFAULT_KAPPAS)

    def to_dict(self) -> dict[str, Any]:
        """``{"map": {p: %}, "mp": {p: {"k": %}}, "recall": {p: {"k": %}}, "queries": Q}``.

        Values are percentages rounded to 2 decimals; ``None`` where a protocol has no query with positives.
        """
        return {
            "map": {p: _percent(r.map) for p, r in self.protocols.items()},
            "mp": {p: {str(k): _percent(v) for k, v in r.mp.items()} for p, r in self.protocols.items()},
            "recall": {p: {str(k): _percent(v) for k, v in r.recall.items()} for p, r in self.protocols.items()},
            "queries": self.queries,
        }


def _percent(x: float | None) -> float | None:
    return None if x is None else round(100.0 * x, 2)


def _check_ranks(ranks: Any, num_queries: int, num_database: int | None) -> np.ndarray:
    ranks = np.asarray(ranks)
    if ranks.ndim != 2 or ranks.shape[0] != num_queries:
        raise BadInputError(
            f"ranks: expected shape (Q={num_queries}, K), one row of database indices per query; "
            f"got {ranks.shape} (transpose revisitop-style (K, Q) arrays)"
        )
    if ranks.size and ranks.dtype.kind not in "iu":
        raise BadInputError(f"ranks: expected integer database indices, got dtype {ranks.dtype}")
    if ranks.size:
        lo, hi = int(ranks.min()), int(ranks.max())
        if lo < 0 or (num_database is not None and hi >= num_database):
            limit = "" if num_database is None else f", {num_database}"
            bad = lo if lo < 0 else hi
            raise BadInputError(f"ranks: index {bad} outside the database [0{limit}); check the ranking file")
    return ranks.astype(np.int64, copy=False)


def _check_kappas(kappas: Sequence[int]) -> tuple[int, ...]:
    out = tuple(int(k) for k in kappas)
    if any(k < 1 for k in out):
        raise UsageError(f"k values for mP@k / recall@k must be >= 1, got {list(out)}")
    return out


def compute_map(
    ranks: np.ndarray,
    positives: Sequence[Sequence[int] | np.ndarray],
    junk: Sequence[Sequence[int] | np.ndarray] | None = None,
    kappas: Sequence[int] = DEFAULT_KAPPAS,
    num_database: int | None = None,
) -> ProtocolResult:
    """mAP, mP@k and recall@k of a ranking for one protocol (revisitop ``compute_map`` semantics).

    Args:
        ranks: (Q, K) int database indices, each row ranked best first; K may be < N.
        positives: per query, database indices of its positives.
        junk: per query, database indices to delete from its ranked list (``None``: no junk).
        kappas: the k of mP@k and recall@k.
        num_database: N, to reject out-of-range indices in ``ranks`` (not checked when ``None``).

    Returns:
        A :class:`ProtocolResult` with fractions in [0, 1].

    Example:
        >>> r = compute_map(np.array([[3, 0, 1]]), [[0, 1]], [[3]])
        >>> r.map, r.mp[1], r.recall[1]
        (1.0, 1.0, 1.0)
    """
    nq = len(positives)
    ranks = _check_ranks(ranks, nq, num_database)
    kappas = _check_kappas(kappas)
    if junk is None:
        junk = [()] * nq
    if len(junk) != nq:
        raise UsageError(f"junk has {len(junk)} entries but positives has {nq}; give one per query")
    pos_sets = [np.unique(np.asarray(p, dtype=np.int64)) for p in positives]
    junk_sets = [np.unique(np.asarray(j, dtype=np.int64)) for j in junk]
    npos = np.array([p.size for p in pos_sets], dtype=np.int64)

    nk = ranks.shape[1]
    aps = np.full(nq, np.nan)
    prs = np.full((nq, len(kappas)), np.nan)
    hits = np.full((nq, len(kappas)), np.nan)

    # A label table over database indices, reused for every query: bit 1 positive, bit 2 junk.
    top = max([int(ranks.max()) + 1 if ranks.size else 0] + [int(s[-1]) + 1 for s in pos_sets + junk_sets if s.size])
    table = np.zeros(top, dtype=np.uint8)
    evaluated = np.flatnonzero(npos > 0)
    block = max(1, _BLOCK_CELLS // max(nk, 1))
    for start in range(0, evaluated.size, block):
        qs = evaluated[start : start + block]
        is_pos = np.zeros((qs.size, nk), dtype=bool)
        is_junk = np.zeros((qs.size, nk), dtype=bool)
        for b, q in enumerate(qs):
            table[pos_sets[q]] |= 1
            table[junk_sets[q]] |= 2
            lab = table[ranks[q]]
            is_pos[b] = (lab & 1) > 0
            is_junk[b] = (lab & 2) > 0
            table[pos_sets[q]] = 0
            table[junk_sets[q]] = 0
        _block_metrics(is_pos, is_junk, npos[qs], kappas, aps, prs, hits, qs)

    num_eval = int(evaluated.size)
    if num_eval:
        mean_ap: float | None = float(np.mean(aps[evaluated]))
        mp = {k: float(np.mean(prs[evaluated, i])) for i, k in enumerate(kappas)}
        rec = {k: float(np.mean(hits[evaluated, i])) for i, k in enumerate(kappas)}
    else:
        mean_ap = None
        mp = dict.fromkeys(kappas)
        rec = dict.fromkeys(kappas)
    return ProtocolResult(mean_ap, aps, mp, prs, rec, hits, kappas, num_eval)


def _block_metrics(
    is_pos: np.ndarray,
    is_junk: np.ndarray,
    npos: np.ndarray,
    kappas: tuple[int, ...],
    aps: np.ndarray,
    prs: np.ndarray,
    hits: np.ndarray,
    qs: np.ndarray,
) -> None:
    """Fill ``aps``, ``prs``, ``hits`` rows ``qs`` from (b, K) positive / junk masks."""
    nk = is_pos.shape[1]
    # Junk strictly before each position (an item that is both positive and junk still counts as a
    # positive, exactly like revisitop's strict `pos > junk` comparison).
    junk_before = np.cumsum(is_junk, axis=1) - is_junk
    rank = np.arange(nk)[None, :] - junk_before  # 0-based rank after junk removal
    order = np.cumsum(is_pos, axis=1) - 1  # j: how many positives came before
    r = rank.astype(np.float64)
    j = order.astype(np.float64)
    p0 = np.where(r > 0, j / np.maximum(r, 1.0), 1.0)
    p1 = (j + 1.0) / (r + 1.0)
    aps[qs] = np.where(is_pos, p0 + p1, 0.0).sum(axis=1) / (2.0 * npos)

    found = is_pos.any(axis=1)
    # 1-based rank of the last found positive; 0 when none was found.
    last = np.where(is_pos, rank + 1, 0).max(axis=1, initial=0)
    for i, k in enumerate(kappas):
        kq = np.minimum(last, k)
        within = (is_pos & (rank + 1 <= kq[:, None])).sum(axis=1)
        prs[qs, i] = np.where(found, within / np.maximum(kq, 1), 0.0)
        hits[qs, i] = (is_pos & (rank < k)).any(axis=1).astype(np.float64)


def evaluate_retrieval(
    ranks: np.ndarray,
    gnd: GroundTruth,
    kappas: Sequence[int] = DEFAULT_KAPPAS,
    protocols: Sequence[Protocol] = PROTOCOLS,
) -> RetrievalMetrics:
    """Revisitop evaluation of a ranking under the Easy / Medium / Hard protocols.

    Args:
        ranks: (Q, K) int database indices, row q ranked best first for ``gnd.qimlist[q]``.
        gnd: the ground truth (see :func:`~retrievalkit.evaluate.groundtruth.load_gnd`).
        kappas: the k of mP@k and recall@k.
        protocols: which protocols to evaluate.

    Returns:
        :class:`RetrievalMetrics`; ``.to_dict()`` gives percentages rounded to 2 decimals.

    Example:
        >>> gnd = GroundTruth(["a", "b", "c"], ["q"], [np.array([1])], [np.array([], dtype=np.int64)],
        ...                   [np.array([], dtype=np.int64)], [None])
        >>> evaluate_retrieval(np.array([[1, 0, 2]]), gnd).to_dict()["map"]
        {'easy': 100.0, 'medium': 100.0, 'hard': None}
    """
    ranks = _check_ranks(ranks, gnd.num_queries, gnd.num_database)
    results = {p: compute_map(ranks, gnd.positives(p), gnd.junk(p), kappas, gnd.num_database) for p in protocols}
    return RetrievalMetrics(results, gnd.num_queries, _check_kappas(kappas))
