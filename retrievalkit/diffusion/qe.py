# ruff: noqa: E741  (faiss naming: D distances, I ids)
"""Query expansion and database-side augmentation: the baselines every diffusion paper compares with.

- AQE (Chum et al. 2007): the query is replaced by the mean of itself and its top-n results.
- alpha-QE (Radenovic et al. 2018): weighted mean with weights ``max(s, 0) ** alpha`` (the query has s = 1).
- alpha-DBA: the same weighting applied offline to every database vector and its k nearest neighbours.
All outputs are L2-normalised rows (float32).
"""

from __future__ import annotations

import numpy as np

from retrievalkit.errors import UsageError
from retrievalkit.neighbours import Neighbours


def _normalize(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(n > 0, n, 1.0)).astype(np.float32)


def weighted_expansion(x: np.ndarray, xb: np.ndarray, nn_s: np.ndarray, nn_idx: np.ndarray,
                       alpha: float) -> np.ndarray:
    """``x_i + sum_j max(s_ij, 0)**alpha * xb[nn_idx[i, j]]``, L2-normalised (alpha = 0: plain mean).

    ``nn_s``, ``nn_idx``: (n, k) scores and ids of each row's neighbours in ``xb`` (``Neighbours`` order)."""
    if not np.issubdtype(np.asarray(nn_idx).dtype, np.integer):
        raise UsageError("weighted_expansion: neighbour ids must be integers; pass (scores, ids) in that order")
    nn_idx = np.asarray(nn_idx, dtype=np.int64)
    w = np.power(np.maximum(np.asarray(nn_s, dtype=np.float32), 0.0), alpha) if alpha > 0 else \
        np.ones(nn_idx.shape, np.float32)
    w = np.where(nn_idx >= 0, w, 0.0).astype(np.float32)
    agg = np.asarray(x, dtype=np.float32).copy()
    for j in range(nn_idx.shape[1]):
        agg += w[:, j:j + 1] * xb[np.maximum(nn_idx[:, j], 0)]
    return _normalize(agg)


def alpha_qe(xq: np.ndarray, xb: np.ndarray, n: int = 10, alpha: float = 3.0, device: str = "cpu") -> np.ndarray:
    """alpha-QE: each query expanded with its top-``n`` database vectors (alpha = 0 gives AQE)."""
    from retrievalkit.search.exact import search_ip

    if n < 1:
        raise UsageError(f"query expansion n {n}: must be at least 1")
    if alpha < 0:
        raise UsageError(f"query expansion alpha {alpha}: must be >= 0")
    D, I = search_ip(xq, xb, n, device=device)
    return weighted_expansion(xq, xb, D, I, alpha)


def aqe(xq: np.ndarray, xb: np.ndarray, n: int = 10, device: str = "cpu") -> np.ndarray:
    """Average query expansion: mean of the query and its top-``n`` database vectors."""
    return alpha_qe(xq, xb, n=n, alpha=0.0, device=device)


def alpha_dba(xb: np.ndarray, k: int = 10, alpha: float = 3.0, device: str = "cpu",
              knn: Neighbours | None = None) -> np.ndarray:
    """alpha-DBA: each database vector replaced by the weighted mean of itself and its ``k`` neighbours.

    ``knn``: an existing ``(scores, ids)`` kNN list of ``xb`` (self excluded, nearest first) to reuse.
    """
    from retrievalkit.search.exact import knn_graph

    if k < 1:
        raise UsageError(f"DBA k {k}: must be at least 1")
    if knn is not None and knn[1].shape[1] >= k:
        D, I = knn[0][:, :k], knn[1][:, :k]
    else:
        D, I = knn_graph(xb, min(k, max(1, xb.shape[0] - 1)), device=device)
    return weighted_expansion(xb, xb, D, I, alpha)
