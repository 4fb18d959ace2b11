"""``rkit diffuse`` / ``rkit diffuse-prepare`` end to end: synthetic files, bad inputs, real photos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from retrievalkit.cli.app import app
from retrievalkit.diffusion.spectral_file import read_spectral
from retrievalkit.io import Features, read_ranks, write_features
from tests.diffusion.conftest import curves, noisy_queries

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
runner = CliRunner()


def _rkit(*args) -> tuple[int, str]:
    res = runner.invoke(app, ["-q", *map(str, args)])
    return res.exit_code, res.output


@pytest.fixture
def files(tmp_path):
    x, lab = curves(n_clusters=6, per=20, noise=0.08)
    qidx = np.arange(0, 120, 20)
    xq = noisy_queries(x, qidx, 0.02)
    db_names = [f"db/{i:03d}" for i in range(len(x))]
    q_names = [f"q/{i}" for i in range(len(qidx))]
    write_features(tmp_path / "db.h5", Features(db_names, x))
    write_features(tmp_path / "q.h5", Features(q_names, xq))
    gnd = {"imlist": db_names, "qimlist": q_names,
           "gnd": [{"easy": np.flatnonzero(lab == lab[i]).tolist(), "hard": [], "junk": [], "bbx": None}
                   for i in qidx]}
    (tmp_path / "gnd.json").write_text(json.dumps(gnd))
    code, out = _rkit("index", "knn", tmp_path / "db.h5", "-o", tmp_path / "knn.h5", "-k", "20", "--device", "cpu")
    assert code == 0, out
    return tmp_path


def _map(tmp, ranks):
    code, out = _rkit("evaluate", ranks, "--gnd", tmp / "gnd.json")
    assert code == 0, out
    return json.loads(out.strip().splitlines()[-1])["map"]["medium"]


def test_all_methods_write_evaluable_ranks(files):
    t = files
    maps = {}
    for method, extra in [("none", []), ("alpha-qe", []), ("alpha-dba", ["--qe", "alpha-qe"]), ("cg", []),
                          ("truncated", ["--trunc-n", "60"]), ("spectral", ["--rank", "120"])]:
        out = t / f"{method}.h5"
        graph = [] if method in ("none", "alpha-qe", "alpha-dba") else ["--graph", t / "knn.h5", "--graph-k", "5"]
        code, text = _rkit("diffuse", "--database", t / "db.h5", "--queries", t / "q.h5", *graph,
                           "-o", out, "--method", method, "--device", "cpu", *extra)
        assert code == 0, text
        assert text.strip().endswith(str(out))
        r = read_ranks(out)
        assert r.indices.shape == (6, 120) and r.config["method"] in ("none", method)
        maps[method] = _map(t, out)
    assert maps["cg"] > maps["none"] and maps["spectral"] > maps["none"]
    assert read_ranks(t / "alpha-dba.h5").config["dba"] is True


def test_prepare_then_spectral_equals_in_memory(files):
    t = files
    code, text = _rkit("diffuse-prepare", "--database", t / "db.h5", "--graph", t / "knn.h5", "--rank", "120",
                       "--graph-k", "5", "-o", t / "spec.h5")
    assert code == 0, text
    sf = read_spectral(t / "spec.h5")
    assert sf.eigvecs.shape == (120, 120) and sf.config["graph_k"] == 5
    args = ["diffuse", "--database", t / "db.h5", "--queries", t / "q.h5", "--method", "spectral"]
    assert _rkit(*args, "--spectral", t / "spec.h5", "-o", t / "a.h5")[0] == 0
    assert _rkit(*args, "--graph", t / "knn.h5", "--graph-k", "5", "--rank", "120", "-o", t / "b.h5")[0] == 0
    a, b = read_ranks(t / "a.h5"), read_ranks(t / "b.h5")
    np.testing.assert_array_equal(a.indices[:, :30], b.indices[:, :30])


def test_bad_inputs(files):
    t = files
    base = ["diffuse", "--database", t / "db.h5", "--queries", t / "q.h5", "-o", t / "r.h5"]
    # a graph built from another database
    x, _ = curves(n_clusters=6, per=20, seed=9)
    write_features(t / "other.h5", Features([f"o/{i}" for i in range(120)], x))
    assert _rkit("index", "knn", t / "other.h5", "-o", t / "other-knn.h5", "-k", "5")[0] == 0
    code, out = _rkit(*base, "--graph", t / "other-knn.h5")
    assert code == 3 and "graph names do not match" in out
    # queries of another dimension
    write_features(t / "q8.h5", Features(["a", "b"], np.eye(2, 8, dtype=np.float32)))
    code, out = _rkit("diffuse", "--database", t / "db.h5", "--queries", t / "q8.h5", "-o", t / "r.h5")
    assert code == 3 and "dimension 8" in out
    # alpha outside (0, 1), unknown method, too large k for the graph file, a graph with regions
    for extra, msg in [(["--alpha", "1.0"], "alpha"), (["--alpha", "-0.5"], "alpha"), (["--method", "pagerank"],
                       "--method"), (["--graph", t / "knn.h5", "--graph-k", "30"], "graph-k")]:
        code, out = _rkit(*base, *extra)
        assert code == 2 and msg in out, (extra, out)
    # a features file where a ranks file is expected
    code, out = _rkit("diffuse", "--database", t / "knn.h5", "--queries", t / "q.h5", "-o", t / "r.h5")
    assert code == 3 and "rkit/features" in out
    assert not (t / "r.h5").exists()


def test_regional_database(tmp_path):
    x, lab = curves(n_clusters=4, per=20, noise=0.08)
    # image i owns region rows 2i and 2i+1 (a vector and a slightly perturbed copy)
    rng = np.random.default_rng(0)
    xr = np.repeat(x, 2, axis=0) + 0.01 * rng.standard_normal((160, x.shape[1])).astype(np.float32)
    xr /= np.linalg.norm(xr, axis=1, keepdims=True)
    names = [f"im{i}" for i in range(80)]
    write_features(tmp_path / "db.h5", Features(names, xr, image_index=np.repeat(np.arange(80), 2)))
    write_features(tmp_path / "q.h5", Features(["q0", "q1"], noisy_queries(x, np.array([0, 40]))))
    for pool in ("max", "sum"):
        code, out = _rkit("diffuse", "--database", tmp_path / "db.h5", "--queries", tmp_path / "q.h5",
                          "-o", tmp_path / f"r-{pool}.h5", "--pool", pool, "--graph-k", "6")
        assert code == 0, out
        r = read_ranks(tmp_path / f"r-{pool}.h5")
        assert r.db_names == names and r.indices.shape == (2, 80)
        assert len(set(r.indices[0].tolist())) == 80  # every image once
        assert np.all(lab[r.indices[0, :10]] == lab[0]) and np.all(lab[r.indices[1, :10]] == lab[40])
    code, out = _rkit("index", "knn", tmp_path / "db.h5", "-o", tmp_path / "k.h5")
    assert code == 3


@pytest.mark.slow
def test_real_photos_demo(tmp_path):
    demo = DATA / "demo"
    if not (demo / "gnd.json").exists():
        pytest.skip(f"real photos not found at {demo} (../shared/data is not shipped with the project)")
    for split in ("database", "queries"):
        code, out = _rkit("extract", demo / "images", "--gnd", demo / "gnd.json", "--split", split, "--model",
                          "tiny-cnn", "--size", "96", "--device", "cpu", "--workers", "0",
                          "-o", tmp_path / f"{split}.h5")
        assert code == 0, out
    for method in ("none", "cg", "truncated"):
        code, out = _rkit("diffuse", "--database", tmp_path / "database.h5", "--queries", tmp_path / "queries.h5",
                          "-o", tmp_path / f"{method}.h5", "--method", method, "--device", "cpu")
        assert code == 0, out
        m = json.loads(_rkit("evaluate", tmp_path / f"{method}.h5", "--gnd", demo / "gnd.json")[1].splitlines()[-1])
        assert m["queries"] == 10 and 0 < m["map"]["medium"] <= 100
