"""Stage functions of ``rkit index``: paths in, one file out (atomic), path returned."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from retrievalkit.configs.checks import stage_config
from retrievalkit.configs.search import KnnConfig, SearchConfig
from retrievalkit.errors import BadInputError
from retrievalkit.io import KnnGraph, Ranks, read_features, write_knn, write_ranks
from retrievalkit.io.output import writes_output
from retrievalkit.search.exact import knn_graph, search_ip


def _check_single_vector(feats, what: str):
    if feats.image_index is not None:
        raise BadInputError(f"{feats.path}: holds several vectors per image (regions); {what} needs one per "
                            "image — use `rkit diffuse` with regional diffusion, or extract without --regions")


@writes_output("output", inputs=("database", "queries"))
def search(database: str | os.PathLike, queries: str | os.PathLike, output: str | os.PathLike,
           config: SearchConfig | None = None, *, device: str = "cpu",
           progress: Callable[[int], None] | None = None) -> Path:
    """Exact inner-product search of every query against the database; writes a ranks file."""
    config = stage_config(config, SearchConfig)
    k, block = config.top_k, config.block_size
    db = read_features(database)
    q = read_features(queries)
    _check_single_vector(db, "search")
    _check_single_vector(q, "search")
    if db.dim != q.dim:
        raise BadInputError(f"{queries}: query vectors have dimension {q.dim} but the database {database} has "
                            f"{db.dim}; extract both with the same model and whitening")
    if len(db) == 0:
        raise BadInputError(f"{database}: the database holds no vectors")
    D, I = search_ip(q.vectors, db.vectors, k, block=block, device=device, progress=progress)
    cfg = {"method": "exact-ip", "k": int(I.shape[1]), "database_config": db.config}
    return write_ranks(output, Ranks(q.names, db.names, I, D, cfg),
                       inputs={"database": str(database), "queries": str(queries)})


@writes_output("output", inputs=("database",))
def knn(database: str | os.PathLike, output: str | os.PathLike, config: KnnConfig | None = None, *,
        device: str = "cpu", progress: Callable[[int], None] | None = None) -> Path:
    """The database's exact kNN graph (self excluded); writes a knn file."""
    config = stage_config(config, KnnConfig)
    k, block = config.top_k, config.block_size
    db = read_features(database)
    _check_single_vector(db, "knn")
    if len(db) < 2:
        raise BadInputError(f"{database}: a kNN graph needs at least 2 vectors, found {len(db)}")
    D, I = knn_graph(db.vectors, k, block=block, device=device, progress=progress)
    cfg = {"method": "exact-ip", "k": int(k)}
    return write_knn(output, KnnGraph(db.names, I, D, cfg), inputs={"database": str(database)})
