"""`make -C examples hard-case`: the whole recommended recipe (GeM, deep locals + ASMK*, RootSIFT + ASMK*, fusion,
verification, evaluation) as one target on a dataset given by variables, here the bundled demo photos. It reuses
the demo's rules for the files they share (a second run does nothing)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from retrievalkit.io.ranks import read_ranks

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ROWS = ["GeM (global)", "ASMK* deep locals", "ASMK* RootSIFT", "fusion GeM + ASMK* deep + ASMK* RootSIFT",
        "fusion + SIFT verification"]

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")]


def _make(*args: str) -> subprocess.CompletedProcess:
    rkit = f"{sys.executable} -m retrievalkit"
    return subprocess.run(["make", "-s", "-j2", "-C", str(EXAMPLES), *args, f"RKIT={rkit}",
                           f"PYTHON={sys.executable}"], capture_output=True, text=True)


def test_hard_case_target_runs_the_recipe_on_given_data(tmp_path):
    if not (EXAMPLES / "demo" / "images").is_dir():
        pytest.skip("the demo photos (examples/demo/images) are absent")
    # the dataset given by variables, the way a user points the target at their own photos
    data, gnd, out = EXAMPLES / "demo", EXAMPLES / "demo" / "gnd-hard.json", tmp_path / "hard"
    proc = _make("hard-case", f"DATA={data}", f"GND={gnd}", f"OUT={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ") and "Medium mAP" not in line]
    assert [line.split(" | ")[0][2:] for line in table] == ROWS
    assert "rkit verify " in table[-1] and "rkit index fuse " in table[-2]
    queries = json.loads(gnd.read_text())["qimlist"]
    for name in ("gem", "asmk", "asmk-sift", "fused3", "hard"):
        metrics = json.loads((out / f"{name}.json").read_text())
        assert 0 <= metrics["map"]["medium"] <= 100
        assert len(read_ranks(out / f"{name}.h5").query_names) == len(queries)
    fused = read_ranks(out / "fused3.h5")
    assert fused.config["method"] == "fusion" and len(fused.config["inputs"]) == 3
    assert read_ranks(out / "hard.h5").config.get("verified")
    # make rebuilds nothing on a second run: the recipe's files are rules, shared with `make demo`
    again = _make("-n", "hard-case", f"DATA={data}", f"GND={gnd}", f"OUT={out}")
    assert again.returncode == 0
    assert not [line for line in again.stdout.splitlines() if "-m retrievalkit" in line]  # no rkit step reruns
