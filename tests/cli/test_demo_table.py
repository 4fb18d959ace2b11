"""`make demo`'s table is the one README.md shows: run the demo's Make rules (the same rkit commands, on the
bundled photos) into a temporary folder and compare each row — label, Medium mAP, command — with the README's.
The pipeline is deterministic on CPU (fixed k-means seed, fixed PCA sample), so the numbers must agree exactly."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
START, END = "<!-- demo-table:start -->", "<!-- demo-table:end -->"
ROW = re.compile(r"^\| (?P<label>[^|]+?) \| (?P<map>[0-9.]+) \| `(?P<cmd>[^`]+)` \|$")


def parse_table(text: str) -> list[tuple[str, float, str]]:
    rows = [ROW.match(line.strip()) for line in text.splitlines()]
    return [(m["label"], float(m["map"]), m["cmd"]) for m in rows if m]


def readme_table() -> list[tuple[str, float, str]]:
    text = (ROOT / "README.md").read_text()
    assert START in text and END in text, "README.md lost its demo table markers"
    return parse_table(text.split(START, 1)[1].split(END, 1)[0])


def test_parse_table_reads_rows_only():
    rows = parse_table("| method | Medium mAP | command |\n|---|---:|---|\n| GeM (global) | 75.51 | `rkit x -o y` |\n")
    assert rows == [("GeM (global)", 75.51, "rkit x -o y")]


def test_gnd_hard_matches_its_source(demo_dir):
    """gnd-hard.json is what make_gnd_hard.py writes from the judgements listed there; every name exists."""
    sys.path.insert(0, str(demo_dir))
    try:
        import make_gnd_hard
    finally:
        sys.path.remove(str(demo_dir))
    built = make_gnd_hard.build()
    assert json.loads((demo_dir / "gnd-hard.json").read_text()) == built
    assert not set(built["qimlist"]) & set(built["imlist"]), "query photos must not be in the database"
    for name in built["imlist"] + built["qimlist"]:
        assert (demo_dir / f"{name}.jpg").is_file(), name
    assert any(n.startswith("distractors/") for n in built["imlist"])
    assert all(g["easy"] or g["hard"] for g in built["gnd"])


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_make_demo_table_equals_readme(tmp_path, demo_dir):
    expected = readme_table()
    assert len(expected) >= 5, "README demo table has fewer rows than the demo's methods"
    out = tmp_path / "out"
    rkit = f"{sys.executable} -m retrievalkit"
    proc = subprocess.run(["make", "-s", "-C", str(EXAMPLES), "table", f"OUT={out}", f"RKIT={rkit}",
                           f"PYTHON={sys.executable}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = parse_table(proc.stdout)
    # commands are printed with the output folder of this run; the README shows the default (out/)
    got = [(label, value, cmd.replace(str(out), "out")) for label, value, cmd in got]
    assert [r[0] for r in got] == [r[0] for r in expected]
    for (label, value, cmd), (_, want, want_cmd) in zip(got, expected):
        assert value == pytest.approx(want, abs=0.005), f"{label}: make demo gives {value}, README says {want}"
        assert cmd == want_cmd, f"{label}: the README shows another command"
