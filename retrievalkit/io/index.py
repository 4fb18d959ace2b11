"""The faiss-index file (kind ``rkit/faiss-index``): a serialized faiss index that knows what it indexes.

Layout (see docs/formats.md):
    index   (B,)  uint8  the bytes of ``faiss.serialize_index`` (CPU index; never pickled code)
    names   (n,)  utf-8  the image of each id: faiss id i is ``names[i]`` (= row ``row_range[0] + i`` of the features)
    attrs:  kind, schema, config (factory, train size, seed, shard, ...), plus
            factory, metric, dim, ntotal, features_fingerprint, features_rows, row_range, trained_id, ivfdata

A trained empty index (``--train-only``) has ntotal 0 and no names; a shard part holds one row range; a merged or
single build holds all rows. With on-disk inverted lists the lists live in the file named by ``ivfdata``, in the
same folder. This module only moves bytes: deserialising them into a faiss object is ``search/faiss_index.py``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retrievalkit.errors import BadInputError
from retrievalkit.io.h5file import atomic_h5, open_checked, read_config, read_names, require_dataset, write_names

KIND = "rkit/faiss-index"
SCHEMA = 1
METRIC = "inner_product"


@dataclass
class IndexFile:
    """One faiss-index file. ``data`` is None when read with ``with_data=False`` (metadata only)."""

    names: list[str]
    data: np.ndarray | None  # (B,) uint8 serialized faiss index
    factory: str
    dim: int
    ntotal: int
    features_fingerprint: str
    features_rows: int
    row_range: tuple[int, int]
    trained_id: str
    ivfdata: str = ""
    config: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def is_trained_only(self) -> bool:
        return self.ntotal == 0 and not self.names


def write_index_file(path: str | os.PathLike, ix: IndexFile, inputs: dict[str, str] | None = None) -> Path:
    """Write ``ix`` atomically to ``path`` and return the path."""
    path = Path(path)
    if len(ix.names) != ix.ntotal:
        raise ValueError(f"{len(ix.names)} names for an index of {ix.ntotal} vectors")
    with atomic_h5(path, KIND, SCHEMA, ix.config, inputs) as f:
        f.create_dataset("index", data=np.frombuffer(memoryview(ix.data), dtype=np.uint8))
        write_names(f, "names", ix.names)
        f.attrs["factory"] = ix.factory
        f.attrs["metric"] = METRIC
        f.attrs["dim"] = int(ix.dim)
        f.attrs["ntotal"] = int(ix.ntotal)
        f.attrs["features_fingerprint"] = ix.features_fingerprint
        f.attrs["features_rows"] = int(ix.features_rows)
        f.attrs["row_range"] = np.asarray(ix.row_range, dtype=np.int64)
        f.attrs["trained_id"] = ix.trained_id
        f.attrs["ivfdata"] = ix.ivfdata
    return path


def _s(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def read_index_file(path: str | os.PathLike, with_data: bool = True) -> IndexFile:
    """Read and validate a faiss-index file (the index bytes only when ``with_data``)."""
    path = Path(path)
    with open_checked(path, KIND, SCHEMA) as f:
        try:
            attrs = {k: f.attrs[k] for k in ("factory", "metric", "dim", "ntotal", "features_fingerprint",
                                             "features_rows", "row_range", "trained_id")}
        except KeyError as e:
            raise BadInputError(f"{path}: attribute {e} is missing; the file is incomplete or not an rkit "
                                "index") from None
        names = read_names(f, "names", path)
        ds = require_dataset(f, "index", path)
        if ds.ndim != 1 or ds.dtype != np.uint8:
            raise BadInputError(f"{path}: dataset 'index' must be 1-D uint8 (serialized faiss index)")
        data = ds[()] if with_data else None
        ivfdata = _s(f.attrs.get("ivfdata", ""))
        config = read_config(f)
    if _s(attrs["metric"]) != METRIC:
        raise BadInputError(f"{path}: metric {_s(attrs['metric'])!r} is not supported (rkit indexes use "
                            f"{METRIC}); rebuild it with rkit index build")
    rr = tuple(int(v) for v in np.asarray(attrs["row_range"]).reshape(-1))
    ntotal = int(attrs["ntotal"])
    if len(rr) != 2 or len(names) != ntotal or (ntotal and rr[1] - rr[0] != ntotal):
        raise BadInputError(f"{path}: {len(names)} names, ntotal {ntotal} and row range {rr} disagree; "
                            "the file is corrupt")
    if ivfdata and (os.sep in ivfdata or "/" in ivfdata or ivfdata in (".", "..")):
        raise BadInputError(f"{path}: 'ivfdata' must be a file name in the index's folder, got {ivfdata!r}")
    return IndexFile(names, data, _s(attrs["factory"]), int(attrs["dim"]), ntotal,
                     _s(attrs["features_fingerprint"]), int(attrs["features_rows"]), (rr[0], rr[1]),
                     _s(attrs["trained_id"]), ivfdata, config, path)
