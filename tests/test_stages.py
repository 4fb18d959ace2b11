"""One stage shape: every stage function reads ``stage(inputs..., output, config=None, *, progress=None) -> Path``,
is listed in ``retrievalkit.stages``, and called from Python writes what ``rkit`` writes."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from retrievalkit import stages
from retrievalkit.stages import STAGES, stage_config_class, stage_function

ROOT = Path(__file__).resolve().parents[1] / "retrievalkit"
P = inspect.Parameter


def _decorated_stages() -> set[str]:
    """``module:function`` of every function in the package decorated with ``@writes_output``."""
    found = set()
    for path in ROOT.rglob("*.py"):
        if path.parts[-2:] == ("io", "output.py"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and any(
                    isinstance(d, ast.Call) and getattr(d.func, "id", None) == "writes_output"
                    for d in node.decorator_list):
                found.add(f"{module}:{node.name}")
    return found


def test_every_writing_stage_is_in_the_table():
    assert _decorated_stages() == {s.function for s in STAGES.values()}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_signature_shape(name):
    fn = stage_function(name)
    assert hasattr(fn, "__wrapped__"), f"{name}: not decorated with @writes_output"
    params = list(inspect.signature(fn).parameters.values())
    names = [p.name for p in params]
    assert "output" in names and "config" in names, names
    out, cfg = names.index("output"), names.index("config")
    assert out >= 1 and cfg == out + 1, f"{name}: expected (inputs..., output, config, *, ...): {names}"
    for p in params[:out]:  # the inputs: positional and required
        assert p.kind is P.POSITIONAL_OR_KEYWORD and p.default is P.empty, (name, p)
    assert params[out].kind is P.POSITIONAL_OR_KEYWORD and params[out].default is P.empty
    config = params[cfg]
    assert config.kind is P.POSITIONAL_OR_KEYWORD and config.default is None, (name, config)
    assert stage_config_class(name).__name__ in str(config.annotation), (name, config.annotation)
    rest = params[cfg + 1:]
    assert all(p.kind is P.KEYWORD_ONLY for p in rest), f"{name}: after config only keyword-only: {rest}"
    assert all(p.default is not P.empty for p in rest), f"{name}: keyword-only arguments need defaults"
    progress = inspect.signature(fn).parameters.get("progress")
    assert progress is not None and progress.kind is P.KEYWORD_ONLY and progress.default is None, name
    assert "Callable[[int], None]" in str(progress.annotation) or str(progress.annotation) == "Progress", name
    assert inspect.signature(fn).return_annotation in (Path, "Path"), name
    assert dataclasses.is_dataclass(stage_config_class(name))
    stage_config_class(name)()  # the defaults are valid settings


def test_wrong_config_type_is_refused(tmp_path):
    from retrievalkit.configs.search import SearchConfig

    with pytest.raises(TypeError, match="KnnConfig"):
        stages.knn(tmp_path / "a.h5", tmp_path / "o.h5", SearchConfig())
    assert not (tmp_path / "o.h5").exists()


def test_importing_the_stage_table_imports_no_stage():
    code = ("import sys, retrievalkit.stages as s; assert len(s.STAGES) > 20; "
            "bad = [m for m in ('torch', 'cv2', 'faiss', 'retrievalkit.search.stages') if m in sys.modules]; "
            "assert not bad, bad; s.search; assert 'retrievalkit.search.stages' in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# ---- the library call writes what the command writes ------------------------------------------------------------

def _features(path: Path, n: int, seed: int) -> Path:
    from retrievalkit.io import Features, write_features

    x = np.random.default_rng(seed).standard_normal((n, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return write_features(path, Features([f"im{i:03d}.jpg" for i in range(n)], x, {"model": "synthetic"}))


#: root attributes that name the run rather than the result
_RUN_ATTRS = {"created", "command"}


def _contents(path: Path) -> dict:
    out = {}
    with h5py.File(path, "r") as f:
        for k, v in f.attrs.items():
            if k not in _RUN_ATTRS:
                out[f"@{k}"] = json.loads(v) if k == "config" else (v.tolist() if isinstance(v, np.ndarray) else v)
        f.visititems(lambda k, v: out.__setitem__(k, v[()].tolist()) if isinstance(v, h5py.Dataset) else None)
    return out


def _same_file(a: Path, b: Path) -> None:
    ca, cb = _contents(a), _contents(b)
    assert sorted(ca) == sorted(cb)
    for k in ca:
        assert ca[k] == cb[k], k


def test_library_and_cli_write_the_same_files(tmp_path, monkeypatch):
    from retrievalkit.cli.app import app
    from retrievalkit.configs.diffusion import DiffusionConfig
    from retrievalkit.configs.search import KnnConfig, SearchConfig
    from retrievalkit.configs.whiten import WhitenConfig

    monkeypatch.chdir(tmp_path)  # inputs named alike (relative paths) on both sides
    _features(Path("db.h5"), 60, 0)
    _features(Path("q.h5"), 7, 1)
    cli, lib = Path("cli"), Path("lib")
    cli.mkdir()
    lib.mkdir()
    runs = [
        (["index", "search", "--database", "db.h5", "--queries", "q.h5", "-k", "9", "-o", "cli/s.h5"],
         lambda: stages.search("db.h5", "q.h5", "lib/s.h5", SearchConfig(top_k=9)), "s.h5"),
        (["index", "knn", "db.h5", "-k", "6", "-o", "cli/k.h5"],
         lambda: stages.knn("db.h5", "lib/k.h5", KnnConfig(top_k=6)), "k.h5"),
        (["diffuse", "--database", "db.h5", "--queries", "q.h5", "--graph-k", "8", "-k", "20", "-o", "cli/d.h5"],
         lambda: stages.diffuse("db.h5", "q.h5", "lib/d.h5", DiffusionConfig(graph_k=8, top_k=20)), "d.h5"),
        (["whiten", "db.h5", "--dim", "8", "-o", "cli/w.h5"],
         lambda: stages.learn_whitening("db.h5", "lib/w.h5", WhitenConfig(dim=8)), "w.h5"),
    ]
    runner = CliRunner()
    for argv, call, name in runs:
        res = runner.invoke(app, ["-q", *argv])
        assert res.exit_code == 0, (argv, res.output)
        assert call() == Path("lib") / name
        _same_file(cli / name, lib / name)
    with h5py.File(cli / "s.h5", "r") as f:  # the comparison sees the results (9 kept per query)
        assert f["indices"].shape == (7, 9)


def test_readme_python_example_runs(tmp_path, demo_dir, monkeypatch):
    """The README's Python block, on the demo photos with a tiny network (fast) and outputs under tmp_path."""
    readme = (ROOT.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("```python\n", 1)[1].split("```", 1)[0]
    fast = "GlobalExtractConfig(model='tiny-cnn', size=64, workers=0)"
    assert block.count("GlobalExtractConfig()") == 1 and block.count('"out/') == 3
    code = block.replace("GlobalExtractConfig()", fast).replace('"out/', f'"{tmp_path}/out/')
    code = code.replace('"examples/demo', f'"{demo_dir}')
    printed = []
    monkeypatch.setattr("builtins.print", printed.append)
    exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "out" / "gem.h5").is_file()
    assert len(printed) == 1 and 0 <= printed[0] <= 100  # a Medium mAP, in percent


def test_design_table_lists_every_stage():
    design = (ROOT.parent / "docs" / "DESIGN.md").read_text(encoding="utf-8")
    for name, s in STAGES.items():
        row = f"| `{name}` | `{s.command}` | `{s.function.split(':')[0].removeprefix('retrievalkit.')}` | " \
              f"`{s.config.split(':')[1]}` |"
        assert row in design, f"docs/DESIGN.md lacks the row of {name}: {row}"
