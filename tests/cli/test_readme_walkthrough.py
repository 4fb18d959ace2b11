"""Regressions found by walking through the README as a new user: clean one-line errors for plausible mistakes,
no partial file left by a run that wrote nothing, `--list` names without extension, help that points to options."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from retrievalkit.cli.app import app
from retrievalkit.configs.extract import GlobalExtractConfig
from retrievalkit.errors import BadInputError
from retrievalkit.extract.global_desc import extract_global
from retrievalkit.extract.inputs import resolve_inputs
from retrievalkit.io import Features, write_features
from retrievalkit.models._files import load_torch_file

runner = CliRunner()


def _rkit(*args) -> tuple[int, str]:
    res = runner.invoke(app, ["-q", "--threads", "1", *map(str, args)])
    return res.exit_code, res.output


def _photos(root: Path, n: int = 3) -> Path:
    rng = np.random.default_rng(0)
    (root / "a").mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(root / "a" / f"{i}.jpg"), rng.integers(0, 255, (40, 48, 3), dtype=np.uint8))
    return root


def _feats(path: Path, n: int = 8, d: int = 16) -> Path:
    x = np.random.default_rng(1).standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return write_features(path, Features([f"{i}.jpg" for i in range(n)], x))


def test_extract_with_nothing_readable_leaves_no_partial(tmp_path):
    photos = _photos(tmp_path / "photos")
    lst = tmp_path / "names.txt"
    lst.write_text("missing/x.jpg\nmissing/y.jpg\n")
    out = tmp_path / "f.h5"
    with pytest.raises(BadInputError, match="none of the 2 images"):
        extract_global(photos, out, GlobalExtractConfig(model="tiny-cnn", size=32, workers=0), list_file=lst)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_list_names_without_extension_resolve_to_files(tmp_path):
    photos = _photos(tmp_path / "photos")
    lst = tmp_path / "names.txt"
    lst.write_text("a/0\na/1.jpg\na/nope\n")
    names, boxes = resolve_inputs(photos, lst)
    assert names == ["a/0.jpg", "a/1.jpg", "a/nope"] and boxes is None


def test_hdf5_passed_as_model_file_is_named(tmp_path):
    f = _feats(tmp_path / "feats.h5")
    with pytest.raises(BadInputError, match="HDF5"):
        load_torch_file(f)
    code, out = _rkit("extract", _photos(tmp_path / "photos"), "-o", tmp_path / "x.h5", "--model", f)
    assert code == 3 and "HDF5" in out and "--trust-model" not in out


def test_diffuse_unknown_method_lists_shortcuts(tmp_path):
    db, q = _feats(tmp_path / "db.h5"), _feats(tmp_path / "q.h5", n=3)
    code, out = _rkit("diffuse", "--database", db, "--queries", q, "--method", "foo", "-o", tmp_path / "r.h5")
    assert code == 2 and "alpha-qe" in out and "cg" in out
    assert not (tmp_path / "r.h5").exists()


def test_copy_detect_swapped_outputs_are_usage_errors(tmp_path):
    q, r = _photos(tmp_path / "Q"), _photos(tmp_path / "R")
    code, out = _rkit("copy-detect", "--queries", q, "--database", r, "-o", tmp_path / "m.h5")
    assert code == 2 and "--descriptors" in out
    code, out = _rkit("copy-detect", "--queries", q, "--database", r, "--descriptors", tmp_path / "d.csv")
    assert code == 2 and "-o" in out
    assert not (tmp_path / "m.h5").exists() and not (tmp_path / "d.csv").exists()


def test_evaluate_csv_with_gnd_points_to_gt(tmp_path):
    csv = tmp_path / "matches.csv"
    csv.write_text("query_id,reference_id,score\nQ1,R1,0.5\n")
    gnd = tmp_path / "gnd.json"
    gnd.write_text(json.dumps({"imlist": ["a"], "qimlist": ["b"], "gnd": [{"easy": [0], "hard": [], "junk": []}]}))
    code, out = _rkit("evaluate", csv, "--gnd", gnd)
    assert code == 2 and "--gt" in out


def test_random_resnet_without_weights_is_noted(tmp_path):
    res = runner.invoke(app, ["--threads", "1", "extract", str(_photos(tmp_path / "photos", 1)), "-o",
                              str(tmp_path / "f.h5"), "--model", "resnet18", "--size", "32", "--workers", "0"])
    assert res.exit_code == 0, res.output
    assert "randomly initialised" in res.output


@pytest.mark.parametrize("group, hint", [("train", "rkit train run --help"), ("whiten", "rkit whiten learn --help")])
def test_group_help_points_to_the_options(group, hint):
    res = runner.invoke(app, [group, "--help"], env={"COLUMNS": "400", "NO_COLOR": "1"})
    assert res.exit_code == 0 and hint in " ".join(res.output.split())


def test_usage_errors_of_the_installed_command_are_one_line(tmp_path):
    """The ``rkit`` script itself (not the in-process runner): a missing input file or an unknown option is a
    single line on stderr naming the file or option, exit code 2, nothing on stdout."""
    import shutil
    import subprocess
    import sys

    exe = shutil.which("rkit") or str(Path(sys.executable).parent / "rkit")
    if not Path(exe).exists():
        pytest.skip("the rkit script is not installed next to this Python (pip install -e .)")
    cases = [
        ([exe, "evaluate", str(tmp_path / "missing.h5"), "--gnd", str(tmp_path / "gnd.json")], "gnd.json"),
        ([exe, "index", "search", str(tmp_path / "db.h5"), str(tmp_path / "q.h5"), "-o", "r.h5"], "db.h5"),
        ([exe, "extract", "--bogus"], "--bogus"),
    ]
    for cmd, named in cases:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert res.returncode == 2, res.stderr
        assert res.stdout == ""
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], res.stderr


def test_list_from_a_pipe_is_read_once(tmp_path):
    """``--list <(grep ...)`` hands extract a pipe that can be read only once."""
    import os
    import threading

    photos = _photos(tmp_path / "photos")
    fifo = tmp_path / "names.fifo"
    os.mkfifo(fifo)

    done = threading.Event()

    def feed():
        with open(fifo, "w") as f:  # blocks until the command opens the pipe, then writes once
            f.write("a/0\na/2.jpg\n")
        while not done.wait(0.2):  # any later reader gets an empty pipe (as from a spent <(...)), not a hang
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    code, out = _rkit("extract", photos, "--list", fifo, "--model", "tiny-cnn", "--size", 32, "--workers", 0,
                      "-o", tmp_path / "f.h5")
    done.set()
    assert code == 0, out
    from retrievalkit.io import read_features

    assert read_features(tmp_path / "f.h5").names == ["a/0.jpg", "a/2.jpg"]
