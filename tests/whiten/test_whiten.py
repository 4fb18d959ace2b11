"""Whitening: synthetic data with known answers, the file, and the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from retrievalkit.cli.app import app
from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.io.features import Features, read_features, write_features
from retrievalkit.io.tuples import Tuples, write_tuples
from retrievalkit.whiten import (
    Whitening,
    apply_whitening,
    learned_whitening,
    load_whitening,
    pca_whitening,
    read_whitening,
    write_whitening,
)


def _pairs_data(rng, n_clusters=40, per=6, d=12):
    """Clusters of points; pairs = all within-cluster pairs (anisotropic noise so S is far from I)."""
    centres = rng.normal(size=(n_clusters, d)) * 3
    scale = np.linspace(0.1, 2.0, d)
    x = np.repeat(centres, per, 0) + rng.normal(size=(n_clusters * per, d)) * scale
    q, p = [], []
    for c in range(n_clusters):
        ids = range(c * per, (c + 1) * per)
        q += [a for a in ids for b in ids if a != b]
        p += [b for a in ids for b in ids if a != b]
    return x, np.array(q), np.array(p)


def _cirtorch_direct(x, q, p):
    """The textbook recipe, written independently with D x N columns and np.linalg.eig."""
    X = x.T
    m = X[:, q].mean(axis=1, keepdims=True)
    df = X[:, q] - X[:, p]
    S = df @ df.T / df.shape[1]
    Pc = np.linalg.inv(np.linalg.cholesky(S))
    proj = Pc @ (X - m)
    val, vec = np.linalg.eig(proj @ proj.T)
    order = np.argsort(val.real)[::-1]
    return m[:, 0], vec.real[:, order].T @ Pc


def test_learned_whitening_identity_covariance_of_pair_differences():
    x, q, p = _pairs_data(np.random.default_rng(0))
    m, P = learned_whitening(x, q, p)
    diff = (x[q] - x[p]) @ P.T.astype(np.float64)
    cov = diff.T @ diff / len(q)
    np.testing.assert_allclose(cov, np.eye(x.shape[1]), atol=1e-4)
    # and it is a real change: the raw differences are far from white
    raw = (x[q] - x[p]).T @ (x[q] - x[p]) / len(q)
    assert np.abs(raw - np.eye(x.shape[1])).max() > 0.5


def test_learned_whitening_matches_direct_numpy_computation():
    x, q, p = _pairs_data(np.random.default_rng(1))
    m, P = learned_whitening(x, q, p)
    m_ref, P_ref = _cirtorch_direct(x, q, p)
    np.testing.assert_allclose(m, m_ref, rtol=1e-5, atol=1e-6)
    # eigenvectors are defined up to sign: compare row by row up to a sign
    signs = np.sign((P * P_ref).sum(axis=1))
    np.testing.assert_allclose(P, P_ref * signs[:, None], rtol=1e-3, atol=1e-4)
    # the projected data have decreasing variance along the rows
    var = (((x - m) @ P.T) ** 2).sum(axis=0)
    assert np.all(np.diff(var) <= 1e-6 * var[0])


def test_learned_whitening_dim_keeps_top_rows():
    x, q, p = _pairs_data(np.random.default_rng(2))
    _, P = learned_whitening(x, q, p)
    _, P4 = learned_whitening(x, q, p, dim=4)
    assert P4.shape == (4, x.shape[1])
    np.testing.assert_allclose(P4, P[:4], atol=1e-5)


def test_learned_whitening_singular_needs_shrinkage():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(10, 30))  # 5 pairs in 30 dims: S has rank <= 5
    q, p = np.arange(0, 10, 2), np.arange(1, 10, 2)
    with pytest.raises(BadInputError, match="shrinkage"):
        learned_whitening(x, q, p)
    m, P = learned_whitening(x, q, p, shrinkage=0.2)
    assert np.isfinite(P).all() and P.shape == (30, 30)


@settings(max_examples=15, deadline=None)
@given(st.integers(3, 10), st.integers(0, 10_000))
def test_pca_whitening_gives_identity_covariance(d, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d)
    m, P = pca_whitening(x)
    y = (x - m) @ P.T.astype(np.float64)
    np.testing.assert_allclose(y.T @ y / len(x), np.eye(d), atol=2e-3)
    np.testing.assert_allclose(m, x.mean(axis=0), rtol=1e-4, atol=1e-5)


def test_pca_power_zero_is_a_rotation_and_dim_reduces():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 6)) * np.array([5, 4, 3, 2, 1, 0.5])
    _, P = pca_whitening(x, power=0.0)
    np.testing.assert_allclose(P @ P.T, np.eye(6), atol=1e-5)
    _, P2 = pca_whitening(x, dim=2)
    assert P2.shape == (2, 6)
    # the top component is the axis of largest variance (axis 0)
    assert np.argmax(np.abs(P2[0])) == 0
    with pytest.raises(UsageError):
        pca_whitening(x, dim=7)


def test_apply_whitening_normalises():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(20, 5)).astype(np.float32)
    m, P = pca_whitening(x, dim=3)
    y = apply_whitening(x, m, P)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, rtol=1e-5)
    ref = (x - m) @ P.T
    np.testing.assert_allclose(y, ref / np.linalg.norm(ref, axis=1, keepdims=True), rtol=1e-4, atol=1e-6)


def test_whitening_file_roundtrip(tmp_path):
    rng = np.random.default_rng(6)
    m, P = rng.normal(size=8).astype(np.float32), rng.normal(size=(4, 8)).astype(np.float32)
    path = write_whitening(tmp_path / "w.h5", Whitening(m, P, "learned", {"dim": 4}))
    w = read_whitening(path)
    assert w.method == "learned" and w.config["dim"] == 4
    m2, P2 = load_whitening(path)
    np.testing.assert_array_equal(P2, P)
    np.testing.assert_array_equal(m2, m)
    with pytest.raises(BadInputError, match="rkit/whitening"):
        read_whitening(write_features(tmp_path / "f.h5", Features(["a"], np.ones((1, 8), np.float32))))


def _write_synthetic(tmp_path, rng):
    x, q, p = _pairs_data(rng, n_clusters=30, per=5, d=8)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    names = [f"scene{i // 5}/img{i}.jpg" for i in range(len(x))]
    order = rng.permutation(len(x))  # the features file lists images in another order than the tuples
    feats = tmp_path / "feats.h5"
    write_features(feats, Features([names[i] for i in order], x[order].astype(np.float32),
                                   {"image_root": str(tmp_path / "images")}))
    tup = tmp_path / "tuples.h5"
    write_tuples(tup, Tuples(names, np.arange(len(x)) // 5, q, p, image_root=str(tmp_path / "images")))
    return x, q, p, names, feats, tup


def test_cli_learned_whitening_and_apply(tmp_path):
    x, q, p, names, feats, tup = _write_synthetic(tmp_path, np.random.default_rng(7))
    runner = CliRunner()
    r = runner.invoke(app, ["whiten", str(feats), "-o", str(tmp_path / "w.h5"), "--method", "learned",
                            "--tuples", str(tup), "--dim", "6"])
    assert r.exit_code == 0, r.output
    m, P = load_whitening(tmp_path / "w.h5")
    m_ref, P_ref = learned_whitening(x, q, p, dim=6)  # in the tuples' order: names must have been mapped
    np.testing.assert_allclose(m, m_ref, atol=1e-5)
    np.testing.assert_allclose(np.abs(P), np.abs(P_ref), atol=1e-3)
    r = runner.invoke(app, ["whiten", "apply", str(feats), "--whitening", str(tmp_path / "w.h5"),
                            "-o", str(tmp_path / "fw.h5")])
    assert r.exit_code == 0, r.output
    fw = read_features(tmp_path / "fw.h5")
    assert fw.dim == 6 and fw.names == read_features(feats).names
    np.testing.assert_allclose(np.linalg.norm(fw.vectors, axis=1), 1.0, rtol=1e-5)


def test_cli_errors(tmp_path):
    x, q, p, names, feats, tup = _write_synthetic(tmp_path, np.random.default_rng(8))
    runner = CliRunner()
    r = runner.invoke(app, ["whiten", str(feats), "-o", str(tmp_path / "w.h5"), "--method", "learned"])
    assert r.exit_code == 2 and "--tuples" in r.output
    # tuples naming images the features file lacks: exit 3 naming the missing image
    write_tuples(tmp_path / "t2.h5", Tuples(names + ["other/missing.jpg"], np.zeros(len(names) + 1, np.int64),
                                            np.array([len(names)]), np.array([0]),
                                            image_root=str(tmp_path / "images")))
    r = runner.invoke(app, ["whiten", str(feats), "-o", str(tmp_path / "w.h5"), "--method", "learned",
                            "--tuples", str(tmp_path / "t2.h5")])
    assert r.exit_code == 3 and "missing.jpg" in r.output
    assert not (tmp_path / "w.h5").exists()
    r = runner.invoke(app, ["whiten", str(feats), "-o", str(tmp_path / "w.h5"), "--method", "zca"])
    assert r.exit_code == 2


def test_extract_with_whitening_equals_whiten_apply(tmp_path):
    """The whitening file loaded into the network's layer gives the vectors of `rkit whiten apply`."""
    import cv2

    rng = np.random.default_rng(9)
    ims = tmp_path / "ims"
    ims.mkdir()
    for i in range(12):
        cv2.imwrite(str(ims / f"{i}.png"), rng.integers(0, 255, size=(24, 32, 3)).astype(np.uint8))
    runner = CliRunner()
    common = ["--model", "tiny-cnn", "--size", "0", "--workers", "0", "--device", "cpu"]
    r = runner.invoke(app, ["extract", str(ims), "-o", str(tmp_path / "f.h5"), *common])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["whiten", str(tmp_path / "f.h5"), "-o", str(tmp_path / "w.h5"), "--dim", "8",
                            "--shrinkage", "0.05"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["whiten", "apply", str(tmp_path / "f.h5"), "--whitening", str(tmp_path / "w.h5"),
                            "-o", str(tmp_path / "fw.h5")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["extract", str(ims), "-o", str(tmp_path / "fx.h5"), "--whitening",
                            str(tmp_path / "w.h5"), *common])
    assert r.exit_code == 0, r.output
    a, b = read_features(tmp_path / "fw.h5"), read_features(tmp_path / "fx.h5")
    assert a.names == b.names and b.dim == 8
    np.testing.assert_allclose(b.vectors, a.vectors, atol=2e-4)
