"""ASMK's visual vocabulary: a k-means codebook (faiss) and nearest-word assignment."""

from __future__ import annotations

import numpy as np


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


__all__ = ["auto_codebook_size", "train_codebook", "Quantizer"]
