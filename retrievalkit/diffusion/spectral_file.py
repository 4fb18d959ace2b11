"""The eigenpairs file (kind ``rkit/spectral``) written by ``rkit diffuse-prepare`` for FSR.

Layout:
    names    (N,)   utf-8    database names, in the order of the graph and the features file
    eigvals  (r,)   float64  largest eigenvalues of S = D^-1/2 W D^-1/2, decreasing
    eigvecs  (N, r) float32  the matching orthonormal eigenvectors (columns)
    attrs:   config (graph k, gamma, mutual, rank, ...) — the graph settings the eigenpairs belong to
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retrievalkit.errors import BadInputError
from retrievalkit.io.h5file import (
    atomic_h5,
    check_finite,
    open_checked,
    read_config,
    read_names,
    require_dataset,
    write_names,
)

KIND = "rkit/spectral"
SCHEMA = 1


@dataclass
class SpectralFile:
    names: list[str]
    eigvals: np.ndarray  # (r,) float64
    eigvecs: np.ndarray  # (N, r) float32
    config: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def rank(self) -> int:
        return int(self.eigvals.shape[0])


def write_spectral(path: str | os.PathLike, spec: SpectralFile, inputs: dict[str, str] | None = None) -> Path:
    path = Path(path)
    lam = np.asarray(spec.eigvals, dtype=np.float64)
    U = np.asarray(spec.eigvecs, dtype=np.float32)
    if U.ndim != 2 or U.shape != (len(spec.names), lam.shape[0]):
        raise ValueError(f"spectral: eigvecs {U.shape} do not match {len(spec.names)} names x {lam.shape[0]} values")
    with atomic_h5(path, KIND, SCHEMA, spec.config, inputs) as f:
        write_names(f, "names", spec.names)
        f.create_dataset("eigvals", data=lam)
        f.create_dataset("eigvecs", data=U, chunks=(min(U.shape[0], max(1, 2**20 // max(U.shape[1], 1))),
                                                     U.shape[1]) if U.size else None)
    return path


def read_spectral(path: str | os.PathLike) -> SpectralFile:
    path = Path(path)
    with open_checked(path, KIND, SCHEMA) as f:
        names = read_names(f, "names", path)
        lam = require_dataset(f, "eigvals", path)[()].astype(np.float64)
        U = require_dataset(f, "eigvecs", path)[()].astype(np.float32)
        config = read_config(f)
    if lam.ndim != 1 or U.ndim != 2 or U.shape != (len(names), lam.shape[0]):
        raise BadInputError(f"{path}: eigvecs {U.shape} do not match {len(names)} names and {lam.shape} eigenvalues; "
                            "the file is corrupt")
    check_finite(U, path, "eigenvectors")
    check_finite(lam, path, "eigenvalues")
    return SpectralFile(names, lam, U, config, path)
