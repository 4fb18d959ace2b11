"""Exact inner-product search and kNN graphs, in blocks so memory stays bounded.

This module (with the rest of ``retrievalkit.search``) is the only place faiss is imported.
On CPU it uses faiss's flat index; on CUDA, blocked torch GEMM + top-k. Results are
:class:`~retrievalkit.neighbours.Neighbours` ``(scores, ids)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from retrievalkit.errors import UsageError
from retrievalkit.neighbours import Neighbours


def _as_f32(x: np.ndarray, what: str) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise UsageError(f"{what}: expected a 2-D array (N, D), got shape {x.shape}")
    return x


def search_ip(xq: np.ndarray, xb: np.ndarray, k: int, block: int = 4096, device: str = "cpu",
              progress: Callable[[int], None] | None = None) -> Neighbours:
    """The ``k`` largest inner products of each query row with the database rows.

    Args:
        xq: (Q, D) queries. xb: (N, D) database. k: results per query (clipped to N).
        block: queries per block (bounds the (block, k) result and scratch memory).
    Returns:
        ``Neighbours(scores (Q, k) float32 decreasing, ids (Q, k) int64 database rows)``.
    """
    xq, xb = _as_f32(xq, "queries"), _as_f32(xb, "database")
    if xq.shape[1] != xb.shape[1]:
        raise UsageError(f"query dimension {xq.shape[1]} differs from database dimension {xb.shape[1]}")
    k = min(int(k), xb.shape[0])
    if k < 1:
        raise UsageError(f"k must be at least 1 (database has {xb.shape[0]} vectors)")
    if device.startswith("cuda"):
        return _search_torch(xq, xb, k, block, device, progress)
    import faiss

    index = faiss.IndexFlatIP(xb.shape[1])
    index.add(xb)
    D = np.empty((xq.shape[0], k), dtype=np.float32)
    I = np.empty((xq.shape[0], k), dtype=np.int64)
    for s in range(0, xq.shape[0], block):
        e = min(s + block, xq.shape[0])
        D[s:e], I[s:e] = index.search(xq[s:e], k)
        if progress:
            progress(e - s)
    return Neighbours(D, I)


def _search_torch(xq, xb, k, block, device, progress):
    import torch

    tb = torch.from_numpy(xb).to(device)
    D = np.empty((xq.shape[0], k), dtype=np.float32)
    I = np.empty((xq.shape[0], k), dtype=np.int64)
    for s in range(0, xq.shape[0], block):
        e = min(s + block, xq.shape[0])
        sims = torch.from_numpy(xq[s:e]).to(device) @ tb.T
        v, i = torch.topk(sims, k, dim=1)
        D[s:e], I[s:e] = v.cpu().numpy(), i.cpu().numpy()
        if progress:
            progress(e - s)
    return Neighbours(D, I)


def knn_graph(xb: np.ndarray, k: int, block: int = 4096, device: str = "cpu",
              progress: Callable[[int], None] | None = None) -> Neighbours:
    """Each database row's ``k`` nearest *other* rows by inner product (self excluded).

    Returns ``Neighbours(scores (N, k) float32, ids (N, k) int64)``; ids are -1 (score 0) where N-1 < k.
    Self is removed by id, not by position, so duplicated vectors are handled.
    """
    xb = _as_f32(xb, "database")
    n = xb.shape[0]
    kk = min(k + 1, n)
    D, I = search_ip(xb, xb, kk, block=block, device=device, progress=progress)
    out_i = np.full((n, k), -1, dtype=np.int64)
    out_d = np.zeros((n, k), dtype=np.float32)
    is_self = I == np.arange(n)[:, None]
    has_self = is_self.any(axis=1)
    # rows where self was not returned (ties): drop the last column instead
    drop = np.where(has_self[:, None], is_self, np.arange(kk)[None, :] == kk - 1)
    keep_i = I[~drop].reshape(n, kk - 1)
    keep_d = D[~drop].reshape(n, kk - 1)
    m = min(k, kk - 1)
    out_i[:, :m], out_d[:, :m] = keep_i[:, :m], keep_d[:, :m]
    return Neighbours(out_d, out_i)
