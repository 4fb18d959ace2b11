"""Stage functions of ``rkit index build|merge`` and of ``rkit index search|knn --index``: paths in, one file out.

Vectors are streamed from the features file in blocks (``--block-size`` rows), so building, adding shards and
re-ranking never hold the (N, D) matrix. Index files are ``rkit/faiss-index`` (``io/index.py``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from retrievalkit.configs.checks import stage_config
from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.io import KnnGraph, Ranks, write_knn, write_ranks
from retrievalkit.io.features_stream import FeaturesStream
from retrievalkit.io.index import IndexFile, read_index_file, write_index_file
from retrievalkit.io.output import writes_output
from retrievalkit.search import faiss_index as fx

Log = Callable[[str], None]


@dataclass
class IndexBuildConfig:
    """Settings of ``rkit index build`` (the CLI only fills this)."""

    factory: str | None = None  #: faiss factory string; None: ``faiss_index.default_factory(N, D)``
    train_size: int | None = None  #: training sample; None: ``faiss_index.default_train_size``
    block_size: int = 65536  #: rows read from the features file at a time (bounds memory)
    seed: int = 0  #: training sample and k-means seed
    device: str = "cpu"  #: cpu, cuda (all GPUs) or cuda:N — faiss-gpu trains and adds there


@dataclass
class IndexSearchConfig:
    """Settings of ``rkit index search --index`` and ``rkit index knn --index/--factory``."""

    k: int = 100  #: results kept per query
    nprobe: int | None = None  #: IVF lists visited; None: nlist/64 within [8, nlist]
    ef: int | None = None  #: HNSW efSearch; None: max(64, k)
    shortlist: int | None = None  #: re-rank this many candidates exactly with the original vectors
    block_size: int = 4096  #: queries per block
    device: str = "cpu"  #: cpu, cuda (all GPUs, replicated), cuda:N
    gpu_shard: bool = False  #: with --device cuda: each GPU holds a slice instead of a replica


@dataclass
class IndexMergeConfig:
    """Settings of ``rkit index merge``."""

    on_disk: bool = False  #: IVF only: the merged inverted lists go to ``OUTPUT.ivfdata`` beside the output


def _noop(_msg: str) -> None:
    pass


def shard_rows(n: int, shard: tuple[int, int] | None) -> tuple[int, int]:
    """Rows ``[start, end)`` of block I of N (1-based), as ``extract --shard`` splits images."""
    if shard is None:
        return 0, n
    i, parts = shard
    return (i - 1) * n // parts, i * n // parts


def _train_new(fs: FeaturesStream, cfg: IndexBuildConfig, log: Log):
    d = fs.dim
    factory = cfg.factory or fx.default_factory(fs.n, d)
    index = fx.make_index(factory, d)
    if not index.is_trained:
        size = cfg.train_size if cfg.train_size is not None else fx.default_train_size(index, fs.n)
        if size < 1:
            raise UsageError(f"--train-size {size}: must be at least 1")
        xt = fs.sample(min(size, fs.n), seed=cfg.seed, block_size=cfg.block_size)
        log(f"training {factory} on {xt.shape[0]} of {fs.n} vectors")
        if fx.plan_device(cfg.device, fx.family(index)) == "faiss-gpu":
            log(f"device: faiss-gpu ({cfg.device}) for training")
            gpu = fx.to_gpu(index, cfg.device)
            note = fx.train(gpu, xt, cfg.seed)
            index = fx.to_cpu(gpu)
        else:
            note = fx.train(index, xt, cfg.seed)
        if note:
            log(note)
    return factory, index


def _add_blocks(index, fs: FeaturesStream, start: int, end: int, cfg: IndexBuildConfig,
                progress: Callable[[int], None] | None):
    for _s, x in fs.blocks(cfg.block_size, start, end):
        index.add(x)
        if progress:
            progress(x.shape[0])
    return index


@writes_output("output", inputs=("features", "trained"))
def build_index(features: str | os.PathLike, output: str | os.PathLike, config: IndexBuildConfig | None = None,
                *, trained: str | os.PathLike | None = None, shard: tuple[int, int] | None = None,
                train_only: bool = False, progress: Callable[[int], None] | None = None,
                log: Log | None = None) -> Path:
    """Build a faiss index of a features file and write it as an ``rkit/faiss-index`` file.

    Args:
        features: the ``rkit/features`` file (float32 or float16 rows), streamed in ``config.block_size`` rows.
        output: the index file to write.
        trained: a ``--train-only`` index to add to (its factory and training are reused; ``config.factory`` and
            ``config.train_size`` must then be None).
        shard: (I, N): add only rows of block I of N (one part of a sharded build; combine with ``merge_index``
            or search the parts together).
        train_only: write the trained, empty index (the common start of sharded builds).
    Returns: ``output``.
    """
    cfg = stage_config(config, IndexBuildConfig)
    log = log or _noop
    if cfg.block_size < 1:
        raise UsageError(f"--block-size {cfg.block_size}: must be at least 1")
    if train_only and (shard is not None or trained is not None):
        raise UsageError("--train-only writes the trained empty index; it takes neither --shard nor --trained")
    if trained is not None and (cfg.factory is not None or cfg.train_size is not None):
        raise UsageError("--trained reuses that index's factory and training; drop --factory/--train-size")
    output = Path(output)
    with FeaturesStream(features) as fs:
        if fs.n == 0:
            raise BadInputError(f"{features}: the features file holds no vectors")
        fp = fs.fingerprint()
        if trained is not None:
            t = read_index_file(trained)
            if not t.is_trained_only:
                raise BadInputError(f"{trained}: not a trained empty index (it holds {t.ntotal} vectors); make one "
                                    "with rkit index build --train-only")
            if t.dim != fs.dim:
                raise BadInputError(f"{features}: dimension {fs.dim} but the trained index {trained} expects "
                                    f"{t.dim}; train on features of the same model and whitening")
            factory, index = t.factory, fx.deserialize(t.data)
            trained_id = t.trained_id
        else:
            factory, index = _train_new(fs, cfg, log)
            trained_id = fx.index_id(fx.serialize(index))
        cfg_out = dict(asdict(cfg), factory=factory, shard=f"{shard[0]}/{shard[1]}" if shard else None,
                       trained=str(trained) if trained else None, features=str(features))
        if train_only:
            ix = IndexFile([], fx.serialize(index), factory, fs.dim, 0, fp, fs.n, (0, 0), trained_id,
                           config=cfg_out)
            return write_index_file(output, ix, inputs={"features": str(features)})
        start, end = shard_rows(fs.n, shard)
        where = fx.plan_device(cfg.device, fx.family(index))
        if where == "faiss-gpu":
            log(f"device: faiss-gpu ({cfg.device})")
            gpu = _add_blocks(fx.to_gpu(index, cfg.device), fs, start, end, cfg, progress)
            index = fx.to_cpu(gpu)
        else:
            if where == "torch":
                log("device: cpu (a Flat index only stores the vectors; torch searches it on CUDA)")
            _add_blocks(index, fs, start, end, cfg, progress)
        names = fs.names[start:end]
        ix = IndexFile(names, fx.serialize(index), factory, fs.dim, int(index.ntotal), fp, fs.n, (start, end),
                       trained_id, config=cfg_out)
        return write_index_file(output, ix, inputs={"features": str(features)})


def is_index_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an ``rkit/faiss-index`` file (``rkit merge`` combines index parts too)."""
    import h5py

    from retrievalkit.io.index import KIND

    try:
        with h5py.File(path, "r") as f:
            kind = f.attrs.get("kind")
    except OSError:
        return False
    return (kind.decode() if isinstance(kind, bytes) else kind) == KIND


