"""Run many ``rkit`` command lines in one Python process (the real entry point, ``retrievalkit.cli.app.main``).

Starting Python and torch costs seconds per command on a busy machine; the fault-injection cases that need no
process of their own (a refused option, a refused file) share one process through this driver. Each case
records its exit code, stdout, stderr (with the traceback text an uncaught exception would have printed) and a
snapshot of a watched folder (path -> sha256) taken before and after it, so a test can assert that a refused
command touched nothing.

Driver protocol: ``python rkit_batch.py`` reads ``{"cases": [[arg, ...], ...], "watch": DIR}`` as JSON on stdin
and prints a JSON list of ``{"code", "stdout", "stderr", "before", "after"}``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def tree_hashes(folder: str | os.PathLike) -> dict[str, str]:
    """Every file below ``folder`` (hidden ones too) -> sha256 of its bytes; folders as '<dir>'."""
    out: dict[str, str] = {}
    folder = Path(folder)
    for dirpath, dirnames, filenames in os.walk(folder):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), folder)] = "<dir>"
        for name in filenames:
            p = os.path.join(dirpath, name)
            try:
                out[os.path.relpath(p, folder)] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
            except OSError:
                out[os.path.relpath(p, folder)] = "<unreadable>"
    return out


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    before: dict
    after: dict


def run_batch(cases: list[list[str]], watch: str | os.PathLike, cwd: str | os.PathLike | None = None) -> list[Result]:
    """Run ``cases`` (argument lists of ``rkit``) one after the other in one fresh Python process."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    payload = json.dumps({"cases": [[str(a) for a in c] for c in cases], "watch": str(watch)})
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve())], input=payload, capture_output=True,
                          text=True, cwd=cwd, env=env)
    if proc.returncode != 0:
        raise AssertionError(f"batch driver failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return [Result(**r) for r in json.loads(proc.stdout)]


def _run_one(args: list[str]) -> tuple[int, str, str]:
    from retrievalkit.cli import app as app_module
    from retrievalkit.cli.common import state

    state.quiet = False
    out, err = io.StringIO(), io.StringIO()
    code = 0
    sys.argv = ["rkit", *args]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            app_module.main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:  # what Python would print for an uncaught exception, and its exit code
            err.write(traceback.format_exc())
            code = 1
    return code, out.getvalue(), err.getvalue()


def _main() -> None:
    req = json.loads(sys.stdin.read())
    results = []
    real_stdout = sys.stdout
    for args in req["cases"]:
        before = tree_hashes(req["watch"])
        code, out, err = _run_one(args)
        results.append({"code": code, "stdout": out, "stderr": err, "before": before,
                        "after": tree_hashes(req["watch"])})
    real_stdout.write(json.dumps(results))


if __name__ == "__main__":
    _main()
