# ruff: noqa: E741  (faiss naming: D distances, I ids)
"""CG, spectral and truncated diffusion against the dense closed form (I - alpha S)^-1 y."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from retrievalkit.diffusion.cg import cg_solve, cg_solve_torch, to_torch_sparse
from retrievalkit.diffusion.graph import affinity_from_knn, normalize_symmetric
from retrievalkit.diffusion.spectral import spectral_filter, spectral_rank, top_eigenpairs
from retrievalkit.diffusion.truncated import subgraph_blocks, truncated_solve
from retrievalkit.errors import UsageError
from retrievalkit.search.exact import knn_graph


def _random_graph(n=120, k=8, seed=0, mutual=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 12)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    D, I = knn_graph(x, k)
    W = affinity_from_knn(D, I, gamma=3.0, mutual=mutual)
    return W, normalize_symmetric(W), rng


def _closed_form(S, Y, alpha):
    return np.linalg.solve(np.eye(S.shape[0]) - alpha * S.toarray().astype(np.float64), Y)


@pytest.mark.parametrize("alpha", [0.5, 0.9, 0.99])
def test_cg_matches_closed_form(alpha):
    _, S, rng = _random_graph()
    Y = rng.random((S.shape[0], 4))
    Y[:, 3] = 0.0  # an empty right-hand side stays zero
    F = cg_solve(S, Y, alpha=alpha, iters=1000, tol=1e-13, dtype=np.float64)
    ref = _closed_form(S, Y, alpha)
    assert np.abs(F - ref).max() <= 1e-6 * max(1.0, np.abs(ref).max())
    assert np.all(F[:, 3] == 0)


def test_cg_float32_and_iteration_limit():
    _, S, rng = _random_graph(seed=1)
    Y = rng.random((S.shape[0], 3))
    ref = _closed_form(S, Y, 0.99)
    F32 = cg_solve(S, Y.astype(np.float32), alpha=0.99, iters=500, tol=1e-7)
    assert F32.dtype == np.float32
    np.testing.assert_allclose(F32, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())
    # a few iterations are a coarser solution, but already closer than the start (y itself)
    F3 = cg_solve(S, Y, alpha=0.99, iters=3, dtype=np.float64)
    err3, err0 = np.linalg.norm(F3 - ref), np.linalg.norm(Y - ref)
    assert err3 < err0
    _, it = cg_solve_torch(to_torch_sparse(S, dtype=torch.float64), torch.from_numpy(Y), 0.99, 1000, 1e-8)
    assert 3 < it < 1000


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.3, 1.5])
def test_alpha_outside_open_interval(alpha):
    _, S, _ = _random_graph(n=20, k=3)
    with pytest.raises(UsageError, match="alpha"):
        cg_solve(S, np.ones((20, 1)), alpha=alpha)


def test_spectral_full_rank_matches_closed_form():
    _, S, rng = _random_graph(n=80, k=6)
    Y = rng.random((80, 3))
    lam, U = top_eigenpairs(S, 80, dtype=np.float64)
    assert np.all(np.diff(lam) <= 1e-12)
    F = spectral_rank(torch.from_numpy(U), torch.from_numpy(spectral_filter(lam, 0.99).astype(np.float64)),
                      torch.from_numpy(Y)).numpy()
    ref = (1 - 0.99) * _closed_form(S, Y, 0.99)
    np.testing.assert_allclose(F, ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())


def test_spectral_lanczos_agrees_with_dense():
    from scipy.sparse.linalg import eigsh

    _, S, _ = _random_graph(n=300, k=8)
    lam, _ = top_eigenpairs(S, 20)
    ref = np.sort(eigsh(S.astype(np.float64), k=20, which="LA")[0])[::-1]
    np.testing.assert_allclose(lam, ref, atol=1e-6)
    assert lam[0] == pytest.approx(1.0, abs=1e-6)


def test_low_rank_error_shrinks_with_rank():
    _, S, rng = _random_graph(n=100, k=6)
    Y = rng.random((100, 2))
    ref = (1 - 0.9) * _closed_form(S, Y, 0.9)
    errs = []
    for r in (10, 50, 100):
        lam, U = top_eigenpairs(S, r, dtype=np.float64)
        F = U @ (spectral_filter(lam, 0.9)[:, None].astype(np.float64) * (U.T @ Y))
        errs.append(np.linalg.norm(F - ref))
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-6 * np.linalg.norm(ref)


def test_truncated_on_whole_graph_equals_global_solve():
    W, S, rng = _random_graph(n=60, k=6)
    perm = rng.permutation(60)
    cand = np.stack([perm, np.roll(perm, 7)])  # two "queries" whose top-n is everything, in some order
    y = rng.random((2, 60)).astype(np.float32)
    f = truncated_solve(W, cand, y, alpha=0.9, iters=500, tol=1e-9)
    for b in range(2):
        Y = np.zeros((60, 1))
        Y[cand[b], 0] = y[b]
        ref = _closed_form(S, Y, 0.9)[cand[b], 0]
        np.testing.assert_allclose(f[b], ref, rtol=1e-3, atol=1e-4)


def test_subgraph_blocks_extract_the_right_blocks():
    W, _, rng = _random_graph(n=50, k=5)
    cand = np.stack([rng.choice(50, 12, replace=False) for _ in range(3)])
    A = subgraph_blocks(W, cand).toarray()
    Wd = W.toarray()
    expected = np.zeros((36, 36), np.float32)
    for b in range(3):
        expected[b * 12:(b + 1) * 12, b * 12:(b + 1) * 12] = Wd[np.ix_(cand[b], cand[b])]
    np.testing.assert_array_equal(A, expected)
