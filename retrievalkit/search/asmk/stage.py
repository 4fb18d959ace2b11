"""ASMK stage functions: build an index file from a locals file, search query locals against index files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.images.discover import select_shard
from retrievalkit.io.asmk import codebook_id, read_asmk_index, write_asmk_index
from retrievalkit.io.locals import count_locals, read_locals
from retrievalkit.io.output import writes_output
from retrievalkit.io.ranks import Ranks, write_ranks
from retrievalkit.search.asmk.codebook import auto_codebook_size, train_codebook
from retrievalkit.search.asmk.ivf import DEFAULT_MA_DB, DEFAULT_MA_QUERY, InvertedFileBuilder, search_asmk
from retrievalkit.search.asmk.kernel import DEFAULT_ALPHA, DEFAULT_TAU


@writes_output("output", inputs=("locals_path", "codebook", "train"))
def build_asmk(locals_path, output, *, codebook_size: int | None = None, codebook=None, train=None,
               ma: int = DEFAULT_MA_DB, chunk: int = 500, shard: tuple[int, int] | None = None,
               niter: int = 10, seed: int = 0, progress: Callable[[int], None] | None = None) -> Path:
    """Build an ASMK* index of a locals file and write it (``rkit/asmk``); returns the output path.

    Args:
        locals_path: database locals (``rkit/locals``).
        codebook_size: number of visual words; None: :func:`auto_codebook_size` of the training descriptors.
        codebook: an ASMK index file whose codebook to reuse (required with ``shard``, so shards agree).
        train: a locals file to train the codebook on (default: ``locals_path`` itself).
        chunk: database images quantised and aggregated at a time (bounds memory).
        shard: (i, n): index only the i-th of n contiguous blocks of images.
    """
    if ma < 1 or chunk < 1:
        raise UsageError(f"--ma {ma} / --block-size {chunk}: must be at least 1")
    n_img, n_desc, dim = count_locals(locals_path)
    start, stop = select_shard(list(range(n_img)), shard)
    inputs = {"locals": str(locals_path)}
    centroids = _codebook(locals_path, dim, codebook_size, codebook, train, shard, niter, seed, inputs)
    loc_config = None
    names: list[str] = []
    builder = InvertedFileBuilder(centroids, ma)
    for a in range(start, stop, chunk):
        b = min(stop, a + chunk)
        part = read_locals(locals_path, rows=slice(a, b))
        loc_config = part.config
        names.extend(part.names)
        builder.add(part.descriptors, part.offsets)
        if progress:
            progress(b - a)
    config = {"codebook_size": int(centroids.shape[0]), "ma": int(ma), "binary": True,
              "alpha": DEFAULT_ALPHA, "tau": DEFAULT_TAU, "locals": loc_config or {},
              "shard": list(shard) if shard else None, "shard_range": [start, stop], "total_images": n_img,
              "codebook_from": str(codebook) if codebook else str(train or locals_path),
              "codebook_id": codebook_id(centroids)}
    ivf = builder.finish(config)
    return write_asmk_index(Path(output), names, ivf, inputs)


@writes_output("output", inputs=("indexes", "queries"))
def search_asmk_files(indexes, queries, output, *, k: int = 100, ma: int = DEFAULT_MA_QUERY,
                      alpha: float = DEFAULT_ALPHA, tau: float = DEFAULT_TAU,
                      progress: Callable[[int], None] | None = None) -> Path:
    """Rank query locals against one ASMK index (or several shards of one) and write a ranks file.

    Shards must share a codebook; their database names are concatenated in the order given.
    """
    if k < 1 or ma < 1:
        raise UsageError(f"-k {k} / --ma {ma}: must be at least 1")
    if isinstance(indexes, (str, Path)):
        indexes = [indexes]
    q = read_locals(queries)
    all_i, all_s, db_names, base, cb = [], [], [], 0, None
    for path in indexes:
        names, ivf = read_asmk_index(path)
        cid = ivf.config.get("codebook_id")
        if cb is not None and cid != cb:
            raise BadInputError(f"{path}: built on another codebook than {indexes[0]}; shards must share "
                                "one (--codebook)")
        cb = cid
        if ivf.dim != q.dim:
            raise BadInputError(f"{queries}: {q.dim}-d descriptors but {path} indexes {ivf.dim}-d ones; extract "
                                "queries with the database's method and PCA")
        qp, dp = q.config.get("pca"), ivf.config.get("locals", {}).get("pca")
        if qp != dp:
            raise BadInputError(f"{queries}: its PCA-whitening ({qp}) differs from the database's ({dp}) in "
                                f"{path}; extract queries with --pca DATABASE_LOCALS")
        sc, idx = search_asmk(ivf, q.descriptors, q.offsets, k=k, ma=ma, alpha=alpha, tau=tau,
                              progress=progress if len(indexes) == 1 else None)
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
    config = {"method": "asmk*", "k": int(k), "ma_query": int(ma), "alpha": float(alpha), "tau": float(tau),
              "indexes": [str(p) for p in indexes], "queries_without_features": int((q.counts() == 0).sum())}
    return write_ranks(output, Ranks(q.names, db_names, idx, sc.astype(np.float32), config),
                       inputs={"queries": str(queries), **{f"index{i}": str(p) for i, p in enumerate(indexes)}})


def _codebook(locals_path, dim: int, codebook_size: int | None, codebook, train, shard, niter: int, seed: int,
              inputs: dict) -> np.ndarray:
    """The codebook of a new index: reused from the index file ``codebook``, or trained on ``train`` (default:
    the database locals). Records its source in ``inputs``."""
    if codebook is not None:
        _, cb_ivf = read_asmk_index(codebook, codebook_only=True)
        centroids = cb_ivf.codebook
        if centroids.shape[1] != dim:
            raise BadInputError(f"{codebook}: its codebook is {centroids.shape[1]}-d but {locals_path} holds "
                                f"{dim}-d descriptors; use locals of the same kind")
        inputs["codebook"] = str(codebook)
        return centroids
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
    return train_codebook(tr.descriptors, size, niter=niter, seed=seed)


__all__ = ["build_asmk", "search_asmk_files"]
