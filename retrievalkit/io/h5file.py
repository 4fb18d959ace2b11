"""Shared HDF5 plumbing: self-describing root attributes, schema checks and atomic writes.

Every file a stage writes carries ``kind``, ``schema``, ``rkit_version``, ``created``,
``command`` and ``config`` root attributes. Writes go through :mod:`retrievalkit.io.output`:
a locked target, a temporary file in the target folder renamed into place only when complete,
so a crash never leaves a half-written output under the final name.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from retrievalkit import __version__
from retrievalkit.errors import BadInputError, MissingInputError
from retrievalkit.io.output import atomic_file, partial_path  # noqa: F401  (partial_path: re-exported)

STR_DTYPE = h5py.string_dtype(encoding="utf-8")


def command_line() -> str:
    """The command line of this process, recorded in every output file."""
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else ""


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike, kind: str, schema: int, config: dict | None = None,
              inputs: dict[str, str] | None = None) -> Iterator[h5py.File]:
    """Open a temporary HDF5 file next to ``path``; rename it to ``path`` on success.

    The target is checked and locked through :mod:`retrievalkit.io.output` (the one write path). The root
    attributes are written before the body. On any exception the temporary file is removed and ``path`` is left
    untouched.
    """
    with atomic_file(path, (inputs or {}).values()) as tmp:
        with h5py.File(tmp, "w") as f:
            write_header(f, kind, schema, config, inputs)
            yield f


def write_header(f: h5py.File, kind: str, schema: int, config: dict | None = None,
                 inputs: dict[str, str] | None = None) -> None:
    f.attrs["kind"] = kind
    f.attrs["schema"] = int(schema)
    f.attrs["rkit_version"] = __version__
    f.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    f.attrs["command"] = command_line()
    f.attrs["config"] = json.dumps(config or {}, sort_keys=True, default=str)
    f.attrs["inputs"] = json.dumps(inputs or {}, sort_keys=True)


@contextlib.contextmanager
def open_checked(path: str | os.PathLike, kind: str, schema: int) -> Iterator[h5py.File]:
    """Open an rkit HDF5 file for reading after checking it exists and has the right kind/schema."""
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"{path}: file not found")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise BadInputError(f"{path}: not a readable HDF5 file ({e.__class__.__name__}); "
                            "was it written by rkit and completely?") from None
    with f:
        got_kind = _attr_str(f, "kind")
        if got_kind != kind:
            raise BadInputError(f"{path}: expected an rkit file of kind '{kind}', got "
                                f"'{got_kind or 'none'}'; pass the output of the right stage")
        got_schema = int(f.attrs.get("schema", -1))
        if got_schema != schema:
            raise BadInputError(f"{path}: {kind} schema {got_schema} is not supported (this rkit reads "
                                f"schema {schema}); re-create the file with this version of rkit")
        yield f


def _attr_str(f: h5py.File, key: str) -> str | None:
    v = f.attrs.get(key)
    if v is None:
        return None
    return v.decode() if isinstance(v, bytes) else str(v)


def read_config(f: h5py.File) -> dict[str, Any]:
    raw = _attr_str(f, "config")
    return json.loads(raw) if raw else {}


def write_names(f: h5py.File, key: str, names: list[str] | np.ndarray, resizable: bool = False) -> None:
    data = np.asarray(list(names), dtype=object)
    if resizable:
        f.create_dataset(key, data=data, dtype=STR_DTYPE, maxshape=(None,), chunks=True)
    else:
        f.create_dataset(key, data=data, dtype=STR_DTYPE)


def read_names(f: h5py.File, key: str, path: str | os.PathLike) -> list[str]:
    if key not in f:
        raise BadInputError(f"{path}: dataset '{key}' is missing; the file is incomplete or not an rkit file")
    return [s.decode() if isinstance(s, bytes) else str(s) for s in f[key][()]]


def require_dataset(f: h5py.File, key: str, path: str | os.PathLike) -> h5py.Dataset:
    if key not in f:
        raise BadInputError(f"{path}: dataset '{key}' is missing; the file is incomplete or not an rkit file")
    return f[key]


def check_finite(x: np.ndarray, path: str | os.PathLike, what: str) -> None:
    if x.size and not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).any(axis=tuple(range(1, x.ndim))).sum()) if x.ndim > 1 else -1
        raise BadInputError(f"{path}: {what} contain NaN or Inf values ({bad} rows); "
                            "re-extract them (a diverged model or a corrupt file?)")


def check_same_names(a: list[str], b: list[str], path_a, path_b, what: str = "names") -> None:
    """Raise if two files do not describe the same images in the same order."""
    if len(a) != len(b) or a != b:
        first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        raise BadInputError(f"{path_b}: {what} do not match {path_a} ({len(b)} vs {len(a)} entries, "
                            f"first difference at row {first}); build both from the same features file")
