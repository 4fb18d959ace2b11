"""The one write path (retrievalkit/io/output.py): checks, locks, atomic rename, clean-up."""

from __future__ import annotations

import fcntl
import os

import pytest

from retrievalkit.errors import UsageError
from retrievalkit.io.output import (
    acquire_lock,
    atomic_file,
    check_output,
    claim_outputs,
    holds_lock,
    lock_path,
    release_lock,
    write_text,
    writes_output,
)


def test_check_output_refuses_inputs_directories_and_file_folders(tmp_path):
    inp = tmp_path / "in.h5"
    inp.write_text("x")
    os.link(inp, tmp_path / "hard.h5")
    (tmp_path / "sub").mkdir()
    for bad, words in ((inp, "also an input"), (tmp_path / "sub" / ".." / "in.h5", "also an input"),
                       (tmp_path / "hard.h5", "also an input"), (tmp_path / "sub", "directory"),
                       (inp / "x.h5", "is a file")):
        with pytest.raises(UsageError, match=words):
            check_output(bad, [inp, None, [tmp_path / "other.h5"]])
    assert check_output(tmp_path / "new" / "deeper" / "out.h5", [inp]) == tmp_path / "new" / "deeper" / "out.h5"
    assert not (tmp_path / "new").exists()  # checking creates nothing


def test_second_holder_fails_at_once_and_lock_is_reentrant(tmp_path):
    out = tmp_path / "out.h5"
    fd = os.open(lock_path(out), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another holder (a separate open file description conflicts like a process)
    try:
        with pytest.raises(UsageError, match="another rkit run is writing"):
            acquire_lock(out)
        assert not holds_lock(out)
    finally:
        os.close(fd)
    acquire_lock(out)
    acquire_lock(out)  # re-entrant within the process
    release_lock(out)
    assert holds_lock(out) and lock_path(out).exists()
    release_lock(out)
    assert not holds_lock(out) and not lock_path(out).exists()


def test_atomic_file_renames_on_success_and_keeps_old_on_failure(tmp_path):
    out = tmp_path / "a.txt"
    write_text(out, "old")
    with pytest.raises(RuntimeError), atomic_file(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert out.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]  # no temporary or lock file left
    write_text(out, "new")
    assert out.read_text() == "new" and oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_claim_removes_folders_it_made_when_the_stage_fails(tmp_path):
    target = tmp_path / "x" / "y" / "out.h5"
    with pytest.raises(ValueError), claim_outputs(target):
        assert target.parent.is_dir() and holds_lock(target)
        raise ValueError
    assert not (tmp_path / "x").exists()


def test_writes_output_decorator_checks_named_parameters(tmp_path):
    calls = []

    @writes_output("output", inputs=("features", lambda a: a.get("extra")))
    def stage(features, output, extra=None):
        calls.append(holds_lock(output))
        return output

    f = tmp_path / "f.h5"
    f.write_text("x")
    assert stage(f, tmp_path / "o.h5") == tmp_path / "o.h5" and calls == [True]
    with pytest.raises(UsageError, match="also an input"):
        stage(f, f)
    with pytest.raises(UsageError, match="also an input"):
        stage(f, tmp_path / "e.h5", extra=str(tmp_path / "e.h5"))
    assert calls == [True]  # the refused calls never started