def _check_parts(parts: list[IndexFile]) -> list[IndexFile]:
    """Parts of one index: same features, factory and training; row ranges tiling all rows. Sorted by range."""
    if not parts:
        raise UsageError("give at least one index file")
    p0 = parts[0]
    for p in parts:
        if p.is_trained_only:
            raise BadInputError(f"{p.path}: a trained empty index (--train-only); add vectors with "
                                "rkit index build --trained ... --shard I/N")
        if p.features_fingerprint != p0.features_fingerprint or p.features_rows != p0.features_rows:
            raise BadInputError(f"{p.path}: built from other features than {p0.path} (fingerprints differ); "
                                "combine only parts of one features file")
        if p.dim != p0.dim:
            raise BadInputError(f"{p.path}: dimension {p.dim} differs from {p0.path} ({p0.dim})")
    parts = sorted(parts, key=lambda p: p.row_range)
    pos = 0
    for p in parts:
        if p.row_range[0] != pos:
            what = "overlaps the previous part" if p.row_range[0] < pos else f"starts at row {p.row_range[0]} " \
                f"but the previous parts end at {pos}"
            raise BadInputError(f"{p.path}: {what}; a part is missing or given twice")
        pos = p.row_range[1]
    if pos != p0.features_rows:
        raise BadInputError(f"the parts cover rows 0..{pos} of {p0.features_rows}; a part is missing")
    return parts


