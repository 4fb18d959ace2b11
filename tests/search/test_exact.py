import numpy as np
import pytest

from retrievalkit.errors import UsageError
from retrievalkit.search import knn_graph, search_ip


def _unit(n, d, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("block", [1, 7, 4096])
def test_search_matches_numpy(block):
    xb, xq = _unit(200, 16, 0), _unit(30, 16, 1)
    D, I = search_ip(xq, xb, 10, block=block)
    S = xq @ xb.T
    ref = np.argsort(-S, axis=1)[:, :10]
    assert np.array_equal(I, ref)
    assert np.allclose(D, np.take_along_axis(S, ref, 1), atol=1e-5)


def test_k_clipped_and_dim_mismatch():
    D, I = search_ip(_unit(3, 4), _unit(5, 4), 100)
    assert I.shape == (3, 5)
    with pytest.raises(UsageError, match="dimension"):
        search_ip(_unit(3, 4), _unit(5, 8), 2)


def test_knn_excludes_self_even_with_duplicates():
    x = _unit(50, 8)
    x[10] = x[11]  # exact duplicate: self may not come first
    D, I = knn_graph(x, 5, block=9)
    assert not (I == np.arange(50)[:, None]).any()
    S = x @ x.T
    np.fill_diagonal(S, -np.inf)
    assert np.allclose(D, -np.sort(-S, axis=1)[:, :5], atol=1e-5)
    assert 11 in I[10] and 10 in I[11]


def test_knn_pads_small_graphs():
    D, I = knn_graph(_unit(3, 4), 5)
    assert I.shape == (3, 5) and (I[:, 2:] == -1).all() and (I[:, :2] >= 0).all()
