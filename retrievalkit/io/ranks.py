"""The ranks file (kind ``rkit/ranks``): for each query, database indices sorted by decreasing score.

Layout:
    query_names (Q,) utf-8
    db_names    (N,) utf-8
    indices     (Q, K) int64   -1 where fewer than K results exist
    scores      (Q, K) float32 higher = more similar
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

KIND = "rkit/ranks"
SCHEMA = 1


@dataclass
class Ranks:
    query_names: list[str]
    db_names: list[str]
    indices: np.ndarray  # (Q, K) int64
    scores: np.ndarray  # (Q, K) float32
    config: dict = field(default_factory=dict)
    path: Path | None = None


def write_ranks(path: str | os.PathLike, ranks: Ranks, inputs: dict[str, str] | None = None) -> Path:
    path = Path(path)
    idx = np.asarray(ranks.indices, dtype=np.int64)
    sc = np.asarray(ranks.scores, dtype=np.float32)
    if idx.shape != sc.shape or idx.ndim != 2 or idx.shape[0] != len(ranks.query_names):
        raise ValueError(f"ranks: indices {idx.shape} / scores {sc.shape} / {len(ranks.query_names)} queries mismatch")
    with atomic_h5(path, KIND, SCHEMA, ranks.config, inputs) as f:
        write_names(f, "query_names", ranks.query_names)
        write_names(f, "db_names", ranks.db_names)
        f.create_dataset("indices", data=idx)
        f.create_dataset("scores", data=sc)
    return path


def read_ranks(path: str | os.PathLike) -> Ranks:
    path = Path(path)
    with open_checked(path, KIND, SCHEMA) as f:
        qn = read_names(f, "query_names", path)
        dn = read_names(f, "db_names", path)
        idx = require_dataset(f, "indices", path)[()].astype(np.int64)
        sc = require_dataset(f, "scores", path)[()].astype(np.float32)
        config = read_config(f)
    check_neighbour_lists(path, sc, idx, len(qn), len(dn))
    return Ranks(qn, dn, idx, sc, config, path)


def check_neighbour_lists(path: Path, scores: np.ndarray, ids: np.ndarray, n_rows: int, n_database: int) -> None:
    """Validate stored neighbour lists (a ranks file's, a knn file's): ``scores`` and ``ids`` both (n_rows, k),
    ids in -1..n_database-1, finite scores where listed; raise BadInputError naming the file otherwise."""
    if ids.ndim != 2 or ids.shape != scores.shape or ids.shape[0] != n_rows:
        raise BadInputError(f"{path}: indices {ids.shape} and scores {scores.shape} do not match {n_rows} rows; "
                            "the file is corrupt")
    if ids.size and (ids.max() >= n_database or ids.min() < -1):
        raise BadInputError(f"{path}: indices outside the database of {n_database} images; the file is corrupt")
    check_finite(scores[ids >= 0], path, "scores")
