"""Which images form one collection to reconstruct: a sub-folder per scene, or clusters of a flat folder.

A flat folder is split by its global descriptors: the kNN graph (``retrievalkit.search.knn_graph``), edges
kept when the similarity reaches ``threshold`` (and, with ``mutual``, only when both ends list each other),
then connected components. Components smaller than ``min_size`` are too small to reconstruct.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.images.discover import IMAGE_EXTENSIONS, find_images


@dataclass
class Collection:
    """Images of one scene: ``names`` relative to ``image_dir``; ``prefix`` maps them to the run's root."""

    name: str
    image_dir: Path
    names: list[str]
    prefix: str = ""

    def global_names(self) -> list[str]:
        return [f"{self.prefix}{n}" for n in self.names]


def discover_collections(root: str | os.PathLike) -> tuple[list[Collection], list[str]]:
    """Split ``root`` into scene collections.

    Returns (collections, loose): one collection per immediate sub-folder holding images (found
    recursively; names relative to that sub-folder), and the images lying directly in ``root``
    (``loose``, relative to ``root``), which the caller clusters.
    """
    root = Path(root)
    if not root.is_dir():
        raise BadInputError(f"{root}: not a folder of images")
    collections, loose = [], []
    real_root = os.path.realpath(root)
    scenes: set[str] = set()
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=True):
            real = os.path.realpath(entry.path)
            if real in scenes or real_root == real or real_root.startswith(real.rstrip(os.sep) + os.sep):
                continue  # a link to a scene already taken, or to the folder itself or above it: no repeats
            scenes.add(real)
            try:
                names = find_images(entry.path)
            except BadInputError:
                continue
            collections.append(Collection(entry.name, Path(entry.path), names, f"{entry.name}/"))
        elif entry.name.lower().endswith(IMAGE_EXTENSIONS):
            loose.append(entry.name)
    if not collections and not loose:
        raise BadInputError(f"{root}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return collections, loose


def cluster_by_descriptors(vectors: np.ndarray, k: int = 5, threshold: float = 0.5, mutual: bool = True,
                           min_size: int = 3) -> np.ndarray:
    """Cluster labels (N,) int64 of L2-normalised ``vectors`` by connected components of a kNN graph.

    Labels are 0, 1, ... by decreasing cluster size; -1 marks images in components smaller than
    ``min_size``.
    """
    from retrievalkit.search.exact import knn_graph

    x = np.asarray(vectors, np.float32)
    n = x.shape[0]
    if k < 1:
        raise UsageError(f"cluster k {k}: must be at least 1")
    if n == 0:
        return np.zeros(0, np.int64)
    if n == 1:
        return np.full(1, 0 if min_size <= 1 else -1, np.int64)
    sims, ids = knn_graph(x, min(k, n - 1))
    rows = np.repeat(np.arange(n), ids.shape[1])
    cols = ids.reshape(-1)
    keep = (cols >= 0) & (sims.reshape(-1) >= threshold)
    A = sp.csr_matrix((np.ones(int(keep.sum())), (rows[keep], cols[keep])), shape=(n, n))
    A = A.minimum(A.T) if mutual else A.maximum(A.T)
    _, comp = connected_components(A, directed=False)
    sizes = np.bincount(comp)
    order = np.argsort(-sizes, kind="stable")
    labels = np.full(n, -1, np.int64)
    nxt = 0
    for c in order:
        if sizes[c] < min_size:
            continue
        labels[comp == c] = nxt
        nxt += 1
    return labels
