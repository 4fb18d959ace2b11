"""Hybrid diffusion (spectral part + CG on the complement) against the closed form, spectral ranking and CG."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from retrievalkit.cli.app import app
from retrievalkit.diffusion.cg import cg_solve
from retrievalkit.diffusion.graph import affinity_from_knn, normalize_symmetric
from retrievalkit.diffusion.hybrid import HybridSolver, hybrid_solve
from retrievalkit.diffusion.spectral import spectral_filter, spectral_rank, top_eigenpairs
from retrievalkit.errors import UsageError
from retrievalkit.io import Features, read_ranks, write_features
from retrievalkit.search.exact import knn_graph
from tests.diffusion.conftest import curves, noisy_queries

ALPHA = 0.99
runner = CliRunner()


def _rkit(*args) -> str:
    res = runner.invoke(app, ["-q", *map(str, args)])
    assert res.exit_code == 0, res.output
    return res.output


def _graph(x, k=8, mutual=True):
    D, I = knn_graph(x, k)  # noqa: E741
    return normalize_symmetric(affinity_from_knn(D, I, gamma=3.0, mutual=mutual))


def _closed_form(S, Y, alpha=ALPHA):
    return (1 - alpha) * np.linalg.solve(np.eye(S.shape[0]) - alpha * S.toarray().astype(np.float64), Y)


def _seeds(n, q, seed=0):
    rng = np.random.default_rng(seed)
    Y = np.zeros((n, q))
    for j in range(q):
        Y[rng.choice(n, 5, replace=False), j] = rng.random(5)
    return Y


@pytest.mark.parametrize("rank", [1, 10, 40])
def test_converged_hybrid_equals_closed_form(clustered, rank):
    x, _ = clustered
    S = _graph(x)
    Y = _seeds(S.shape[0], 4)
    lam, U = top_eigenpairs(S, rank, dtype=np.float64)
    F = hybrid_solve(S, U, lam, Y, ALPHA, iters=2000, tol=1e-14, dtype=np.float64)
    ref = _closed_form(S, Y)
    assert np.abs(F - ref).max() <= 1e-6 * np.abs(ref).max()
    # and the same as CG's solution, up to the spectral factor (1 - alpha)
    F_cg = cg_solve(S, Y, ALPHA, iters=2000, tol=1e-14, dtype=np.float64)
    assert np.abs(F - (1 - ALPHA) * F_cg).max() <= 1e-6 * np.abs(ref).max()


def test_inexact_eigenpairs_still_converge_to_the_exact_solution(clustered):
    # eigenpairs known only to ~1e-3 (a loose Lanczos tolerance, float32 storage): the CG part starts from the true
    # residual of the spectral solution, so the error of the eigenvectors is corrected, not frozen in
    x, _ = clustered
    S = _graph(x)
    Y = _seeds(S.shape[0], 3, seed=5)
    lam, U = top_eigenpairs(S, 12, dtype=np.float64)
    rng = np.random.default_rng(0)
    U_bad = np.linalg.qr(U + 1e-3 * rng.standard_normal(U.shape))[0]
    ref = _closed_form(S, Y)
    F = hybrid_solve(S, U_bad, lam * (1 - 1e-4), Y, ALPHA, iters=2000, tol=1e-14, dtype=np.float64)
    assert np.abs(F - ref).max() <= 1e-6 * np.abs(ref).max()


def test_full_rank_zero_iterations_is_spectral(clustered):
    x, _ = clustered
    S = _graph(x)
    n = S.shape[0]
    Y = _seeds(n, 3, seed=2)
    lam, U = top_eigenpairs(S, n, dtype=np.float64)
    F = hybrid_solve(S, U, lam, Y, ALPHA, iters=0, dtype=np.float64)
    ref = spectral_rank(torch.from_numpy(U), torch.from_numpy(spectral_filter(lam, ALPHA).astype(np.float64)),
                        torch.from_numpy(Y)).numpy()
    np.testing.assert_allclose(F, ref, rtol=1e-5, atol=1e-9 * np.abs(ref).max())
    # full rank: the spectral part alone is already exact, CG iterations change nothing
    np.testing.assert_allclose(F, _closed_form(S, Y), rtol=1e-6, atol=1e-9)
    F5 = hybrid_solve(S, U, lam, Y, ALPHA, iters=5, dtype=np.float64)
    np.testing.assert_allclose(F5, F, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_residual_below_plain_cg_for_the_same_iterations(k):
    # 8 clusters: S has ~8 eigenvalues near 1 that make plain CG slow; r = 16 removes them
    x, _ = curves(n_clusters=8, per=40, noise=0.08)
    S = _graph(x, k=10)
    Y = _seeds(S.shape[0], 6, seed=3)
    A = np.eye(S.shape[0]) - ALPHA * S.toarray()
    lam, U = top_eigenpairs(S, 16, dtype=np.float64)
    assert lam[7] > 0.99  # the graph is clustered: near-1 eigenvalues exist
    x_h = hybrid_solve(S, U, lam, Y, ALPHA, iters=k, tol=0.0, dtype=np.float64) / (1 - ALPHA)
    x_cg = cg_solve(S, Y, ALPHA, iters=k, tol=0.0, dtype=np.float64)
    res_h = np.linalg.norm(Y - A @ x_h, axis=0)
    res_cg = np.linalg.norm(Y - A @ x_cg, axis=0)
    assert np.all(res_h < res_cg), (k, res_h, res_cg)
    # and the error to the exact solution is smaller too
    ref = _closed_form(S, Y) / (1 - ALPHA)
    assert np.linalg.norm(x_h - ref) < np.linalg.norm(x_cg - ref)


def test_hybrid_error_decreases_with_iterations(clustered):
    x, _ = clustered
    S = _graph(x)
    Y = _seeds(S.shape[0], 2, seed=4)
    lam, U = top_eigenpairs(S, 5, dtype=np.float64)
    ref = _closed_form(S, Y)
    errs = [np.linalg.norm(hybrid_solve(S, U, lam, Y, ALPHA, iters=k, tol=0.0, dtype=np.float64) - ref)
            for k in (0, 2, 4, 8, 16)]
    assert all(b < a for a, b in zip(errs, errs[1:])), errs


def test_bad_shapes(clustered):
    x, _ = clustered
    S = _graph(x)
    lam, U = top_eigenpairs(S, 4)
    with pytest.raises(UsageError, match="eigenvalues"):
        HybridSolver(S, U, lam[:3], ALPHA)
    with pytest.raises(UsageError, match="do not match"):
        hybrid_solve(S, U, lam, np.ones((5, 1)))
    with pytest.raises(UsageError, match="alpha"):
        HybridSolver(S, U, lam, 1.0)


@pytest.fixture
def files(tmp_path):
    x, lab = curves(n_clusters=6, per=20, noise=0.08)
    qidx = np.arange(0, 120, 20)
    names = [f"db/{i:03d}" for i in range(len(x))]
    write_features(tmp_path / "db.h5", Features(names, x))
    write_features(tmp_path / "q.h5", Features([f"q/{i}" for i in range(len(qidx))], noisy_queries(x, qidx, 0.02)))
    gnd = {"imlist": names, "qimlist": [f"q/{i}" for i in range(len(qidx))],
           "gnd": [{"easy": np.flatnonzero(lab == lab[i]).tolist(), "hard": [], "junk": [], "bbx": None}
                   for i in qidx]}
    (tmp_path / "gnd.json").write_text(json.dumps(gnd))
    return tmp_path


def test_cli_hybrid(files):
    t = files
    base = ["diffuse", "--database", t / "db.h5", "--queries", t / "q.h5", "--graph-k", "5", "--fuse", "0"]
    _rkit("diffuse-prepare", "--database", t / "db.h5", "--graph-k", "5", "--rank", "120",
             "-o", t / "spec.h5")
    # with --spectral the eigenpairs fix the graph: spectral takes no graph options
    _rkit(*base[:5], "--fuse", "0", "--method", "spectral", "--spectral", t / "spec.h5", "-o", t / "spectral.h5")
    _rkit(*base, "--method", "hybrid", "--spectral", t / "spec.h5", "--iters", "0", "-o", t / "h0.h5")
    _rkit(*base, "--method", "cg", "--iters", "500", "--tol", "1e-7", "-o", t / "cg.h5")
    _rkit(*base, "--method", "hybrid", "--spectral", t / "spec.h5", "--rank", "10", "--iters", "500",
             "--tol", "1e-7", "-o", t / "h10.h5")
    spec, h0, cg, h10 = (read_ranks(t / f"{n}.h5") for n in ("spectral", "h0", "cg", "h10"))
    np.testing.assert_allclose(h0.scores, spec.scores, rtol=1e-4, atol=1e-6)
    assert h10.config["method"] == "hybrid" and h10.config["rank"] == 10 and h0.config["iters"] == 0
    # converged hybrid ranks like converged CG (scores differ by the factor 1 - alpha)
    np.testing.assert_array_equal(h10.indices[:, :20], cg.indices[:, :20])
    np.testing.assert_allclose(h10.scores[:, :20], (1 - ALPHA) * cg.scores[:, :20], rtol=1e-3)
    out = json.loads(_rkit("evaluate", t / "h10.h5", "--gnd", t / "gnd.json").strip().splitlines()[-1])
    assert out["map"]["medium"] > 90
    # eigenpairs are refused by methods that do not use them
    res = runner.invoke(app, ["diffuse", "--database", str(t / "db.h5"), "--queries", str(t / "q.h5"), "--method",
                              "cg", "--spectral", str(t / "spec.h5"), "-o", str(t / "x.h5")])
    assert res.exit_code == 2 and "hybrid" in res.output
