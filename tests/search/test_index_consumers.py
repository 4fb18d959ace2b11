"""Built indexes where other stages search: `rkit diffuse --index`, `rkit copy-detect --index`; `rkit --threads`
sets faiss's OpenMP threads."""

import csv
import subprocess
import sys

import numpy as np
import pytest

from retrievalkit.io import Features, read_ranks, write_features
from retrievalkit.search.index_stages import IndexSearcher
from tests.conftest import run_rkit

N, D, Q = 400, 16, 12


def _clustered(n, d, seed, n_clusters=12):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, d))
    x = (centres[rng.integers(0, n_clusters, n)] + 0.35 * rng.normal(size=(n, d))).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("consumers")
    xb = _clustered(N, D, 0)
    rng = np.random.default_rng(1)
    xq = xb[rng.choice(N, Q, replace=False)] + 0.1 * rng.normal(size=(Q, D)).astype(np.float32)
    xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    xt = _clustered(60, D, 2)
    write_features(tmp / "db.h5", Features([f"R{i:04d}.jpg" for i in range(N)], xb, {}))
    write_features(tmp / "q.h5", Features([f"Q{i:03d}.jpg" for i in range(Q)], xq, {}))
    write_features(tmp / "t.h5", Features([f"T{i:03d}.jpg" for i in range(60)], xt, {}))
    # same vectors, other names: the index of it must not pass for the index of db.h5
    write_features(tmp / "renamed.h5", Features([f"X{i:04d}.jpg" for i in range(N)], xb, {}))
    run_rkit("-q", "index", "build", tmp / "db.h5", "-o", tmp / "flat.h5", "--factory", "Flat")
    run_rkit("-q", "index", "build", tmp / "db.h5", "-o", tmp / "ivf.h5", "--factory", "IVF8,Flat")
    run_rkit("-q", "index", "build", tmp / "renamed.h5", "-o", tmp / "renamed.idx.h5", "--factory", "Flat")
    return {"dir": tmp, "xb": xb, "xq": xq, "db": tmp / "db.h5", "q": tmp / "q.h5", "t": tmp / "t.h5",
            "flat": tmp / "flat.h5", "ivf": tmp / "ivf.h5", "renamed": tmp / "renamed.h5",
            "renamed_idx": tmp / "renamed.idx.h5"}


# ------------------------------------------------------------------------------------------------ diffuse


@pytest.mark.parametrize("method", ["cg", "truncated"])
def test_diffuse_flat_index_equals_exact_graph(files, method):
    tmp = files["dir"]
    common = ["--database", files["db"], "--queries", files["q"], "--method", method, "-k", "30"]
    run_rkit("-q", "diffuse", *common, "-o", tmp / f"exact_{method}.h5")
    run_rkit("-q", "diffuse", *common, "--index", files["flat"], "-o", tmp / f"idx_{method}.h5")
    a, b = read_ranks(tmp / f"exact_{method}.h5"), read_ranks(tmp / f"idx_{method}.h5")
    assert np.array_equal(a.indices, b.indices)
    assert np.allclose(a.scores, b.scores, atol=1e-6)
    assert a.db_names == b.db_names and a.query_names == b.query_names
    assert b.config["graph_index"]["factory"] == "Flat"


def test_diffuse_ivf_index_graph_is_close(files):
    """An approximate (IVF) graph changes the ranking little on clustered data: the top result agrees."""
    tmp = files["dir"]
    common = ["--database", files["db"], "--queries", files["q"], "-k", "10"]
    run_rkit("-q", "diffuse", *common, "-o", tmp / "exact_cg.h5")
    p = run_rkit("diffuse", *common, "--index", files["ivf"], "-o", tmp / "ivf_cg.h5")
    assert "nprobe=8" in p.stderr  # the search settings are printed
    a, b = read_ranks(tmp / "exact_cg.h5"), read_ranks(tmp / "ivf_cg.h5")
    assert (a.indices[:, 0] == b.indices[:, 0]).mean() >= 0.9
    assert b.config["graph_index"]["params"] == {"nprobe": 8}


def test_diffuse_index_refusals(files):
    tmp = files["dir"]
    common = ["-q", "diffuse", "--database", files["db"], "--queries", files["q"], "-o", tmp / "x.h5"]
    run_rkit("-q", "index", "knn", files["db"], "-o", tmp / "knn.h5", "-k", "10")
    p = run_rkit(*common, "--index", files["flat"], "--graph", tmp / "knn.h5", check=False)
    assert p.returncode == 2 and "--index" in p.stderr
    p = run_rkit(*common, "--index", files["flat"], "--method", "none", check=False)
    assert p.returncode == 2 and "--index" in p.stderr
    p = run_rkit(*common, "--index", files["flat"], "--method", "aqe", check=False)
    assert p.returncode == 2 and "--index" in p.stderr
    # an index of other features (same vectors, other names): names are checked
    p = run_rkit(*common, "--index", files["renamed_idx"], check=False)
    assert p.returncode == 3 and str(files["db"]) in p.stderr
    assert not (tmp / "x.h5").exists()


