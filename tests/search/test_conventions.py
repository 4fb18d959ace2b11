"""One result convention: every search returns Neighbours(scores, ids), scores decreasing, ids integer rows."""

from __future__ import annotations

import numpy as np
import pytest

from retrievalkit.copydetect.stage import aggregate_views
from retrievalkit.diffusion.graph import affinity_from_knn, graph_from_vectors
from retrievalkit.diffusion.qe import weighted_expansion
from retrievalkit.diffusion.rank import DiffusionConfig, diffusion_ranking
from retrievalkit.errors import UsageError
from retrievalkit.neighbours import Neighbours
from retrievalkit.search.asmk import InvertedFileBuilder, search_asmk, top_k
from retrievalkit.search.exact import knn_graph, search_ip
from retrievalkit.verify.rerank import rerank_shortlist


def _unit(n, d, seed):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _check(res, rows, k):
    scores, ids = res  # unpacks in (scores, ids) order
    assert res.scores is scores and res.ids is ids
    assert scores.shape == ids.shape == (rows, k)
    assert np.issubdtype(ids.dtype, np.integer) and np.issubdtype(scores.dtype, np.floating)
    valid = ids >= 0
    s = np.where(valid, scores, -np.inf)
    assert (np.diff(s, axis=1) <= 1e-6).all()  # best first


def test_every_search_returns_scores_then_ids():
    xb, xq = _unit(40, 8, 0), _unit(5, 8, 1)
    for res in (search_ip(xq, xb, 6), knn_graph(xb, 6), graph_from_vectors(xb, 6)):
        assert isinstance(res, Neighbours)
        _check(res, res.ids.shape[0], 6)
    dr = diffusion_ranking(xb, xq, DiffusionConfig(method="cg", graph_k=5, top_k=7))
    _check(Neighbours(dr.scores, dr.ids), 5, 7)
    assert dr.config.method == "cg"
    # exact search agrees with a brute-force reference, so the names are not swapped
    ref = np.argsort(-(xq @ xb.T), axis=1, kind="stable")[:, :6]
    np.testing.assert_array_equal(search_ip(xq, xb, 6).ids, ref)


def test_asmk_views_and_shortlists_follow_the_convention():
    rng = np.random.default_rng(2)
    codebook = rng.standard_normal((8, 16)).astype(np.float32)
    x = rng.standard_normal((30, 16)).astype(np.float32)
    b = InvertedFileBuilder(codebook)
    b.add(x, np.array([0, 10, 20, 30]))
    res = search_asmk(b.finish(), x[:20], np.array([0, 10, 20]), k=3, ma=1)
    _check(res, 2, 3)
    assert res.ids[0, 0] == 0 and res.ids[1, 0] == 1
    best = top_k(np.array([0.1, 0.9, 0.5]), 2)
    np.testing.assert_array_equal(best.ids, [1, 2])
    np.testing.assert_allclose(best.scores, [0.9, 0.5])
    agg = aggregate_views(np.array([0, 0]), np.array([[0.9, 0.2], [0.7, 0.1]]), np.array([[3, 1], [1, 2]]), 1, 3)
    np.testing.assert_array_equal(agg.ids, [[3, 1, 2]])
    short = rerank_shortlist(np.array([0.9, 0.8, 0.7]), np.array([5, 6, 7]), np.array([0, 50, 0]), 10)
    assert short.ids[0] == 6 and short.scores[0] > short.scores[1]


def test_knn_arguments_refuse_the_old_order():
    sc = np.array([[0.9], [0.9]], np.float32)
    ids = np.array([[1], [0]])
    assert affinity_from_knn(sc, ids).nnz == 2
    with pytest.raises(UsageError, match="scores, ids"):
        affinity_from_knn(ids.astype(np.float32), sc)
    with pytest.raises(UsageError, match="scores, ids"):
        weighted_expansion(np.ones((2, 3)), np.ones((2, 3)), ids, sc, 3.0)
