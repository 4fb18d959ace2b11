"""Decoding, cropping and resizing images with OpenCV (RGB, uint8, HxWx3)."""

from __future__ import annotations

import math
import os

import cv2
import numpy as np

cv2.setNumThreads(1)  # decoding runs in loader workers; avoid oversubscribing the cores


class ImageReadError(Exception):
    """An image file could not be decoded (missing, truncated, not an image)."""


def load_image(path: str | os.PathLike, gray: bool = False) -> np.ndarray:
    """Decode ``path`` to an RGB (H, W, 3) uint8 array (or (H, W) when ``gray``)."""
    data = np.fromfile(str(path), dtype=np.uint8) if os.path.isfile(path) else None
    if data is None:
        raise ImageReadError("file not found")
    img = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise ImageReadError("cannot decode (corrupt or not an image)")
    return img if gray else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def crop_box(img: np.ndarray, bbx) -> np.ndarray:
    """Crop to ``[x1, y1, x2, y2]`` (pixels, 0-based, x2/y2 exclusive edges rounded outwards)."""
    h, w = img.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in bbx)
    x1, y1 = max(0, int(math.floor(x1))), max(0, int(math.floor(y1)))
    x2, y2 = min(w, int(math.ceil(x2))), min(h, int(math.ceil(y2)))
    if x2 <= x1 or y2 <= y1:
        raise ImageReadError(f"empty query box {list(bbx)} for an image of {w}x{h}")
    return img[y1:y2, x1:x2]


def resize_longer(img: np.ndarray, size: int | None, upscale: bool = False) -> np.ndarray:
    """Resize so the longer side is ``size`` (INTER_AREA down, INTER_CUBIC up); never upscale unless asked."""
    if not size:
        return img
    h, w = img.shape[:2]
    longer = max(h, w)
    if longer == size or (longer < size and not upscale):
        return img
    s = size / longer
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    return cv2.resize(img, (nw, nh), interpolation=interp)