def _load(ix: IndexFile):
    ivf = (ix.path.parent / ix.ivfdata) if ix.ivfdata else None
    try:
        return fx.deserialize(ix.data, ivf)
    except BadInputError as e:
        raise BadInputError(f"{ix.path}: {e}") from None


@writes_output("output", inputs=("parts",))
def merge_index(parts: Sequence[str | os.PathLike], output: str | os.PathLike, config: IndexMergeConfig | None = None,
                *, progress: Callable[[int], None] | None = None, log: Log | None = None) -> Path:
    """Combine index parts (``build_index(..., shard=...)`` of one trained index) into one index file.

    ``config.on_disk``: IVF only — the merged inverted lists go to ``OUTPUT.ivfdata`` beside the output
    (memory-mapped when searched; parts are memory-mapped while merging), for indexes larger than RAM.
    ``progress(n)`` advances by the vectors of each part merged.
    """
    on_disk = stage_config(config, IndexMergeConfig).on_disk
    log = log or _noop
    output = Path(output)
    metas = _check_parts([read_index_file(p, with_data=False) for p in parts])
    ids = {m.trained_id for m in metas}
    if len(ids) > 1:
        raise BadInputError(f"{metas[1].path}: added to another trained index than {metas[0].path}; build every "
                            "part with the same --trained file")
    m0 = metas[0]
    cfg = dict(m0.config, shard=None, merged_from=[str(m.path) for m in metas], on_disk=bool(on_disk))
    names = [n for m in metas for n in m.names]
    inputs = {f"part{i}": str(m.path) for i, m in enumerate(metas)}
    if not on_disk:
        target = None
        for m in metas:
            part = _load(read_index_file(m.path))
            if target is None:
                target = part
            else:
                fx.merge_into(target, part, int(target.ntotal))
            log(f"merged {m.path} ({m.ntotal} vectors)")
            if progress:
                progress(int(m.ntotal))
        ix = IndexFile(names, fx.serialize(target), m0.factory, m0.dim, int(target.ntotal), m0.features_fingerprint,
                       m0.features_rows, (0, m0.features_rows), m0.trained_id, config=cfg)
        return write_index_file(output, ix, inputs=inputs)
    ivfname = f"{output.name}.ivfdata"
    work = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent if output.parent.exists() else None))
    try:
        import faiss

        loaded = []
        for i, m in enumerate(metas):
            tmp = work / f"part{i}.faiss"
            _copy_dataset(m.path, tmp)
            with fx.stdout_to_stderr():
                loaded.append(faiss.read_index(str(tmp), faiss.IO_FLAG_MMAP))
        if fx.family(loaded[0]) != "ivf":
            raise UsageError("--on-disk: only IVF indexes have inverted lists to keep on disk; merge without it")
        with fx.stdout_to_stderr():  # the trained index of part 0 (lists mapped, not read); the merge replaces them
            trained = faiss.read_index(str(work / "part0.faiss"), faiss.IO_FLAG_MMAP)
        merged = fx.merge_ondisk(trained, loaded, work / ivfname)
        if progress:
            progress(int(merged.ntotal))
        data = fx.serialize(merged)
        ntotal = int(merged.ntotal)
        del merged, trained, loaded
        os.replace(work / ivfname, output.parent / ivfname)
        ix = IndexFile(names, data, m0.factory, m0.dim, ntotal, m0.features_fingerprint, m0.features_rows,
                       (0, m0.features_rows), m0.trained_id, ivfdata=ivfname, config=cfg)
        out = write_index_file(output, ix, inputs=inputs)
        log(f"inverted lists on disk: {output.parent / ivfname}")
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _copy_dataset(path: Path, dest: Path, chunk: int = 64 << 20) -> None:
    import h5py

    with h5py.File(path, "r") as f, open(dest, "wb") as out:
        ds = f["index"]
        for s in range(0, ds.shape[0], chunk):
            out.write(memoryview(ds[s:s + chunk]))


