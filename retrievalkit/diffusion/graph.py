# ruff: noqa: E741  (faiss naming: D distances, I ids)
"""Affinity graphs for diffusion: from a kNN list to the normalised operator S = D^-1/2 W D^-1/2.

``W`` holds non-negative similarities raised to ``gamma`` (sparsifying: weak edges fade), zero diagonal
and is symmetric. With ``mutual=True`` an edge survives only when each end lists the other among its k
nearest neighbours (the intersection of the two lists); otherwise the union is kept. Since kNN scores are
inner products (symmetric), both give each kept edge the same weight from either side.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from retrievalkit.errors import UsageError
from retrievalkit.neighbours import Neighbours


def affinity_from_knn(scores: np.ndarray, ids: np.ndarray, gamma: float = 3.0, mutual: bool = False,
                      k: int | None = None) -> sp.csr_matrix:
    """Symmetric sparse affinity ``W`` (N, N) float32 from a kNN list.

    Args:
        scores: (N, k) similarities; clamped at 0 and raised to ``gamma``.
        ids: (N, k) integer neighbour ids, nearest first; -1 pads (ignored); self-loops are dropped.
            (``scores, ids`` as every search returns them: :class:`~retrievalkit.neighbours.Neighbours`.)
        gamma: exponent (> 0) applied to the similarities.
        mutual: keep only mutual neighbours (intersection) instead of the union.
        k: use only the first ``k`` columns (the k nearest); ``None`` = all.
    Returns:
        ``scipy.sparse.csr_matrix`` W, symmetric, zero diagonal, explicit zeros removed.
    """
    indices = np.asarray(ids)
    scores = np.asarray(scores, dtype=np.float32)
    if indices.ndim != 2 or indices.shape != scores.shape:
        raise UsageError(f"kNN scores {scores.shape} and ids {indices.shape} must be the same (N, k) shape")
    if indices.size and not np.issubdtype(indices.dtype, np.integer):
        raise UsageError(f"kNN ids must be integers, got {indices.dtype}; pass (scores, ids) in that order")
    if gamma <= 0:
        raise UsageError(f"gamma {gamma}: must be positive")
    if k is not None:
        if k < 1:
            raise UsageError(f"graph k {k}: must be at least 1")
        indices, scores = indices[:, :k], scores[:, :k]
    n = indices.shape[0]
    rows = np.repeat(np.arange(n, dtype=np.int64), indices.shape[1])
    cols = indices.reshape(-1).astype(np.int64)
    w = np.power(np.maximum(scores.reshape(-1), 0.0), gamma, dtype=np.float32)
    keep = (cols >= 0) & (cols != rows) & (w > 0)
    A = sp.csr_matrix((w[keep], (rows[keep], cols[keep])), shape=(n, n), dtype=np.float32)
    A.sum_duplicates()
    W = A.minimum(A.T) if mutual else A.maximum(A.T)
    W = sp.csr_matrix(W, dtype=np.float32)
    W.setdiag(0)
    W.eliminate_zeros()
    W.sort_indices()
    return W


def normalize_symmetric(W: sp.spmatrix) -> sp.csr_matrix:
    """``S = D^-1/2 W D^-1/2`` with D the row sums of W; isolated nodes (degree 0) keep zero rows."""
    W = sp.csr_matrix(W)
    d = np.asarray(W.sum(axis=1), dtype=np.float64).ravel()
    inv = np.zeros_like(d)
    nz = d > 0
    inv[nz] = 1.0 / np.sqrt(d[nz])
    Dm = sp.diags(inv.astype(W.dtype))
    S = sp.csr_matrix(Dm @ W @ Dm)
    S.sort_indices()
    return S


def graph_from_vectors(xb: np.ndarray, k: int, device: str = "cpu", block: int = 4096) -> Neighbours:
    """The kNN list ``Neighbours(scores (N, k) f32, ids (N, k) int64)`` of database vectors, self excluded.

    Used when ``diffuse`` builds its own graph (no ``--graph``, regions, or augmented vectors).
    """
    from retrievalkit.search.exact import knn_graph

    k = max(1, min(int(k), xb.shape[0] - 1))
    return knn_graph(xb, k, block=block, device=device)
