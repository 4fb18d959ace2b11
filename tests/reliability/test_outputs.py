"""The one write path: an output that would destroy an input, a directory, an unusable folder or a second
writer is refused before any work, with one line and exit code 2, and nothing on disk changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.reliability.rkit_batch import run_batch
from tests.reliability.world import EXTRACT, assert_refused, world  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def refused(world):  # noqa: F811
    """Run every refused-output case (and two controls) in one rkit process."""
    w = world
    out = w.root / "out"
    out.mkdir()
    (out / "existing_dir").mkdir()
    link = out / "feats.link.h5"
    os.link(w.feats, link)  # the same file under another name (hard link)
    respelled = w.images / ".." / w.feats.name  # the same path spelled differently
    cases = {
        "search_o_is_database": ["index", "search", w.feats, w.ranks, "-o", w.feats, "-k", "3"],
        "search_o_respelled": ["index", "search", w.feats, w.feats, "-o", respelled, "-k", "3"],
        "knn_o_hard_link": ["index", "knn", link, "-o", w.feats, "-k", "3"],
        "whiten_apply_o_is_whitening": ["whiten", "apply", w.feats, "--whitening", w.whiten, "-o", w.whiten],
        "whiten_apply_o_is_features": ["whiten", "apply", w.feats, "--whitening", w.whiten, "-o", w.feats],
        "train_o_is_tuples": ["train", w.tuples, "-o", w.tuples, "--model", "tiny-cnn", "--epochs", "1"],
        "copy_detect_descriptors_is_input": ["copy-detect", "--queries", w.feats, "--database", w.feats,
                                             "--training", w.feats, "--descriptors", w.feats],
        "merge_o_is_part": ["merge", *w.shards, "-o", w.shards[1]],
        "extract_o_is_gnd": ["extract", w.images, "--gnd", w.gnd_json, "--split", "database", "-o", w.gnd_json,
                             *EXTRACT],
        "verify_o_is_ranks": ["verify", w.ranks, "--queries", w.feats, "--database", w.feats,
                              "-o", w.ranks],
        "fuse_o_is_input": ["index", "fuse", w.ranks, w.ranks, "-o", w.ranks],
        "asmk_o_is_database": ["index", "asmk", w.locals, "-o", w.locals],
        "search_asmk_o_is_queries": ["index", "search-asmk", w.ranks, "--queries", w.locals, "-o", w.locals],
        "diffuse_o_is_queries": ["diffuse", "--database", w.feats, "--queries", w.ranks, "-o", w.ranks],
        "diffuse_prepare_o_is_database": ["-q", "diffuse-prepare", "--database", w.feats, "-o", w.feats],
        "propagate_o_is_features": ["propagate", w.feats, "--labels", w.gnd_json, "-o", w.feats],
        "propagate_tuples_is_labels": ["propagate", w.feats, "--labels", w.gnd_json, "-o", out / "p.csv",
                                       "--tuples", w.gnd_json],
        "manifold_mine_o_is_graph": ["manifold-mine", w.feats, "--graph", w.ranks, "-o", w.ranks],
        "whiten_learn_o_is_features": ["whiten", "learn", w.feats, "-o", w.feats],
        "sfm_mine_o_is_features": ["sfm-mine", w.images, "--features", w.feats, "-o", w.feats],
        "extract_o_is_dir": ["extract", w.images, "-o", out / "existing_dir", *EXTRACT],
        "search_o_is_dir": ["index", "search", w.feats, w.feats, "-o", out, "-k", "3"],
        "diffuse_o_is_dir": ["diffuse", "--database", w.feats, "--queries", w.feats, "-o", out / "existing_dir"],
        "extract_folder_is_file": ["extract", w.images, "-o", w.feats / "x.h5", *EXTRACT],
        "import_o_is_pkl": ["train", "import-cirtorch", w.cirtorch_pkl, "-o", w.cirtorch_pkl, "--layout", "flat"],
    }
    if Path("/proc/self").is_dir():  # a folder nobody can create, root included
        cases["extract_uncreatable_folder"] = ["extract", w.images, "-o", "/proc/rkit-no-such/feats.h5", *EXTRACT]
    (out / "bad.h5").write_bytes(b"not hdf5")
    (out / "labels.csv").write_text("name,label\nim000.png,a\nim001.png,b\n")
    cases["propagate_o_is_labels"] = ["propagate", w.feats, "--labels", out / "labels.csv", "-o", out / "labels.csv"]
    cases["bad_input_new_folder"] = ["index", "search", out / "bad.h5", w.feats, "-o", out / "a" / "b" / "r.h5"]
    controls = {"search_ok": ["index", "search", w.feats, w.feats, "-o", out / "new" / "ranks.h5", "-k", "3"],
                "knn_ok": ["index", "knn", w.feats, "-o", out / "knn.h5", "-k", "3"]}
    results = run_batch([*cases.values(), *controls.values()], w.root)
    return dict(zip([*cases, *controls], results)), w


@pytest.mark.parametrize("case,words", [
    ("search_o_is_database", ["also an input"]),
    ("search_o_respelled", ["also an input"]),
    ("knn_o_hard_link", ["also an input"]),
    ("whiten_apply_o_is_whitening", ["also an input"]),
    ("whiten_apply_o_is_features", ["also an input"]),
    ("train_o_is_tuples", ["also an input"]),
    ("copy_detect_descriptors_is_input", ["also an input"]),
    ("merge_o_is_part", ["also an input"]),
    ("extract_o_is_gnd", ["also an input"]),
    ("verify_o_is_ranks", ["also an input"]),
    ("fuse_o_is_input", ["also an input"]),
    ("asmk_o_is_database", ["also an input"]),
    ("search_asmk_o_is_queries", ["also an input"]),
    ("diffuse_o_is_queries", ["also an input"]),
    ("diffuse_prepare_o_is_database", ["also an input"]),
    ("propagate_o_is_features", ["also an input"]),
    ("propagate_tuples_is_labels", ["also an input"]),
    ("manifold_mine_o_is_graph", ["also an input"]),
    ("whiten_learn_o_is_features", ["also an input"]),
    ("sfm_mine_o_is_features", ["also an input"]),
    ("propagate_o_is_labels", ["also an input"]),
    ("extract_o_is_dir", ["existing directory"]),
    ("search_o_is_dir", ["existing directory"]),
    ("diffuse_o_is_dir", ["existing directory"]),
    ("extract_folder_is_file", ["is a file"]),
    ("import_o_is_pkl", ["also an input"]),
    ("extract_uncreatable_folder", ["rkit-no-such"]),
])
def test_unusable_output_is_refused_before_work(refused, case, words):
    results, _ = refused
    if case not in results:
        pytest.skip("no /proc on this system")
    assert_refused(results[case], 2, *words)


def test_controls_write_and_leave_no_lock_or_temporary(refused):
    results, w = refused
    for case, target in (("search_ok", w.root / "out" / "new" / "ranks.h5"), ("knn_ok", w.root / "out" / "knn.h5")):
        r = results[case]
        assert r.code == 0, r.stderr
        assert r.stdout.strip() == str(target)
        created = {k for k in r.after if k not in r.before}
        rel = os.path.relpath(target, w.root)
        assert created <= {rel, os.path.dirname(rel)}, created  # no .lock, .tmp or .partial left behind
        assert target.is_file()


def test_read_only_folder_is_refused_before_work(world, tmp_path):  # noqa: F811
    if os.geteuid() == 0:
        pytest.skip("running as root: a read-only folder is writable for root (the /proc case covers this)")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        [r] = run_batch([["extract", world.images, "-o", ro / "feats.h5", *EXTRACT]], world.root)
        assert_refused(r, 2, "not writable")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_missing_output_folder_is_created_and_removed_on_failure(refused):
    """Folders made for an output are removed again when the stage fails before writing (here: a damaged input)."""
    results, _ = refused
    assert_refused(results["bad_input_new_folder"], 3, "bad.h5")
