"""PCA-whitening learned on the training images, via ``retrievalkit.whiten`` (the whiten stage's core).

Descriptors are centred on the training mean, projected on the leading principal directions, scaled by
``λ^(-1/2)`` and L2-normalised again. T training vectors span at most T − 1 directions, so the dimension is
clipped to ``min(dim, T − 1, D)``: the remaining directions carry no training variance and whitening would
only blow up noise there. ``shrinkage`` (covariance shrinkage towards a scaled identity, in [0, 1]) tempers
the small eigenvalues of a small training set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from retrievalkit.errors import UsageError
from retrievalkit.whiten.core import apply_whitening, pca_whitening


@dataclass(frozen=True)
class PCAWhitening:
    """``x ↦ l2n(proj (x − mean))`` (the ``(mean, proj)`` convention of :mod:`retrievalkit.whiten.core`).

    Attributes: mean (D,) float32, proj (d, D) float32 projection.
    """

    mean: np.ndarray
    proj: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.proj.shape[0])

    def apply(self, x: np.ndarray) -> np.ndarray:
        """(N, D) → (N, d) float32, rows L2-normalised."""
        return apply_whitening(x, self.mean, self.proj)


def fit_pca_whitening(x: np.ndarray, dim: int = 256, shrinkage: float = 0.0) -> PCAWhitening:
    """Learn PCA-whitening from (T, D) training descriptors; output dimension ``min(dim, T − 1, D)``.

    Example:
        >>> w = fit_pca_whitening(np.random.default_rng(0).normal(size=(50, 8)), dim=4)
        >>> w.apply(np.ones((2, 8))).shape
        (2, 4)
    """
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise UsageError(f"PCA-whitening needs at least 2 training vectors, got shape {x.shape}")
    if dim < 1:
        raise UsageError(f"--pca-dim {dim}: must be at least 1 (0 turns whitening off)")
    d = int(min(dim, x.shape[0] - 1, x.shape[1]))
    return PCAWhitening(*pca_whitening(x, d, shrinkage=shrinkage))
