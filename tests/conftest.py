import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real photos (../shared/data); tests that need them skip cleanly when it is absent."""
    if not DATA.is_dir():
        pytest.skip(f"real photos not found at {DATA} (the shared data folder sits beside the repository)")
    return DATA


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    d = ROOT / "examples" / "demo"
    if not d.is_dir():
        pytest.skip(f"bundled demo photos missing at {d}")
    return d


def run_rkit(*args, check=True, cwd=None):
    """Run the real ``rkit`` command in a subprocess; return the CompletedProcess."""
    import subprocess

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-m", "retrievalkit", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"rkit {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc
