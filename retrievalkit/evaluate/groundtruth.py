"""Revisitop ground truth (``gnd_*.pkl`` / ``gnd.json``) and the Easy / Medium / Hard protocols.

Layout (the same keys in JSON and in revisitop's pickle):

- ``imlist``: database image names (N), ``qimlist``: query image names (Q);
- ``gnd[i]`` for query i: ``easy``, ``hard``, ``junk`` (indices into ``imlist``) and ``bbx``
  (``None`` or ``[x1, y1, x2, y2]`` in pixels of the query photo). The classic Oxford/Paris files
  have ``ok`` instead of ``easy``/``hard``; ``ok`` is read as easy positives;
- optional ``db_instance`` (N names) and ``query_instance`` (Q names).

Protocols, as in revisitop's ``test.py``:

=========  ===================  ==================
protocol   positives            junk (ignored)
=========  ===================  ==================
easy       easy                 junk + hard
medium     easy + hard          junk
hard       hard                 junk + easy
=========  ===================  ==================
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from retrievalkit.errors import BadInputError, MissingInputError, UsageError
from retrievalkit.io.pickles import load_pickle

Protocol = Literal["easy", "medium", "hard"]
PROTOCOLS: tuple[Protocol, ...] = ("easy", "medium", "hard")

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class GroundTruth:
    """Revisitop ground truth for Q queries against a database of N images.

    Attributes:
        imlist: database image names, length N.
        qimlist: query image names, length Q.
        easy, hard, junk: per query, int64 arrays of database indices (sorted, unique).
        bbx: per query, the query box ``(x1, y1, x2, y2)`` in pixels, or ``None`` for the whole image.
        db_instance, query_instance: scene/instance name per image, or ``None`` when the file has none.

    Example:
        >>> gnd = GroundTruth(["a", "b"], ["q"], [np.array([0])], [np.array([1])],
        ...                   [np.array([], dtype=np.int64)], [None])
        >>> [p.tolist() for p in gnd.positives("medium")]
        [[0, 1]]
    """

    imlist: list[str]
    qimlist: list[str]
    easy: list[np.ndarray]
    hard: list[np.ndarray]
    junk_base: list[np.ndarray]
    bbx: list[Box | None]
    db_instance: list[str] | None = None
    query_instance: list[str] | None = None

    @property
    def num_queries(self) -> int:
        return len(self.qimlist)

    @property
    def num_database(self) -> int:
        return len(self.imlist)

    def positives(self, protocol: Protocol) -> list[np.ndarray]:
        """Positive database indices of every query under ``protocol`` (sorted int64 arrays)."""
        _check_protocol(protocol)
        if protocol == "easy":
            return [e.copy() for e in self.easy]
        if protocol == "hard":
            return [h.copy() for h in self.hard]
        return [np.union1d(e, h) for e, h in zip(self.easy, self.hard, strict=True)]

    def junk(self, protocol: Protocol) -> list[np.ndarray]:
        """Junk (ignored) database indices of every query under ``protocol`` (sorted int64 arrays)."""
        _check_protocol(protocol)
        if protocol == "easy":
            return [np.union1d(j, h) for j, h in zip(self.junk_base, self.hard, strict=True)]
        if protocol == "hard":
            return [np.union1d(j, e) for j, e in zip(self.junk_base, self.easy, strict=True)]
        return [j.copy() for j in self.junk_base]

    def boxes(self) -> list[Box | None]:
        """Query boxes ``(x1, y1, x2, y2)`` in pixels of the query photo, ``None`` for the whole image."""
        return list(self.bbx)


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise UsageError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")


def load_gnd(path: str | Path) -> GroundTruth:
    """Read revisitop ground truth from ``.json`` or ``.pkl`` and validate it.

    Args:
        path: a ``gnd.json`` (layout in ``shared/data/README.md``) or a revisitop ``gnd_*.pkl``.

    Returns:
        The validated :class:`GroundTruth`.

    Raises:
        BadInputError: unreadable file, missing keys, wrong types, indices out of range.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".pkl", ".pickle"):
        raise BadInputError(f"{path}: unknown ground-truth format {suffix!r}; give a .json or .pkl file")
    try:
        if suffix == ".json":
            with open(path, encoding="utf-8") as f:
                raw = json.load(f)
        else:
            raw = load_pickle(path, "ground-truth file")  # restricted: refuses anything that would run code
    except FileNotFoundError:
        raise MissingInputError(f"{path}: ground-truth file not found; check the path") from None
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{path}: cannot read ground truth ({exc}); give a revisitop gnd file") from None
    return ground_truth_from_dict(raw, source=str(path))


