"""Shared synthetic data for the diffusion tests: clustered points along curves (a manifold exists)."""

from __future__ import annotations

import numpy as np
import pytest


def curves(n_clusters: int = 8, per: int = 25, dim: int = 16, noise: float = 0.12, seed: int = 0):
    """Points along random segments on the sphere; returns (x (N, dim) f32 L2-normalised, labels (N,))."""
    rng = np.random.default_rng(seed)
    xs, labels = [], []
    for c in range(n_clusters):
        a, b = rng.standard_normal(dim), rng.standard_normal(dim)
        t = np.linspace(0, 1, per)[:, None]
        xs.append((1 - t) * a + t * b + noise * rng.standard_normal((per, dim)))
        labels += [c] * per
    x = np.concatenate(xs).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, np.asarray(labels)


def noisy_queries(x: np.ndarray, idx: np.ndarray, noise: float = 0.05, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xq = x[idx] + noise * rng.standard_normal((len(idx), x.shape[1])).astype(np.float32)
    return (xq / np.linalg.norm(xq, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def clustered():
    return curves()
