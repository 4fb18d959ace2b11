"""The kNN-graph file (kind ``rkit/knn``): each database item's k nearest other items.

Layout:
    names    (N,)   utf-8  the database names (must match the features file the graph was built from)
    indices  (N, k) int64  neighbour ids, nearest first, self excluded; -1 pads when N-1 < k
    scores   (N, k) float32 similarities (inner product of L2-normalised vectors)
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

KIND = "rkit/knn"
SCHEMA = 1


@dataclass
class KnnGraph:
    names: list[str]
    indices: np.ndarray  # (N, k) int64
    scores: np.ndarray  # (N, k) float32
    config: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])


def write_knn(path: str | os.PathLike, graph: KnnGraph, inputs: dict[str, str] | None = None) -> Path:
    path = Path(path)
    with atomic_h5(path, KIND, SCHEMA, graph.config, inputs) as f:
        write_names(f, "names", graph.names)
        f.create_dataset("indices", data=np.asarray(graph.indices, dtype=np.int64))
        f.create_dataset("scores", data=np.asarray(graph.scores, dtype=np.float32))
    return path


def read_knn(path: str | os.PathLike) -> KnnGraph:
    path = Path(path)
    with open_checked(path, KIND, SCHEMA) as f:
        names = read_names(f, "names", path)
        idx = require_dataset(f, "indices", path)[()].astype(np.int64)
        sc = require_dataset(f, "scores", path)[()].astype(np.float32)
        config = read_config(f)
    if idx.ndim != 2 or idx.shape != sc.shape or idx.shape[0] != len(names):
        raise BadInputError(f"{path}: graph of shape {idx.shape} does not match {len(names)} names")
    if idx.size and (idx.max() >= len(names) or idx.min() < -1):
        raise BadInputError(f"{path}: neighbour ids outside 0..{len(names) - 1}; the file is corrupt")
    check_finite(sc[idx >= 0], path, "scores")
    return KnnGraph(names, idx, sc, config, path)
