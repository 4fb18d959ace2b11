"""Mining on Manifolds on synthetic graphs and a two-arcs set with a known answer; the CLI end to end."""

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from retrievalkit.io import KnnGraph, write_knn
from retrievalkit.io.features import Features, write_features
from retrievalkit.io.tuples import read_tuples
from retrievalkit.mining.manifold import find_anchors, mine_manifold, stationary_distribution
from retrievalkit.search.exact import knn_graph


def two_arcs(n=80, step=0.01, gap=0.06, seed=0):
    """Two parallel arcs on the unit sphere, like two moons pressed together.

    Arc 0 runs along the equator, arc 1 along latitude ``gap``; along an arc points are ``step`` apart
    (plus a little jitter), so a small kNN graph never links the arcs while a large Euclidean ball around a
    point catches both. The right answer: manifold positives and negatives are exactly "same arc" and
    "other arc".
    """
    rng = np.random.default_rng(seed)
    theta = np.arange(n) * step + rng.uniform(-0.1, 0.1, n) * step
    theta2 = np.arange(n) * step + rng.uniform(-0.1, 0.1, n) * step + step / 2
    a = np.c_[np.cos(theta), np.sin(theta), np.zeros(n)]
    b = np.c_[np.cos(gap) * np.cos(theta2), np.cos(gap) * np.sin(theta2), np.full(n, np.sin(gap))]
    x = np.r_[a, b].astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), np.repeat([0, 1], n)


def _precision(mined, labels):
    pos = np.concatenate([labels[p] == labels[a] for a, p in zip(mined.anchors, mined.positives)])
    neg = np.concatenate([labels[p] != labels[a] for a, p in zip(mined.anchors, mined.negatives)])
    return pos, neg


def test_stationary_distribution_symmetric_is_degree():
    W = sp.csr_matrix(np.array([[0, 1, 2], [1, 0, 0], [2, 0, 0]], float))
    assert np.allclose(stationary_distribution(W), [3 / 6, 1 / 6, 2 / 6])


def test_stationary_distribution_directed_matches_eigenvector():
    rng = np.random.default_rng(1)
    A = rng.uniform(0.1, 1, (6, 6)) * (rng.uniform(size=(6, 6)) < 0.7)
    np.fill_diagonal(A, 0)
    A[np.arange(6), (np.arange(6) + 1) % 6] = 1.0  # a cycle keeps it irreducible
    pi = stationary_distribution(sp.csr_matrix(A))
    P = A / A.sum(1, keepdims=True)
    assert np.allclose(pi @ P, pi, atol=1e-8) and pi.sum() == pytest.approx(1.0)


def test_anchors_are_local_maxima():
    # path 0-1-2-3-4-5-6 with weights making nodes 1 and 5 the modes (5 heavier than 1)
    w = [2.0, 1.5, 0.2, 0.2, 1.6, 3.0]
    W = sp.lil_matrix((7, 7))
    for i, v in enumerate(w):
        W[i, i + 1] = W[i + 1, i] = v
    W = W.tocsr()
    pi = stationary_distribution(W)
    assert find_anchors(W, pi, 10).tolist() == [5, 1]
    assert find_anchors(W, pi, 1).tolist() == [5]


def test_two_arcs_known_answer():
    x, y = two_arcs()
    sims, ids = knn_graph(x, 4)
    assert (y[ids] == y[:, None]).all()  # the graph never links the arcs
    k = 20
    mined = mine_manifold(x, sims, ids, n_anchors=10, k_pos=k, k_neg=k)
    assert len(mined.anchors) >= 2
    pos, neg = _precision(mined, y)
    assert pos.size > 0 and neg.size > 0
    assert pos.all()  # every hard positive is on the anchor's arc
    assert neg.all()  # every hard negative is on the other arc
    base = mine_manifold(x, sims, ids, method="euclidean", n_anchors=10, k_pos=k, k_neg=k)
    assert base.anchors.tolist() == mined.anchors.tolist()
    bpos, _ = _precision(base, y)
    assert bpos.mean() < 1.0  # plain kNN positives leak onto the other arc
    # the hard positives are far in descriptor space: none is among the anchor's Euclidean top-k
    for a, p in zip(mined.anchors, mined.positives):
        top = np.argsort(-(x @ x[a]))[1:k + 1]
        assert not np.isin(p, top).any()


def _run(*args):
    return subprocess.run([sys.executable, "-m", "retrievalkit", *map(str, args)], capture_output=True, text=True)


def test_cli_manifold_mine(tmp_path):
    x, y = two_arcs(n=40, step=0.02, gap=0.12)
    names = [f"arc{c}/{i:03d}.jpg" for i, c in enumerate(y)]
    write_features(tmp_path / "f.h5", Features(names, x, {"image_root": "/photos"}))
    sims, ids = knn_graph(x, 4)
    write_knn(tmp_path / "knn.h5", KnnGraph(names, ids, sims))
    p = _run("manifold-mine", tmp_path / "f.h5", "--graph", tmp_path / "knn.h5", "-o", tmp_path / "t.h5",
             "--no-mutual", "--anchors", "4", "--k-pos", "10", "--k-neg", "10", "--device", "cpu")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(tmp_path / "t.h5")
    t = read_tuples(tmp_path / "t.h5")
    assert t.names == names and t.image_root == "/photos" and len(t) > 0
    assert (y[t.qidx] == y[t.pidx]).all()
    neg = t.nidx
    assert ((y[np.where(neg >= 0, neg, 0)] != y[t.qidx][:, None]) | (neg < 0)).all()
    assert t.config["method"] == "manifold" and len(t.config["anchors"]) <= 4
    # a graph of other images is refused with the documented exit code
    write_knn(tmp_path / "other.h5", KnnGraph(names[::-1], ids, sims))
    p = _run("manifold-mine", tmp_path / "f.h5", "--graph", tmp_path / "other.h5", "-o", tmp_path / "u.h5")
    assert p.returncode == 3 and "do not match" in p.stderr
    assert not (tmp_path / "u.h5").exists()
