"""Built faiss indexes: rkit index build / merge, search and knn --index, on small synthetic features files."""

import json

import h5py
import numpy as np
import pytest

from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.io import Features, read_knn, read_ranks, write_features
from retrievalkit.io.features_stream import FeaturesStream
from retrievalkit.io.index import read_index_file
from retrievalkit.search import faiss_index as fx
from retrievalkit.search.exact import knn_graph, search_ip
from retrievalkit.search.index_stages import (
    IndexBuildConfig,
    IndexSearchConfig,
    build_index,
    merge_index,
    search_index,
)
from tests.conftest import run_rkit

N, D, Q = 1500, 16, 30


def _clustered(n, d, seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, d))
    x = centres[rng.integers(0, 20, n)] + 0.4 * rng.normal(size=(n, d))
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("index")
    xb, xq = _clustered(N, D, 0), _clustered(Q, D, 1)
    names = [f"img/{i:05d}" for i in range(N)]
    write_features(tmp / "db.h5", Features(names, xb, {"model": "synthetic"}))
    write_features(tmp / "q.h5", Features([f"q/{i}" for i in range(Q)], xq, {}))
    other = _clustered(N, D, 5)  # same names and shape, other vectors (another model): another fingerprint
    write_features(tmp / "other.h5", Features(names, other, {}))
    write_features(tmp / "half.h5", Features(names, xb, {}), half=True)
    return {"dir": tmp, "xb": xb, "xq": xq, "names": names, "db": tmp / "db.h5", "q": tmp / "q.h5",
            "other": tmp / "other.h5", "half": tmp / "half.h5"}


def _exact(xq, xb, k):
    return search_ip(xq, xb, k)


def _ranks(path):
    r = read_ranks(path)
    return r.indices, r.scores, r.db_names, r.query_names


