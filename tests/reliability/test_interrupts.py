"""Interrupted, killed and concurrent extractions: a killed run resumes to a file identical to a clean run;
Ctrl-C is one line and exit 130; a second writer of the same output fails at once and touches nothing while
the first one completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from retrievalkit.io.features import read_features
from retrievalkit.io.output import lock_path, partial_path
from tests.reliability.rkit_batch import ROOT, run_batch, tree_hashes
from tests.reliability.world import EXTRACT, assert_refused, world  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def start(*args) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "retrievalkit", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def wait_for_rows(proc: subprocess.Popen, output, timeout: float = 120.0) -> None:
    """Return once the run has flushed rows to its partial output (the file grew after it was created)."""
    partial = partial_path(output)
    first = None
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before it could be interrupted:\n{proc.stderr.read()}")
        if partial.exists():
            size = partial.stat().st_size
            if first is None:
                first = size
            elif size > first:
                return
        time.sleep(0.005)
    proc.kill()
    raise AssertionError("no progress within the timeout")


def assert_same_features(path, clean) -> None:
    a, b = read_features(path), read_features(clean)
    assert a.names == b.names and a.failed == b.failed
    assert a.vectors.dtype == b.vectors.dtype and np.array_equal(a.vectors, b.vectors)  # bit-identical
    assert not partial_path(path).exists() and not lock_path(path).exists()


def test_killed_extraction_resumes_bit_identical(world, tmp_path):  # noqa: F811
    out = tmp_path / "feats.h5"
    proc = start("extract", world.big, "-o", out, *EXTRACT[:-2], "--workers", "2")  # decoding processes too
    wait_for_rows(proc, out)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    assert not out.exists() and partial_path(out).exists()  # nothing under the final name
    [r] = run_batch([["extract", world.big, "-o", out, *EXTRACT, "--resume"]], tmp_path)
    assert r.code == 0, r.stderr
    assert_same_features(out, world.big_clean)


def test_ctrl_c_is_one_line_exit_130_then_resume(world, tmp_path):  # noqa: F811
    out = tmp_path / "feats.h5"
    proc = start("extract", world.big, "-o", out, *EXTRACT)
    wait_for_rows(proc, out)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert "Traceback" not in stderr and len(lines) == 1 and lines[0].startswith("error: interrupted"), stderr
    assert stdout == "" and not out.exists() and partial_path(out).exists()
    [r] = run_batch([["extract", world.big, "-o", out, *EXTRACT, "--resume"]], tmp_path)
    assert r.code == 0, r.stderr
    assert_same_features(out, world.big_clean)


def test_second_writer_fails_at_once_and_first_completes(world, tmp_path):  # noqa: F811
    out = tmp_path / "feats.h5"
    first = start("extract", world.big, "-o", out, *EXTRACT)
    try:
        wait_for_rows(first, out)
        first.send_signal(signal.SIGSTOP)  # hold the first run mid-extraction while the others try
        before = tree_hashes(tmp_path)
        second, resumer = run_batch([["extract", world.big, "-o", out, *EXTRACT],
                                     ["extract", world.big, "-o", out, *EXTRACT, "--resume"]], tmp_path)
        for r in (second, resumer):
            assert_refused(r, 2, "another rkit run is writing")
        assert tree_hashes(tmp_path) == before  # the first run's partial file was not touched
    finally:
        first.send_signal(signal.SIGCONT)
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert_same_features(out, world.big_clean)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_resume_from_a_damaged_partial_starts_over(world, tmp_path, damage):  # noqa: F811
    """A kill inside an HDF5 write can leave a partial that does not open: --resume says so and starts over."""
    out = tmp_path / "feats.h5"
    part = partial_path(out)
    if damage == "garbage":
        part.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    else:  # the first half of a real features file
        data = world.big_clean.read_bytes()
        part.write_bytes(data[: len(data) // 2])
    [r] = run_batch([["extract", world.big, "-o", out, *EXTRACT, "--resume"]], tmp_path)
    assert r.code == 0, r.stderr
    warnings_ = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings_) == 1 and "starting again" in warnings_[0] and "Traceback" not in r.stderr
    assert_same_features(out, world.big_clean)
