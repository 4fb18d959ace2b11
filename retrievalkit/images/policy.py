"""What rkit may read as an image: the folders names may reach and the largest image it decodes.

One process-wide policy, like Pillow's ``Image.MAX_IMAGE_PIXELS``: the CLI sets it from the root options
``rkit --max-pixels N`` and ``rkit --allow-root DIR``; library callers use :func:`set_image_policy`.
Datasets that decode in worker processes copy the values when they are built.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

# Pillow refuses images over twice its 89.5-megapixel warning limit; the same default here. A 179-megapixel
# RGB image is 537 MB decoded.
DEFAULT_MAX_PIXELS = 178_956_970


@dataclass(frozen=True)
class ImagePolicy:
    """``max_pixels``: images declaring more pixels (width × height) are refused before decoding.
    ``allow_roots``: folders besides the image folder that image names (and links inside the image folder)
    may lead to, as real paths."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    allow_roots: tuple[str, ...] = field(default_factory=tuple)


_policy = ImagePolicy()


def image_policy() -> ImagePolicy:
    return _policy


def set_image_policy(max_pixels: int | None = None, allow_roots=None) -> ImagePolicy:
    """Change the process-wide policy (None leaves a field as it is); returns the new policy."""
    global _policy
    changes = {}
    if max_pixels is not None:
        if int(max_pixels) < 1:
            from retrievalkit.errors import UsageError

            raise UsageError(f"--max-pixels {max_pixels}: must be at least 1")
        changes["max_pixels"] = int(max_pixels)
    if allow_roots is not None:
        changes["allow_roots"] = tuple(os.path.realpath(p) for p in allow_roots)
    _policy = replace(_policy, **changes)
    return _policy
