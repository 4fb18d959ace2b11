"""Normalisation, whitening, view aggregation and submission selection on synthetic arrays with known answers."""
# ruff: noqa: E741  (faiss naming from STYLE.md: D scores, I ids)

from __future__ import annotations

import numpy as np
import pytest

from retrievalkit.copydetect import (
    Side,
    aggregate_views,
    augment_for_ip,
    augment_for_l2,
    background_similarity,
    combine_mean,
    fit_pca_whitening,
    image_ids,
    normalized_search,
    parse_views,
    select_matches,
)
from retrievalkit.errors import BadInputError, UsageError


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def data():
    rng = np.random.default_rng(1)
    return _unit(rng.normal(size=(7, 12))), _unit(rng.normal(size=(20, 12))), _unit(rng.normal(size=(9, 12)))


@pytest.mark.parametrize("stat, k", [("mean", 3), ("kth", 4), ("mean", 1)])
def test_background_similarity_matches_brute_force(data, stat, k):
    xq, _, xt = data
    s = np.sort(xq @ xt.T, axis=1)[:, ::-1]
    want = s[:, :k].mean(1) if stat == "mean" else s[:, k - 1]
    np.testing.assert_allclose(background_similarity(xq, xt, k, stat), want, atol=1e-5)


def test_augmented_ip_gives_normalised_scores(data):
    xq, xr, xt = data
    beta = 1.7
    b = background_similarity(xq, xt, 3)
    q, r = augment_for_ip(xq, xr, b, beta)
    np.testing.assert_allclose(q @ r.T, xq @ xr.T - beta * b[:, None], atol=1e-5)
    D, I = normalized_search(xq, xr, 5, xt, beta, 3)
    brute = xq @ xr.T - beta * b[:, None]
    np.testing.assert_array_equal(I, np.argsort(-brute, axis=1)[:, :5])
    np.testing.assert_allclose(D, np.take_along_axis(brute, I, 1), atol=1e-5)


def test_l2_fold_ranks_pooled_pairs_like_normalised_scores(data):
    xq, xr, xt = data
    beta = 2.0
    b = background_similarity(xq, xt, 10 if xt.shape[0] >= 10 else 3, "kth")
    q, r = augment_for_l2(xq, xr, b, beta)
    neg_d2 = -((q[:, None, :] - r[None, :, :]) ** 2).sum(-1)
    s_norm = xq @ xr.T - beta * b[:, None]
    np.testing.assert_allclose(neg_d2, 2 * s_norm - 2 - 2 * beta, atol=1e-4)
    # the plain L2 scorer without folding would not: the bias changes the pooled order
    assert not np.allclose(-((xq[:, None] - xr[None]) ** 2).sum(-1), 2 * s_norm - 2 - 2 * beta, atol=1e-2)


def test_pca_whitening_whitens_training_and_clips_dim():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 64)) * np.linspace(5, 0.1, 64)
    w = fit_pca_whitening(x, dim=256)
    assert w.dim == 39  # T - 1 directions carry variance
    y = (x - w.mean) @ w.proj.T  # before re-normalisation: identity covariance
    cov = y.T @ y / x.shape[0]
    np.testing.assert_allclose(cov, np.eye(39), atol=1e-3)
    assert fit_pca_whitening(x, dim=8).dim == 8
    np.testing.assert_allclose(np.linalg.norm(w.apply(x[:3]), axis=1), 1, atol=1e-5)


def test_aggregate_views_takes_max_over_views():
    owner = np.array([0, 0, 1])
    I = np.array([[3, 1], [1, 2], [0, -1]])
    D = np.array([[0.9, 0.2], [0.7, 0.1], [0.5, -np.inf]])
    Do, Io = aggregate_views(owner, D, I, 2, 3)
    np.testing.assert_array_equal(Io, [[3, 1, 2], [0, -1, -1]])
    np.testing.assert_allclose(Do[0], [0.9, 0.7, 0.1])
    assert Do[1, 0] == 0.5 and np.isneginf(Do[1, 1])


def test_combine_mean():
    x = np.array([[1, 0], [0, 1], [1, 0]], np.float32)
    np.testing.assert_allclose(combine_mean(x, np.array([0, 0, 1]), 2), [[0.7071068, 0.7071068], [1, 0]], atol=1e-6)


def test_one_vector_per_image_for_the_descriptor_track():
    x = np.array([[1, 0], [0, 1], [0, 1], [1, 0]], np.float32)
    side = Side(["a", "b"], x, np.array([0, 0, 1, 1]), None, "test", full_view=1)
    np.testing.assert_array_equal(side.one_per_image(), [[0, 1], [1, 0]])
    unknown = Side(["a", "b"], x, np.array([0, 0, 1, 1]), None, "test", full_view=None)
    np.testing.assert_allclose(unknown.one_per_image(), np.full((2, 2), 0.7071068), atol=1e-6)


def test_select_matches_limits():
    I = np.array([[0, 1, 2], [2, 1, -1]])
    D = np.array([[0.1, 0.9, 0.5], [0.8, 0.3, -np.inf]])
    m = select_matches(["q0", "q1"], ["r0", "r1", "r2"], D, I, max_per_query=2)
    assert list(zip(m.query_ids, m.reference_ids)) == [("q0", "r1"), ("q0", "r2"), ("q1", "r2"), ("q1", "r1")]
    m = select_matches(["q0", "q1"], ["r0", "r1", "r2"], D, I, max_per_query=2, max_rows=2)
    assert list(zip(m.query_ids, m.reference_ids)) == [("q0", "r1"), ("q1", "r2")]
    with pytest.raises(UsageError):
        select_matches(["q0"], ["r0"], D[:1], I[:1], max_per_query=0)


def test_image_ids_are_unique_stems():
    assert image_ids(["a/R1.jpg", "R2.png"], "refs") == ["R1", "R2"]
    with pytest.raises(BadInputError, match="'R1'"):
        image_ids(["R1.jpg", "sub/R1.png"], "refs")


def test_parse_views():
    assert len(parse_views("full,center,grid")) == 6
    with pytest.raises(UsageError):
        parse_views("full,zoom")


def test_match_queries_reports_progress_by_phase():
    from retrievalkit.copydetect import CopyDetectConfig, match_queries

    rng = np.random.default_rng(3)
    x = rng.standard_normal((12, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = Side(["q0", "q1", "q2"], x[:6], np.repeat(np.arange(3), 2), None, "q", full_view=0)  # two views each
    r = Side([f"r{i}" for i in range(6)], x[6:], np.arange(6), None, "r", full_view=0)
    phases, done = [], []
    cand = match_queries(q, r, None, CopyDetectConfig(dim=0, norm_beta=0.0, verify=None), progress=done.append,
                         on_phase=lambda d, n: phases.append((d, n)))
    assert phases == [("search", 6)] and sum(done) == 6  # one phase, advanced over its total
    assert cand.ids.shape[0] == 3 and (cand.ids[:, 0] >= 0).all()
