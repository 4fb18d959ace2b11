"""Write the command-line manual (docs/cli.md) from the commands themselves, so it cannot drift from ``--help``.

    python -m retrievalkit.cli.manual > docs/cli.md
"""

from __future__ import annotations

import sys

import typer

INTRO = """# `rkit` command-line manual

Generated from the commands (`python -m retrievalkit.cli.manual > docs/cli.md`); `tests/cli/test_vocabulary.py`
checks that it is current. The design reasons are in [DESIGN.md](DESIGN.md) (naming table at its end).

## One vocabulary
- **Inputs.** A stage whose input is one file (or several files of one kind) takes it by position:
  `rkit extract IMAGES`, `rkit whiten FEATURES`, `rkit index knn DATABASE`, `rkit evaluate RESULT`, ...
  Query and database sides are always named: `--queries` and `--database` (in `copy-detect` the database is
  DISC21's "references"; in `verify` they are locals files; in `index search-asmk` the database is the ASMK index).
- **Output.** `-o/--output` is always the file the stage writes; stdout prints its path.
- **How many.** `-k/--top-k` = results kept per query (what a ranks file or CSV holds); `--shortlist` = the top of
  each list that is re-ranked or verified.
- **Memory.** `--batch-size` = images per forward pass of the network; `--block-size` = rows per block of a
  search, graph or solver; `--shard I/N` = one part of a job, joined with `rkit merge`.
- **Everywhere the same.** `--device auto|cpu|cuda[:N]`, `--seed`, `--iters`, `--dim`, `--shrinkage`,
  `--whitening`, `--graph`, `--graph-k`, `--mutual/--no-mutual` (on by default), `--images`, `--gnd`, `--resume`.
  Root options go before the command: `rkit -q` (quiet), `rkit --threads N` (torch and COLMAP threads).
- **Defaults** come from the stage's settings in `retrievalkit/configs/` (the same values the Python functions
  use) and are shown below. An option that the chosen mode does not use is refused ("--X does not apply to
  ..."), and an old spelling fails with one line naming the new one (exit code 2).
"""


def _leaves(cmd, path):
    subs = getattr(cmd, "commands", None)
    if subs:
        for name, sub in subs.items():
            yield from _leaves(sub, [*path, name])
    else:
        yield " ".join(path), cmd


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def markdown() -> str:
    from retrievalkit.cli.app import app

    root = typer.main.get_command(app)
    out = [INTRO]
    for path, cmd in _leaves(root, []):
        doc = (cmd.help or "").strip()
        paras = [p.strip() for p in doc.split("\n\n") if p.strip()]
        summary = _cell(paras[0]) if paras else ""
        examples = [ln.strip()[len("Example:"):].strip() for ln in doc.splitlines()
                    if ln.strip().startswith("Example:")]
        args = [p for p in cmd.params if p.param_type_name == "argument"]
        usage = " ".join([f"rkit {path}", *[(p.metavar or p.name.upper()) for p in args], "[OPTIONS]"])
        out.append(f"## `rkit {path}`\n{summary}\n\n```\n{usage}\n" + "".join(f"{e}\n" for e in examples) + "```\n")
        rows = []
        for p in cmd.params:
            if p.param_type_name == "argument":
                rows.append((p.metavar or p.name.upper(), _cell(p.help or "")))
            elif not p.hidden:
                rows.append(("/".join([*p.opts, *p.secondary_opts]), _cell(p.help or "")))
        out.append("| option | meaning |\n|---|---|\n" + "".join(f"| `{a}` | {b} |\n" for a, b in rows))
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(markdown())