class _Searcher:
    """One loaded part, ready to search where ``--device`` says."""

    def __init__(self, ix: IndexFile, cfg: IndexSearchConfig, k_search: int, index=None):
        self.ix = ix
        index = _load(ix) if index is None else index
        self.params = fx.set_search_params(index, cfg.nprobe, cfg.ef, k_search)
        self.where = fx.plan_device(cfg.device, fx.family(index))
        self.xb_torch = None
        if self.where == "faiss-gpu":  # the GPU copy keeps nprobe set above
            index = fx.to_gpu(index, cfg.device, cfg.gpu_shard)
        elif self.where == "torch":
            self.xb_torch = fx.flat_vectors(index)
        self.index = index
        self.device = cfg.device

    def search(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k_part = min(k, int(self.ix.ntotal))
        if self.xb_torch is not None:
            from retrievalkit.search.exact import _search_torch

            D, I = _search_torch(xq, self.xb_torch, k_part, len(xq), self.device, None)
        else:
            D, I = fx.search_blocks(self.index, xq, k_part, block_size=max(1, len(xq)))
        I = np.where(I >= 0, I + self.ix.row_range[0], -1)
        return D, I


def _open_parts(indexes, cfg: IndexSearchConfig, k_search: int, log: Log) -> list[_Searcher]:
    metas = _check_parts([read_index_file(p, with_data=False) for p in indexes])
    out = []
    for m in metas:
        s = _Searcher(read_index_file(m.path), cfg, k_search)
        out.append(s)
    where = out[0].where
    extra = ", ".join(f"{k}={v}" for k, v in out[0].params.items())
    log(f"index: {metas[0].factory}, {len(metas)} part(s), {metas[0].features_rows} vectors; device: {where}"
        + (f"; {extra}" if extra else ""))
    return out


def _check_database(database, metas: IndexFile, fs: FeaturesStream) -> None:
    fp = fs.fingerprint()
    if fp != metas.features_fingerprint or fs.n != metas.features_rows:
        raise BadInputError(f"{database}: not the features the index {metas.path} was built from (fingerprint "
                            f"{fp[:12]} vs {metas.features_fingerprint[:12]}, {fs.n} vs {metas.features_rows} rows); "
                            "pass the same --database file, or rebuild the index")


def _search_all(searchers: list[_Searcher], xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    results = [s.search(xq, k) for s in searchers]
    return results[0] if len(results) == 1 else fx.merge_topk(results, k)


@writes_output("output", inputs=("indexes", "queries", "database"))
def search_index(indexes: Sequence[str | os.PathLike], queries: str | os.PathLike, output: str | os.PathLike,
                 config: IndexSearchConfig | None = None, *, database: str | os.PathLike | None = None,
                 progress: Callable[[int], None] | None = None, log: Log | None = None) -> Path:
    """Search a built index (or several parts of one, their top-k merged exactly); write a ranks file.

    ``database``: the features the index was built from (checked by fingerprint); needed for ``shortlist``, where
    each query's ``shortlist`` best candidates are re-scored exactly with the original vectors (read in increasing
    row order) and the best ``k`` kept.
    """
    cfg = stage_config(config, IndexSearchConfig)
    log = log or _noop
    if cfg.k < 1:
        raise UsageError(f"-k {cfg.k}: must be at least 1")
    if cfg.shortlist is not None and cfg.shortlist < 1:
        raise UsageError(f"--shortlist {cfg.shortlist}: must be at least 1")
    if cfg.shortlist is not None and database is None:
        raise UsageError("--shortlist re-ranks with the original vectors: give --database FEATS.h5 (the file the "
                         "index was built from)")
    if cfg.block_size < 1:
        raise UsageError(f"--block-size {cfg.block_size}: must be at least 1")
    indexes = list(indexes)
    metas = _check_parts([read_index_file(p, with_data=False) for p in indexes])
    total = metas[0].features_rows
    k = min(cfg.k, total)
    k_search = min(max(k, cfg.shortlist or 0), total)
    with contextlib.ExitStack() as stack:
        fs = None
        if database is not None:
            fs = stack.enter_context(FeaturesStream(database))
            _check_database(database, metas[0], fs)
        qs = stack.enter_context(FeaturesStream(queries))
        if qs.dim != metas[0].dim:
            raise BadInputError(f"{queries}: query vectors have dimension {qs.dim} but the index {metas[0].path} "
                                f"has {metas[0].dim}; extract both with the same model and whitening")
        searchers = _open_parts(indexes, cfg, k_search, log)
        D = np.empty((qs.n, k), dtype=np.float32)
        I = np.empty((qs.n, k), dtype=np.int64)
        for s, xq in qs.blocks(cfg.block_size):
            d, i = _search_all(searchers, xq, k_search)
            if fs is not None and cfg.shortlist is not None:
                d, i = fx.rerank(xq, i, fs.take, k)
            D[s:s + len(xq)], I[s:s + len(xq)] = d[:, :k], i[:, :k]
            if progress:
                progress(len(xq))
        qnames = qs.names
    db_names = [n for m in metas for n in m.names]
    out_cfg = {"method": "faiss-index", "factory": metas[0].factory, "k": int(k), "search": asdict(cfg),
               "params": searchers[0].params, "device": searchers[0].where, "parts": len(metas)}
    inputs = {"queries": str(queries), **{f"index{j}": str(m.path) for j, m in enumerate(metas)}}
    if database is not None:
        inputs["database"] = str(database)
    return write_ranks(output, Ranks(qnames, db_names, I, D, out_cfg), inputs=inputs)


def drop_self(D: np.ndarray, I: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own id from its (k+1)-result list (by id; when absent, the last result), keep k."""
    is_self = I == rows[:, None]
    first_self = is_self & (np.cumsum(is_self, 1) == 1)
    has_self = first_self.any(1)
    drop = np.where(has_self[:, None], first_self, np.arange(I.shape[1])[None, :] == I.shape[1] - 1)
    n, kk = I.shape
    keep_i = I[~drop].reshape(n, kk - 1)[:, :k]
    keep_d = D[~drop].reshape(n, kk - 1)[:, :k]
    return keep_d, keep_i


def exact_rows_knn(fs: FeaturesStream, rows: np.ndarray, k: int, block_size: int = 65536) -> np.ndarray:
    """Exact k nearest other rows (ids, (len(rows), k)) of the given rows, streaming the database in blocks."""
    import faiss

    xq = fs.take(rows)
    kk = min(k + 1, fs.n)
    best = None
    for s, xb in fs.blocks(block_size):
        d, i = faiss.knn(xq, xb, min(kk, len(xb)), metric=faiss.METRIC_INNER_PRODUCT)
        cur = (d, np.where(i >= 0, i + s, -1))
        best = cur if best is None else fx.merge_topk([best, cur], kk)
    _, I = drop_self(*best, rows, k)
    return I


@writes_output("output", inputs=("database", "index"))
def knn_index(database: str | os.PathLike, output: str | os.PathLike, config: IndexSearchConfig | None = None, *,
              index: Sequence[str | os.PathLike] | None = None, build: IndexBuildConfig | None = None,
              recall_sample: int = 1000, progress: Callable[[int], None] | None = None,
              log: Log | None = None) -> Path:
    """The database's approximate kNN graph (self excluded) through a faiss index; writes a knn file.

    The index is either built files (``index``: one or several parts of an index of ``database``) or built here in
    memory from ``build`` (its ``factory``). ``config.k`` neighbours per item; ``config.shortlist`` re-ranks
    candidates exactly. The graph's recall@k against the exact graph is measured on ``recall_sample`` random rows
    (exact search of those rows, streamed) and stored in the file's config (``recall_at_k``) and logged.
    """
    cfg = IndexSearchConfig(k=50) if config is None else stage_config(config, IndexSearchConfig)
    log = log or _noop
    if cfg.k < 1:
        raise UsageError(f"-k {cfg.k}: must be at least 1")
    if (index is None) == (build is None):
        raise UsageError("give either --index (built index files) or --factory (built here)")
    if cfg.shortlist is not None and cfg.shortlist < 1:
        raise UsageError(f"--shortlist {cfg.shortlist}: must be at least 1")
    if recall_sample < 0:
        raise UsageError(f"--recall-sample {recall_sample}: must be 0 or more")
    with FeaturesStream(database) as fs:
        if fs.n < 2:
            raise BadInputError(f"{database}: a kNN graph needs at least 2 vectors, found {fs.n}")
        kk = min(cfg.k + 1, fs.n)
        k_search = min(max(kk, (cfg.shortlist or 0) + 1), fs.n)
        if index is not None:
            metas = _check_parts([read_index_file(p, with_data=False) for p in index])
            _check_database(database, metas[0], fs)
            searchers = _open_parts(list(index), cfg, k_search, log)
            factory = metas[0].factory
        else:
            factory, ix = _train_new(fs, build, log)
            _add_blocks(ix, fs, 0, fs.n, build, None)
            fp = fs.fingerprint()
            meta = IndexFile(fs.names, None, factory, fs.dim, int(ix.ntotal), fp, fs.n, (0, fs.n), "")
            s = _Searcher(meta, cfg, k_search, index=ix)
            searchers = [s]
            log(f"index: {factory} built in memory; device: {s.where}")
        k_out = cfg.k
        D = np.zeros((fs.n, k_out), dtype=np.float32)
        I = np.full((fs.n, k_out), -1, dtype=np.int64)
        for s0, xq in fs.blocks(cfg.block_size):
            rows = np.arange(s0, s0 + len(xq))
            d, i = _search_all(searchers, xq, k_search)
            if cfg.shortlist is not None:
                d, i = fx.rerank(xq, i, fs.take, k_search)
            d, i = drop_self(d, i, rows, kk - 1)
            d = np.where(i >= 0, d, 0.0)
            D[s0:s0 + len(xq), :i.shape[1]], I[s0:s0 + len(xq), :i.shape[1]] = d, i
            if progress:
                progress(len(xq))
        recall = None
        if recall_sample > 0:
            rows = np.sort(np.random.default_rng(0).choice(fs.n, size=min(recall_sample, fs.n), replace=False))
            ex = exact_rows_knn(fs, rows, kk - 1)
            hits = [len(set(a[a >= 0]) & set(b[b >= 0])) / max(1, (b >= 0).sum()) for a, b in zip(I[rows], ex)]
            recall = float(np.mean(hits))
            log(f"recall@{kk - 1} of the graph against the exact graph on {len(rows)} random items: {recall:.4f}")
        names = fs.names
    out_cfg = {"method": "faiss-index", "factory": factory, "k": int(cfg.k), "search": asdict(cfg),
               "params": searchers[0].params, "recall_at_k": recall, "recall_sample": int(recall_sample)}
    inputs = {"database": str(database)}
    if index is not None:
        inputs.update({f"index{j}": str(p) for j, p in enumerate(index)})
    return write_knn(output, KnnGraph(names, I, D, out_cfg), inputs=inputs)


class IndexSearcher:
    """A built index (one or several parts) searched from arrays, for stages that search where they would search
    the database features exactly: ``diffuse --index`` (the kNN graph), ``copy-detect --index`` (references).

    ``database``: the features file the index was built from; checked by fingerprint and names, so the index's
    row ``i`` is the database's row ``i``. ``k_max``: the most results asked per query (HNSW's default efSearch).
    """

    def __init__(self, indexes: Sequence[str | os.PathLike], database: str | os.PathLike, k_max: int,
                 nprobe: int | None = None, ef: int | None = None, device: str = "cpu", log: Log | None = None):
        indexes = [Path(p) for p in indexes]
        metas = _check_parts([read_index_file(p, with_data=False) for p in indexes])
        with FeaturesStream(database) as fs:
            _check_database(database, metas[0], fs)
            names = fs.names
        index_names = [n for m in metas for n in m.names]
        if index_names != names:
            first = next((i for i, (a, b) in enumerate(zip(index_names, names)) if a != b), len(names))
            raise BadInputError(f"{metas[0].path}: the index names its vectors differently from {database} (first "
                                f"difference at row {first}); rebuild the index from this features file")
        self.total = metas[0].features_rows
        self.factory = metas[0].factory
        cfg = IndexSearchConfig(k=max(1, k_max), nprobe=nprobe, ef=ef, device=device)
        self.searchers = _open_parts(indexes, cfg, min(max(1, k_max), self.total), log or _noop)
        self.params = self.searchers[0].params
        self.where = self.searchers[0].where
        self.paths = indexes

    def describe(self) -> dict:
        """What goes into the output's config."""
        return {"method": "faiss-index", "factory": self.factory, "params": self.params, "device": self.where,
                "parts": len(self.searchers)}

    def search(self, xq: np.ndarray, k: int, block_size: int = 4096,
               progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(D (Q, k) float32 decreasing, -inf where missing; I (Q, k) int64 database rows, -1 where missing)."""
        xq = np.ascontiguousarray(xq, dtype=np.float32)
        k = min(int(k), self.total)
        D = np.empty((xq.shape[0], k), np.float32)
        I = np.empty((xq.shape[0], k), np.int64)
        for s in range(0, xq.shape[0], block_size):
            d, i = _search_all(self.searchers, xq[s:s + block_size], k)
            D[s:s + len(d)], I[s:s + len(d)] = d[:, :k], i[:, :k]
            if progress:
                progress(len(d))
        return D, I

    def knn(self, xb: np.ndarray, k: int, block_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Each database row's ``k`` nearest other rows through the index (self dropped by id), as
        ``search.exact.knn_graph`` returns them: scores 0 and ids -1 where fewer than ``k`` were found."""
        n = xb.shape[0]
        kk = min(k + 1, n)
        D = np.zeros((n, k), np.float32)
        I = np.full((n, k), -1, np.int64)
        for s in range(0, n, block_size):
            x = np.ascontiguousarray(xb[s:s + block_size], dtype=np.float32)
            d, i = _search_all(self.searchers, x, kk)
            d, i = drop_self(d, i, np.arange(s, s + len(x)), kk - 1)
            m = min(k, i.shape[1])
            D[s:s + len(x), :m] = np.where(i[:, :m] >= 0, d[:, :m], 0.0)
            I[s:s + len(x), :m] = i[:, :m]
        return D, I
