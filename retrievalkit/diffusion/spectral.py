"""Fast Spectral Ranking (Iscen et al., CVPR 2018): diffusion through the top-r eigenpairs of S.

Offline: ``S ~= U diag(lam) U^T`` with the r largest (algebraic) eigenvalues. Online, for right-hand
sides Y: ``F = U diag(h(lam)) U^T Y`` with ``h(l) = (1 - alpha) / (1 - alpha l)``, i.e. ``(1 - alpha)``
times the low-rank approximation of ``(I - alpha S)^-1 Y``. Cost: O(N r) memory, O(N r) per query.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from retrievalkit.diffusion.cg import check_alpha
from retrievalkit.errors import UsageError


def top_eigenpairs(S: sp.spmatrix, rank: int, tol: float = 0.0, seed: int = 0,
                   dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """The ``rank`` largest eigenvalues (r,) float64 and eigenvectors (N, r) (``dtype``) of symmetric ``S``.

    Small or full-rank requests use a dense eigensolver; otherwise Lanczos (``scipy eigsh``).
    Eigenvalues come sorted in decreasing order.
    """
    n = S.shape[0]
    if rank < 1:
        raise UsageError(f"spectral rank {rank}: must be at least 1")
    rank = min(int(rank), n)
    if n <= 2000 or rank >= n - 1:
        lam, U = np.linalg.eigh(np.asarray(sp.csr_matrix(S, dtype=np.float64).todense()))
        lam, U = lam[::-1][:rank], U[:, ::-1][:, :rank]
    else:
        from scipy.sparse.linalg import eigsh

        v0 = np.random.default_rng(seed).standard_normal(n)
        lam, U = eigsh(sp.csr_matrix(S, dtype=np.float64), k=rank, which="LA", tol=tol, v0=v0)
        order = np.argsort(-lam)
        lam, U = lam[order], U[:, order]
    return np.ascontiguousarray(lam, dtype=np.float64), np.ascontiguousarray(U, dtype=dtype)


def spectral_filter(eigvals: np.ndarray, alpha: float) -> np.ndarray:
    """``h(lam) = (1 - alpha) / (1 - alpha lam)`` (float32)."""
    alpha = check_alpha(alpha)
    return ((1.0 - alpha) / (1.0 - alpha * np.asarray(eigvals, dtype=np.float64))).astype(np.float32)


def spectral_rank(U: torch.Tensor, h: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """``F = U diag(h) U^T Y``: U (N, r), h (r,), Y (N, Q) on one device -> F (N, Q)."""
    return U @ (h[:, None] * (U.T @ Y))
