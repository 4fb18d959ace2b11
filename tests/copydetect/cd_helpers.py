"""Helpers shared by the copy-detection tests: the data folder and an in-process `rkit` runner."""

from __future__ import annotations

import subprocess
from pathlib import Path

from typer.testing import CliRunner

from retrievalkit.cli.app import app

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CD = DATA / "copydetect-dev"


def rkit(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    """Run the real CLI (typer's runner, in this process: no interpreter start-up per call)."""
    argv = ["-q", *map(str, args)]
    res = CliRunner().invoke(app, argv)
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    p = subprocess.CompletedProcess(["rkit", *argv], res.exit_code, res.stdout, res.stderr)
    if check and p.returncode != 0:
        raise AssertionError(f"rkit {' '.join(map(str, args))} failed ({p.returncode}): {p.stderr}")
    return p


