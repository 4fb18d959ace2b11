"""One vocabulary: every subcommand's options against the naming table of docs/DESIGN.md, old spellings refused
with one line naming the new one, options that do not apply refused, ranges checked alike by library and CLI."""

from __future__ import annotations

import functools
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import typer

from retrievalkit.cli import app as app_module
from retrievalkit.cli.app import app
from retrievalkit.errors import UsageError
from retrievalkit.io import Features, write_features

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT / "docs" / "DESIGN.md"


def _commands():
    """(command path, click command) of every leaf subcommand."""
    def walk(c, path):
        subs = getattr(c, "commands", None)
        if subs:
            for name, sub in subs.items():
                yield from walk(sub, [*path, name])
        else:
            yield " ".join(path), c

    return list(walk(typer.main.get_command(app), []))


def _naming_table() -> list[dict]:
    text = DESIGN.read_text(encoding="utf-8")
    section = text[text.index("## Naming table"):]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("idea", "---") or set(cells[0]) <= {"-"}:
            continue
        rows.append({"idea": cells[0], "spellings": re.findall(r"`([^`]+)`", cells[1]),
                     "commands": cells[2], "replaces": re.findall(r"`([^`]+)`", cells[3])})
    return rows


def _option_spelling(param) -> str:
    return "/".join([*param.opts, *param.secondary_opts])


def _table_allows(rows, command: str, spelling: str) -> bool:
    for row in rows:
        cmds = set(re.findall(r"`([^`]+)`", row["commands"]))
        if spelling in row["spellings"] and (command in cmds or row["commands"] == "every subcommand"):
            return True
    return False


def test_naming_table_parses_and_covers_the_known_ideas():
    rows = _naming_table()
    ideas = {r["idea"] for r in rows}
    assert len(rows) > 30
    for idea in ("the output file", "results kept per query (what a ranks file holds)", "shortlist re-ranked or "
                 "verified", "images per forward pass of the network", "rows per block of a blocked computation"):
        assert idea in ideas


def test_every_option_of_every_subcommand_is_in_the_naming_table():
    rows = _naming_table()
    missing = []
    commands = _commands()
    assert len(commands) >= 18
    for path, cmd in commands:
        for param in cmd.params:
            if param.param_type_name != "option" or param.hidden:
                continue
            spelling = _option_spelling(param)
            if not _table_allows(rows, path, spelling):
                missing.append(f"{path} {spelling}")
    assert not missing, "options not in the naming table of docs/DESIGN.md: " + ", ".join(missing)


def test_no_short_q_below_the_root():
    for path, cmd in _commands():
        for param in cmd.params:
            assert "-q" not in getattr(param, "opts", []), f"{path}: -q is the root's --quiet only"


def _old_spellings():
    """(command path, old spelling) from the table's last column, where the old spelling is no longer an option."""
    known = dict(_commands())
    out = []
    for row in _naming_table():
        for entry in row["replaces"]:
            parts = entry.split()
            if len(parts) < 2 or not parts[-1].startswith("-"):
                continue
            path, old = " ".join(parts[:-1]), parts[-1]
            if path not in known:
                continue
            current = {o for p in known[path].params for o in [*getattr(p, "opts", []),
                                                                *getattr(p, "secondary_opts", [])]}
            if old not in current:
                out.append((path, old))
    return out


@functools.lru_cache(maxsize=1)
def _click_app():
    return typer.main.get_command(app)


def _main(argv: list[str], capsys) -> tuple[int, str]:
    """The real `rkit` entry point (``main``: one-line errors, exit codes) in this process: (exit code, stderr).

    The click command is built once and reused (typer rebuilds it on every call, about a second here)."""
    old_argv, old_app = sys.argv, app_module.app
    sys.argv = ["rkit", *argv]
    app_module.app = _click_app()
    try:
        with pytest.raises(SystemExit) as e:
            app_module.main()
    finally:
        sys.argv, app_module.app = old_argv, old_app
    return e.value.code, capsys.readouterr().err


def test_table_lists_the_renamed_readme_spellings():
    olds = {f"{p} {o}" for p, o in _old_spellings()}
    for expected in ("diffuse --topk", "index search-asmk -q", "verify --queries-locals", "verify --top-k",
                     "copy-detect --references", "copy-detect --pca-dim", "index asmk --niter", "train run --chunk",
                     "train import-cirtorch --image-root", "sfm-mine --threads", "sfm-mine --max-image-size"):
        assert expected in olds