def test_default_factory_rule():
    assert fx.default_factory(10_000, 128) == "Flat"
    assert fx.default_factory(200_000, 128) == "IVF2048,Flat"  # 4·√200k ≈ 1789 → 2048
    assert fx.default_factory(4_000_000, 128) == "IVF8192,PQ64"
    assert fx.default_factory(4_000_000, 96) == "IVF8192,PQ48"
    for d in (7, 96, 128, 2048):
        m = fx.default_pq_m(d)
        assert d % m == 0 and m <= max(1, min(64, d // 2))


def test_flat_index_equals_exact_search_cli(files):
    tmp = files["dir"]
    out = run_rkit("-q", "index", "build", files["db"], "-o", tmp / "flat.h5", "--factory", "Flat",
                   "--block-size", "400")
    assert out.stdout.strip() == str(tmp / "flat.h5")
    run_rkit("-q", "index", "search", files["q"], "--index", tmp / "flat.h5", "-o", tmp / "r_flat.h5", "-k", "20")
    run_rkit("-q", "index", "search", files["db"], files["q"], "-o", tmp / "r_exact.h5", "-k", "20")
    I, S, dbn, qn = _ranks(tmp / "r_flat.h5")
    I0, S0, dbn0, qn0 = _ranks(tmp / "r_exact.h5")
    assert np.array_equal(I, I0) and np.allclose(S, S0, atol=1e-5)
    assert dbn == dbn0 == files["names"] and qn == qn0
    ix = read_index_file(tmp / "flat.h5", with_data=False)
    with FeaturesStream(files["db"]) as fs:
        assert ix.features_fingerprint == fs.fingerprint()
    assert ix.factory == "Flat" and ix.ntotal == N and ix.row_range == (0, N)


def test_ivf_with_all_lists_probed_is_exact(files):
    tmp = files["dir"]
    build_index(files["db"], tmp / "ivf.h5", IndexBuildConfig(factory="IVF16,Flat", block_size=256))
    search_index([tmp / "ivf.h5"], files["q"], tmp / "r_ivf.h5", IndexSearchConfig(k=15, nprobe=16))
    I, S, _, _ = _ranks(tmp / "r_ivf.h5")
    S0, I0 = _exact(files["xq"], files["xb"], 15)
    assert np.array_equal(I, I0) and np.allclose(S, S0, atol=1e-5)
    # one list probed is approximate: fewer lists seen, (almost surely) some neighbours missed
    search_index([tmp / "ivf.h5"], files["q"], tmp / "r_ivf1.h5", IndexSearchConfig(k=15, nprobe=1))
    I1, _, _, _ = _ranks(tmp / "r_ivf1.h5")
    assert not np.array_equal(I1, I0)


def test_shortlist_reranks_exactly(files):
    tmp = files["dir"]
    build_index(files["db"], tmp / "pq.h5", IndexBuildConfig(factory="IVF8,PQ4", train_size=N))
    k, sl = 10, 40
    search_index([tmp / "pq.h5"], files["q"], tmp / "r_cand.h5", IndexSearchConfig(k=sl, nprobe=2))
    search_index([tmp / "pq.h5"], files["q"], tmp / "r_rr.h5", IndexSearchConfig(k=k, nprobe=2, shortlist=sl),
                 database=files["db"])
    cand, cand_s, _, _ = _ranks(tmp / "r_cand.h5")
    I, S, _, _ = _ranks(tmp / "r_rr.h5")
    xq, xb = files["xq"], files["xb"]
    for q in range(Q):
        c = cand[q][cand[q] >= 0]
        exact = xb[c] @ xq[q]
        order = c[np.lexsort((c, -exact))][:k]
        assert np.array_equal(I[q], order)
        assert np.allclose(S[q], np.sort(exact)[::-1][:k], atol=1e-5)
    assert not np.allclose(cand_s[:, :k], S, atol=1e-4)  # PQ scores are approximate; re-ranked ones are exact
    # a shortlist of the whole database restores exact search
    search_index([tmp / "pq.h5"], files["q"], tmp / "r_all.h5", IndexSearchConfig(k=k, nprobe=8, shortlist=N),
                 database=files["db"])
    S0, I0 = _exact(xq, xb, k)
    assert np.array_equal(_ranks(tmp / "r_all.h5")[0], I0)


def test_sharded_build_merge_and_parts_search_cli(files):
    tmp = files["dir"]
    build_index(files["db"], tmp / "t.h5", IndexBuildConfig(factory="IVF16,Flat"), train_only=True)
    for i in (1, 2):
        build_index(files["db"], tmp / f"p{i}.h5", IndexBuildConfig(block_size=100), trained=tmp / "t.h5",
                    shard=(i, 3))
    run_rkit("-q", "index", "build", files["db"], "--trained", tmp / "t.h5", "--shard", "3/3", "--block-size",
             "100", "-o", tmp / "p3.h5")
    parts = [tmp / "p3.h5", tmp / "p1.h5", tmp / "p2.h5"]  # any order
    run_rkit("-q", "merge", *parts, "-o", tmp / "merged.h5")
    build_index(files["db"], tmp / "one.h5", trained=tmp / "t.h5")  # the same training, added in one go
    merged, one = read_index_file(tmp / "merged.h5"), read_index_file(tmp / "one.h5")
    assert merged.names == one.names == files["names"] and merged.ntotal == N
    cfg = IndexSearchConfig(k=25, nprobe=3)
    search_index([tmp / "merged.h5"], files["q"], tmp / "r_m.h5", cfg)
    search_index([tmp / "one.h5"], files["q"], tmp / "r_one.h5", cfg)
    run_rkit("-q", "index", "search", files["q"], *sum((["--index", p] for p in parts), []), "--nprobe", "3",
             "-k", "25", "-o", tmp / "r_parts.h5")
    Im, Sm, nm, _ = _ranks(tmp / "r_m.h5")
    Io, So, _, _ = _ranks(tmp / "r_one.h5")
    Ip, Sp, np_, _ = _ranks(tmp / "r_parts.h5")
    assert np.array_equal(Im, Io) and np.array_equal(Ip, Im)
    assert np.allclose(Sp, Sm, atol=1e-6) and nm == np_ == files["names"]
    # inverted lists on disk: same results, lists in a side file
    proc = run_rkit("-q", "index", "merge", *parts, "--on-disk", "-o", tmp / "ondisk.h5")
    assert proc.stdout == f"{tmp / 'ondisk.h5'}\n"  # faiss's own notes never reach stdout
    assert (tmp / "ondisk.h5.ivfdata").stat().st_size > 0
    search_index([tmp / "ondisk.h5"], files["q"], tmp / "r_od.h5", cfg)
    assert np.array_equal(_ranks(tmp / "r_od.h5")[0], Im)
    # a missing part is refused, not silently searched
    proc = run_rkit("index", "search", files["q"], "--index", tmp / "p1.h5", "--index", tmp / "p3.h5",
                    "-o", tmp / "x.h5", check=False)
    assert proc.returncode == 3 and "part is missing" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("factory", ["Flat", "PCA8,Flat", "IVF8,Flat", "IVF8,PQ4", "OPQ4,IVF8,PQ4", "HNSW8"])
def test_every_family_builds_shards_merges_searches(files, tmp_path, factory):
    build_index(files["db"], tmp_path / "t.h5", IndexBuildConfig(factory=factory, train_size=N), train_only=True)
    for i in (1, 2):
        build_index(files["db"], tmp_path / f"p{i}.h5", IndexBuildConfig(block_size=200), trained=tmp_path / "t.h5",
                    shard=(i, 2))
    merge_index([tmp_path / "p2.h5", tmp_path / "p1.h5"], tmp_path / "m.h5")
    build_index(files["db"], tmp_path / "one.h5", trained=tmp_path / "t.h5")
    fam = "hnsw" if factory.startswith("HNSW") else "ivf" if "IVF" in factory else "flat"
    cfg = IndexSearchConfig(k=10, nprobe=8 if fam == "ivf" else None, ef=N if fam == "hnsw" else None)
    for name, idx in (("m", ["m.h5"]), ("one", ["one.h5"]), ("parts", ["p1.h5", "p2.h5"])):
        search_index([tmp_path / p for p in idx], files["q"], tmp_path / f"r_{name}.h5", cfg)
    Im, Sm, names, _ = _ranks(tmp_path / "r_m.h5")
    Io, So, _, _ = _ranks(tmp_path / "r_one.h5")
    Ip, Sp, _, _ = _ranks(tmp_path / "r_parts.h5")
    assert names == files["names"]
    if fam == "hnsw":  # graphs built in another order differ; with efSearch = N all three are near-exact
        S0, I0 = _exact(files["xq"], files["xb"], 10)
        for I in (Im, Io, Ip):
            assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I, I0)]) >= 0.95
    else:
        assert np.array_equal(Im, Io) and np.allclose(Sm, So, atol=1e-5)
        # parts searched separately: exact merge of the top-k (PQ scores per part are the same codes)
        assert np.array_equal(Ip, Im) and np.allclose(Sp, Sm, atol=1e-5)


