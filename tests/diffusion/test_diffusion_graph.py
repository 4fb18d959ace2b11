# ruff: noqa: E741  (faiss naming: D distances, I ids)
"""Affinity construction and symmetric normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from retrievalkit.diffusion.graph import affinity_from_knn, normalize_symmetric
from retrievalkit.errors import UsageError
from retrievalkit.search.exact import knn_graph


def test_affinity_small_known_values():
    # 0 lists 1 (0.5) and 2 (-0.2); 1 lists 0 (0.5) and 3 (-1 pad); 2 lists 1 (0.8); 3 lists itself.
    idx = np.array([[1, 2], [0, -1], [1, 0], [3, -1]])
    sc = np.array([[0.5, -0.2], [0.5, 0.0], [0.8, -0.2], [1.0, 0.0]], np.float32)
    W = affinity_from_knn(sc, idx, gamma=2.0).toarray()
    expected = np.zeros((4, 4), np.float32)
    expected[0, 1] = expected[1, 0] = 0.25  # 0.5 ** 2
    expected[1, 2] = expected[2, 1] = 0.64  # one-sided edge kept in the union
    # negative similarities vanish (clamped at 0); the self-loop of 3 and the pads are dropped
    np.testing.assert_allclose(W, expected, rtol=1e-6)
    Wm = affinity_from_knn(sc, idx, gamma=2.0, mutual=True).toarray()
    expected_m = np.zeros((4, 4), np.float32)
    expected_m[0, 1] = expected_m[1, 0] = 0.25  # only 0 <-> 1 is mutual
    np.testing.assert_allclose(Wm, expected_m, rtol=1e-6)


def test_affinity_k_uses_first_columns(clustered):
    x, _ = clustered
    D, I = knn_graph(x, 10)
    W5 = affinity_from_knn(D, I, k=5)
    W5b = affinity_from_knn(D[:, :5], I[:, :5])
    assert (W5 != W5b).nnz == 0
    W10 = affinity_from_knn(D, I)
    assert W10.nnz > W5.nnz
    assert abs(W10 - W10.T).max() == 0 and np.all(W10.diagonal() == 0)
    Wm = affinity_from_knn(D, I, mutual=True)
    assert Wm.nnz < W10.nnz and abs(Wm - Wm.T).max() == 0
    with pytest.raises(UsageError):
        affinity_from_knn(D, I, gamma=0)
    with pytest.raises(UsageError):
        affinity_from_knn(D[:, :3], I)


def test_normalize_symmetric_matches_dense(clustered):
    x, _ = clustered
    D, I = knn_graph(x, 8)
    W = affinity_from_knn(D, I)
    S = normalize_symmetric(W).toarray().astype(np.float64)
    Wd = W.toarray().astype(np.float64)
    d = Wd.sum(1)
    np.testing.assert_allclose(S, Wd / np.sqrt(np.outer(d, d)), rtol=1e-5, atol=1e-7)
    ev = np.linalg.eigvalsh(S)
    assert ev.max() == pytest.approx(1.0, abs=1e-5) and ev.min() >= -1 - 1e-5


def test_isolated_node_keeps_zero_row():
    idx = np.array([[1], [0], [-1]])
    sc = np.array([[0.9], [0.9], [0.0]], np.float32)
    S = normalize_symmetric(affinity_from_knn(sc, idx)).toarray()
    assert np.all(S[2] == 0) and S[0, 1] == pytest.approx(1.0)
