"""Conjugate gradient for manifold ranking: solve (I - alpha S) F = Y for many right-hand sides at once.

One CG recurrence per column, vectorised over the columns: each iteration is one sparse (N, N) x dense
(N, Q) product, so a block of queries costs about as much as one query on a GPU and far less than Q
separate solves on a CPU. The same torch recurrence runs on CPU and CUDA; only the sparse product differs
(scipy on CPU, torch sparse CSR on CUDA).
(I - alpha S) is symmetric positive definite for 0 < alpha < 1 because S's eigenvalues lie in [-1, 1].
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

from retrievalkit.errors import UsageError


def check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise UsageError(f"alpha {alpha}: must lie strictly between 0 and 1 (e.g. 0.99)")
    return alpha


def to_torch_sparse(S: sp.spmatrix | torch.Tensor, device: str = "cpu",
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A scipy sparse matrix as a torch sparse CSR tensor on ``device`` (tensors pass through, cast)."""
    if isinstance(S, torch.Tensor):
        return S.to(device=device, dtype=dtype)
    S = sp.csr_matrix(S)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the ops used here are stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(torch.from_numpy(S.indptr.astype(np.int64)),
                                       torch.from_numpy(S.indices.astype(np.int64)),
                                       torch.from_numpy(np.asarray(S.data)).to(dtype),
                                       size=S.shape, check_invariants=False).to(device)


def _pool(n: int):
    """A process-wide pool of ``n`` threads for the row blocks of the CPU sparse product (scipy's CSR kernels
    release the GIL, so the blocks run in parallel)."""
    global _POOL
    if _POOL is None or _POOL._max_workers != n:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(n, thread_name_prefix="rkit-spmm")
    return _POOL


_POOL = None
#: below this many stored entries one thread does the product (thread hand-off costs more than it saves)
PARALLEL_MIN_NNZ = 200_000


def row_blocks(indptr: np.ndarray, n: int) -> list[tuple[int, int]]:
    """Split the rows of a CSR matrix with row pointers ``indptr`` into ``n`` contiguous blocks of about equal
    stored entries: [(first row, end row), ...]."""
    rows = indptr.shape[0] - 1
    cuts = np.searchsorted(indptr, np.linspace(0, indptr[-1], n + 1)[1:-1]).tolist()
    bounds = [0, *sorted(min(max(c, 0), rows) for c in cuts), rows]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


class SparseOperator:
    """``P -> S @ P`` for dense torch blocks, with ``S`` stored in a locality-friendly node order.

    On CPU the product runs in scipy (its CSR x dense kernel is several times faster than torch's CPU
    sparse kernel) sharing memory with the torch tensors; with ``threads`` > 1 it is split into row blocks of
    equal stored entries run on that many threads (default 1: on the 2-core machine measured, idle, two
    threads were 0.91-0.96x of one, benchmarks/diffuse_speed.py --cg-limit); on CUDA it is a torch sparse CSR
    product.
    With ``reorder`` the nodes are renumbered by reverse Cuthill-McKee once, so neighbours sit close
    in memory and each product streams through the block instead of jumping around it (the CPU product
    is memory-bound: 2-7x faster on kNN graphs). ``perm`` is that order: callers permute their
    right-hand sides with :meth:`to_internal` / :meth:`to_external` once per solve, not per product.
    """

    def __init__(self, S: sp.spmatrix | torch.Tensor, device: str = "cpu", dtype: torch.dtype = torch.float32,
                 reorder: bool = True, threads: int | None = None):
        self.device = str(device)
        self.perm = self.inv = None
        self._blocks: list[tuple[int, int, sp.csr_matrix]] = []
        if isinstance(S, torch.Tensor):
            self._S, self._torch = S.to(device=device, dtype=dtype), True
            return
        S = sp.csr_matrix(S)
        if reorder and S.shape[0] > 1:
            from scipy.sparse.csgraph import reverse_cuthill_mckee

            p = reverse_cuthill_mckee(S, symmetric_mode=True).astype(np.int64)
            S = sp.csr_matrix(S[p][:, p])
            self.perm = torch.from_numpy(p).to(device)
            self.inv = torch.from_numpy(np.argsort(p)).to(device)
        self._torch = self.device.startswith("cuda")
        if self._torch:
            self._S = to_torch_sparse(S, device, dtype)
            return
        self._S = sp.csr_matrix(S, dtype=np.float64 if dtype == torch.float64 else np.float32)
        self.threads = max(1, int(threads or 1))
        if self.threads > 1 and self._S.nnz >= PARALLEL_MIN_NNZ:
            self._blocks = [(a, b, self._S[a:b]) for a, b in row_blocks(self._S.indptr, self.threads)]

    def __call__(self, P: torch.Tensor) -> torch.Tensor:
        """``S P`` for P in the internal order."""
        if self._torch:
            return self._S @ P
        x = P.contiguous().numpy()
        if len(self._blocks) < 2:
            return torch.from_numpy(np.asarray(self._S @ x))
        out = np.empty((self._S.shape[0], *x.shape[1:]), np.result_type(self._S.dtype, x.dtype))

        def block(a, b, Sb):
            out[a:b] = Sb @ x

        for f in [_pool(len(self._blocks)).submit(block, *blk) for blk in self._blocks]:
            f.result()
        return torch.from_numpy(out)

    def to_internal(self, Y: torch.Tensor) -> torch.Tensor:
        return Y if self.perm is None else Y[self.perm]

    def to_external(self, F: torch.Tensor) -> torch.Tensor:
        return F if self.inv is None else F[self.inv]


