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
    if idx.ndim != 2 or idx.shape != sc.shape or idx.shape[0] != len(qn):
        raise BadInputError(f"{path}: indices {idx.shape} and scores {sc.shape} do not match {len(qn)} queries")
    if idx.size and (idx.max() >= len(dn) or idx.min() < -1):
        raise BadInputError(f"{path}: indices outside the database of {len(dn)} images; the file is corrupt")
    check_finite(sc[idx >= 0], path, "scores")
    return Ranks(qn, dn, idx, sc, config, path)
