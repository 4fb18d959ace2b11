"""The CPU sparse product split into row blocks on threads, and the fused CG recurrence."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from retrievalkit.diffusion import cg as cgmod
from retrievalkit.diffusion.cg import conjugate_gradient, row_blocks, sparse_operator


def _graph(n=400, k=6, seed=0):
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n), k)
    cols = rng.integers(0, n, n * k)
    W = sp.csr_matrix((rng.random(n * k), (rows, cols)), shape=(n, n))
    W = W + W.T
    d = 1 / np.sqrt(np.asarray(W.sum(1)).ravel())
    return sp.csr_matrix(sp.diags(d) @ W @ sp.diags(d)), rng


@pytest.mark.parametrize("n_blocks", [1, 2, 3, 7])
def test_row_blocks_cover_rows_with_balanced_entries(n_blocks):
    S, _ = _graph()
    blocks = row_blocks(S.indptr, n_blocks)
    assert blocks[0][0] == 0 and blocks[-1][1] == S.shape[0]
    assert all(b0[1] == b1[0] for b0, b1 in zip(blocks[:-1], blocks[1:]))
    per = [S.indptr[b] - S.indptr[a] for a, b in blocks]
    assert len(blocks) == n_blocks and max(per) - min(per) <= 2 * S.getnnz(axis=1).max()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_threaded_product_equals_one_thread(monkeypatch, dtype):
    monkeypatch.setattr(cgmod, "PARALLEL_MIN_NNZ", 0)  # a small graph, split anyway
    S, rng = _graph()
    P = torch.from_numpy(rng.random((S.shape[0], 5))).to(dtype)
    one = sparse_operator(S, dtype=dtype, threads=1)
    three = sparse_operator(S, dtype=dtype, threads=3)
    assert len(three._blocks) == 3 and not one._blocks
    Pi = one.to_internal(P)
    assert torch.equal(one(Pi), three(Pi))  # the same kernel on each row: the same bits
    ref = torch.from_numpy(np.asarray(S.astype(np.float64) @ P.double().numpy()))
    torch.testing.assert_close(one.to_external(three(Pi)).double(), ref, rtol=1e-5, atol=1e-6)


def test_fused_recurrence_matches_textbook_cg():
    """The in-place recurrence gives the iterates of the textbook (allocating) CG, column by column."""
    S, rng = _graph(n=200)
    Y = torch.from_numpy(rng.random((200, 3)))
    A = torch.from_numpy(np.eye(200) - 0.9 * S.toarray())
    X, it = conjugate_gradient(lambda P: torch.from_numpy(S @ P.numpy()), Y, 0.9, 7, 0.0)
    assert it == 7
    for j in range(3):
        x, r = torch.zeros(200, dtype=torch.float64), Y[:, j].clone()
        p = r.clone()
        for _ in range(7):
            ap = A @ p
            a = (r @ r) / (p @ ap)
            x, r_new = x + a * p, r - a * ap
            p = r_new + ((r_new @ r_new) / (r @ r)) * p
            r = r_new
        torch.testing.assert_close(X[:, j], x, rtol=1e-9, atol=1e-12)


def test_in_place_recurrence_is_bit_identical_to_allocating_form():
    S, rng = _graph(n=300)
    Y = torch.from_numpy(rng.random((300, 4)).astype(np.float32))

    def matvec(P):
        return torch.from_numpy(np.asarray(S.astype(np.float32) @ P.numpy()))

    X = torch.zeros_like(Y)
    R, P = Y.clone(), Y.clone()
    rs = (R * R).sum(0, keepdim=True)
    for _ in range(9):  # the allocating form, written out
        AP = P - 0.99 * matvec(P)
        a = rs / (P * AP).sum(0, keepdim=True)
        X = X + a * P
        R = R - a * AP
        rs_new = (R * R).sum(0, keepdim=True)
        P = R + (rs_new / rs) * P
        rs = rs_new
    got, it = conjugate_gradient(matvec, Y, 0.99, 9, 0.0)
    assert it == 9 and torch.equal(got, X)
