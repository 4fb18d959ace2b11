"""ASMK* — the Aggregated Selective Match Kernel with binarised residuals (Tolias, Avrithis & Jégou, ICCV 2013).

Local descriptors are quantised on a k-means codebook (multiple assignment: ``ma`` nearest words each). In each
image the residuals ``x - c`` of the descriptors assigned to word ``c`` are summed and binarised per dimension
(bit = sum > 0), packed 8 bits a byte (128-D → 16 bytes). Two images match on their shared words; a word pair
with codes of Hamming distance ``h`` over ``D`` bits has similarity ``u = 1 - 2h/D`` ∈ [-1, 1], the selectivity
function keeps ``σ(u) = u^α`` for ``u >= τ`` (α = 3, τ = 0), and the image score is

    K(q, d) = Σ_{c shared} σ(u_c) / sqrt(|W_q| · |W_d|)

with ``|W|`` the number of distinct words of an image (its self-similarity, as every σ(1) = 1). No idf, as the
HOW/ASMK defaults. The inverted file keeps, per word, the database images holding it and their codes, sorted by
word (offsets), so a query touches only the posting lists of its own words.

faiss is used for k-means and assignment (faiss is imported only under ``retrievalkit/search``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from retrievalkit.io.output import writes_output

#: popcount of every byte value
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)

DEFAULT_ALPHA = 3.0
DEFAULT_TAU = 0.0
DEFAULT_MA_DB = 1
DEFAULT_MA_QUERY = 5


# --------------------------------------------------------------------------------------------- codebook
def auto_codebook_size(n_descriptors: int) -> int:
    """A codebook size for ``n_descriptors``: a power of two near n/256 (Oxford5k with 65k words has about
    that ratio), clipped to [256, 65536]."""
    if n_descriptors <= 0:
        return 256
    k = 2 ** int(round(np.log2(max(n_descriptors / 256.0, 1.0))))
    return int(min(65536, max(256, k)))


def train_codebook(x: np.ndarray, k: int, niter: int = 10, seed: int = 0, max_points_per_word: int = 32,
                   ) -> np.ndarray:
    """k-means codebook (faiss) on rows of ``x`` (M, D): returns (k, D) float32 centroids.

    At most ``max_points_per_word * k`` rows (a random sample) are clustered.
    """
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] < k:
        raise ValueError(f"train_codebook: {x.shape[0]} descriptors cannot make {k} words; lower the size")
    rng = np.random.default_rng(seed)
    if x.shape[0] > max_points_per_word * k:
        x = x[np.sort(rng.choice(x.shape[0], max_points_per_word * k, replace=False))]
    km = faiss.Kmeans(x.shape[1], int(k), niter=int(niter), seed=int(seed), verbose=False,
                      max_points_per_centroid=max(max_points_per_word, 1), min_points_per_centroid=1,
                      spherical=False)
    km.train(x)
    return np.ascontiguousarray(km.centroids, dtype=np.float32)


class Quantizer:
    """Nearest-word assignment on a fixed codebook (exact, faiss flat L2)."""

    def __init__(self, codebook: np.ndarray):
        import faiss

        self.codebook = np.ascontiguousarray(codebook, dtype=np.float32)
        self.index = faiss.IndexFlatL2(self.codebook.shape[1])
        self.index.add(self.codebook)

    @property
    def size(self) -> int:
        return int(self.codebook.shape[0])

    def assign(self, x: np.ndarray, ma: int = 1) -> np.ndarray:
        """(M, D) descriptors → (M, ma) int64 word ids, nearest first."""
        ma = max(1, min(int(ma), self.size))
        if x.shape[0] == 0:
            return np.zeros((0, ma), np.int64)
        _, ids = self.index.search(np.ascontiguousarray(x, dtype=np.float32), ma)
        return ids.astype(np.int64)


# --------------------------------------------------------------------------------------------- kernel
def pack_bits(x: np.ndarray) -> np.ndarray:
    """Binarise rows of ``x`` (E, D) (bit = value > 0) and pack them: (E, ceil(D/8)) uint8, big-endian bits."""
    return np.packbits(np.asarray(x) > 0, axis=1)


def unpack_bits(codes: np.ndarray, dim: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: (E, B) uint8 → (E, dim) bool."""
    return np.unpackbits(np.asarray(codes, dtype=np.uint8), axis=1, count=dim).astype(bool)


