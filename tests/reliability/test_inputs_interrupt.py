"""Ctrl-C during ``rkit extract --workers 2``: one clean line, exit code 130, no traceback from the decoding
workers, the output not created and the inputs unchanged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.reliability.inputs_helpers import ROOT, error_lines, snapshot


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


@pytest.fixture(scope="module")
def many_images(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("many")
    rng = np.random.default_rng(0)
    for i in range(400):
        cv2.imwrite(str(root / f"{i:04d}.jpg"), rng.integers(0, 255, size=(240, 320, 3), dtype=np.uint8))
    return root


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc to see the worker processes")
@pytest.mark.parametrize("to_group, delay", [(True, 0.0), (True, 0.3), (False, 0.3)],
                         ids=["ctrl-c-while-workers-start", "ctrl-c-while-decoding", "kill-int-main-process"])
def test_ctrl_c_prints_one_line_and_exits_130(many_images, tmp_path, to_group, delay):
    out = tmp_path / "f.h5"
    before = snapshot(many_images)
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    # A new session stands in for the terminal's process group: Ctrl-C signals the group, `kill -INT` one pid.
    proc = subprocess.Popen([sys.executable, "-m", "retrievalkit", "extract", many_images, "-o", out, "--model",
                             "tiny-cnn", "--size", "320", "--workers", "2", "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(_children(proc.pid)) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is not None:
            pytest.fail(f"extract ended before it could be interrupted: {proc.stderr.read()}")
        time.sleep(delay)  # 0: the workers are starting (a worker killed mid-start used to print a traceback)
        if to_group:
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines == error_lines(err) and len(lines) == 1 and "interrupted" in lines[0], err
    assert not out.exists()
    assert snapshot(many_images) == before
