"""Image inputs: link loops, pixel bombs, empty/truncated/not-an-image files, names that leave the image folder.

Every case runs the real ``rkit`` command and checks the exit code, the one-line message (no traceback) and
that the input files are unchanged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from retrievalkit.errors import BadInputError, RkitWarning
from retrievalkit.images.decode import ImageReadError, load_image, read_image_bytes
from retrievalkit.images.discover import check_names, find_images
from tests.reliability.inputs_helpers import (
    FAST,
    assert_clean_refusal,
    bomb_png,
    broken_images,
    demo_images,
    rkit,
    snapshot,
)


def _names(h5: Path, what: str = "names") -> list[str]:
    with h5py.File(h5, "r") as f:
        return [n.decode() if isinstance(n, bytes) else n for n in f[what][()]]


def _failed(h5: Path) -> dict[str, str]:
    return dict(zip(_names(h5, "failed"), _names(h5, "failed_reason")))


@pytest.fixture
def messy(tmp_path) -> tuple[Path, list[str], dict[str, str]]:
    """A folder with good photos, broken files, a link to its parent, two links pointing at each other's
    folders, and a link out of the folder."""
    root = tmp_path / "imgs"
    good = demo_images(root, 3) + demo_images(root, 2, sub="a") + demo_images(root, 1, sub="b")
    bad = broken_images(root)
    os.symlink("..", root / "a" / "up")  # a link to a parent folder
    os.symlink("../b", root / "a" / "to_b")  # two links, each to the other's folder: a loop
    os.symlink("../a", root / "b" / "to_a")
    outside = tmp_path / "elsewhere"
    demo_images(outside, 1)
    os.symlink(outside, root / "out")
    return root, sorted(good), bad


def test_extract_walks_links_once_and_lists_unreadable_images(messy, tmp_path):
    root, good, bad = messy
    before = snapshot(root)
    out = tmp_path / "f.h5"
    p = rkit("extract", root, "-o", out, *FAST, "--workers", "2", timeout=180)  # a loop would time out
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    assert _names(out) == good  # each image once: no repeats through `up`, `to_b`, `to_a`
    failed = _failed(out)
    assert sorted(failed) == sorted(bad)
    for name, word in bad.items():
        assert word in failed[name], (name, failed[name])
    warn = [ln for ln in p.stderr.splitlines() if "outside the image folder" in ln]
    assert len(warn) == 1 and "out" in warn[0] and "--allow-root" in warn[0]
    for name in bad:  # one warning line per unreadable image
        assert sum(name in ln for ln in p.stderr.splitlines()) == 1, p.stderr
    assert snapshot(root) == before


def test_allow_root_admits_a_link_target(messy, tmp_path):
    root, good, _ = messy
    with pytest.warns(RkitWarning, match="outside the image folder"):
        assert "out/d0.jpg" not in find_images(root)
    from retrievalkit.images.policy import image_policy, set_image_policy

    old = image_policy()
    try:
        set_image_policy(allow_roots=[tmp_path / "elsewhere"])
        assert "out/d0.jpg" in find_images(root)
    finally:
        set_image_policy(max_pixels=old.max_pixels, allow_roots=old.allow_roots)


@pytest.mark.parametrize("method", ["sift", "deep"])
def test_extract_local_lists_unreadable_images(messy, tmp_path, method):
    root, good, bad = messy
    before = snapshot(root)
    out = tmp_path / "l.h5"
    # the network and its PCA apply to deep locals only (the CLI refuses them for SIFT)
    extra = [*FAST, "--dim", "0"] if method == "deep" else ["--size", "64", "--device", "cpu"]
    p = rkit("extract", root, "--local", "--local-method", method, "-o", out, *extra, "--max-features", "50")
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    assert sorted(_failed(out)) == sorted(bad)
    assert _names(out) == good
    assert snapshot(root) == before


def test_pixel_cap_is_an_option_and_checked_before_decoding(tmp_path):
    bomb = bomb_png(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 2_000_000
    with pytest.raises(ImageReadError, match="20000x20000"):
        read_image_bytes(bomb)  # refused from the header: nothing decoded
    root = tmp_path / "imgs"
    demo_images(root, 2)  # 512x384 photos
    p = rkit("--max-pixels", 100_000, "extract", root, "-o", tmp_path / "f.h5", *FAST, "--workers", "0")
    assert_clean_refusal(p, 3, str(root), "none of the 2 images")
    assert "512x384 pixels is over the limit of 100000" in p.stderr
    assert not (tmp_path / "f.h5").exists()
    p = rkit("--max-pixels", 0, "extract", root, "-o", tmp_path / "f.h5", *FAST)
    assert_clean_refusal(p, 2, "--max-pixels")


def test_decoder_refuses_each_kind_of_broken_file(tmp_path):
    bad = broken_images(tmp_path)
    for name, word in bad.items():
        with pytest.raises(ImageReadError, match=word):
            load_image(tmp_path / name)
    with pytest.raises(ImageReadError, match="not found"):
        load_image(tmp_path / "missing.jpg")


def test_copy_detect_leaves_out_unreadable_images(tmp_path):
    q, r = tmp_path / "queries", tmp_path / "references"
    demo_images(q, 2)
    demo_images(r, 3)
    (q / "empty.jpg").write_bytes(b"")
    (r / "truncated.jpg").write_bytes((r / "d0.jpg").read_bytes()[:5000])
    before = snapshot(tmp_path)
    out = tmp_path / "m.csv"
    p = rkit("copy-detect", "--queries", q, "--database", r, "-o", out, *FAST, "--workers", "0")
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    warn = [ln for ln in p.stderr.splitlines() if ln.startswith("warning:")]
    assert any("empty.jpg" in ln and "empty file" in ln for ln in warn), p.stderr
    assert any("truncated.jpg" in ln and "truncated" in ln for ln in warn), p.stderr
    text = out.read_text()
    assert "empty" not in text and "truncated" not in text
    assert snapshot(tmp_path) == {**before, "m.csv": snapshot(tmp_path)["m.csv"]}


def test_train_refuses_tuples_with_an_unreadable_image_before_training(tmp_path):
    from retrievalkit.io.tuples import Tuples, write_tuples

    root = tmp_path / "imgs"
    names = demo_images(root, 4)
    (root / "empty.jpg").write_bytes(b"")
    names.append("empty.jpg")
    cl = np.array([0, 0, 1, 1, 1])
    tup = write_tuples(tmp_path / "t.h5", Tuples(names, cl, np.array([0, 2]), np.array([1, 4]), None, str(root), {}))
    before = snapshot(tmp_path)
    p = rkit("train", tup, "-o", tmp_path / "m.pt", "-m", "tiny-cnn", "--size", "32", "--epochs", "1",
             "--device", "cpu")
    assert_clean_refusal(p, 3, "empty.jpg", "empty file", "1 of the 5 images")
    assert snapshot(tmp_path) == before  # no model, no state, no log


# ------------------------------------------------------------------------------------------- names
def test_list_with_an_absolute_or_escaping_name_is_refused(tmp_path):
    root = tmp_path / "imgs"
    demo_images(root, 2)
    secret = tmp_path / "secret.jpg"
    secret.write_bytes((root / "d0.jpg").read_bytes())
    lst = tmp_path / "list.txt"
    lst.write_text(f"d0.jpg\n{secret}\nd1.jpg\n")
    before = snapshot(tmp_path)
    p = rkit("extract", root, "--list", lst, "-o", tmp_path / "f.h5", *FAST)
    assert_clean_refusal(p, 3, str(lst), str(secret), "absolute")
    assert snapshot(tmp_path) == before
    for bad in ("../secret.jpg", "a/../../secret.jpg", "../imgs/../secret"):
        with pytest.raises(BadInputError, match="outside the image folder"):
            check_names(root, ["d0.jpg", bad], lst)
    os.symlink(tmp_path, root / "link")  # a link inside the folder does not open a way out either
    with pytest.raises(BadInputError, match="link/secret.jpg"):
        check_names(root, ["link/secret.jpg"], lst)
    check_names(root, ["d0.jpg", "./d1.jpg", "sub/../d0.jpg"], lst)  # these stay inside


def test_ground_truth_names_stay_inside_unless_allowed(tmp_path):
    """pairs-dev's layout: the ground truth names distractors of a sibling data set as ``../../other/x``."""
    data = tmp_path / "data"
    root = data / "pairs" / "images"
    demo_images(root, 2)
    demo_images(data / "other", 2)
    gnd = data / "pairs" / "gnd.json"
    gnd.write_text(json.dumps({"imlist": ["d1", "../../other/d0", "../../other/d1"], "qimlist": ["d0"],
                               "gnd": [{"easy": [0], "hard": [], "junk": []}]}))
    before = snapshot(data)
    p = rkit("extract", root, "--gnd", gnd, "--split", "database", "-o", tmp_path / "f.h5", *FAST, "--workers", "0")
    assert_clean_refusal(p, 3, str(gnd), "../../other/d0", "--allow-root")
    assert snapshot(data) == before
    p = rkit("--allow-root", data / "other", "extract", root, "--gnd", gnd, "--split", "database",
             "-o", tmp_path / "f.h5", *FAST, "--workers", "0")
    assert p.returncode == 0, p.stderr
    assert _names(tmp_path / "f.h5") == ["d1.jpg", "../../other/d0.jpg", "../../other/d1.jpg"]


def test_tuples_whose_names_leave_the_image_root_are_refused(tmp_path):
    from retrievalkit.io.tuples import Tuples
    from retrievalkit.train.data import check_tuple_images

    root = tmp_path / "imgs"
    names = demo_images(root, 2)
    (tmp_path / "x.jpg").write_bytes((root / names[0]).read_bytes())
    tup = Tuples([*names, "../x.jpg"], np.array([0, 0, 1]), np.array([0]), np.array([1]), None, str(root), {})
    tup.path = tmp_path / "t.h5"
    with pytest.raises(BadInputError, match=r"t\.h5: image name '\.\./x\.jpg' leads outside"):
        check_tuple_images(tup, root)
    tup.names = names
    check_tuple_images(tup, root)