def hamming_packed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Hamming distances between packed codes ``a`` and ``b`` (both (E, B) uint8, or broadcastable)."""
    a, b = np.asarray(a, np.uint8), np.asarray(b, np.uint8)
    if a.shape[-1] % 8 == 0 and hasattr(np, "bitwise_count") and a.flags.c_contiguous and b.flags.c_contiguous:
        # 64 bits at a time (numpy >= 2.0 has a native popcount)
        x = np.bitwise_xor(a.view(np.uint64), b.view(np.uint64))
        return np.bitwise_count(x).sum(axis=-1, dtype=np.int64)
    return _POPCOUNT[np.bitwise_xor(a, b)].sum(axis=-1, dtype=np.int64)


def selectivity(u: np.ndarray, alpha: float = DEFAULT_ALPHA, tau: float = DEFAULT_TAU) -> np.ndarray:
    """ASMK's selectivity function: ``sign(u)|u|^α`` where ``u >= τ``, else 0."""
    u = np.asarray(u, dtype=np.float64)
    return np.where(u >= tau, np.sign(u) * np.abs(u) ** alpha, 0.0)


def aggregate(x: np.ndarray, words: np.ndarray, image_ids: np.ndarray, codebook: np.ndarray,
              binary: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aggregate residuals per (image, word).

    Args:
        x: (M, D) descriptors; words: (M, ma) word ids (multiple assignment: each descriptor contributes to
            each of its words); image_ids: (M,) int image of each descriptor; codebook: (K, D).
    Returns:
        (entry_images (E,) int64, entry_words (E,) int64, codes): codes (E, ceil(D/8)) uint8 packed signs of the
        residual sums when ``binary``, else (E, D) float32 L2-normalised residual sums. Entries are sorted by
        (image, word).
    """
    x = np.asarray(x, dtype=np.float32)
    words = np.asarray(words, dtype=np.int64).reshape(x.shape[0], -1)
    image_ids = np.asarray(image_ids, dtype=np.int64)
    k = codebook.shape[0]
    if x.shape[0] == 0:
        width = (x.shape[1] + 7) // 8 if binary else x.shape[1]
        return (np.zeros(0, np.int64), np.zeros(0, np.int64),
                np.zeros((0, width), np.uint8 if binary else np.float32))
    from scipy import sparse

    ma = words.shape[1]
    rows = np.repeat(np.arange(x.shape[0]), ma)
    wflat = words.reshape(-1)
    key = image_ids[rows] * k + wflat
    ukey, group, count = np.unique(key, return_inverse=True, return_counts=True)
    # Σ_group (x - c) = Σ_group x - n·c (one word per group); the sum as a sparse (E × M) @ (M × D) product
    member = sparse.csr_matrix((np.ones(rows.shape[0], np.float32), (group.ravel(), rows)),
                               shape=(ukey.shape[0], x.shape[0]))
    sums = np.asarray(member @ x) - count[:, None].astype(np.float32) * codebook[ukey % k]
    if binary:
        codes = pack_bits(sums)
    else:
        codes = (sums / (np.linalg.norm(sums, axis=1, keepdims=True) + 1e-12)).astype(np.float32)
    return ukey // k, ukey % k, codes


# --------------------------------------------------------------------------------------------- inverted file
@dataclass
class InvertedFile:
    """ASMK* inverted file over N database images.

    Attributes:
        codebook: (K, D) float32. word_offsets: (K+1,) int64: word c's entries are rows
        word_offsets[c]:word_offsets[c+1] of ``entry_images`` (E,) int32 and ``entry_codes`` (E, B) uint8.
        image_words: (N,) int64 number of entries (distinct words) per image: its self-similarity.
    """

    codebook: np.ndarray
    word_offsets: np.ndarray
    entry_images: np.ndarray
    entry_codes: np.ndarray
    image_words: np.ndarray
    dim: int
    config: dict = field(default_factory=dict)

    @property
    def n_images(self) -> int:
        return int(self.image_words.shape[0])

    @property
    def n_entries(self) -> int:
        return int(self.entry_images.shape[0])

    def nbytes(self) -> int:
        return int(self.word_offsets.nbytes + self.entry_images.nbytes + self.entry_codes.nbytes
                   + self.image_words.nbytes)


class InvertedFileBuilder:
    """Add database images chunk by chunk, then :meth:`finish` sorts the entries by word."""

    def __init__(self, codebook: np.ndarray, ma: int = DEFAULT_MA_DB):
        self.quantizer = Quantizer(codebook)
        self.codebook = self.quantizer.codebook
        self.ma = ma
        self.n_images = 0
        self._images: list[np.ndarray] = []
        self._words: list[np.ndarray] = []
        self._codes: list[np.ndarray] = []
        self._counts: list[np.ndarray] = []

    def add(self, descriptors: np.ndarray, offsets: np.ndarray) -> None:
        """Add a chunk of images: ``descriptors`` (M, D) and their ``offsets`` (n+1,) (image i owns rows
        offsets[i]:offsets[i+1]); they get ids ``n_images .. n_images + n - 1``."""
        offsets = np.asarray(offsets, dtype=np.int64)
        n = offsets.shape[0] - 1
        counts = np.diff(offsets)
        img = np.repeat(np.arange(n, dtype=np.int64), counts)
        words = self.quantizer.assign(descriptors, self.ma)
        ei, ew, codes = aggregate(descriptors, words, img, self.codebook, binary=True)
        self._images.append((ei + self.n_images).astype(np.int32))
        self._words.append(ew)
        self._codes.append(codes)
        self._counts.append(np.bincount(ei, minlength=n).astype(np.int64))
        self.n_images += n

    def finish(self, config: dict | None = None) -> InvertedFile:
        k, d = self.codebook.shape
        width = (d + 7) // 8
        images = np.concatenate(self._images) if self._images else np.zeros(0, np.int32)
        words = np.concatenate(self._words) if self._words else np.zeros(0, np.int64)
        codes = np.concatenate(self._codes) if self._codes else np.zeros((0, width), np.uint8)
        order = np.argsort(words, kind="stable")  # stable: images stay ascending within a word
        offsets = np.zeros(k + 1, np.int64)
        np.cumsum(np.bincount(words, minlength=k), out=offsets[1:])
        image_words = np.concatenate(self._counts) if self._counts else np.zeros(0, np.int64)
        return InvertedFile(self.codebook, offsets, images[order], codes[order], image_words, d, dict(config or {}))


def build_inverted_file(codebook: np.ndarray, chunks: Iterable[tuple[np.ndarray, np.ndarray]],
                        ma: int = DEFAULT_MA_DB, config: dict | None = None,
                        progress: Callable[[int], None] | None = None) -> InvertedFile:
    """Build an inverted file from chunks of (descriptors (M, D), offsets (n+1,))."""
    b = InvertedFileBuilder(codebook, ma)
    for desc, off in chunks:
        b.add(desc, off)
        if progress:
            progress(len(off) - 1)
    return b.finish(config)


def query_scores(ivf: InvertedFile, quantizer: Quantizer, descriptors: np.ndarray, ma: int = DEFAULT_MA_QUERY,
                 alpha: float = DEFAULT_ALPHA, tau: float = DEFAULT_TAU) -> np.ndarray:
    """ASMK* scores (N,) float64 of one query image's local ``descriptors`` (m, D) against every database image.

    A query without descriptors scores 0 everywhere.
    """
    scores = np.zeros(ivf.n_images, np.float64)
    if descriptors.shape[0] == 0 or ivf.n_images == 0:
        return scores
    words = quantizer.assign(descriptors, ma)
    _, qw, qc = aggregate(descriptors, words, np.zeros(descriptors.shape[0], np.int64), ivf.codebook, binary=True)
    starts, stops = ivf.word_offsets[qw], ivf.word_offsets[qw + 1]
    lengths = stops - starts
    total = int(lengths.sum())
    if total == 0:
        return scores
    # the postings of all query words, flattened; each posting remembers its query word
    owner = np.repeat(np.arange(qw.shape[0]), lengths)
    pos = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths) + np.repeat(starts, lengths)
    h = hamming_packed(ivf.entry_codes[pos], qc[owner])
    u = 1.0 - 2.0 * h / ivf.dim
    s = selectivity(u, alpha, tau)
    imgs = ivf.entry_images[pos]
    scores = np.bincount(imgs, weights=s, minlength=ivf.n_images).astype(np.float64)
    norm = np.sqrt(np.maximum(ivf.image_words, 1).astype(np.float64) * qw.shape[0])
    return scores / norm


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` highest scores, best first; ties broken by index (stable)."""
    k = min(k, scores.shape[0])
    if k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    if k < scores.shape[0]:
        part = np.argpartition(-scores, k - 1)[:k]
    else:
        part = np.arange(scores.shape[0])
    order = part[np.lexsort((part, -scores[part]))]
    return order.astype(np.int64), scores[order].astype(np.float32)


def search_asmk(ivf: InvertedFile, query_descriptors: np.ndarray, query_offsets: np.ndarray, k: int = 100,
                ma: int = DEFAULT_MA_QUERY, alpha: float = DEFAULT_ALPHA, tau: float = DEFAULT_TAU,
                progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rank the database for each query image.

    Returns (I (Q, k) int64 with -1 pads, S (Q, k) float32). Only database images with a positive score are
    returned (a query with no local features gets an all -1 row).
    """
    quantizer = Quantizer(ivf.codebook)
    q = len(query_offsets) - 1
    k = max(1, int(k))
    idx = np.full((q, k), -1, np.int64)
    sc = np.zeros((q, k), np.float32)
    for i in range(q):
        a, b = int(query_offsets[i]), int(query_offsets[i + 1])
        s = query_scores(ivf, quantizer, query_descriptors[a:b], ma, alpha, tau)
        ii, ss = top_k(s, k)
        keep = ss > 0
        n = int(keep.sum())
        idx[i, :n], sc[i, :n] = ii[keep], ss[keep]
        if progress:
            progress(1)
    return idx, sc



# --------------------------------------------------------------------------------------------- stages
@writes_output("output", inputs=("locals_path", "codebook", "train"))
def build_asmk(locals_path, output, *, codebook_size: int | None = None, codebook=None, train=None,
               ma: int = DEFAULT_MA_DB, chunk: int = 500, shard: tuple[int, int] | None = None,
               niter: int = 10, seed: int = 0, progress: Callable[[int], None] | None = None):
    """Build an ASMK* index of a locals file and write it (``rkit/asmk``); returns the output path.

    Args:
        locals_path: database locals (``rkit/locals``).
        codebook_size: number of visual words; None: :func:`auto_codebook_size` of the training descriptors.
        codebook: an ASMK index file whose codebook to reuse (required with ``shard``, so shards agree).
        train: a locals file to train the codebook on (default: ``locals_path`` itself).
        chunk: database images quantised and aggregated at a time (bounds memory).
        shard: (i, n): index only the i-th of n contiguous blocks of images.
    """
    from pathlib import Path

    from retrievalkit.errors import BadInputError, UsageError
    from retrievalkit.images.discover import select_shard
    from retrievalkit.io.asmk import codebook_id, read_asmk_index, write_asmk_index
    from retrievalkit.io.locals import count_locals, read_locals

    if ma < 1 or chunk < 1:
        raise UsageError(f"--ma {ma} / --block-size {chunk}: must be at least 1")
    n_img, n_desc, dim = count_locals(locals_path)
    start, stop = select_shard(list(range(n_img)), shard)
    inputs = {"locals": str(locals_path)}
    if codebook is not None:
        _, cb_ivf = read_asmk_index(codebook, codebook_only=True)
        centroids = cb_ivf.codebook
        if centroids.shape[1] != dim:
            raise BadInputError(f"{codebook}: its codebook is {centroids.shape[1]}-d but {locals_path} holds "
                                f"{dim}-d descriptors; use locals of the same kind")
        inputs["codebook"] = str(codebook)
    else:
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
        centroids = train_codebook(tr.descriptors, size, niter=niter, seed=seed)
        del tr
        if train is not None:
            inputs["train"] = str(train)
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
                      progress: Callable[[int], None] | None = None):
    """Rank query locals against one ASMK index (or several shards of one) and write a ranks file.

    Shards must share a codebook; their database names are concatenated in the order given.
    """
    from pathlib import Path

    from retrievalkit.errors import BadInputError, UsageError
    from retrievalkit.io.asmk import read_asmk_index
    from retrievalkit.io.locals import read_locals
    from retrievalkit.io.ranks import Ranks, write_ranks

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
        idx, sc = search_asmk(ivf, q.descriptors, q.offsets, k=k, ma=ma, alpha=alpha, tau=tau,
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


def fuse_scores(rows: list[np.ndarray]) -> np.ndarray:
    """Late fusion of several rankings of one query: the sum of per-query standardised scores.

    Args:
        rows: one (N,) score row per method over the same N database images, NaN where the method did
            not list the image (it gets that method's lowest listed score, i.e. "at most as similar as its
            last listed image"). A row without any listed image (e.g. a query without local features)
            contributes nothing.
    Returns:
        (N,) float64 fused scores: Σ_m (s_m − mean(s_m)) / std(s_m), each method weighted equally, so
        methods on different scales (cosine similarity, ASMK score) need no tuned weights.
    """
    out = None
    for r in rows:
        r = np.asarray(r, dtype=np.float64)
        out = np.zeros_like(r) if out is None else out
        listed = np.isfinite(r)
        if not listed.any():
            continue
        r = np.where(listed, r, r[listed].min())
        sd = r.std()
        out += (r - r.mean()) / (sd if sd > 0 else 1.0)
    if out is None:
        raise ValueError("fuse_scores: no score rows given")
    return out


def fuse_ranks(ranks: list, k: int = 100):
    """Fuse ranks objects (e.g. global search and ASMK) of the same queries and database by
    :func:`fuse_scores`; images are matched by name, the first ranks fixes the order of names.
    Lists should be long (ideally the whole database): an image missing from a list scores as its last entry.
    """
    from retrievalkit.io.ranks import Ranks

    if len(ranks) < 2:
        raise ValueError("fuse_ranks: need at least two rankings")
    base = ranks[0]
    db = list(base.db_names)
    dpos = {n: i for i, n in enumerate(db)}
    n = len(db)
    k = min(k, n)
    idx = np.full((len(base.query_names), k), -1, np.int64)
    sc = np.zeros((len(base.query_names), k), np.float32)
    maps = []
    for r in ranks:
        qp = {q: i for i, q in enumerate(r.query_names)}
        dmap = np.array([dpos.get(x, -1) for x in r.db_names], np.int64)
        maps.append((r, qp, dmap))
    for qi, qn in enumerate(base.query_names):
        rows = []
        for r, qp, dmap in maps:
            row = np.full(n, np.nan)
            j = r.indices[qp[qn]]
            ok = j >= 0
            d = dmap[j[ok]]
            row[d[d >= 0]] = r.scores[qp[qn]][ok][d >= 0]
            rows.append(row)
        f = fuse_scores(rows)
        order = np.argsort(-f, kind="stable")[:k]
        idx[qi], sc[qi] = order, f[order]
    return Ranks(list(base.query_names), db, idx, sc, {"method": "fusion", "k": int(k),
                                                      "fused": [r.config.get("method") for r in ranks]})


@writes_output("output", inputs=("inputs",))
def fuse_ranks_files(inputs, output, *, k: int = 100):
    """Read two or more ranks files of the same queries and database, fuse them (:func:`fuse_ranks`), write one.

    Typical use: a global-descriptor search and ASMK searches (deep locals, RootSIFT), each with ``-k`` the
    database size. Raises BadInputError when a file lacks a query or database image of the first.
    """
    from retrievalkit.errors import BadInputError, UsageError
    from retrievalkit.io.ranks import read_ranks, write_ranks

    inputs = list(inputs)
    if len(inputs) < 2:
        raise UsageError("fusion needs at least two ranks files")
    if k < 1:
        raise UsageError(f"-k {k}: must be at least 1")
    rs = [read_ranks(p) for p in inputs]
    for p, r in zip(inputs[1:], rs[1:]):
        miss_q = set(rs[0].query_names) - set(r.query_names)
        miss_d = set(rs[0].db_names) ^ set(r.db_names)
        if miss_q or miss_d:
            what = f"query {sorted(miss_q)[0]!r}" if miss_q else f"database image {sorted(miss_d)[0]!r}"
            raise BadInputError(f"{p}: {what} differs from {inputs[0]}; fuse rankings of the same queries and "
                                "database")
    out = fuse_ranks(rs, k=k)
    out.config["inputs"] = [str(p) for p in inputs]
    return write_ranks(output, out, inputs={f"ranks{i}": str(p) for i, p in enumerate(inputs)})


__all__ = ["DEFAULT_ALPHA", "DEFAULT_TAU", "DEFAULT_MA_DB", "DEFAULT_MA_QUERY", "auto_codebook_size",
           "train_codebook", "Quantizer", "pack_bits", "unpack_bits", "hamming_packed", "selectivity", "aggregate",
           "InvertedFile", "InvertedFileBuilder", "build_inverted_file", "query_scores", "top_k", "search_asmk",
           "build_asmk", "search_asmk_files", "fuse_scores", "fuse_ranks", "fuse_ranks_files"]
