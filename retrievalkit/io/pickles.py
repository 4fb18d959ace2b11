"""Reading user pickles (revisitop ground truth, cirtorch training data) without running their code.

A pickle names the callables that rebuild its objects; :class:`RestrictedUnpickler` resolves only a fixed list
of harmless ones — plain containers and what numpy needs to rebuild arrays, dtypes and scalars (under the
numpy 1 and numpy 2 module names, protocols 0–5, Python 2 and 3 files) — and refuses every other name, so a
crafted file cannot import ``os.system`` or anything else. Containers (dict, list, tuple, str, numbers) need
no names at all.
"""

from __future__ import annotations

import codecs
import collections
import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from retrievalkit.errors import BadInputError, MissingInputError


def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    # Python 3 writes bytes into protocol 0-2 pickles as _codecs.encode(text, 'latin1'); allow that and nothing
    # else (a codec name could reach compression or other codecs).
    if codecs.lookup(encoding).name != "iso8859-1" or errors != "strict":
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _bytes_from(kind: type):
    # Python 3 writes an empty bytes object into protocol 2 pickles as __builtin__.bytes() (numpy does so for
    # empty arrays). Allow building bytes from nothing, bytes or a list of ints, never from a size (a huge
    # allocation) or text with a codec.
    def build(*args):
        if len(args) > 1 or (args and not isinstance(args[0], (bytes, bytearray, list))):
            raise pickle.UnpicklingError(f"refusing {kind.__name__}{tuple(type(a).__name__ for a in args)}")
        return kind(*args)

    return build


def _numpy_names() -> dict[tuple[str, str], Any]:
    core = getattr(np, "_core", None) or np.core
    ma, numeric = core.multiarray, core.numeric
    names: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for mod in ("numpy.core", "numpy._core"):
        names[(f"{mod}.multiarray", "_reconstruct")] = ma._reconstruct
        names[(f"{mod}.multiarray", "scalar")] = ma.scalar
        names[(f"{mod}.numeric", "_frombuffer")] = numeric._frombuffer
    # numpy 2 pickles dtypes of scalars as numpy.dtypes.Float64DType etc.
    for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
              np.float16, np.float32, np.float64, np.complex64, np.complex128, np.str_, np.bytes_, np.object_):
        dt = type(np.dtype(t))
        names[("numpy.dtypes", dt.__name__)] = dt
    return names


_ALLOWED: dict[tuple[str, str], Any] = {
    **_numpy_names(),
    ("_codecs", "encode"): _latin1_encode,
    **{(mod, name): obj for mod in ("builtins", "__builtin__") for name, obj in (
        ("set", set), ("frozenset", frozenset), ("complex", complex), ("slice", slice),
        ("bytes", _bytes_from(bytes)), ("bytearray", _bytes_from(bytearray)))},
    ("collections", "OrderedDict"): collections.OrderedDict,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only plain containers and numpy arrays; anything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        obj = _ALLOWED.get((module, name))
        if obj is None:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: the file asks to run code, which a "
                                         "data file never needs")
        return obj


def loads_restricted(data: bytes) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler` (``latin1`` for Python 2 strings)."""
    return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()


def load_pickle(path: str | os.PathLike, what: str = "pickle file") -> Any:
    """Read a user pickle without executing anything.

    Args:
        path: the file.
        what: what the file is, for messages ("ground-truth file", "cirtorch pickle", ...).
    Raises:
        BadInputError: missing or unreadable file, a damaged pickle, or one that names anything other than
            containers and numpy arrays (a file that would run code when loaded).
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f, encoding="latin1").load()
    except FileNotFoundError:
        raise MissingInputError(f"{path}: {what} not found; check the path") from None
    except IsADirectoryError:
        raise BadInputError(f"{path}: is a directory, expected a {what}") from None
    except pickle.UnpicklingError as e:
        raise BadInputError(f"{path}: refused or damaged {what} ({e})") from None
    except (OSError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, UnicodeError,
            MemoryError, RecursionError) as e:
        raise BadInputError(f"{path}: not a readable {what} ({type(e).__name__}: {str(e)[:200]})") from None


__all__ = ["RestrictedUnpickler", "load_pickle", "loads_restricted"]
