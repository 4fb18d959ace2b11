"""End to end on real photos: rkit extract --local, index asmk, index search-asmk, verify (and a blank query)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from retrievalkit.io.ranks import read_ranks

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
DEMO = DATA / "demo" / "images"

pytestmark = pytest.mark.slow


def rkit(*args, expect=0):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "retrievalkit", "-q", *map(str, args)], capture_output=True,
                       text=True, env=env)
    assert r.returncode == expect, r.stderr
    return r


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    if not DEMO.is_dir():
        pytest.skip(f"real photos not found at {DEMO} (the shared data folder is absent)")
    tmp = tmp_path_factory.mktemp("local")
    db, q = tmp / "db", tmp / "q"
    for scene, pat in (("et_toy", "et00[0-3].jpg"), ("kermit", "kermit00[0-3].jpg")):
        (db / scene).mkdir(parents=True)
        for p in sorted((DEMO / scene).glob(pat)):
            (db / scene / p.name).write_bytes(p.read_bytes())
    (q / "et_toy").mkdir(parents=True)
    (q / "kermit").mkdir(parents=True)
    (q / "et_toy" / "et008.jpg").write_bytes((DEMO / "et_toy" / "et008.jpg").read_bytes())
    (q / "kermit" / "kermit010.jpg").write_bytes((DEMO / "kermit" / "kermit010.jpg").read_bytes())
    cv2.imwrite(str(q / "blank.jpg"), np.full((240, 320, 3), 128, np.uint8))
    return tmp, db, q


def test_sift_asmk_verify_pipeline(folders):
    tmp, db, q = folders
    opts = ["--local", "--local-method", "sift", "--size", "320", "--max-features", "300"]
    dbl = rkit("extract", db, *opts, "-o", tmp / "db.loc.h5").stdout.strip()
    ql = rkit("extract", q, *opts, "-o", tmp / "q.loc.h5").stdout.strip()
    idx = rkit("index", "asmk", dbl, "-o", tmp / "asmk.h5", "--codebook-size", "64", "--block-size", "3").stdout.strip()
    ranks = rkit("index", "search-asmk", "--database", idx, "--queries", ql, "-o", tmp / "ranks.h5",
                 "-k", "8").stdout.strip()
    r = read_ranks(ranks)
    assert r.query_names == ["blank.jpg", "et_toy/et008.jpg", "kermit/kermit010.jpg"]
    assert (r.indices[0] == -1).all()  # the blank query: no features, empty result, no crash
    for qi, scene in ((1, "et_toy"), (2, "kermit")):
        assert r.db_names[r.indices[qi, 0]].startswith(scene), (scene, r.db_names[r.indices[qi, 0]])
    out = rkit("verify", ranks, "--queries", ql, "--database", dbl, "-o", tmp / "v.h5",
               "--shortlist", "8").stdout.strip()
    v = read_ranks(out)
    assert (v.indices[0] == -1).all()
    assert v.config["verified"] and v.config["verified_pairs"] >= 2
    for qi, scene in ((1, "et_toy"), (2, "kermit")):
        assert v.db_names[v.indices[qi, 0]].startswith(scene)
        s = v.scores[qi][v.indices[qi] >= 0]
        assert np.all(np.diff(s) <= 0)
    assert sorted(v.indices[1][v.indices[1] >= 0]) == sorted(r.indices[1][r.indices[1] >= 0])


def test_mismatched_locals_fail_cleanly(folders):
    tmp, db, q = folders
    if not (tmp / "asmk.h5").exists():
        pytest.skip("needs the pipeline test's outputs")
    deep = rkit("extract", q, "--local", "--model", "tiny-cnn", "--size", "128", "--scales", "1",
                "--dim", "0", "-o", tmp / "q.deep.h5").stdout.strip()
    r = rkit("index", "search-asmk", "--database", tmp / "asmk.h5", "--queries", deep, "-o", tmp / "bad.h5", expect=3)
    assert "error" in r.stderr and "q.deep.h5" in r.stderr
    assert not (tmp / "bad.h5").exists()


def test_shards_search_like_one_index(folders):
    tmp, db, q = folders
    if not (tmp / "asmk.h5").exists():
        pytest.skip("needs the pipeline test's outputs")
    dbl, ql = tmp / "db.loc.h5", tmp / "q.loc.h5"
    for i in (1, 2):
        rkit("index", "asmk", dbl, "--codebook", tmp / "asmk.h5", "--shard", f"{i}/2", "-o", tmp / f"asmk.{i}.h5")
    rkit("index", "search-asmk", tmp / "asmk.1.h5", tmp / "asmk.2.h5", "--queries", ql, "-o", tmp / "sh.h5", "-k", "8")
    one, sh = read_ranks(tmp / "ranks.h5"), read_ranks(tmp / "sh.h5")
    assert sh.db_names == one.db_names
    np.testing.assert_array_equal(sh.indices, one.indices)
    np.testing.assert_allclose(sh.scores, one.scores, rtol=1e-5)
    r = rkit("index", "asmk", dbl, "--shard", "1/2", "-o", tmp / "x.h5", expect=2)  # shards need a codebook
    assert "--codebook" in r.stderr


def test_view_synthesis_verify_and_fusion(folders):
    """Python API on the pipeline's real-photo outputs: verification with simulated query views, then
    late fusion of the ASMK and verified rankings."""
    from retrievalkit.configs.search import FuseConfig
    from retrievalkit.errors import UsageError
    from retrievalkit.search.fusion import fuse_ranks_files
    from retrievalkit.verify.rerank import VerifyParams, verify_ranks

    tmp, db, q = folders
    if not (tmp / "v.h5").exists():
        pytest.skip("needs the pipeline test's outputs")
    out = verify_ranks(tmp / "ranks.h5", tmp / "q.loc.h5", tmp / "db.loc.h5", tmp / "vs.h5",
                       VerifyParams(shortlist=8, view_tilts=(2.0,)))
    v = read_ranks(out)
    assert v.config["view_tilts"] == [2.0] and v.config["verified_pairs"] >= 2
    assert (v.indices[0] == -1).all()  # the blank query stays empty
    for qi, scene in ((1, "et_toy"), (2, "kermit")):
        assert v.db_names[v.indices[qi, 0]].startswith(scene)
    if (tmp / "q.deep.h5").exists():
        with pytest.raises(UsageError, match="SIFT"):
            verify_ranks(tmp / "ranks.h5", tmp / "q.deep.h5", tmp / "q.deep.h5", tmp / "x.h5",
                         VerifyParams(view_tilts=(2.0,)))
    f = read_ranks(fuse_ranks_files([tmp / "ranks.h5", out], tmp / "f.h5", FuseConfig(top_k=8)))
    assert f.config["method"] == "fusion" and f.db_names == v.db_names
    for qi, scene in ((1, "et_toy"), (2, "kermit")):
        assert f.db_names[f.indices[qi, 0]].startswith(scene)


def test_hpm_and_the_promotion_rules(folders):
    """rkit verify --method hpm and both promotion rules on the pipeline's real-photo outputs; options of the
    other rule are refused."""
    tmp, db, q = folders
    if not (tmp / "v.h5").exists():
        pytest.skip("needs the pipeline test's outputs")
    base = ["verify", tmp / "ranks.h5", "--queries", tmp / "q.loc.h5", "--database", tmp / "db.loc.h5",
            "--shortlist", "8"]
    r = read_ranks(tmp / "ranks.h5")
    for extra in (["--method", "hpm"], ["--promote", "min-inliers", "--min-inliers", "10"], ["--nfa", "0.01"]):
        v = read_ranks(rkit(*base, *extra, "-o", tmp / "vx.h5").stdout.strip())
        assert v.config["verified_pairs"] >= 2
        for qi, scene in ((1, "et_toy"), (2, "kermit")):
            assert v.db_names[v.indices[qi, 0]].startswith(scene)
            assert sorted(v.indices[qi][v.indices[qi] >= 0]) == sorted(r.indices[qi][r.indices[qi] >= 0])
        (tmp / "vx.h5").unlink()
    for bad, word in ((["--min-inliers", "10"], "--min-inliers"), (["--promote", "min-inliers", "--nfa", "1"], "--nfa"),
                      (["--method", "hpm", "--view-tilts", "2"], "--view-tilts")):
        e = rkit(*base, *bad, "-o", tmp / "vy.h5", expect=2)
        assert word in e.stderr and "does not apply" in e.stderr
