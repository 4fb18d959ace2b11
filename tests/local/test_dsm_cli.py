"""End to end on real photos: rkit extract --local --local-method dsm, then rkit verify with those locals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from retrievalkit.io.locals import read_locals
from retrievalkit.io.ranks import read_ranks

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
DEMO = DATA / "demo" / "images"

pytestmark = pytest.mark.slow


def rkit(*args, expect=0):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "retrievalkit", "-q", "--threads", "1", *map(str, args)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == expect, r.stderr
    return r


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    if not DEMO.is_dir():
        pytest.skip(f"real photos not found at {DEMO} (the shared data folder is absent)")
    tmp = tmp_path_factory.mktemp("dsm")
    db, q = tmp / "db", tmp / "q"
    for scene, pat in (("et_toy", "et00[0-3].jpg"), ("kermit", "kermit00[0-3].jpg")):
        (db / scene).mkdir(parents=True)
        for p in sorted((DEMO / scene).glob(pat)):
            (db / scene / p.name).write_bytes(p.read_bytes())
    for scene, name in (("et_toy", "et008.jpg"), ("kermit", "kermit010.jpg")):
        (q / scene).mkdir(parents=True)
        (q / scene / name).write_bytes((DEMO / scene / name).read_bytes())
    return tmp, db, q


def test_dsm_extract_and_verify(folders):
    tmp, db, q = folders
    rkit("extract", db, "--size", "320", "-o", tmp / "db.h5")
    rkit("extract", q, "--size", "320", "-o", tmp / "q.h5")
    ranks = rkit("index", "search", "--database", tmp / "db.h5", "--queries", tmp / "q.h5", "-o", tmp / "g.h5",
                 "-k", "8").stdout.strip()
    dbl = rkit("extract", db, "--local", "--local-method", "dsm", "-o", tmp / "db.dsm.h5").stdout.strip()
    ql = rkit("extract", q, "--local", "--local-method", "dsm", "-o", tmp / "q.dsm.h5").stdout.strip()
    loc = read_locals(dbl)
    assert loc.config["method"] == "dsm" and loc.config["layer"] == "head" and loc.dim == 1
    assert loc.keypoints.shape[1] == 8 and (loc.counts() > 20).all()
    kp = loc.keypoints
    sizes = loc.image_sizes[loc.image_ids()]
    assert (kp[:, 0] >= 0).all() and (kp[:, 0] <= sizes[:, 0]).all() and (kp[:, 1] <= sizes[:, 1]).all()
    assert (kp[:, 5] > 0).all() and (kp[:, 5] * kp[:, 7] > kp[:, 6] ** 2).all()  # ellipses
    assert ((kp[:, 4] >= 0) & (kp[:, 4] < loc.config["channels"])).all()

    out = rkit("verify", ranks, "--queries", ql, "--database", dbl, "-o", tmp / "v.h5", "--shortlist", "8",
               "--promote", "min-inliers", "--min-inliers", "6").stdout.strip()
    v, r = read_ranks(out), read_ranks(ranks)
    assert v.config["locals_method"] == "dsm" and v.config["verified_pairs"] >= 2
    # the default rule (a-contrario significance) gives DSM pairs evidence too, and never reorders the rest
    sig = read_ranks(rkit("verify", ranks, "--queries", ql, "--database", dbl, "-o", tmp / "s.h5", "--shortlist",
                          "8").stdout.strip())
    assert sig.config["locals_method"] == "dsm" and sig.config["promote"] == "significant"
    assert 1 <= sig.config["verified_pairs"] <= v.config["verified_pairs"]
    for qi in range(len(sig.query_names)):
        assert sorted(sig.indices[qi]) == sorted(r.indices[qi])
    for qi, qn in enumerate(v.query_names):
        scene = qn.split("/")[0]
        assert v.db_names[v.indices[qi, 0]].startswith(scene)
        assert np.all(np.diff(v.scores[qi][v.indices[qi] >= 0]) <= 0)
        assert sorted(v.indices[qi]) == sorted(r.indices[qi])
    # descriptor-matching options do not apply to dsm locals
    res = rkit("verify", ranks, "--queries", ql, "--database", dbl, "-o", tmp / "bad.h5", "--ratio", "0.8",
               expect=2)
    assert "--ratio" in res.stderr
    res = rkit("extract", q, "--local", "--local-method", "dsm", "--dim", "64", "-o", tmp / "bad.h5", expect=2)
    assert "--dim" in res.stderr