def test_index_searcher_checks_names(files):
    with pytest.raises(Exception) as e:
        IndexSearcher([files["renamed_idx"]], files["db"], 10)
    assert "rebuild the index" in str(e.value) or "not the features" in str(e.value)
    s = IndexSearcher([files["flat"]], files["db"], 10)
    D, I = s.knn(files["xb"], 5)
    from retrievalkit.search.exact import knn_graph

    D0, I0 = knn_graph(files["xb"], 5)
    assert np.array_equal(I, I0) and np.allclose(D, D0, atol=1e-6)


# ------------------------------------------------------------------------------------------------ copy-detect


def _matches(path):
    with open(path) as f:
        return [(r["query_id"], r["reference_id"], float(r["score"])) for r in csv.DictReader(f)]


@pytest.mark.parametrize("training", [False, True])
def test_copy_detect_flat_index_equals_exact(files, training):
    tmp = files["dir"]
    common = ["-q", "copy-detect", "--queries", files["q"], "--database", files["db"], "--no-verify", "-k", "5"]
    if training:
        common += ["--training", files["t"], "--dim", "0"]
    run_rkit(*common, "-o", tmp / f"exact_{training}.csv")
    run_rkit(*common, "--index", files["flat"], "-o", tmp / f"idx_{training}.csv")
    a, b = _matches(tmp / f"exact_{training}.csv"), _matches(tmp / f"idx_{training}.csv")
    assert len(a) == len(b) == Q * 5
    assert [(q, r) for q, r, _ in a] == [(q, r) for q, r, _ in b]
    assert np.allclose([s for *_, s in a], [s for *_, s in b], atol=1e-5)
    if training:  # normalisation shifted the scores below the raw inner products
        raw = _matches(tmp / "exact_False.csv")
        assert np.mean([s for *_, s in b]) < np.mean([s for *_, s in raw])


def test_copy_detect_index_refusals(files):
    tmp = files["dir"]
    common = ["-q", "copy-detect", "--queries", files["q"], "--no-verify", "-o", tmp / "m.csv"]
    # PCA-whitening (on by default with --training) changes the vectors the index holds
    p = run_rkit(*common, "--database", files["db"], "--training", files["t"], "--index", files["flat"],
                 check=False)
    assert p.returncode == 2 and "--dim 0" in p.stderr
    # the index must be of the --database features (names checked)
    p = run_rkit(*common, "--database", files["db"], "--index", files["renamed_idx"], check=False)
    assert p.returncode == 3
    # descriptor track only: nothing searches
    p = run_rkit("-q", "copy-detect", "--queries", files["q"], "--database", files["db"], "--dim", "0",
                 "--descriptors", tmp / "d.h5", "--index", files["flat"], check=False)
    assert p.returncode == 2 and "--index" in p.stderr
    assert not (tmp / "m.csv").exists()


# ------------------------------------------------------------------------------------------------ --threads


@pytest.mark.parametrize("threads", [1, 3])
def test_threads_sets_faiss_omp_threads(files, threads):
    """`rkit --threads N index ...` sets faiss's OpenMP threads, also when faiss is imported after the option
    is read (a fresh process)."""
    code = ("import sys\n"
            "from retrievalkit.cli.app import main\n"
            f"sys.argv = ['rkit', '-q', '--threads', '{threads}', 'index', 'search', '--queries', "
            f"r'{files['q']}', '--index', r'{files['flat']}', '-o', r'{files['dir'] / 'thr.h5'}', '-k', '3']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "import faiss\nprint('OMP', faiss.omp_get_max_threads())\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert f"OMP {threads}" in out.stdout


def test_threads_applied_when_faiss_already_loaded():
    import faiss

    from retrievalkit.cli.app import _torch_threads

    before = faiss.omp_get_max_threads()
    try:
        _torch_threads(2 if before != 2 else 1)
        assert faiss.omp_get_max_threads() == (2 if before != 2 else 1)
    finally:
        faiss.omp_set_num_threads(before)


# ------------------------------------------------------------------------------------------------ row gathering


@pytest.mark.parametrize("layout", ["contiguous", "half", "chunked"])
def test_take_from_mapped_file_equals_h5py(tmp_path, layout):
    """Scattered rows (re-ranking) come from the memory-mapped file; they equal h5py's reads in every layout."""
    from retrievalkit.io.features import FeaturesWriter
    from retrievalkit.io.features_stream import FeaturesStream

    x = _clustered(5000, D, 7)
    names = [f"i{i}" for i in range(len(x))]
    path = tmp_path / "f.h5"
    if layout == "chunked":  # the incremental writer of long extractions: chunked dataset
        with FeaturesWriter(path, D, {}) as w:
            for s in range(0, len(x), 1700):
                w.append(names[s:s + 1700], x[s:s + 1700])
            w.finish()
    else:
        write_features(path, Features(names, x, {}), half=layout == "half")
    ids = np.random.default_rng(0).integers(0, len(x), 3000)  # any order, repeats
    with FeaturesStream(path) as fs:
        got = fs.take(ids)
        assert fs._mapped_rows() is not None  # the fast path was taken
        uniq, inv = np.unique(ids, return_inverse=True)
        ref = fs._take_h5(uniq, 65536)[inv]
    assert got.dtype == np.float32 and np.array_equal(got, ref)
    assert np.allclose(got, x[ids], atol=1e-3 if layout == "half" else 0)
