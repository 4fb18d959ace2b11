"""The documented commands use the current vocabulary: every `rkit` command of README.md and docs/*.md is parsed
by the real command (an old or unknown option fails), the manual docs/cli.md is current, and the README's
walkthrough blocks run on the bundled demo photos.

Run on the demo photos (with `--model tiny-cnn --size 64 --workers 0` added to `extract` to stay fast): the README's
first block (extract → index search → evaluate), its `rkit index` block, the `rkit whiten` block and the first two
`rkit diffuse` lines. The other blocks need data that is not bundled (revisitop, DISC21, pycolmap scenes, trained
checkpoints, GPUs) or minutes of CPU; they are parsed, not run.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
from pathlib import Path

import pytest
import typer

from retrievalkit.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DEFAULT_SUB = {"whiten": "learn", "train": "run"}


def _commands_in(text: str, inline: bool = True) -> list[str]:
    """`rkit ...` commands of fenced blocks and inline code, one per command of a `&&` chain."""
    found = []
    in_block = False
    for line in text.replace("\\\n", " ").splitlines():
        if line.strip().startswith("```"):
            in_block = not in_block
            continue
        pieces = [line] if in_block else re.findall(r"`([^`]*)`", line) if inline else []
        for piece in pieces:
            piece = piece.split(" #")[0]
            for part in re.split(r"&&|\|(?!\|)", piece):
                part = part.strip()
                if part.startswith("rkit ") and part != "rkit ...":
                    found.append(part)
    return found


def _parse(command: str):
    """Parse one command line with the real commands (no execution); raise on an unknown or renamed option."""
    tokens = shlex.split(re.sub(r"\[([^\]]*)\]", r"\1", command).replace("<(", "(").replace("[:N]", ""))[1:]
    while tokens and tokens[0] in ("-q", "--quiet", "--threads", "--max-pixels", "--allow-root"):
        tokens = tokens[1:] if tokens[0] in ("-q", "--quiet") else tokens[2:]
    cmd = _root()
    path = []
    while hasattr(cmd, "commands"):
        if not tokens:  # a group named in prose (`rkit index`)
            return " ".join(path)
        if not path and tokens[0] in ("-h", "--help", "--version"):  # the root's own help or version
            return ""
        name = tokens[0] if tokens[0] in cmd.commands else DEFAULT_SUB[path[-1]]
        if tokens[0] == name:
            tokens = tokens[1:]
        path.append(name)
        cmd = cmd.commands[name]
    cmd.make_context(" ".join(path), list(tokens), resilient_parsing=True)  # renamed spellings raise here
    known = {o for p in cmd.params for o in [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]}
    for t in tokens:
        if t == "--":
            break
        if re.fullmatch(r"--[a-z0-9-]+(=.*)?|-[a-zA-Z]", t) and t.split("=")[0] not in known | {"-h", "--help"}:
            raise ValueError(f"No such option: {t} in rkit {' '.join(path)}")
    return " ".join(path)


@functools.lru_cache(maxsize=1)
def _root():
    return typer.main.get_command(app)


def _documented():
    out = []
    for doc in DOCS:
        for c in _commands_in(doc.read_text(encoding="utf-8")):
            if "..." not in c and "…" not in c and "$(" not in c:
                out.append((doc.name, c))
    return out


def test_docs_hold_many_commands():
    docs = {d for d, _ in _documented()}
    assert {"README.md", "cli.md", "local.md", "copy-detect.md", "diffuse.md"} <= docs
    assert len(_documented()) > 80


@pytest.mark.parametrize("doc,command", _documented())
def test_documented_command_parses(doc, command):
    try:
        _parse(command)
    except Exception as e:  # the parser's UsageError (unknown/renamed option) or a wrong command name
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        pytest.fail(f"{doc}: {command!r}: {type(e).__name__}: {message}")


def test_old_spelling_in_a_doc_would_be_caught():
    with pytest.raises(Exception, match="renamed"):
        _parse("rkit diffuse --database db.h5 --queries q.h5 -o r.h5 --topk 10")
    with pytest.raises(Exception, match="No such option"):
        _parse("rkit index search --database db.h5 --queries q.h5 -o r.h5 --no-such-thing 1")


def test_cli_manual_is_current():
    from retrievalkit.cli.manual import markdown

    assert (ROOT / "docs" / "cli.md").read_text(encoding="utf-8") == markdown(), \
        "docs/cli.md is stale: python -m retrievalkit.cli.manual > docs/cli.md"


FAST = ["--model", "tiny-cnn", "--size", "64", "--workers", "0"]


def _readme_block(heading: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    i = text.index(heading)
    block = text[text.index("```", i) + 3:]
    return _commands_in("```" + block[:block.index("```")] + "```")


def test_readme_blocks_run_on_the_demo_photos(tmp_path, demo_dir, monkeypatch):
    from typer.testing import CliRunner

    runner = CliRunner()
    monkeypatch.chdir(tmp_path)

    def run_rkit(*argv, cwd=None):  # the real commands, in this process (no interpreter start-up per call)
        res = runner.invoke(app, list(map(str, argv)))
        assert res.exit_code == 0, (argv, res.output)
        return res

    (tmp_path / "photos").symlink_to(demo_dir / "images")
    (tmp_path / "images").symlink_to(demo_dir / "images")
    (tmp_path / "gnd.json").symlink_to(demo_dir / "gnd.json")

    def run(command: str):
        argv = shlex.split(command)[1:]
        if argv[0] == "extract":
            argv += FAST
        return run_rkit("-q", "--threads", "1", *argv, cwd=tmp_path)

    run_rkit("-q", "--threads", "1", "extract", "images", "--gnd", "gnd.json", "--split", "database", "-o", "db.h5",
             *FAST, cwd=tmp_path)
    run_rkit("-q", "--threads", "1", "extract", "images", "--gnd", "gnd.json", "--split", "queries", "-o", "q.h5",
             *FAST, cwd=tmp_path)
    intro = _commands_in((ROOT / "README.md").read_text(encoding="utf-8").split("## `rkit extract`")[0], inline=False)
    assert [c.split()[1] for c in intro] == ["extract", "index", "evaluate"]
    run(intro[0])
    assert (tmp_path / "feats.h5").exists()
    run(intro[1])
    metrics = json.loads(run(intro[2]).stdout.strip().splitlines()[-1])
    assert set(metrics["map"]) == {"easy", "medium", "hard"}
    for command in _readme_block("## `rkit index`"):
        if "--index" in command or "index build" in command:
            continue  # compressed faiss indexes need more vectors than the demo has (test_index_build.py runs them)
        run(command)
    assert (tmp_path / "knn.h5").exists()
    whiten = _readme_block("## `rkit whiten`")
    for command in whiten:
        if "--tuples" not in command:  # learned whitening needs mined tuples (sfm-mine)
            run(command.replace("--dim 512", "--dim 8"))
    assert (tmp_path / "feats.w.h5").exists()
    diffuse = _readme_block("## `rkit diffuse`")[:2]
    for command in diffuse:
        run(command.replace("--trunc-n 1000", "--trunc-n 20"))
    assert (tmp_path / "ranks.h5").exists()
