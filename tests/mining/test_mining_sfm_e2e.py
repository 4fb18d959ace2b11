"""``rkit sfm-mine`` end to end on tiny real scenes (pycolmap on CPU).

Scenes: 5 photos of the Kermit toy and 5 of the E.T. toy from ../shared/data/demo, downscaled to 640 px,
plus "junk": 4 unrelated photos (scikit-image samples) that cannot be reconstructed.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from retrievalkit.io.tuples import read_tuples

pytest.importorskip("pycolmap")

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SCENES = {
    "kermit": ("demo/images/kermit", ["kermit000", "kermit001", "kermit002", "kermit003", "kermit004"]),
    "et": ("demo/images/et_toy", ["et000", "et001", "et003", "et005", "et007"]),
    "junk": ("demo/distractors", ["astronaut", "brick", "coffee", "grass"]),
}
SFM_ARGS = ["--sift-size", "640", "--max-features", "1024", "--device", "cpu", "--seed", "0"]


def _put(src: Path, dst: Path, size: int = 640) -> None:
    import cv2

    from retrievalkit.images.decode import load_image, resize_longer

    img = resize_longer(load_image(src), size)
    dst.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(dst), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])


def _make(root: Path, flat: bool, scenes=("kermit", "et", "junk")) -> Path:
    if not DATA.is_dir():
        pytest.skip(f"real photos not found at {DATA} (the shared data folder sits beside the repository)")
    for scene in scenes:
        folder, stems = SCENES[scene]
        for s in stems:
            _put(DATA / folder / f"{s}.jpg", root / ("" if flat else scene) / f"{s}.jpg")
    return root


def _rkit(*args):
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "retrievalkit", *map(str, args)], capture_output=True, text=True,
                          env=env)


def _scene(name: str) -> str:
    return name.split("/")[0] if "/" in name else ("kermit" if name.startswith("kermit") else "et")


@pytest.fixture(scope="module")
def scenes_run(tmp_path_factory):
    root = _make(tmp_path_factory.mktemp("scenes") / "photos", flat=False)
    out = root.parent / "tuples.h5"
    models = root.parent / "models"
    p = _rkit("sfm-mine", root, "-o", out, "--models-dir", models, "--negatives", "3", *SFM_ARGS)
    return root, out, models, p


def test_scenes_reconstruct_and_junk_is_skipped(scenes_run):
    root, out, models, p = scenes_run
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(out)
    t = read_tuples(out)
    by_scene = {s["scene"]: s for s in t.config["scenes"]}
    assert by_scene["junk"]["state"] == "failed" and by_scene["junk"]["reason"]
    assert "junk" in p.stderr  # reported in the summary, not fatal
    for scene in ("kermit", "et"):
        assert by_scene[scene]["state"] == "done"
        assert by_scene[scene]["registered"] >= 3 and by_scene[scene]["tuples"] >= 1
    assert len(t.names) == 14 and t.image_root == str(root.resolve())
    assert all((root / n).is_file() for n in t.names)
    assert (models / "kermit" / "status.json").is_file() and (models / "kermit" / "sparse" / "0").is_dir()


def test_positives_same_scene_negatives_other_scene(scenes_run):
    _, out, _, p = scenes_run
    assert p.returncode == 0, p.stderr
    t = read_tuples(out)
    scene = np.array([_scene(n) for n in t.names])
    assert len(t) > 0
    assert (scene[t.qidx] == scene[t.pidx]).all()
    assert (t.qidx != t.pidx).all()
    # each model is a cluster; a query and its positive share it
    assert (t.cluster[t.qidx] == t.cluster[t.pidx]).all() and (t.cluster[t.qidx] >= 0).all()
    assert t.nidx is not None and t.nidx.shape == (len(t), 3)
    for q, row in zip(t.qidx, t.nidx):
        row = row[row >= 0]
        assert row.size > 0 and (scene[row] != scene[q]).all()
    # clusters never mix scenes
    for c in np.unique(t.cluster[t.cluster >= 0]):
        assert len(set(scene[t.cluster == c])) == 1


def test_rerun_reuses_models(scenes_run):
    root, out, models, p = scenes_run
    assert p.returncode == 0, p.stderr
    stamps = {f: f.stat().st_mtime_ns for f in models.rglob("*") if f.is_file()}
    out2 = root.parent / "tuples2.h5"
    p2 = _rkit("sfm-mine", root, "-o", out2, "--models-dir", models, "--negatives", "3", *SFM_ARGS)
    assert p2.returncode == 0, p2.stderr
    assert {f: f.stat().st_mtime_ns for f in models.rglob("*") if f.is_file()} == stamps  # nothing rebuilt
    t1, t2 = read_tuples(out), read_tuples(out2)
    assert t1.names == t2.names
    assert (t1.qidx == t2.qidx).all() and (t1.pidx == t2.pidx).all()  # same seed, same models
    assert "reused" in p2.stderr or "kept" in p2.stderr


def test_flat_folder_is_split_into_clusters(tmp_path):
    root = _make(tmp_path / "flat", flat=True, scenes=("kermit", "et"))
    out = tmp_path / "t.h5"
    p = _rkit("sfm-mine", root, "-o", out, "--models-dir", tmp_path / "m", "--negatives", "2",
              "--size", "320", "--graph-k", "3", "--positive", "most-shared", "--val-fraction", "0.3",
              *SFM_ARGS)
    assert p.returncode == 0, p.stderr
    t = read_tuples(out)
    scenes = {s["scene"]: s for s in t.config["scenes"]}
    assert sorted(scenes) == ["cluster-000", "cluster-001"]
    scene = np.array([_scene(n) for n in t.names])
    assert len(t) > 0
    assert (scene[t.qidx] == scene[t.pidx]).all()
    for q, row in zip(t.qidx, t.nidx):
        row = row[row >= 0]
        assert (scene[row] != scene[q]).all()
    for c in np.unique(t.cluster[t.cluster >= 0]):
        assert len(set(scene[t.cluster == c])) == 1
    assert t.config["positive"] == "most-shared"
    # held-out pairs: same scene, and their queries are not training queries
    assert t.val_qidx is not None and t.val_qidx.size > 0
    assert (scene[t.val_qidx] == scene[t.val_pidx]).all()
    assert not np.isin(t.val_qidx, t.qidx).any()
