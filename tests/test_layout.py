"""The package layout holds: every module imports, io/ needs no algorithm, and no import cycles.

The import graph is read from the source (ast), module-level and function-level imports alike, so a cycle
hidden behind a lazy import inside a function is still seen where it matters (see the rules below).
"""

from __future__ import annotations

import ast
import importlib
from collections import defaultdict
from pathlib import Path

import pytest

import retrievalkit

ROOT = Path(retrievalkit.__file__).resolve().parent
MODULES = sorted(".".join(p.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
                 for p in ROOT.rglob("*.py"))
#: packages every other may use; they themselves use nothing of the library but each other
FOUNDATION = {"", "errors", "neighbours", "devices"}
#: what the file layer may import: nothing of the algorithms that use it
IO_ALLOWED = FOUNDATION | {"io"}


def _package(module: str) -> str:
    """``retrievalkit.search.asmk.ivf`` → ``search``; ``retrievalkit.errors`` → ``errors``; the root → ``''``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(module: str) -> list[tuple[str, bool]]:
    """(imported retrievalkit module, at module level?) for every import statement of ``module``."""
    path = ROOT.parent / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT.parent / module.replace(".", "/") / "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("retrievalkit"):
            out.append((node.module, id(node) in top))
        elif isinstance(node, ast.Import):
            out += [(a.name, id(node) in top) for a in node.names if a.name.startswith("retrievalkit")]
    return out


def _graph(top_level_only: bool) -> dict[str, set[str]]:
    g: dict[str, set[str]] = defaultdict(set)
    for m in MODULES:
        for target, at_top in _imports(m):
            if at_top or not top_level_only:
                if _package(target) != _package(m):
                    g[_package(m)].add(_package(target))
    return g


def _cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in sorted(g.get(n, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (c := visit(d)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(g):
        if n not in state and (c := visit(n)):
            return c
    return None


@pytest.mark.parametrize("module", [m for m in MODULES if m != "retrievalkit.__main__"])  # __main__ runs rkit
def test_every_module_imports(module):
    importlib.import_module(module)


def test_io_imports_no_algorithm_package():
    for m in MODULES:
        if _package(m) == "io":
            bad = sorted({t for t, _ in _imports(m) if _package(t) not in IO_ALLOWED})
            assert not bad, f"{m} imports {bad}: the file layer must not depend on the algorithms"


def test_foundation_modules_depend_on_nothing_above_them():
    for m in MODULES:
        if _package(m) in FOUNDATION:
            bad = sorted({t for t, _ in _imports(m) if _package(t) not in FOUNDATION})
            assert not bad, f"{m} imports {bad}"


def test_no_package_cycle_at_module_level():
    """Module-level imports between packages form no cycle (io ↔ search was one)."""
    assert _cycle(_graph(top_level_only=True)) is None, _cycle(_graph(top_level_only=True))


def test_the_cycle_finder_finds_cycles():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
