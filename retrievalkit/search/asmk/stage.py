"""ASMK stage functions: build an index file from a locals file, search query locals against index files."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from retrievalkit.configs.checks import stage_config
from retrievalkit.configs.search import AsmkConfig, AsmkSearchConfig
from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.images.discover import select_shard
from retrievalkit.io.asmk import codebook_id, read_asmk_indexes, write_asmk_index
from retrievalkit.io.locals import count_locals, read_locals
from retrievalkit.io.output import writes_output
from retrievalkit.io.ranks import Ranks, write_ranks
from retrievalkit.search.asmk.codebook import auto_codebook_size, train_codebook
from retrievalkit.search.asmk.ivf import (
    InvertedFileBuilder,
    search_asmk,
    search_codebooks,
)
from retrievalkit.search.asmk.kernel import DEFAULT_ALPHA, DEFAULT_TAU


@writes_output("output", inputs=("locals_path", "codebook", "train"))
def build_asmk(locals_path: str | os.PathLike, output: str | os.PathLike, config: AsmkConfig | None = None, *,
               codebook: str | os.PathLike | None = None, train: str | os.PathLike | None = None,
               shard: tuple[int, int] | None = None, progress: Callable[[int], None] | None = None) -> Path:
    """Build an ASMK* index of a locals file and write it (``rkit/asmk``); returns the output path.

    Args:
        locals_path: database locals (``rkit/locals``).
        config: :class:`~retrievalkit.configs.search.AsmkConfig` (None: the defaults). ``codebook_size``: number
            of visual words (None: :func:`auto_codebook_size` of the training descriptors); ``block_size``:
            database images quantised and aggregated at a time (bounds memory); ``codebooks``: train this many
            codebooks, k-means seeds ``seed``, ``seed + 1``, ..., and index the images with each (one inverted
            file per codebook, all in the one output file); searching the file averages the codebooks' scores.
            With ``codebook`` all codebooks of that file are reused instead.
        codebook: an ASMK index file whose codebook to reuse (required with ``shard``, so shards agree).
        train: a locals file to train the codebook on (default: ``locals_path`` itself).
        shard: (i, n): index only the i-th of n contiguous blocks of images.
    """
    config = stage_config(config, AsmkConfig)
    codebook_size, ma, chunk = config.codebook_size, config.ma, config.block_size
    niter, seed, codebooks = config.iters, config.seed, config.codebooks
    n_img, n_desc, dim = count_locals(locals_path)
    start, stop = select_shard(list(range(n_img)), shard)
    inputs = {"locals": str(locals_path)}
    all_centroids, seeds = _codebooks(locals_path, dim, codebook_size, codebook, train, shard, niter, seed,
                                      codebooks, inputs)
    loc_config = None
    names: list[str] = []
    builders = [InvertedFileBuilder(c, ma) for c in all_centroids]
    for a in range(start, stop, chunk):
        b = min(stop, a + chunk)
        part = read_locals(locals_path, rows=slice(a, b))
        loc_config = part.config
        names.extend(part.names)
        for builder in builders:
            builder.add(part.descriptors, part.offsets)
        if progress:
            progress(b - a)
    settings = {"codebook_size": int(all_centroids[0].shape[0]), "ma": int(ma), "binary": True,
              "alpha": DEFAULT_ALPHA, "tau": DEFAULT_TAU, "locals": loc_config or {},
              "shard": list(shard) if shard else None, "shard_range": [start, stop], "total_images": n_img,
              "codebook_from": str(codebook) if codebook else str(train or locals_path),
              "codebook_id": codebook_id(all_centroids[0])}
    if seeds is not None:
        settings["seeds"] = seeds
    ivfs = [builder.finish(settings) for builder in builders]
    return write_asmk_index(Path(output), names, ivfs, inputs)


@writes_output("output", inputs=("indexes", "queries"))
def search_asmk_files(indexes: Sequence[str | os.PathLike] | str | os.PathLike, queries: str | os.PathLike,
                      output: str | os.PathLike, config: AsmkSearchConfig | None = None, *,
                      progress: Callable[[int], None] | None = None) -> Path:
    """Rank query locals against one ASMK index (or several shards of one) and write a ranks file.

    Shards must share their codebooks; their database names are concatenated in the order given. An index of
    several codebooks scores each image by the mean of its codebooks' ASMK* scores (:func:`search_codebooks`).
    """
    config = stage_config(config, AsmkSearchConfig)
    k, ma, alpha, tau = config.top_k, config.ma, config.alpha, config.tau
    if isinstance(indexes, (str, os.PathLike)):
        indexes = [indexes]
    q = read_locals(queries)
    all_i, all_s, db_names, base, cb = [], [], [], 0, None
    n_cb = 1
    for path in indexes:
        names, ivfs = read_asmk_indexes(path)
        ivf = ivfs[0]
        cid = [v.config.get("codebook_id") for v in ivfs]
        if cb is not None and cid != cb:
            raise BadInputError(f"{path}: built on other codebooks than {indexes[0]}; shards must share "
                                "them (--codebook)")
        cb, n_cb = cid, len(ivfs)
        if ivf.dim != q.dim:
            raise BadInputError(f"{queries}: {q.dim}-d descriptors but {path} indexes {ivf.dim}-d ones; extract "
                                "queries with the database's method and PCA")
        qp, dp = q.config.get("pca"), ivf.config.get("locals", {}).get("pca")
        if qp != dp:
            raise BadInputError(f"{queries}: its PCA-whitening ({qp}) differs from the database's ({dp}) in "
                                f"{path}; extract queries with --pca DATABASE_LOCALS")
        one_progress = progress if len(indexes) == 1 else None
        if n_cb == 1:
            sc, idx = search_asmk(ivf, q.descriptors, q.offsets, k=k, ma=ma, alpha=alpha, tau=tau,
                                  progress=one_progress)
        else:
            sc, idx = search_codebooks(ivfs, q.descriptors, q.offsets, k=k, ma=ma, alpha=alpha, tau=tau,
                                       progress=one_progress)
        all_i.append(np.where(idx >= 0, idx + base, -1))
        all_s.append(np.where(idx >= 0, sc, -np.inf))
        db_names.extend(names)
        base += len(names)
    idx = np.concatenate(all_i, 1)
    sc = np.concatenate(all_s, 1)
    order = np.argsort(-sc, axis=1, kind="stable")[:, :k]
    idx = np.take_along_axis(idx, order, 1)
    sc = np.take_along_axis(sc, order, 1)
    sc[idx < 0] = 0
    settings = {"method": "asmk*", "k": int(k), "ma_query": int(ma), "alpha": float(alpha), "tau": float(tau),
              "indexes": [str(p) for p in indexes], "queries_without_features": int((q.counts() == 0).sum()),
              "codebooks": n_cb}
    return write_ranks(output, Ranks(q.names, db_names, idx, sc.astype(np.float32), settings),
                       inputs={"queries": str(queries), **{f"index{i}": str(p) for i, p in enumerate(indexes)}})


def _codebooks(locals_path, dim: int, codebook_size: int | None, codebook, train, shard, niter: int, seed: int,
               count: int, inputs: dict) -> tuple[list[np.ndarray], list[int] | None]:
    """The codebooks of a new index and their k-means seeds: all those of the index file ``codebook`` (seeds
    None: not trained here), or ``count`` trained on ``train`` (default: the database locals) with seeds
    ``seed``, ``seed + 1``, .... Records their source in ``inputs``."""
    if codebook is not None:
        _, cb_ivfs = read_asmk_indexes(codebook, codebook_only=True)
        if cb_ivfs[0].codebook.shape[1] != dim:
            raise BadInputError(f"{codebook}: its codebook is {cb_ivfs[0].codebook.shape[1]}-d but {locals_path} "
                                f"holds {dim}-d descriptors; use locals of the same kind")
        inputs["codebook"] = str(codebook)
        return [v.codebook for v in cb_ivfs], cb_ivfs[0].config.get("seeds")
    if shard is not None:
        raise UsageError("--shard needs --codebook FILE (train it once, e.g. on the first shard or a "
                         "training set) so all shards share one codebook")
    tr = read_locals(train or locals_path)
    if tr.dim != dim:
        raise BadInputError(f"{train}: {tr.dim}-d descriptors, {locals_path} has {dim}-d; same kind needed")
    size = codebook_size or auto_codebook_size(tr.descriptors.shape[0])
    if tr.descriptors.shape[0] < size:
        raise BadInputError(f"{train or locals_path}: {tr.descriptors.shape[0]} descriptors cannot train "
                            f"{size} words; lower --codebook-size")
    if train is not None:
        inputs["train"] = str(train)
    seeds = [seed + j for j in range(count)]
    return [train_codebook(tr.descriptors, size, niter=niter, seed=s) for s in seeds], seeds


__all__ = ["build_asmk", "search_asmk_files", "search_codebooks"]
