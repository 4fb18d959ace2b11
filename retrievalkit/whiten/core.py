"""Whitening cores on arrays: PCA whitening and learned (supervised) whitening, and applying them.

A whitening is a pair ``(mean, proj)`` — the one convention of the library (whitening files, the network's
whitening layer, copy detection, deep locals): ``mean`` (D_in,) and ``proj`` (D_out, D_in); a vector ``x``
becomes ``l2n(proj (x - mean))``. Rows of ``proj`` are ordered by decreasing variance, so ``proj[:d]`` reduces
to ``d`` dims.
No files, no printing here (see :mod:`retrievalkit.whiten.stage`).

Example:
    >>> mean, proj = learned_whitening(x, qidx, pidx, dim=128)
    >>> xw = apply_whitening(x, mean, proj)    # (N, 128), rows unit norm
"""

from __future__ import annotations

import numpy as np

from retrievalkit.errors import BadInputError, UsageError


def _as_rows(x: np.ndarray, what: str = "vectors") -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0:
        raise UsageError(f"{what}: expected a non-empty (N, D) array, got shape {x.shape}")
    return x.astype(np.float64)


def _check_dim(dim: int | None, d_in: int) -> int:
    if dim is None or dim == 0:
        return d_in
    if dim < 0 or dim > d_in:
        raise UsageError(f"--dim {dim}: must be between 1 and the input dimension {d_in}")
    return int(dim)


def shrink(cov: np.ndarray, shrinkage: float) -> np.ndarray:
    """Shrink a covariance towards a scaled identity: ``(1 - a) C + a (tr C / D) I`` (Ledoit-Wolf style target)."""
    if not 0.0 <= shrinkage <= 1.0:
        raise UsageError(f"--shrinkage {shrinkage}: must be in [0, 1]")
    if shrinkage == 0.0:
        return cov
    d = cov.shape[0]
    return (1.0 - shrinkage) * cov + shrinkage * (np.trace(cov) / d) * np.eye(d)


def _eig_desc(sym: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of a symmetric matrix, eigenvalues decreasing; eigenvector signs fixed (max entry > 0)."""
    sym = (sym + sym.T) / 2.0
    w, v = np.linalg.eigh(sym)
    order = np.argsort(w)[::-1]
    w, v = w[order], v[:, order]
    flip = np.sign(v[np.abs(v).argmax(axis=0), np.arange(v.shape[1])])
    flip[flip == 0] = 1.0
    return w, v * flip


def pca_whitening(x: np.ndarray, dim: int | None = None, shrinkage: float = 0.0,
                  power: float = 0.5, eps: float = 1e-9, ridge: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """PCA whitening learned from rows ``x`` (N, D): ``P = diag(lambda^-power) E^T``, top ``dim`` components.

    Args:
        x: (N, D) vectors (usually L2-normalised descriptors).
        dim: output dimension (None: D).
        shrinkage: covariance shrinkage towards a scaled identity, in [0, 1] (regularises small eigenvalues).
        power: eigenvalue power; 0.5 is full whitening, 0 plain PCA rotation (dimensionality reduction only).
        eps: eigenvalues are clamped to at least ``eps * max eigenvalue``.
        ridge: then raised by ``ridge * max eigenvalue`` (a softer regulariser of the weakest kept directions;
            deep local descriptors use 1e-6).
    Returns:
        mean (D,) float32, proj (dim, D) float32.
    """
    x = _as_rows(x)
    d_out = _check_dim(dim, x.shape[1])
    if power < 0:
        raise UsageError(f"--power {power}: must be >= 0")
    m = x.mean(axis=0)
    xc = x - m
    cov = shrink(xc.T @ xc / x.shape[0], shrinkage)
    w, v = _eig_desc(cov)
    w_max = max(float(w[0]), eps)
    w = np.maximum(w, eps * w_max) + ridge * w_max
    P = (v[:, :d_out] * w[:d_out] ** -power).T
    return m.astype(np.float32), P.astype(np.float32)


def learned_whitening(x: np.ndarray, qidx: np.ndarray, pidx: np.ndarray, dim: int | None = None,
                      shrinkage: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Supervised whitening of Radenović, Tolias & Chum (cirtorch ``whitenlearn``).

    ``m`` is the mean of the query vectors; ``S`` the covariance of the differences ``x_q - x_p`` over the
    matching pairs; ``L = chol(S)`` and ``x -> L^-1 (x - m)`` whitens the pair differences (their covariance
    becomes I); finally the projected data of all rows are rotated onto their principal axes (PCA, eigenvalues
    decreasing), which keeps the pair-difference covariance the identity, and the top ``dim`` rows are kept.

    Args:
        x: (N, D) vectors. qidx, pidx: (T,) indices of matching pairs into ``x``.
        dim: output dimension (None: D).
        shrinkage: shrink ``S`` towards a scaled identity (needed when there are fewer independent pairs than
            dimensions, which makes ``S`` singular).
    Returns:
        mean (D,) float32, proj (dim, D) float32.
    Raises:
        BadInputError: ``S`` is not positive definite (too few pairs for the dimension) and no shrinkage helps.
    """
    x = _as_rows(x)
    qidx = np.asarray(qidx, np.int64)
    pidx = np.asarray(pidx, np.int64)
    if qidx.ndim != 1 or qidx.shape != pidx.shape or qidx.size == 0:
        raise UsageError(f"learned whitening needs equal, non-empty 1-D qidx/pidx, got {qidx.shape}, {pidx.shape}")
    if min(qidx.min(), pidx.min()) < 0 or max(qidx.max(), pidx.max()) >= x.shape[0]:
        raise UsageError(f"learned whitening: pair indices outside 0..{x.shape[0] - 1}")
    d_out = _check_dim(dim, x.shape[1])
    m = x[qidx].mean(axis=0)
    df = x[qidx] - x[pidx]
    S = shrink(df.T @ df / df.shape[0], shrinkage)
    try:
        L = np.linalg.cholesky((S + S.T) / 2.0)
    except np.linalg.LinAlgError:
        rank = int(np.linalg.matrix_rank(df))
        raise BadInputError(
            f"learned whitening: the covariance of the {df.shape[0]} pair differences is singular (rank {rank} < "
            f"dimension {x.shape[1]}); add pairs, or pass --shrinkage (e.g. 0.1) to regularise it") from None
    Linv = np.linalg.inv(L)
    y = (x - m) @ Linv.T
    _, v = _eig_desc(y.T @ y)
    P = v[:, :d_out].T @ Linv
    return m.astype(np.float32), P.astype(np.float32)


def apply_whitening(x: np.ndarray, mean: np.ndarray, proj: np.ndarray, normalize: bool = True) -> np.ndarray:
    """``l2n(proj (x - mean))`` for each row of ``x`` (N, D_in) -> (N, D_out) float32."""
    x = np.asarray(x, np.float32)
    P = np.asarray(proj, np.float32)
    m = np.asarray(mean, np.float32).reshape(-1)
    if x.ndim != 2 or x.shape[1] != P.shape[1] or m.shape[0] != P.shape[1]:
        raise BadInputError(f"whitening takes {P.shape[1]}-d vectors (mean {m.shape[0]}-d), got vectors of shape "
                            f"{x.shape}; learn the whitening on features of the same model")
    y = (x - m) @ P.T
    if normalize:
        y /= np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
    return y.astype(np.float32)
