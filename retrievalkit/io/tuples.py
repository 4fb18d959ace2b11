"""The training-tuples file (kind ``rkit/tuples``): what ``sfm-mine`` / ``manifold-mine`` write and ``train`` reads.

Layout:
    names      (N,)    utf-8  image names relative to the root attribute ``image_root``
    cluster    (N,)    int64  SfM model / cluster / scene id per image (-1: unknown); hard negatives are
                              taken at most one per cluster and never from the query's cluster
    qidx       (T,)    int64  training query, index into ``names``
    pidx       (T,)    int64  its positive
    nidx       (T, M)  int64  optional fixed negatives per tuple (-1 pads); M may be 0
    val_qidx, val_pidx (V,) int64  optional held-out pairs for validation
    weight     (T,)    float32 optional per-tuple loss weight >= 0 (pseudo-labelled tuples of ``rkit propagate``);
                              absent: every tuple weighs 1
    attrs: image_root (str), config
The (qidx, pidx) pairs double as the training set of learned whitening (``rkit whiten --method learned``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retrievalkit.errors import BadInputError
from retrievalkit.io.h5file import atomic_h5, open_checked, read_config, read_names, require_dataset, write_names

KIND = "rkit/tuples"
SCHEMA = 1


@dataclass
class Tuples:
    names: list[str]
    cluster: np.ndarray  # (N,) int64
    qidx: np.ndarray  # (T,) int64
    pidx: np.ndarray  # (T,) int64
    nidx: np.ndarray | None = None  # (T, M) int64, -1 pads
    image_root: str = ""
    config: dict = field(default_factory=dict)
    val_qidx: np.ndarray | None = None
    val_pidx: np.ndarray | None = None
    path: Path | None = None
    weight: np.ndarray | None = None  # (T,) float32 loss weight per tuple, None: all 1

    def __len__(self) -> int:
        return int(self.qidx.shape[0])


def _check(t: Tuples, where: str) -> None:
    n = len(t.names)
    if t.cluster.shape != (n,):
        raise BadInputError(f"{where}: 'cluster' has shape {t.cluster.shape}, expected ({n},)")
    if t.qidx.shape != t.pidx.shape or t.qidx.ndim != 1:
        raise BadInputError(f"{where}: 'qidx' {t.qidx.shape} and 'pidx' {t.pidx.shape} must be equal 1-D arrays")
    arrays = [("qidx", t.qidx), ("pidx", t.pidx)]
    if t.nidx is not None:
        if t.nidx.ndim != 2 or t.nidx.shape[0] != t.qidx.shape[0]:
            raise BadInputError(f"{where}: 'nidx' has shape {t.nidx.shape}, expected ({t.qidx.shape[0]}, M)")
        arrays.append(("nidx", t.nidx[t.nidx >= 0]))
    if t.weight is not None and (t.weight.shape != t.qidx.shape or not np.all(np.isfinite(t.weight))
                                 or (t.weight < 0).any()):
        raise BadInputError(f"{where}: 'weight' must hold one finite non-negative number per tuple "
                            f"({t.qidx.shape[0]}), found shape {t.weight.shape}")
    for key, val in (("val_qidx", t.val_qidx), ("val_pidx", t.val_pidx)):
        if val is not None:
            arrays.append((key, val))
    for key, a in arrays:
        if a.size and (a.min() < 0 or a.max() >= n):
            raise BadInputError(f"{where}: '{key}' holds indices outside 0..{n - 1}; the file is corrupt")


def write_tuples(path: str | os.PathLike, t: Tuples, inputs: dict[str, str] | None = None) -> Path:
    path = Path(path)
    _check(t, str(path))
    with atomic_h5(path, KIND, SCHEMA, t.config, inputs) as f:
        f.attrs["image_root"] = str(t.image_root)
        write_names(f, "names", t.names)
        f.create_dataset("cluster", data=np.asarray(t.cluster, np.int64))
        f.create_dataset("qidx", data=np.asarray(t.qidx, np.int64))
        f.create_dataset("pidx", data=np.asarray(t.pidx, np.int64))
        nidx = t.nidx if t.nidx is not None else np.zeros((len(t.qidx), 0), np.int64)
        f.create_dataset("nidx", data=np.asarray(nidx, np.int64))
        if t.val_qidx is not None:
            f.create_dataset("val_qidx", data=np.asarray(t.val_qidx, np.int64))
            f.create_dataset("val_pidx", data=np.asarray(t.val_pidx, np.int64))
        if t.weight is not None:
            f.create_dataset("weight", data=np.asarray(t.weight, np.float32))
    return path


def read_tuples(path: str | os.PathLike) -> Tuples:
    path = Path(path)
    with open_checked(path, KIND, SCHEMA) as f:
        names = read_names(f, "names", path)
        cluster = require_dataset(f, "cluster", path)[()].astype(np.int64)
        qidx = require_dataset(f, "qidx", path)[()].astype(np.int64)
        pidx = require_dataset(f, "pidx", path)[()].astype(np.int64)
        nidx = f["nidx"][()].astype(np.int64) if "nidx" in f else None
        if nidx is not None and nidx.shape[1] == 0:
            nidx = None
        vq = f["val_qidx"][()].astype(np.int64) if "val_qidx" in f else None
        vp = f["val_pidx"][()].astype(np.int64) if "val_pidx" in f else None
        weight = f["weight"][()].astype(np.float32) if "weight" in f else None
        root = f.attrs.get("image_root", "")
        root = root.decode() if isinstance(root, bytes) else str(root)
        config = read_config(f)
    t = Tuples(names, cluster, qidx, pidx, nidx, root, config, vq, vp, path, weight)
    _check(t, str(path))
    return t
