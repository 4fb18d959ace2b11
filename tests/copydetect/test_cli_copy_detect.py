"""`rkit copy-detect` end to end on a few real copydetect-dev photos (tiny-cnn, small size)."""

from __future__ import annotations

import csv
import json
import shutil

import h5py
import numpy as np
import pytest

from retrievalkit.io.features import Features, write_features
from tests.copydetect.cd_helpers import rkit

PAIRS = {"Q00001": "R000101", "Q00003": "R000100", "Q00004": "R000144"}
DISTRACTOR_QUERIES = ["Q00000"]
EXTRA_REFS = ["R000000", "R000001"]
TRAINING = ["T000000", "T000001", "T000002", "T000003", "T000004"]
FAST = ["--model", "tiny-cnn", "--size", "96", "--device", "cpu", "--workers", "0"]


@pytest.fixture
def small_set(copydetect_dev, tmp_path):
    root = tmp_path / "set"
    for sub, names in (("queries", [*PAIRS, *DISTRACTOR_QUERIES]), ("references", [*PAIRS.values(), *EXTRA_REFS]),
                       ("training", TRAINING)):
        (root / sub).mkdir(parents=True)
        for n in names:
            shutil.copy(copydetect_dev / sub / f"{n}.jpg", root / sub / f"{n}.jpg")
    gt = root / "gt.csv"
    gt.write_text("query_id,reference_id\n" + "".join(f"{q},{r}\n" for q, r in PAIRS.items())
                  + "".join(f"{q},\n" for q in DISTRACTOR_QUERIES))
    return root


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_matching_and_descriptor_tracks(small_set, tmp_path):
    out, desc = tmp_path / "m.csv", tmp_path / "d.h5"
    p = rkit("copy-detect", "--queries", small_set / "queries", "--database", small_set / "references",
             "--training", small_set / "training", "-o", out, "--descriptors", desc, "-k", "3",
             "--query-views", "full,center", *FAST, check=True)
    assert p.stdout.split() == [str(out), str(desc)]
    rows = _rows(out)
    assert set(rows[0]) == {"query_id", "reference_id", "score"}
    per_q = {}
    for r in rows:
        per_q.setdefault(r["query_id"], []).append(float(r["score"]))
    assert set(per_q) == {*PAIRS, *DISTRACTOR_QUERIES} and all(len(v) == 3 for v in per_q.values())
    assert all(v == sorted(v, reverse=True) for v in per_q.values())
    assert {r["reference_id"] for r in rows} <= {*PAIRS.values(), *EXTRA_REFS}
    with h5py.File(desc) as f:
        qids = [s.decode() for s in f["query_ids"][()]]
        assert qids == sorted(qids) and f["query"].dtype == np.float32
        # 5 training images: PCA to 4 dims + 1 normalisation dimension
        assert f["query"].shape == (4, 5) and f["reference"].shape == (5, 5)
    for result in (out, desc):
        m = json.loads(rkit("evaluate", result, "--gt", small_set / "gt.csv", check=True).stdout)
        assert 0 <= m["uap"] <= 1 and m["queries"] == 4 and m["positives"] == 3

    out2 = tmp_path / "m2.csv"
    rkit("copy-detect", "--queries", small_set / "queries", "--database", small_set / "references",
         "--training", small_set / "training", "-o", out2, "--max-rows", "5", "--no-verify", *FAST, check=True)
    assert len(_rows(out2)) == 5


def test_verification_finds_true_pairs(small_set, tmp_path):
    # Random tiny-cnn descriptors are useless; verification alone must put the true pairs on top.
    out = tmp_path / "m.csv"
    rkit("copy-detect", "--queries", small_set / "queries", "--database", small_set / "references",
         "--training", small_set / "training", "-o", out, "--query-views", "full", *FAST, check=True)
    best = {}
    for r in _rows(out):
        best.setdefault(r["query_id"], r["reference_id"])
    assert sum(best[q] == ref for q, ref in PAIRS.items()) >= 2, best


def test_shards_merge_and_features_input(small_set, tmp_path):
    parts = []
    for i in (1, 2):
        parts.append(tmp_path / f"refs.{i}.h5")
        rkit("copy-detect", "--database", small_set / "references", "--shard", f"{i}/2",
             "--database-features", parts[-1], *FAST, check=True)
    rkit("merge", *parts, "-o", tmp_path / "refs.h5", check=True)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    common = ["--queries", small_set / "queries", "--training", small_set / "training", "--no-verify",
              "--query-views", "full", *FAST]
    rkit("copy-detect", "--database", tmp_path / "refs.h5", "-o", a, *common, check=True)
    rkit("copy-detect", "--database", small_set / "references", "-o", b, *common, check=True)
    ra, rb = _rows(a), _rows(b)
    assert [(r["query_id"], r["reference_id"]) for r in ra] == [(r["query_id"], r["reference_id"]) for r in rb]
    np.testing.assert_allclose([float(r["score"]) for r in ra], [float(r["score"]) for r in rb], atol=1e-4)


def test_bad_inputs(small_set, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    p = rkit("copy-detect", "--queries", empty, "--database", small_set / "references", "-o", tmp_path / "x.csv",
             *FAST)
    assert p.returncode == 3 and "no images found" in p.stderr and str(empty) in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1

    (small_set / "references" / "sub").mkdir()
    shutil.copy(small_set / "references" / "R000000.jpg", small_set / "references" / "sub" / "R000000.jpg")
    p = rkit("copy-detect", "--queries", small_set / "queries", "--database", small_set / "references",
             "-o", tmp_path / "x.csv", *FAST)
    assert p.returncode == 3 and "R000000" in p.stderr and "unique" in p.stderr
    assert not (tmp_path / "x.csv").exists()

    rng = np.random.default_rng(0)
    for name, n in (("q", 3), ("r", 4)):
        write_features(tmp_path / f"{name}.h5", Features([f"{name}{i}.jpg" for i in range(n)],
                                                         rng.normal(size=(n, 300)).astype(np.float32)))
    p = rkit("copy-detect", "--queries", tmp_path / "q.h5", "--database", tmp_path / "r.h5",
             "--descriptors", tmp_path / "d.h5", "--dim", "0")
    assert p.returncode == 2 and "300-d" in p.stderr and "256" in p.stderr


def test_promotion_options_refused_where_they_do_not_apply(small_set, tmp_path):
    common = ["--queries", small_set / "queries", "--database", small_set / "references", "-o", tmp_path / "x.csv"]
    for extra, word in ((["--min-inliers", "8"], "--promote significant"),
                        (["--promote", "min-inliers", "--nfa", "0.1"], "--promote min-inliers"),
                        (["--no-verify", "--nfa", "0.1"], "without verification")):
        p = rkit("copy-detect", *common, *extra, *FAST)
        assert p.returncode == 2 and word in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1
