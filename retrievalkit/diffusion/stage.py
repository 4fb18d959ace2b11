# ruff: noqa: E741  (faiss naming: D distances, I ids)
"""Stage functions of ``rkit diffuse`` / ``rkit diffuse-prepare``: paths in, one file out, path returned."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from retrievalkit.configs.checks import stage_config
from retrievalkit.diffusion.graph import affinity_from_knn, graph_from_vectors, normalize_symmetric
from retrievalkit.diffusion.rank import DiffusionConfig, diffusion_ranking, resolve_config
from retrievalkit.diffusion.spectral import top_eigenpairs
from retrievalkit.diffusion.spectral_file import SpectralFile, read_spectral, write_spectral
from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.io import Ranks, read_features, read_knn, write_ranks
from retrievalkit.io.h5file import check_same_names
from retrievalkit.io.output import writes_output
from retrievalkit.neighbours import Neighbours


def node_names(feats) -> list[str]:
    """One name per database vector: the image name (repeated for each region of a regions file)."""
    if feats.image_index is None:
        return list(feats.names)
    return [feats.names[i] for i in feats.image_index]


def _read_database(database):
    db = read_features(database)
    if db.vectors.shape[0] < 2:
        raise BadInputError(f"{database}: diffusion needs a database of at least 2 vectors, "
                            f"found {db.vectors.shape[0]}")
    return db


def _read_graph(graph, db, database):
    if graph is None:
        return None
    if db.image_index is not None:
        raise UsageError(f"--graph {graph}: {database} holds regions; regional diffusion builds its region graph "
                         "itself (drop --graph)")
    g = read_knn(graph)
    check_same_names(db.names, g.names, database, graph, "graph names")
    return g


def _graph_through_index(index, database, db, cfg: DiffusionConfig, device: str, log) -> tuple[Neighbours, dict]:
    """The database's kNN graph searched through a built faiss index of ``database`` (``rkit index build``)."""
    from retrievalkit.search.index_stages import IndexSearcher

    if db.image_index is not None:
        raise UsageError(f"--index: {database} holds regions; regional diffusion builds its region graph itself "
                         "(drop --index)")
    k = resolve_config(cfg, db.vectors.shape[0]).graph_k
    searcher = IndexSearcher(index, database, k + 1, device=device, log=log)
    D, I = searcher.knn(db.vectors, k)
    return Neighbours(D, I), searcher.describe()


