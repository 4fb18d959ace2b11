"""Truncated diffusion (Iscen et al., CVPR 2017): each query diffuses only on the subgraph of its top-n
Euclidean neighbours, renormalised (S_sub = D_sub^-1/2 W_sub D_sub^-1/2), which bounds the cost per query
by n (not by the database size) and keeps far-away parts of the graph out of the ranking.

A batch of B queries becomes one block-diagonal sparse system of B (n, n) blocks; CG runs one independent
recurrence per query (column), so each query converges on its own.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from retrievalkit.diffusion.cg import check_alpha, conjugate_gradient, sparse_operator
from retrievalkit.diffusion.graph import normalize_symmetric


def subgraph_blocks(W: sp.csr_matrix, cand: np.ndarray) -> sp.csr_matrix:
    """Block-diagonal (B n, B n) matrix whose block b is ``W`` restricted to ``cand[b]`` (n distinct node ids).

    Node ``cand[b, i]`` becomes row ``b * n + i``.
    """
    W = sp.csr_matrix(W)
    cand = np.asarray(cand, dtype=np.int64)
    B, n = cand.shape
    loc = np.full(W.shape[0], -1, dtype=np.int64)
    indptr, indices, data = W.indptr, W.indices, W.data
    rows_all, cols_all, vals_all = [], [], []
    for b in range(B):
        c = cand[b]
        loc[c] = np.arange(n)
        starts = indptr[c]
        lens = indptr[c + 1] - starts
        total = int(lens.sum())
        if total:
            # positions of all CSR entries of the n rows, gathered in one go
            flat = np.repeat(starts - np.cumsum(lens) + lens, lens) + np.arange(total)
            rows = np.repeat(np.arange(n), lens)
            cols = loc[indices[flat]]
            ok = cols >= 0
            rows_all.append(rows[ok] + b * n)
            cols_all.append(cols[ok] + b * n)
            vals_all.append(data[flat[ok]])
        loc[c] = -1
    if not rows_all:
        return sp.csr_matrix((B * n, B * n), dtype=np.float32)
    return sp.csr_matrix((np.concatenate(vals_all), (np.concatenate(rows_all), np.concatenate(cols_all))),
                         shape=(B * n, B * n), dtype=np.float32)


def truncated_solve(W: sp.csr_matrix, cand: np.ndarray, y_local: np.ndarray, alpha: float = 0.99,
                    iters: int = 20, tol: float = 1e-6, device: str = "cpu") -> np.ndarray:
    """Diffusion scores (B, n) on each query's subgraph.

    Args:
        W: (N, N) symmetric affinity (not normalised: each subgraph is normalised on its own).
        cand: (B, n) candidate node ids per query (its top-n Euclidean neighbours).
        y_local: (B, n) right-hand side restricted to the candidates.
    """
    alpha = check_alpha(alpha)
    B, n = np.asarray(cand).shape
    S = normalize_symmetric(subgraph_blocks(W, cand))  # block-wise degrees: each subgraph renormalised
    y = np.ascontiguousarray(y_local, dtype=np.float32)
    dtype = torch.float64 if y.dtype == np.float64 else torch.float32
    op = sparse_operator(S, device, dtype, reorder=False)  # blocks are already local

    def matvec(P):  # P (n, B): column b lives in block b
        return op(P.T.reshape(-1, 1)).reshape(B, n).T

    Y = torch.from_numpy(y).to(device).T.contiguous()
    F, _ = conjugate_gradient(matvec, Y, alpha, iters, tol, dim=0)
    return F.T.cpu().numpy()