def test_fingerprint_mismatch_is_refused(files):
    tmp = files["dir"]
    build_index(files["db"], tmp / "fp.h5", IndexBuildConfig(factory="Flat"))
    proc = run_rkit("index", "search", files["other"], files["q"], "--index", tmp / "fp.h5", "--shortlist", "20",
                    "-o", tmp / "x.h5", check=False)
    assert proc.returncode == 3, proc.stderr
    assert "not the features the index" in proc.stderr and str(files["other"]) in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp / "x.h5").exists()
    # parts of different features are not merged
    build_index(files["db"], tmp / "ta.h5", IndexBuildConfig(factory="IVF8,Flat"), train_only=True)
    build_index(files["db"], tmp / "pa.h5", trained=tmp / "ta.h5", shard=(1, 2))
    build_index(files["other"], tmp / "pb.h5", trained=tmp / "ta.h5", shard=(2, 2))
    with pytest.raises(BadInputError, match="other features"):
        merge_index([tmp / "pa.h5", tmp / "pb.h5"], tmp / "bad.h5")


def test_build_streams_blocks(files, tmp_path, monkeypatch):
    spans = []
    orig = FeaturesStream.rows

    def spy(self, start, end):
        spans.append(end - start)
        return orig(self, start, end)

    monkeypatch.setattr(FeaturesStream, "rows", spy)
    build_index(files["db"], tmp_path / "s.h5", IndexBuildConfig(factory="IVF8,Flat", train_size=500,
                                                                 block_size=128))
    assert spans and max(spans) <= 128 and sum(spans) >= N  # every row read, never more than a block at once
    assert read_index_file(tmp_path / "s.h5", with_data=False).ntotal == N


