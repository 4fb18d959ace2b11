"""The ASMK* inverted file: built chunk by chunk, searched one query at a time.

The inverted file keeps, per word, the database images holding it and their binary codes, sorted by word
(offsets), so a query touches only the posting lists of its own words. The data type itself,
:class:`~retrievalkit.io.asmk.InvertedFile`, lives with its file kind in the io layer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import numpy as np

from retrievalkit.io.asmk import InvertedFile
from retrievalkit.neighbours import Neighbours
from retrievalkit.search.asmk.codebook import Quantizer
from retrievalkit.search.asmk.kernel import (
    DEFAULT_ALPHA,
    DEFAULT_TAU,
    aggregate,
    selectivity_table,
)

DEFAULT_MA_DB = 1
DEFAULT_MA_QUERY = 5
#: postings scored per block of :func:`query_scores` (its buffers, ~50 bytes a posting, stay in cache)
POSTINGS_PER_STEP = 1 << 15


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


def _words_view(codes: np.ndarray) -> np.ndarray:
    """Packed codes (E, B) uint8 as the widest unsigned words that tile a row: (E, B/8) uint64 when B is a
    multiple of 8 (128-bit codes: two words), else uint32 / uint16 / the bytes themselves. No copy."""
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    for dt in (np.uint64, np.uint32, np.uint16):
        size = np.dtype(dt).itemsize
        if codes.shape[1] % size == 0 and codes.shape[1] >= size:
            return codes.view(dt)
    return codes


@functools.lru_cache(maxsize=16)
def _distance_table(dim: int, words: int, alpha: float, tau: float) -> np.ndarray:
    """σ by lookup, read-only. One word per code: indexed by its popcount (``dim + 1`` entries). Two words:
    indexed by the two popcounts (each ≤ 64, one byte each) read together as one uint16, so the lookup also
    does the sum: entry ``lo + 256·hi`` (either byte order) holds σ of distance ``lo + hi``."""
    table = selectivity_table(dim, alpha, tau)
    if words == 2:
        i = np.arange(65 * 256)
        table = table[np.minimum((i & 255) + (i >> 8), dim)]
    table.flags.writeable = False
    return table


def _blocks(starts: list[int], stops: list[int], step: int) -> list[list[tuple[int, int, int]]]:
    """The query's posting runs ``starts[j]:stops[j]`` in order, as blocks of pieces ``(a, b, j)`` of at most
    ``step`` postings together (a run longer than ``step`` is cut into several pieces)."""
    blocks: list[list[tuple[int, int, int]]] = []
    cur: list[tuple[int, int, int]] = []
    n = 0
    for j, (a, b) in enumerate(zip(starts, stops)):
        while a < b:
            take = min(b - a, step - n)
            cur.append((a, a + take, j))
            n += take
            a += take
            if n == step:
                blocks.append(cur)
                cur, n = [], 0
    if cur:
        blocks.append(cur)
    return blocks


def query_scores(ivf: InvertedFile, quantizer: Quantizer, descriptors: np.ndarray, ma: int = DEFAULT_MA_QUERY,
                 alpha: float = DEFAULT_ALPHA, tau: float = DEFAULT_TAU) -> np.ndarray:
    """ASMK* scores (N,) float64 of one query image's local ``descriptors`` (m, D) against every database image.

    A query without descriptors scores 0 everywhere.

    The postings of the query's words are contiguous runs of the word-sorted inverted file, copied in blocks
    of about ``POSTINGS_PER_STEP`` postings into buffers allocated once per query (so a block's work stays in
    cache). Per block: the codes as 64-bit words, XOR with the query word's code, numpy's popcount, σ by a
    lookup over the possible distances (:func:`_distance_table`; for 128-bit codes the two popcounts are read
    as one uint16 index, so the lookup also sums them), and ``np.add.at`` of σ into the image scores. The
    additions happen one posting at a time in posting order, as a ``bincount`` over all postings would do
    them, and σ has the bits of :func:`~retrievalkit.search.asmk.kernel.word_similarity`: the same scores,
    whatever the block size.
    """
    scores = np.zeros(ivf.n_images, np.float64)
    if descriptors.shape[0] == 0 or ivf.n_images == 0:
        return scores
    words = quantizer.assign(descriptors, ma)
    _, qw, qc = aggregate(descriptors, words, np.zeros(descriptors.shape[0], np.int64), ivf.codebook, binary=True)
    offsets = np.asarray(ivf.word_offsets)
    starts, stops = offsets[qw].tolist(), offsets[qw + 1].tolist()
    total = sum(stops) - sum(starts)
    if total > 0:
        codes, qcodes = _words_view(ivf.entry_codes), _words_view(qc)
        images = np.asarray(ivf.entry_images)
        width = codes.shape[1]
        table = _distance_table(int(ivf.dim), width if width <= 2 else 0, float(alpha), float(tau))
        step = max(1, min(POSTINGS_PER_STEP, total))
        x = np.empty((step, width), codes.dtype)
        counts = np.empty((step, width), np.uint8)
        dist = np.empty(step, np.uint16) if width > 2 else None
        sims = np.empty(step, np.float64)
        owners = np.empty(step, np.intp)
        for block in _blocks(starts, stops, step):
            n = sum(b - a for a, b, _ in block)
            xs, own = x[:n], owners[:n]
            np.concatenate([codes[a:b] for a, b, _ in block], out=xs)
            js = [j for _, _, j in block]
            xs ^= np.repeat(qcodes[js], [b - a for a, b, _ in block], axis=0)
            c = np.bitwise_count(xs, out=counts[:n])
            if width == 2:
                index = c.view(np.uint16).reshape(n)
            elif width == 1:
                index = c.reshape(n)
            else:
                index = dist[:n]
                np.sum(c, axis=1, dtype=np.uint16, out=index)
            table.take(index, mode="clip", out=sims[:n])
            np.concatenate([images[a:b] for a, b, _ in block], out=own, casting="same_kind")
            np.add.at(scores, own, sims[:n])
    norm = np.sqrt(np.maximum(ivf.image_words, 1).astype(np.float64) * qw.shape[0])
    return scores / norm


def top_k(scores: np.ndarray, k: int) -> Neighbours:
    """The ``k`` highest of one query's ``scores`` (N,): ``Neighbours`` of (k,) float32 values and int64
    indices, best first; ties broken by index (stable)."""
    k = min(k, scores.shape[0])
    if k <= 0:
        return Neighbours(np.zeros(0, np.float32), np.zeros(0, np.int64))
    if k < scores.shape[0]:
        part = np.argpartition(-scores, k - 1)[:k]
    else:
        part = np.arange(scores.shape[0])
    order = part[np.lexsort((part, -scores[part]))]
    return Neighbours(scores[order].astype(np.float32), order.astype(np.int64))


def search_asmk(ivf: InvertedFile, query_descriptors: np.ndarray, query_offsets: np.ndarray, k: int = 100,
                ma: int = DEFAULT_MA_QUERY, alpha: float = DEFAULT_ALPHA, tau: float = DEFAULT_TAU,
                progress: Callable[[int], None] | None = None) -> Neighbours:
    """Rank the database for each query image (:func:`search_codebooks` with one inverted file).

    Returns ``Neighbours(scores (Q, k) float32, ids (Q, k) int64 with -1 pads)``. Only database images with a
    positive score are returned (a query with no local features gets an all -1 row).
    """
    return search_codebooks([ivf], query_descriptors, query_offsets, k, ma, alpha, tau, progress)


def search_codebooks(ivfs, query_descriptors: np.ndarray, query_offsets: np.ndarray, k: int = 100,
                     ma: int = DEFAULT_MA_QUERY, alpha: float = DEFAULT_ALPHA, tau: float = DEFAULT_TAU,
                     progress: Callable[[int], None] | None = None) -> Neighbours:
    """Rank the database of several inverted files over the same images (one per codebook) for each query by
    the mean of their ASMK* scores (each already normalised per image pair, so codebooks weigh alike: the
    "multiple vocabularies" of Jégou & Chum, ECCV 2012, for ASMK). Same result layout as
    :func:`~retrievalkit.search.asmk.ivf.search_asmk`: ``Neighbours(scores (Q, k), ids (Q, k))``, -1 pads,
    only images with a positive mean score."""
    quantizers = [Quantizer(v.codebook) for v in ivfs]
    n_q = len(query_offsets) - 1
    k = max(1, int(k))
    idx = np.full((n_q, k), -1, np.int64)
    sc = np.zeros((n_q, k), np.float32)
    for i in range(n_q):
        a, b = int(query_offsets[i]), int(query_offsets[i + 1])
        s = sum(query_scores(v, qz, query_descriptors[a:b], ma, alpha, tau) for v, qz in zip(ivfs, quantizers))
        ss, ii = top_k(np.asarray(s, np.float64) / len(ivfs), k)
        keep = ss > 0
        n = int(keep.sum())
        idx[i, :n], sc[i, :n] = ii[keep], ss[keep]
        if progress:
            progress(1)
    return Neighbours(sc, idx)


__all__ = ["DEFAULT_MA_DB", "DEFAULT_MA_QUERY", "InvertedFile", "InvertedFileBuilder", "build_inverted_file",
           "query_scores", "top_k", "search_asmk", "search_codebooks"]