@writes_output("output", inputs=("database", "queries", "graph", "spectral", "index"))
def diffuse(database: str | os.PathLike, queries: str | os.PathLike, output: str | os.PathLike,
            config: DiffusionConfig | None = None, *, graph: str | os.PathLike | None = None,
            spectral: str | os.PathLike | None = None, index: Sequence[str | os.PathLike] | None = None,
            device: str = "cpu", progress: Callable[[int], None] | None = None,
            log: Callable[[str], None] | None = None) -> Path:
    """Rank the database for every query by diffusion (or query expansion); writes a ranks file.

    Args:
        database / queries: features files (regions files allowed: several vectors per image).
        graph: kNN-graph file of the database (``rkit index knn``); None: built here with the chosen k.
        spectral: eigenpairs file (``rkit diffuse-prepare``) for ``method='spectral'`` or ``'hybrid'``; None:
            computed here.
        index: a built faiss index of ``database`` (``rkit index build``; several files: the parts of one): the
            kNN graph is searched through it instead of exactly (``graph`` None; a Flat index gives the exact
            graph).
        config: :class:`DiffusionConfig`; unset (None) settings are chosen from the collection size.
    Returns:
        The ranks file path (ranks over database images; ``rkit evaluate`` reads it).
    """
    cfg = stage_config(config, DiffusionConfig)
    db = _read_database(database)
    q = read_features(queries)
    if q.dim != db.dim:
        raise BadInputError(f"{queries}: query vectors have dimension {q.dim} but the database {database} has "
                            f"{db.dim}; extract both with the same model and whitening")
    if len(q) == 0:
        raise BadInputError(f"{queries}: the query file holds no vectors")
    g = _read_graph(graph, db, database)
    eig = None
    if spectral is not None:
        if cfg.method not in ("spectral", "hybrid"):
            raise UsageError(f"--spectral {spectral}: eigenpairs are only used with --method spectral or hybrid")
        sf = read_spectral(spectral)
        check_same_names(node_names(db), sf.names, database, spectral, "eigenvector names")
        eig = (sf.eigvals, sf.eigvecs)
        for key in ("graph_k", "mutual", "gamma"):
            if key in sf.config:
                cfg = dataclasses.replace(cfg, **{key: sf.config[key]})
    knn = None if g is None else Neighbours(g.scores, g.indices)
    index_info = None
    if index:
        if graph is not None:
            raise UsageError("--index searches the graph through a built index and --graph reads one; give one")
        if cfg.method == "none" or (cfg.method == "spectral" and eig is not None):
            raise UsageError(f"--index builds the kNN graph, which --method {cfg.method} "
                             f"{'with --spectral ' if eig is not None else ''}does not use; drop --index")
        knn, index_info = _graph_through_index(index, database, db, cfg, device, log)
    D, I, used = diffusion_ranking(
        db.vectors, q.vectors, cfg, knn=knn, eig=eig,
        db_owner=db.image_index, n_db_images=len(db.names),
        q_owner=q.image_index, n_q_images=len(q.names), device=device, progress=progress)
    conf = {**used.to_dict(), "database_vectors": int(db.vectors.shape[0]), "regions": db.image_index is not None,
            "database_config": db.config}
    inputs = {"database": str(database), "queries": str(queries)}
    if graph is not None:
        inputs["graph"] = str(graph)
    if spectral is not None:
        inputs["spectral"] = str(spectral)
    if index_info is not None:
        conf["graph_index"] = index_info
        inputs.update({f"index{j}": str(p) for j, p in enumerate(index)})
    return write_ranks(output, Ranks(q.names, db.names, I, D, conf), inputs=inputs)


@writes_output("output", inputs=("database", "graph"))
def prepare_spectral(database: str | os.PathLike, output: str | os.PathLike, config: DiffusionConfig | None = None,
                     *, graph: str | os.PathLike | None = None, device: str = "cpu",
                     progress: Callable[[int], None] | None = None) -> Path:
    """Offline part of Fast Spectral Ranking: the top-``config.rank`` eigenpairs of S, written to an
    ``rkit/spectral`` file. Of ``config`` only the graph settings (``graph_k``, ``mutual``, ``gamma``) and
    ``rank`` are used. ``progress(n)`` is called once, with the number of database vectors, when they are
    decomposed."""
    config = stage_config(config, DiffusionConfig)
    db = _read_database(database)
    g = _read_graph(graph, db, database)
    m = db.vectors.shape[0]
    cfg = resolve_config(DiffusionConfig(method="spectral", graph_k=config.graph_k, mutual=config.mutual,
                                         gamma=config.gamma, rank=config.rank), m, None if g is None else g.k)
    D_g, I_g = (g.scores, g.indices) if g is not None else graph_from_vectors(db.vectors, cfg.graph_k, device=device)
    S = normalize_symmetric(affinity_from_knn(D_g, I_g, gamma=cfg.gamma, mutual=cfg.mutual, k=cfg.graph_k))
    lam, U = top_eigenpairs(S, cfg.rank)
    if progress:
        progress(int(m))
    conf = {"graph_k": cfg.graph_k, "mutual": cfg.mutual, "gamma": cfg.gamma, "rank": int(lam.shape[0]),
            "smallest_eigval": float(lam[-1]) if lam.size else None, "database_vectors": int(m)}
    inputs = {"database": str(database)}
    if graph is not None:
        inputs["graph"] = str(graph)
    return write_spectral(output, SpectralFile(node_names(db), lam, U, conf), inputs=inputs)


__all__ = ["diffuse", "prepare_spectral", "node_names", "DiffusionConfig"]