@pytest.mark.parametrize("path,old", _old_spellings())
def test_old_spelling_fails_with_one_line_naming_the_new(path, old, capsys):
    code, err = _main([*path.split(), old, "1"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("error:") and old in lines[0]
    new = next(r for r in _naming_table() for e in r["replaces"] if e == f"{path} {old}")
    # the line names one of the row's spellings (or, for --threads, the root option)
    assert any(s.split("/")[-1] in lines[0] for s in new["spellings"]) or "rkit --threads" in lines[0], lines[0]


@pytest.fixture()
def files(tmp_path):
    x = np.random.default_rng(0).standard_normal((6, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    f = write_features(tmp_path / "f.h5", Features([f"{i}.jpg" for i in range(6)], x))
    (tmp_path / "dir").mkdir()
    return tmp_path, f


def _refusals(t: Path, f: Path, demo: Path):
    d = t / "dir"
    return [
        (["extract", demo, "-o", t / "o.h5", "--local", "--resume"], "--resume does not apply"),
        (["extract", demo, "-o", t / "o.h5", "--local", "--regions"], "--regions does not apply"),
        (["extract", demo, "-o", t / "o.h5", "--local", "--batch-size", "2"], "--batch-size does not apply"),
        (["extract", demo, "-o", t / "o.h5", "--local", "--pooling", "gem"], "--pooling does not apply"),
        (["extract", demo, "-o", t / "o.h5", "--local", "--p", "3"], "--p does not apply"),
        (["extract", demo, "-o", t / "o.h5", "--local", "--whitening", f], "--whitening does not apply"),
        (["extract", demo, "-o", t / "o.h5", "--local", "--local-method", "sift", "--dim", "64"], "--dim does not"),
        (["extract", demo, "-o", t / "o.h5", "--dim", "64"], "--dim does not apply"),
        (["extract", demo, "-o", t / "o.h5", "--split", "queries"], "--split does not apply"),
        (["extract", demo, "-o", t / "o.h5", "--whitening", t / "nonexistent.h5"], "does not exist"),
        (["diffuse", "--database", f, "--queries", f, "-o", t / "r.h5", "--trunc-n", "5"], "--trunc-n does not"),
        (["diffuse", "--database", f, "--queries", f, "-o", t / "r.h5", "--method", "none", "--graph-k", "5"],
         "--graph-k does not apply"),
        (["diffuse", "--database", f, "--queries", f, "-o", t / "r.h5", "--qe-n", "3"], "--qe-n does not apply"),
        (["diffuse", "--database", f, "--queries", f, "-o", t / "r.h5", "--dba-k", "3"], "--dba-k does not apply"),
        (["diffuse", "--database", f, "--queries", f, "-o", t / "r.h5", "--method", "spectral", "--iters", "3"],
         "--iters does not apply"),
        (["whiten", f, "-o", t / "w.h5", "--tuples", f], "--tuples does not apply"),
        (["whiten", f, "-o", t / "w.h5", "--method", "learned", "--tuples", f, "--power", "0.3"], "--power does"),
        (["index", "asmk", f, "-o", t / "a.h5", "--codebook", f, "--iters", "3"], "--iters does not apply"),
        (["copy-detect", "--queries", d, "--database", d, "-o", t / "m.csv", "--database-features", t / "x.h5"],
         "--database-features does not apply"),
        (["copy-detect", "--database", d, "--shard", "1/2", "-o", t / "x.h5"], "--database-features"),
        (["copy-detect", "--database", d, "--shard", "1/2", "--database-features", t / "x.h5", "--queries", d],
         "--queries does not apply"),
        (["copy-detect", "--queries", d, "--database", d, "-o", t / "m.csv", "--no-verify", "--shortlist", "5"],
         "--shortlist does not apply"),
        (["copy-detect", "--queries", d, "--database", d, "-o", t / "m.csv", "--dim", "64"], "give --training"),
        (["train", f, "-o", t / "m.pt", "--ks", "1,2"], "--ks does not apply"),
        (["train", f, "-o", t / "m.pt", "--loss", "recall-k", "--margin", "0.5"], "--margin does not apply"),
        (["train", f, "-o", t / "m.pt", "--batch-size", "64"], "--tuples-per-step"),
        (["manifold-mine", f, "--graph", f, "-o", t / "t.h5", "--method", "manifold", "--seed", "3"],
         "--seed does not apply"),
        (["sfm-mine", d, "-o", t / "t.h5", "--overlap", "3"], "--overlap does not apply"),
    ]


def test_options_that_do_not_apply_are_refused(files, demo_dir, capsys):
    t, f = files
    for argv, msg in _refusals(t, f, demo_dir / "images"):
        code, err = _main(["-q", *map(str, argv)], capsys)
        assert code == 2 and msg in err and len(err.strip().splitlines()) == 1, (argv, err)
    assert not (t / "o.h5").exists() and not (t / "r.h5").exists()


def test_ranges_are_checked_alike_by_library_and_cli(files, demo_dir, capsys):
    t, f = files
    from retrievalkit.configs.extract import GlobalExtractConfig
    from retrievalkit.configs.search import SearchConfig
    from retrievalkit.extract.global_desc import extract_global
    from retrievalkit.search.stages import search

    code, err = _main(["-q", "extract", str(demo_dir / "images"), "-o", str(t / "o.h5"), "--p", "0"], capsys)
    assert code == 2 and "--p 0.0: must be > 0" in err
    with pytest.raises(UsageError, match=r"--p 0: must be > 0"):
        extract_global(demo_dir / "images", t / "o.h5", GlobalExtractConfig(p=0))
    code, err = _main(["-q", "index", "search", "--database", str(f), "--queries", str(f), "-o", str(t / "r.h5"),
                       "-k", "0"], capsys)
    assert code == 2 and "--top-k 0: must be at least 1" in err
    with pytest.raises(UsageError, match=r"--top-k 0: must be at least 1"):
        search(f, f, t / "r.h5", SearchConfig(top_k=0))
    code, err = _main(["-q", "diffuse", "--database", str(f), "--queries", str(f), "-o", str(t / "r.h5"),
                       "--alpha", "1"], capsys)
    assert code == 2 and "--alpha 1.0: must lie in (0, 1)" in err
    assert not (t / "o.h5").exists() and not (t / "r.h5").exists()


def test_positional_and_named_inputs_of_index_search_agree(files, capsys):
    t, f = files
    a, b = t / "a.h5", t / "b.h5"
    assert _main(["-q", "index", "search", str(f), str(f), "-o", str(a), "-k", "3"], capsys)[0] == 0
    assert _main(["-q", "index", "search", "--database", str(f), "--queries", str(f), "-o", str(b), "-k", "3"],
                 capsys)[0] == 0
    from retrievalkit.io.ranks import read_ranks

    np.testing.assert_array_equal(read_ranks(a).indices, read_ranks(b).indices)
    code, err = _main(["-q", "index", "search", str(f), "--database", str(f), "--queries", str(f), "-o", str(a)],
                      capsys)
    assert code == 2 and "not both" in err
