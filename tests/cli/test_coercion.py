"""Option values converted without pydantic (retrievalkit/cli/coercion.py) come out as typer's own converter makes
them: the same value and type, or the same error, for every parameter of every command."""

from __future__ import annotations

import pytest
import typer

from retrievalkit.cli import coercion
from retrievalkit.cli.app import app

# typer's runtime converter (0.2x, pinned in constraints.txt); an older typer converts through click, no pydantic
_coercion = pytest.importorskip("typer._coercion", reason="this typer has no pydantic converter to replace")
Context = pytest.importorskip("typer._click").Context


def _params():
    """(command path, parameter) of every typer parameter of every command, the root's included."""
    out = []

    def walk(cmd, path):
        out.extend((path or "rkit", p) for p in cmd.params if hasattr(p, "type_descriptor"))
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_command(app), "")
    return out


def _outcome(runtime, value, param, ctx):
    """What converting ``value`` gives: ('value', value, type) or ('error', exception type, message)."""
    try:
        got = runtime.coerce(value, param=param, ctx=ctx)
    except Exception as e:  # noqa: BLE001  (any exception is an outcome to compare)
        msg = e.format_message() if hasattr(e, "format_message") else str(e)
        return ("error", type(e).__name__, msg)
    return ("value", repr(got), type(got), [type(v) for v in got] if isinstance(got, (list, tuple)) else None)


def _samples(annotation, tmp_path):
    text = ["5", "+5", "-3", "007", "0", "12345678901234567890", "abc", "5.0", " 5", "1_000", "", "٣", "0.5",
            ".5", "5.", "1e3", "-2.5E-3", "inf", "nan", "1e", "x y"]
    files = [str(tmp_path / "a.h5"), str(tmp_path / "missing.h5"), str(tmp_path), "-", "relative/name.h5"]
    return [*text, *files, 5, 2.5, True, False]


def test_install_took_effect():
    assert coercion.install() is True  # already installed by importing the app: nothing changes
    assert getattr(typer.core._TyperParameter.get_runtime_param, "_rkit", False)


def test_direct_conversion_equals_typers_for_every_parameter(tmp_path, monkeypatch):
    (tmp_path / "a.h5").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    params = _params()
    assert len(params) > 200
    direct_seen = 0
    checked: dict[tuple, tuple] = {}
    for path, param in params:
        desc = param.type_descriptor
        ours = coercion.direct_runtime_param(desc)
        if ours is None:
            continue
        direct_seen += 1
        info = desc.parameter_info
        key = (str(desc.annotation), info.exists, info.file_okay, info.dir_okay, info.readable, info.writable,
               info.resolve_path, param.multiple, param.nargs)
        if key in checked:  # parameters alike convert alike: one of each kind is enough
            continue
        theirs = _coercion.build_runtime_param(desc)
        ctx = Context(typer.main.get_command(app))
        multi = param.multiple or param.nargs == -1
        values = _samples(desc.annotation, tmp_path)
        values = [*values, *[(v,) for v in values[:8]], ("a", "b")] if multi else values
        for v in values:
            a, b = _outcome(ours, v, param, ctx), _outcome(theirs, v, param, ctx)
            assert a == b, f"{path} {param.name} ({desc.annotation}) {v!r}: rkit {a} vs typer {b}"
        checked[key] = (path, param.name)
    assert direct_seen > 200  # nearly every parameter skips pydantic ...
    kinds = {k[0] for k in checked}
    for t in ("<class 'int'>", "<class 'float'>", "<class 'str'>", "<class 'pathlib.Path'>", "<class 'bool'>",
              "list[pathlib.Path]"):
        assert t in kinds, f"no parameter of type {t} was compared"  # ... and every kind of it was compared


@pytest.mark.parametrize("args,message", [
    (["index", "search", "--database", "nope.h5", "--queries", "nope.h5", "-o", "r.h5"], "does not exist"),
    (["index", "search", "-k", "abc", "--queries", "q.h5", "-o", "r.h5"], "valid integer"),
])
def test_bad_values_keep_typers_messages(args, message):
    from typer.testing import CliRunner

    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2
    assert message in res.output
