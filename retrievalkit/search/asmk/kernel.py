"""The ASMK* kernel: binarised aggregated residuals and the selectivity function.

In each image the residuals ``x - c`` of the descriptors assigned to word ``c`` are summed and binarised per
dimension (bit = sum > 0), packed 8 bits a byte (128-D → 16 bytes). Two images match on their shared words; a
word pair with codes of Hamming distance ``h`` over ``D`` bits has similarity ``u = 1 - 2h/D`` ∈ [-1, 1], the
selectivity function keeps ``σ(u) = u^α`` for ``u >= τ`` (α = 3, τ = 0), and the image score is

    K(q, d) = Σ_{c shared} σ(u_c) / sqrt(|W_q| · |W_d|)

with ``|W|`` the number of distinct words of an image (its self-similarity, as every σ(1) = 1). No idf, as the
HOW/ASMK defaults. :func:`word_similarity` computes ``σ(u)`` of packed codes; the sum over an inverted file is
in :mod:`retrievalkit.search.asmk.ivf`.
"""

from __future__ import annotations

import numpy as np

#: popcount of every byte value
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)

DEFAULT_ALPHA = 3.0
DEFAULT_TAU = 0.0


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


def selectivity_table(dim: int, alpha: float = DEFAULT_ALPHA, tau: float = DEFAULT_TAU) -> np.ndarray:
    """σ(u) for every Hamming distance ``h`` = 0 .. ``dim`` of ``dim``-bit codes: (dim + 1,) float64.

    Entry ``h`` is computed exactly as :func:`word_similarity` computes it for one pair, so a lookup gives the
    same bits; for 128-bit codes it replaces a power per posting by a gather from 129 values.
    """
    return selectivity(1.0 - 2.0 * np.arange(dim + 1, dtype=np.int64) / dim, alpha, tau)


def popcount_rows(x: np.ndarray) -> np.ndarray:
    """Bits set per row of a 2-D unsigned array ``x`` (E, W): (E,) uint16 (uint8 columns summed)."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0: a native popcount per element
        c = np.bitwise_count(x)
    else:  # pragma: no cover - numpy 1.x: byte table
        c = _POPCOUNT[x.view(np.uint8)]
    h = c[:, 0].astype(np.uint16)
    for j in range(1, c.shape[1]):
        h += c[:, j]
    return h


def word_similarity(a: np.ndarray, b: np.ndarray, dim: int, alpha: float = DEFAULT_ALPHA,
                    tau: float = DEFAULT_TAU) -> np.ndarray:
    """σ(u) of row pairs of packed ``dim``-bit codes ``a``, ``b`` (E, B): u = 1 - 2·hamming/dim."""
    u = 1.0 - 2.0 * hamming_packed(a, b) / dim
    return selectivity(u, alpha, tau)


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


__all__ = ["DEFAULT_ALPHA", "DEFAULT_TAU", "pack_bits", "unpack_bits", "hamming_packed", "selectivity",
           "selectivity_table", "popcount_rows", "word_similarity", "aggregate"]