def sparse_operator(S: sp.spmatrix | torch.Tensor, device: str = "cpu", dtype: torch.dtype = torch.float32,
                    reorder: bool = True, threads: int | None = None) -> SparseOperator:
    """:class:`SparseOperator` for ``S`` (build it once per graph, reuse it for every block of queries)."""
    return SparseOperator(S, device, dtype, reorder, threads)


def cg_solve_torch(S, Y: torch.Tensor, alpha: float = 0.99, iters: int = 20,
                   tol: float = 1e-6) -> tuple[torch.Tensor, int]:
    """Torch core of :func:`cg_solve`: ``S`` a :class:`SparseOperator`, a scipy/torch sparse (N, N) matrix or
    a callable ``P -> S P``; ``Y`` dense (N, Q) on the device.

    Returns (F (N, Q), iterations run). Stops when every column's residual norm is below
    ``tol`` times its right-hand side's norm, or after ``iters`` iterations.
    """
    if isinstance(S, (torch.Tensor, sp.spmatrix)):
        S = sparse_operator(S, str(Y.device), Y.dtype)
    if isinstance(S, SparseOperator):
        X, it = conjugate_gradient(S, S.to_internal(Y), alpha, iters, tol, dim=0)
        return S.to_external(X), it
    return conjugate_gradient(S, Y, alpha, iters, tol, dim=0)


def conjugate_gradient(matvec, Y: torch.Tensor, alpha: float, iters: int, tol: float,
                       dim: int = 0, ref_sq: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """Independent CG recurrences for ``(I - alpha S) x = y``, one per slice of ``Y`` along the other dims.

    ``matvec(P)`` returns ``S P`` for a block shaped like ``Y``; vectors run along ``dim`` (0 for an
    (N, Q) block, -1 for a batch (B, n) of small systems). A slice stops when its squared residual norm is
    below ``tol**2`` times ``ref_sq`` (default: the squared norm of its right-hand side; hybrid diffusion
    passes the norm of the original right-hand side when it solves for a residual).
    """
    # Work buffers allocated once and updated in place: no block-sized temporary is allocated per iteration
    # (on CPU each would be fresh pages from the OS: page faults on every step). Every step rounds as the
    # textbook expressions do (a * P, then X + that; no fused multiply-add), so the iterates are bit for bit
    # those of the allocating form.
    X = torch.zeros_like(Y)
    R = Y.clone()
    P = R.clone()
    AP = torch.empty_like(Y)
    T = torch.empty_like(Y)
    rs = torch.mul(R, R, out=T).sum(dim, keepdim=True)
    thresh = (tol * tol) * (rs if ref_sq is None else ref_sq)
    one = torch.ones_like(rs)
    it = 0
    for it in range(1, int(iters) + 1):
        if bool((rs <= thresh).all()):
            it -= 1
            break
        torch.sub(P, torch.mul(matvec(P), alpha, out=AP), out=AP)  # AP = P - alpha S P
        pap = torch.mul(P, AP, out=T).sum(dim, keepdim=True)
        a = torch.where(pap > 0, rs / torch.where(pap > 0, pap, one), torch.zeros_like(pap))
        X.add_(torch.mul(P, a, out=T))  # X += a P
        R.sub_(torch.mul(AP, a, out=T))  # R -= a AP
        rs_new = torch.mul(R, R, out=T).sum(dim, keepdim=True)
        beta = torch.where(rs > 0, rs_new / torch.where(rs > 0, rs, one), torch.zeros_like(rs))
        P.mul_(beta).add_(R)  # P = R + beta P
        rs = rs_new
    return X, it


def right_hand_sides(S, Y: np.ndarray, dtype=None) -> tuple[np.ndarray, np.dtype, torch.dtype]:
    """``Y`` (N,) or (N, Q) checked against the graph ``S`` (N, N) and made 2-D, with the computation dtype
    (``dtype``, else Y's when float32/float64, else float32) as numpy and torch dtypes."""
    Y = np.asarray(Y)
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.ndim != 2 or Y.shape[0] != S.shape[0]:
        raise UsageError(f"right-hand sides of shape {Y.shape} do not match the graph of {S.shape[0]} nodes")
    np_dtype = np.dtype(dtype) if dtype is not None else (Y.dtype if Y.dtype in (np.float32, np.float64)
                                                           else np.dtype(np.float32))
    return Y, np_dtype, (torch.float64 if np_dtype == np.float64 else torch.float32)


def cg_solve(S: sp.spmatrix | torch.Tensor, Y: np.ndarray, alpha: float = 0.99, iters: int = 20,
             tol: float = 1e-6, device: str = "cpu", dtype: np.dtype | str | None = None) -> np.ndarray:
    """Solve ``(I - alpha S) F = Y`` for all columns of ``Y`` at once by conjugate gradient.

    Args:
        S: (N, N) symmetric normalised affinity (scipy sparse, or a torch sparse tensor).
        Y: (N, Q) dense right-hand sides (one column per query).
        alpha: in (0, 1); iters: maximum iterations; tol: relative residual to stop at.
        device: ``cpu`` or ``cuda[:N]``. dtype: computation dtype (default: Y's, float32 for other types).
    Returns:
        F (N, Q) numpy array of ``dtype``.
    """
    alpha = check_alpha(alpha)
    if iters < 1:
        raise UsageError(f"CG iterations {iters}: must be at least 1")
    Y, np_dtype, tdtype = right_hand_sides(S, Y, dtype)
    Yt = torch.from_numpy(np.ascontiguousarray(Y, dtype=np_dtype)).to(device)
    F, _ = cg_solve_torch(sparse_operator(S, device, tdtype), Yt, alpha, iters, tol)
    return F.cpu().numpy()