def test_half_features_accepted(files, tmp_path):
    build_index(files["half"], tmp_path / "h.h5", IndexBuildConfig(factory="Flat", block_size=500))
    search_index([tmp_path / "h.h5"], files["q"], tmp_path / "r.h5", IndexSearchConfig(k=5))
    xb16 = files["xb"].astype(np.float16).astype(np.float32)
    S0, I0 = _exact(files["xq"], xb16, 5)
    I, S, _, _ = _ranks(tmp_path / "r.h5")
    assert np.allclose(S, S0, atol=1e-5)
    assert np.array_equal(I[:, 0], I0[:, 0])


def test_usage_errors_cli(files, tmp_path):
    proc = run_rkit("index", "build", files["db"], "--factory", "IVF16,PQ5", "-o", tmp_path / "x.h5", check=False)
    assert proc.returncode == 2 and "--factory 'IVF16,PQ5' is not a valid faiss factory string" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.h5").exists()
    with pytest.raises(UsageError, match="--ef applies to HNSW"):
        search_index([files["dir"] / "flat.h5" if (files["dir"] / "flat.h5").exists() else _flat(files, tmp_path)],
                     files["q"], tmp_path / "r.h5", IndexSearchConfig(ef=10))
    with pytest.raises(UsageError, match="--shortlist"):
        search_index([_flat(files, tmp_path)], files["q"], tmp_path / "r.h5", IndexSearchConfig(shortlist=5))


def _flat(files, tmp_path):
    p = tmp_path / "flat_u.h5"
    if not p.exists():
        build_index(files["db"], p, IndexBuildConfig(factory="Flat"))
    return p


def test_cuda_without_gpu_exits_4(files, tmp_path):
    import torch

    if torch.cuda.is_available() or fx.gpu_count() > 0:
        pytest.skip("a GPU is available: the missing-device path cannot be exercised")
    proc = run_rkit("index", "build", files["db"], "--factory", "Flat", "--device", "cuda", "-o", tmp_path / "g.h5",
                    check=False)
    assert proc.returncode == 4 and "neither faiss-gpu nor a CUDA torch" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_approximate_knn_graph_cli(files):
    tmp = files["dir"]
    run_rkit("-q", "index", "knn", files["db"], "-o", tmp / "knn_ivf.h5", "-k", "8", "--factory", "IVF8,Flat",
             "--nprobe", "8", "--recall-sample", "200")
    g = read_knn(tmp / "knn_ivf.h5")
    S0, I0 = knn_graph(files["xb"], 8)
    assert g.names == files["names"] and np.array_equal(g.indices, I0)  # all lists probed: exact
    assert g.config["recall_at_k"] == 1.0
    # an approximate graph reports its measured recall (HNSW with a tiny efSearch misses some)
    build_index(files["db"], tmp / "hnsw.h5", IndexBuildConfig(factory="HNSW4"))
    proc = run_rkit("index", "knn", files["db"], "-o", tmp / "knn_h.h5", "-k", "8", "--index", tmp / "hnsw.h5",
                    "--ef", "8", "--recall-sample", "300")
    g = read_knn(tmp / "knn_h.h5")
    assert not (g.indices == np.arange(N)[:, None]).any()
    hits = np.mean([len(set(a) & set(b)) / 8 for a, b in zip(g.indices, I0)])
    rec = g.config["recall_at_k"]
    assert 0 < rec <= 1 and abs(rec - hits) < 0.1 and f"{rec:.4f}" in proc.stderr


def test_index_file_is_self_describing(files):
    tmp = files["dir"]
    p = tmp / "flat_desc.h5"
    build_index(files["db"], p, IndexBuildConfig(factory="Flat"))
    with h5py.File(p, "r") as f:
        assert f.attrs["kind"] == "rkit/faiss-index" and f["index"].dtype == np.uint8
        assert json.loads(f.attrs["inputs"])["features"] == str(files["db"])
        assert json.loads(f.attrs["config"])["factory"] == "Flat"
    with h5py.File(p, "a") as f:  # a corrupt count is refused with a message naming the file
        f.attrs["ntotal"] = 3
    with pytest.raises(BadInputError, match="disagree"):
        read_index_file(p)
