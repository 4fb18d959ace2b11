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

from retrievalkit.io.h5file import (
    atomic_h5,
    open_checked,
    read_config,
    read_names,
    require_dataset,
    write_names,
)
from retrievalkit.io.ranks import check_neighbour_lists

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
    check_neighbour_lists(path, sc, idx, len(names), len(names))
    return KnnGraph(names, idx, sc, config, path)
