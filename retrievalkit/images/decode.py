"""Decoding, cropping and resizing images with OpenCV (RGB, uint8, HxWx3)."""

from __future__ import annotations

import math
import os

import cv2
import numpy as np

from retrievalkit.images.header import HeaderError, check_complete, image_size
from retrievalkit.images.policy import image_policy

cv2.setNumThreads(1)  # decoding runs in loader workers; avoid oversubscribing the cores


class ImageReadError(Exception):
    """An image file could not be decoded (missing, truncated, not an image)."""


_HEAD_BYTES = 1 << 18  # enough for the header of nearly every file; longer EXIF/ICC blocks read the whole file


def read_image_bytes(path: str | os.PathLike, max_pixels: int | None = None) -> bytes:
    """The bytes of an image file whose header was checked: :class:`ImageReadError` with the reason when the
    file is missing, empty, not an image, cut short, or declares more than ``max_pixels`` pixels (default:
    :func:`~retrievalkit.images.policy.image_policy`). Nothing is decoded."""
    cap = int(max_pixels) if max_pixels is not None else image_policy().max_pixels
    try:
        with open(path, "rb") as f:
            data = f.read(_HEAD_BYTES)
            try:
                w, h = image_size(data)
            except HeaderError:
                if len(data) < _HEAD_BYTES:
                    raise
                data += f.read()
                w, h = image_size(data)
            if w * h > cap:
                raise ImageReadError(f"{w}x{h} pixels is over the limit of {cap} pixels (rkit --max-pixels N)")
            if len(data) == _HEAD_BYTES:
                data += f.read()
        check_complete(data)
    except HeaderError as e:
        raise ImageReadError(str(e)) from None
    except FileNotFoundError:
        raise ImageReadError("file not found") from None
    except IsADirectoryError:
        raise ImageReadError("a folder, not an image file") from None
    except OSError as e:
        raise ImageReadError(f"cannot read ({e.strerror or e.__class__.__name__})") from None
    return data


def load_image(path: str | os.PathLike, gray: bool = False, max_pixels: int | None = None) -> np.ndarray:
    """Decode ``path`` to an RGB (H, W, 3) uint8 array (or (H, W) when ``gray``).

    The header is checked first (:func:`read_image_bytes`): a file that is empty, not an image, cut short, or
    too large raises :class:`ImageReadError` with the reason before anything is decoded.
    """
    data = read_image_bytes(path, max_pixels)
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    except cv2.error:
        img = None
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
