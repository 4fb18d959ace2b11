"""Test-time views of an image for copy detection, and describing folders view by view.

Copies are often crops, or a reference pasted into a larger picture, so a query is described by several
views, each cropped from the full-resolution image and then resized to the working size:

    full     the whole image
    center   the central square-root-of-half crop (1/√2 of each side: half the area)
    grid     the four quadrants of a 2×2 grid (each a quarter of the area)

Views are combined either by ``max`` (each view is its own search row; a reference's score is the best over the
query's views, the "concatenation" of views as rows) or by ``mean`` (one L2-normalised average descriptor, the
only choice for the descriptor track, which allows one vector per image).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from retrievalkit.configs.copydetect import COMBINE  # noqa: F401  (re-exported)
from retrievalkit.errors import UsageError
from retrievalkit.images.decode import ImageReadError, load_image, resize_longer
from retrievalkit.images.loader import iterate_quietly
from retrievalkit.images.policy import image_policy

_S = 1 / math.sqrt(2)
VIEWS: dict[str, list[tuple[float, float, float, float]]] = {
    "full": [(0.0, 0.0, 1.0, 1.0)],
    "center": [((1 - _S) / 2, (1 - _S) / 2, (1 + _S) / 2, (1 + _S) / 2)],
    "grid": [(0.0, 0.0, 0.5, 0.5), (0.5, 0.0, 1.0, 0.5), (0.0, 0.5, 0.5, 1.0), (0.5, 0.5, 1.0, 1.0)],
}


def parse_views(text: str | Sequence[str]) -> list[tuple[float, float, float, float]]:
    """``"full,center,grid"`` → the list of relative boxes ``(x1, y1, x2, y2)`` in [0, 1]."""
    tokens = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    if not tokens:
        raise UsageError("--query-views: give at least one of " + ", ".join(VIEWS))
    boxes = []
    for t in tokens:
        if t not in VIEWS:
            raise UsageError(f"--query-views {t!r}: expected a comma-separated list of {', '.join(VIEWS)}")
        boxes.extend(VIEWS[t])
    return boxes


def crop_relative(img: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """Crop ``img`` (H, W, C) to a relative box; at least one pixel each way."""
    h, w = img.shape[:2]
    x1, y1 = int(round(box[0] * w)), int(round(box[1] * h))
    x2, y2 = max(x1 + 1, int(round(box[2] * w))), max(y1 + 1, int(round(box[3] * h)))
    return img[y1:y2, x1:x2]


class ViewDataset(torch.utils.data.Dataset):
    """Item i: (i, list of (3, h, w) standardised tensors, one per view) or (i, None, error)."""

    def __init__(self, root: str | os.PathLike, names: Sequence[str], size: int | None,
                 mean: Sequence[float], std: Sequence[float], views: Sequence[tuple[float, float, float, float]]):
        self.root = Path(root)
        self.names = list(names)
        self.size = size
        self.mean = np.asarray(mean, np.float32).reshape(1, 1, 3)
        self.std = np.asarray(std, np.float32).reshape(1, 1, 3)
        self.views = list(views)
        self.max_pixels = image_policy().max_pixels  # travels to the worker processes with the dataset

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int):
        try:
            img = load_image(self.root / self.names[i], max_pixels=self.max_pixels)
        except ImageReadError as e:
            return i, None, str(e)
        out = []
        for box in self.views:
            v = img if box == (0.0, 0.0, 1.0, 1.0) else crop_relative(img, box)
            v = resize_longer(v, self.size)
            x = (v.astype(np.float32) / 255.0 - self.mean) / self.std
            out.append(torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))))
        return i, out, None


def _identity(x):
    return x


def describe_views(net, root: str | os.PathLike, names: Sequence[str], size: int | None,
                   views: Sequence[tuple[float, float, float, float]] = VIEWS["full"], scales: Sequence[float] = (1.0,),
                   workers: int = 2, progress: Callable[[int], None] | None = None,
                   ) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Describe every view of every image with ``net`` (a retrieval network with ``describe``, ``mean``, ``std``).

    Returns:
        vectors: (M, D) float32, L2-normalised; owner: (M,) int64 index into ``names`` of each row (views of an
        image are consecutive); failed: (name, reason) of unreadable images (they get no row).
    """
    ds = ViewDataset(root, names, size, net.mean, net.std, views)
    dl = torch.utils.data.DataLoader(ds, batch_size=None, shuffle=False, num_workers=workers, collate_fn=_identity,
                                     prefetch_factor=4 if workers > 0 else None)
    vecs, owner, failed = [], [], []
    for i, tensors, err in iterate_quietly(dl):
        if tensors is None:
            failed.append((names[i], err or "unreadable"))
        else:
            v = net.describe(tensors, scales=scales).float().cpu().numpy()
            vecs.append(v)
            owner.extend([i] * v.shape[0])
        if progress:
            progress(1)
    dim = int(getattr(net, "dim", 0) or getattr(net, "out_dim", 0) or 0)
    x = np.concatenate(vecs, 0).astype(np.float32) if vecs else np.zeros((0, dim), np.float32)
    return x, np.asarray(owner, np.int64), failed


def combine_mean(x: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    """One L2-normalised mean descriptor per image: (M, D) rows with ``owner`` → (n, D)."""
    out = np.zeros((n, x.shape[1]), np.float64)
    np.add.at(out, owner, x)
    nrm = np.linalg.norm(out, axis=1, keepdims=True)
    return (out / np.maximum(nrm, 1e-12)).astype(np.float32)
