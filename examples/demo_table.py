"""Print the demo's table: one row per method, its Medium mAP (from `rkit evaluate` JSON) and the command.

    python demo_table.py [--gnd GND] 'label|metrics.json|rkit command ...' ...

The output is a Markdown table, the same one README.md shows (tests/cli/test_demo_table.py keeps them equal).
Standard library only, so any Python 3 runs it.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def rows(specs: list[str]) -> list[tuple[str, float, str]]:
    out = []
    for spec in specs:
        label, metrics, command = spec.split("|", 2)
        m = json.loads(Path(metrics).read_text())
        out.append((label, float(m["map"]["medium"]), " ".join(command.split())))
    return out


def table(specs: list[str]) -> str:
    lines = ["| method | Medium mAP | command |", "|---|---:|---|"]
    lines += [f"| {label} | {value:.2f} | `{command}` |" for label, value, command in rows(specs)]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    gnd = None
    if argv[:1] == ["--gnd"]:
        gnd, argv = argv[1], argv[2:]
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    if gnd:
        g = json.loads(Path(gnd).read_text())
        print(f"{len(g['qimlist'])} queries, {len(g['imlist'])} database images ({gnd}); "
              "revisitop Medium mAP in percent (easy + hard positives, junk ignored)\n")
    print(table(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
