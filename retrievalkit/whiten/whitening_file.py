"""The whitening file (kind ``rkit/whitening``), written by ``rkit whiten`` and read by ``whiten apply`` / ``extract``.

Layout:
    mean        (D_in,)        float32  subtracted before projecting
    projection  (D_out, D_in)  float32  rows ordered by decreasing variance; ``P[:d]`` reduces to d dims
    attrs: kind, schema, config (method, dims, shrinkage, power, source features/tuples), method
A vector ``x`` is whitened as ``l2n(projection @ (x - mean))``. In a network's whitening layer (a Linear
layer applied to the L2-normalised pooled vector) this is weight = projection, bias = -projection @ mean.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retrievalkit.errors import BadInputError
from retrievalkit.io.h5file import atomic_h5, check_finite, open_checked, read_config, require_dataset

KIND = "rkit/whitening"
SCHEMA = 1


@dataclass
class Whitening:
    mean: np.ndarray  # (D_in,) float32
    projection: np.ndarray  # (D_out, D_in) float32
    method: str = "pca"
    config: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def dim_in(self) -> int:
        return int(self.projection.shape[1])

    @property
    def dim_out(self) -> int:
        return int(self.projection.shape[0])


def _check(w: Whitening, where: str) -> None:
    if w.projection.ndim != 2 or w.mean.shape != (w.projection.shape[1],):
        raise BadInputError(f"{where}: projection {w.projection.shape} and mean {w.mean.shape} do not fit "
                            "(expected (D_out, D_in) and (D_in,)); the file is corrupt")
    check_finite(w.projection, where, "projection values")
    check_finite(w.mean, where, "mean values")


def write_whitening(path: str | os.PathLike, w: Whitening, inputs: dict[str, str] | None = None) -> Path:
    """Write ``w`` atomically and return the path."""
    path = Path(path)
    w = Whitening(np.asarray(w.mean, np.float32).reshape(-1), np.asarray(w.projection, np.float32), w.method,
                  w.config)
    _check(w, str(path))
    with atomic_h5(path, KIND, SCHEMA, {**w.config, "method": w.method}, inputs) as f:
        f.attrs["method"] = w.method
        f.create_dataset("mean", data=w.mean)
        f.create_dataset("projection", data=w.projection)
    return path


def read_whitening(path: str | os.PathLike) -> Whitening:
    """Read and validate a whitening file."""
    path = Path(path)
    with open_checked(path, KIND, SCHEMA) as f:
        mean = require_dataset(f, "mean", path)[()].astype(np.float32).reshape(-1)
        proj = require_dataset(f, "projection", path)[()].astype(np.float32)
        method = f.attrs.get("method", "")
        method = method.decode() if isinstance(method, bytes) else str(method)
        config = read_config(f)
    w = Whitening(mean, proj, method, config, path)
    _check(w, str(path))
    return w


def load_whitening(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, proj)`` of a whitening file: mean (D_in,) and projection (D_out, D_in), float32 — the library's
    one whitening convention (:mod:`retrievalkit.whiten.core`).

    Feed them to ``retrievalkit.models.load_whitening_into(net, mean, proj)`` to set a network's whitening layer.
    """
    w = read_whitening(path)
    return w.mean, w.projection
