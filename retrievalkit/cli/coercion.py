"""Option values converted without pydantic: the command line's start-up cost, not a new behaviour.

typer (0.2x) converts every option value through a pydantic ``TypeAdapter`` it builds for each parameter of the
command that runs, given or not; importing pydantic and building the adapters is about 0.1 CPU-s per run, more
than a faiss-only command's own overhead (docs/performance.md). rkit's options are plain ``str``, ``bool``, ``int``,
``float``, ``Path`` and lists of them, so :func:`install` gives typer's parameters a converter that handles those
values directly and hands everything else — another type, a value it is not sure of, every error — to typer's own
pydantic converter, so results and error messages stay typer's. ``tests/cli/test_coercion.py`` compares the two
on every option of every command; ``tests/cli/test_imports.py`` checks that a run loads no pydantic.

Uses typer internals (``typer.core._TyperParameter.get_runtime_param``, ``typer._coercion.RuntimeParam``); where
they are missing (another typer), :func:`install` does nothing and typer converts as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


class _Unsure(Exception):
    """The value is not one this module converts; typer's converter decides."""


def _str(value, info, param, ctx):
    if type(value) is str:
        return value
    raise _Unsure


def _bool(value, info, param, ctx):
    if type(value) is bool:
        return value
    raise _Unsure


def _int(value, info, param, ctx):
    if type(value) is int:
        return value
    if type(value) is str and _INT.fullmatch(value):
        return int(value)
    raise _Unsure


def _float(value, info, param, ctx):
    if type(value) is float:
        return value
    if type(value) is str and _FLOAT.fullmatch(value):
        return float(value)
    raise _Unsure


def _path(value, info, param, ctx):
    from typer._param_types import coerce_cli_path  # typer's own checks (exists, dir_okay, ...) and messages

    if type(value) is str and value:
        value = Path(value)
    elif not isinstance(value, Path):
        raise _Unsure
    return coerce_cli_path(value, info, path_type=Path, param=param, ctx=ctx)


def _leaf_converter(annotation, info):
    """The converter of one value of type ``annotation``, or None where typer's own is needed."""
    if any(getattr(info, a, None) is not None for a in ("parser", "click_type", "min", "max")) or \
            getattr(info, "clamp", False):
        return None
    if annotation is str:
        return _str
    if annotation is bool:
        return _bool
    if annotation is int:
        return _int
    if annotation is float:
        return _float
    plain_path = getattr(info, "path_type", None) in (None, Path) and not getattr(info, "allow_dash", False)
    if annotation is Path and plain_path:
        return _path
    return None


def direct_runtime_param(descriptor) -> Any:
    """A converter for the parameter ``descriptor`` describes (typer's ``TypeDescriptor``) that needs no pydantic,
    or None where its type needs typer's own. Defined by :func:`install`."""
    return None


def install() -> bool:
    """Route typer's parameters through the converters above; False (nothing changed) for an unknown typer."""
    global direct_runtime_param
    try:
        from typer import _coercion, core
        from typer._typing import get_args, get_origin
    except ImportError:
        return False
    param_cls = getattr(core, "_TyperParameter", None)
    base = getattr(_coercion, "RuntimeParam", None)
    build = getattr(_coercion, "build_runtime_param", None)
    if param_cls is None or base is None or build is None or not hasattr(param_cls, "get_runtime_param"):
        return False
    if getattr(param_cls.get_runtime_param, "_rkit", False):
        return True

    @dataclass(frozen=True)
    class DirectRuntimeParam(base):
        """One value, or a list of them, converted directly; typer's pydantic converter where unsure."""

        descriptor: Any = None
        leaf: Any = None
        is_list: bool = False

        def _coerce_value(self, value: Any, param, ctx) -> Any:
            try:
                if self.is_list:
                    items = value if isinstance(value, (list, tuple)) else [value]
                    return [self.leaf(v, self.parameter_info, param, ctx) for v in items]
                return self.leaf(value, self.parameter_info, param, ctx)
            except _Unsure:
                return build(self.descriptor)._coerce_value(value, param=param, ctx=ctx)

    def direct(descriptor) -> Any:
        annotation, info = descriptor.annotation, descriptor.parameter_info
        if descriptor.file_annotation is not None:
            return None
        is_list = get_origin(annotation) is list
        if is_list:
            args = get_args(annotation)
            if len(args) != 1:
                return None
            annotation = args[0]
        leaf = _leaf_converter(annotation, info)
        if leaf is None:
            return None
        return DirectRuntimeParam(parameter_info=info, annotation=descriptor.annotation, descriptor=descriptor,
                                  leaf=leaf, is_list=is_list)

    def get_runtime_param(self):
        if self._runtime_param is None:
            self._runtime_param = direct(self.type_descriptor) or build(self.type_descriptor)
        return self._runtime_param

    get_runtime_param._rkit = True
    param_cls.get_runtime_param = get_runtime_param
    direct_runtime_param = direct
    return True