def ground_truth_from_dict(raw: Any, source: str = "ground truth") -> GroundTruth:
    """Validate an already-parsed revisitop dict (``imlist``, ``qimlist``, ``gnd``, ...).

    ``source`` names the origin (a file path) in error messages.
    """
    if not isinstance(raw, Mapping):
        raise BadInputError(f"{source}: expected a mapping with imlist, qimlist and gnd at the top level")
    for key in ("imlist", "qimlist", "gnd"):
        if key not in raw:
            raise BadInputError(f"{source}: missing key {key!r}; a revisitop ground truth needs imlist, qimlist, gnd")
    imlist = _names(raw["imlist"], "imlist", source)
    qimlist = _names(raw["qimlist"], "qimlist", source)
    entries = raw["gnd"]
    if not isinstance(entries, Sequence) or isinstance(entries, str):
        raise BadInputError(f"{source}: 'gnd' must be a list with one entry per query")
    if len(entries) != len(qimlist):
        raise BadInputError(
            f"{source}: 'gnd' has {len(entries)} entries but 'qimlist' has {len(qimlist)}; they must match"
        )
    n = len(imlist)
    easy, hard, junk, bbx = [], [], [], []
    for i, entry in enumerate(entries):
        where = f"{source}: gnd[{i}]"
        if not isinstance(entry, Mapping):
            raise BadInputError(f"{where} must be a mapping with easy/hard/junk (or ok/junk)")
        if "easy" in entry or "hard" in entry:
            for key in ("easy", "hard"):
                if key not in entry:
                    raise BadInputError(f"{where}: missing key {key!r}; give both easy and hard (or ok)")
            easy.append(_indices(entry["easy"], n, f"{where}['easy']"))
            hard.append(_indices(entry["hard"], n, f"{where}['hard']"))
        elif "ok" in entry:
            easy.append(_indices(entry["ok"], n, f"{where}['ok']"))
            hard.append(np.empty(0, dtype=np.int64))
        else:
            raise BadInputError(f"{where}: missing positives; give 'easy' and 'hard' (or 'ok')")
        junk.append(_indices(entry.get("junk", []), n, f"{where}['junk']"))
        bbx.append(_box(entry.get("bbx"), f"{where}['bbx']"))
    db_instance = _optional_names(raw, "db_instance", n, source)
    query_instance = _optional_names(raw, "query_instance", len(qimlist), source)
    return GroundTruth(imlist, qimlist, easy, hard, junk, bbx, db_instance, query_instance)


def _names(value: Any, key: str, source: str) -> list[str]:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, Sequence) or isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise BadInputError(f"{source}: {key!r} must be a list of image names (strings)")
    return list(value)


def _optional_names(raw: Mapping, key: str, length: int, source: str) -> list[str] | None:
    if raw.get(key) is None:
        return None
    names = _names(raw[key], key, source)
    if len(names) != length:
        raise BadInputError(f"{source}: {key!r} has {len(names)} entries, expected {length} (one per image)")
    return names


def _indices(value: Any, n: int, where: str) -> np.ndarray:
    """Sorted unique int64 indices in ``[0, n)``."""
    if value is None:
        return np.empty(0, dtype=np.int64)
    if isinstance(value, (bool, str, bytes)) or isinstance(value, Mapping):
        raise BadInputError(f"{where} must be a list of integer database indices")
    if isinstance(value, (int, np.integer)):
        value = [value]
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        raise BadInputError(f"{where} must be a list of integer database indices") from None
    if arr.size == 0:
        return np.empty(0, dtype=np.int64)
    if arr.ndim != 1 or arr.dtype.kind not in "iuf" or arr.dtype == np.bool_:
        raise BadInputError(f"{where} must be a flat list of integer database indices")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
        raise BadInputError(f"{where} must hold whole numbers (database indices)")
    arr = arr.astype(np.int64)
    bad = (arr < 0) | (arr >= n)
    if bad.any():
        raise BadInputError(
            f"{where} has index {int(arr[bad][0])} outside the database [0, {n}); fix the ground truth or imlist"
        )
    return np.unique(arr)


def _box(value: Any, where: str) -> Box | None:
    if value is None:
        return None
    try:
        arr = np.asarray(value, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise BadInputError(f"{where} must be null or [x1, y1, x2, y2]") from None
    if arr.size == 0:
        return None
    if arr.size != 4 or not np.all(np.isfinite(arr)):
        raise BadInputError(f"{where} must be null or [x1, y1, x2, y2] (4 finite numbers), got {arr.size} values")
    x1, y1, x2, y2 = (float(v) for v in arr)
    if x2 <= x1 or y2 <= y1:
        raise BadInputError(f"{where} is [{x1:g}, {y1:g}, {x2:g}, {y2:g}]; it needs x1 < x2 and y1 < y2")
    return (x1, y1, x2, y2)
