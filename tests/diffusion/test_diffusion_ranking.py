# ruff: noqa: E741  (faiss naming: D distances, I ids)
"""The array core: order invariance, expansion, regions, automatic settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from retrievalkit.diffusion.qe import alpha_dba, alpha_qe, aqe
from retrievalkit.diffusion.rank import DiffusionConfig, auto_fuse, auto_graph_k, diffusion_ranking, resolve_config
from retrievalkit.diffusion.regions import pool_rows
from retrievalkit.errors import UsageError
from tests.diffusion.conftest import curves, noisy_queries


def _mean_ap(I, labels, qlab):
    aps = []
    for row, lab in zip(I, qlab):
        rel = labels[row[row >= 0]] == lab
        hits = np.cumsum(rel)
        aps.append(float((hits / np.arange(1, len(rel) + 1))[rel].sum() / (labels == lab).sum()))
    return float(np.mean(aps))


@pytest.mark.parametrize("method", ["cg", "truncated", "spectral", "none"])
def test_independent_of_database_order(method):
    x, _ = curves(n_clusters=5, per=20)
    qidx = np.arange(0, 100, 9)
    xq = noisy_queries(x, qidx)
    cfg = DiffusionConfig(method=method, graph_k=6, trunc_n=60, iters=200, tol=1e-10, rank=100, qe="alpha-qe")
    D1, I1, _ = diffusion_ranking(x, xq, cfg)
    perm = np.random.default_rng(3).permutation(len(x))
    D2, I2, _ = diffusion_ranking(x[perm], xq, cfg)
    np.testing.assert_array_equal(perm[I2], I1)
    np.testing.assert_allclose(D2, D1, rtol=1e-4, atol=1e-5)


def test_diffusion_beats_plain_search_on_a_manifold():
    # long curves: the far end of a curve is closer to other curves than to the query, but the
    # graph connects it to the query through its neighbours
    x, lab = curves(n_clusters=10, per=40, noise=0.08)
    qidx = np.arange(0, 400, 40)  # queries at one end of each curve
    xq = noisy_queries(x, qidx, 0.02)
    plain = _mean_ap(diffusion_ranking(x, xq, DiffusionConfig(method="none")).ids, lab, lab[qidx])
    for method in ("cg", "spectral", "truncated"):
        _, I, _ = diffusion_ranking(x, xq, DiffusionConfig(method=method, graph_k=5, fuse=0.0))
        assert _mean_ap(I, lab, lab[qidx]) > plain + 0.02, method


def test_plain_search_and_topk():
    x, _ = curves()
    xq = noisy_queries(x, np.array([0, 50]))
    D, I, cfg = diffusion_ranking(x, xq, DiffusionConfig(method="none", top_k=7))
    ref = np.argsort(-(xq @ x.T), axis=1)[:, :7]
    np.testing.assert_array_equal(I, ref)
    assert I.shape == (2, 7) and np.all(np.diff(D, axis=1) <= 0)


def test_query_expansion_known_vectors():
    xb = np.eye(4, dtype=np.float32)
    xq = np.array([[0.8, 0.6, 0.0, 0.0]], np.float32)
    # AQE with n=2: mean of q, e0, e1 -> (1.8, 1.6, 0, 0) normalised
    ref = np.array([[1.8, 1.6, 0, 0]]) / np.hypot(1.8, 1.6)
    np.testing.assert_allclose(aqe(xq, xb, n=2), ref, rtol=1e-6)
    # alpha-QE, alpha=2: q + 0.64 e0 + 0.36 e1
    ref = np.array([[0.8 + 0.64, 0.6 + 0.36, 0, 0]])
    np.testing.assert_allclose(alpha_qe(xq, xb, n=2, alpha=2.0), ref / np.linalg.norm(ref), rtol=1e-6)


def test_alpha_dba_pulls_neighbours_together():
    x, lab = curves(n_clusters=4, per=15)
    xa = alpha_dba(x, k=5)
    np.testing.assert_allclose(np.linalg.norm(xa, axis=1), 1.0, rtol=1e-5)
    same = lab[:, None] == lab[None, :]
    g0, g1 = x @ x.T, xa @ xa.T
    assert g1[same].mean() > g0[same].mean()


def test_pool_rows_max_and_sum():
    F = torch.tensor([[1.0, 5.0], [3.0, -1.0], [2.0, 2.0]])
    owner = np.array([1, 1, 0])
    np.testing.assert_array_equal(pool_rows(F, owner, 3, "max").numpy(),
                                  [[2, 2], [3, 5], [-np.inf, -np.inf]])
    np.testing.assert_array_equal(pool_rows(F, owner, 3, "sum").numpy(), [[2, 2], [4, 4], [0, 0]])


def test_regional_plain_search_is_best_region_pair():
    rng = np.random.default_rng(5)
    xb = rng.standard_normal((30, 8)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    db_owner = rng.integers(0, 10, 30)
    db_owner[:10] = np.arange(10)  # every image has a region
    xq = xb[[3, 17, 22]] + 0.01
    q_owner = np.array([0, 1, 1])
    D, I, _ = diffusion_ranking(xb, xq, DiffusionConfig(method="none"), db_owner=db_owner, n_db_images=10,
                                q_owner=q_owner, n_q_images=2)
    sims = xq @ xb.T
    for qi in range(2):
        img = np.array([[sims[q_owner == qi][:, db_owner == j].max()] for j in range(10)]).ravel()
        np.testing.assert_array_equal(I[qi], np.argsort(-img))


@pytest.mark.parametrize("method", ["cg", "truncated", "spectral"])
def test_regions_one_per_image_equal_global(method):
    x, _ = curves(n_clusters=4, per=20)
    xq = noisy_queries(x, np.array([3, 44]))
    cfg = DiffusionConfig(method=method, graph_k=6, trunc_n=50, rank=80, iters=100)
    D1, I1, _ = diffusion_ranking(x, xq, cfg)
    D2, I2, _ = diffusion_ranking(x, xq, cfg, db_owner=np.arange(80), n_db_images=80,
                                  q_owner=np.arange(2), n_q_images=2)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_allclose(D1, D2, rtol=1e-5)


def test_resolve_config_rules():
    assert auto_graph_k(100) == 5 and auto_graph_k(650) == 6 and auto_graph_k(10**6) == 50
    assert auto_fuse(650) == 0.9 and auto_fuse(10**5) == 0.0
    cfg = resolve_config(DiffusionConfig(), 650, graph_k_available=4)
    assert cfg.graph_k == 4 and cfg.fuse == 0.9
    assert resolve_config(DiffusionConfig(fuse=0.0), 650).fuse == 0.0
    with pytest.raises(UsageError, match="graph-k"):
        resolve_config(DiffusionConfig(graph_k=60), 650, graph_k_available=50)
    for bad in (dict(alpha=1.0), dict(method="magic"), dict(qe="x"), dict(fuse=2.0), dict(query_k=0),
                dict(pool="mean")):
        with pytest.raises(UsageError):
            resolve_config(DiffusionConfig(**bad), 100)
