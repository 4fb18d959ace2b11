"""Shape and type checks used at the public boundary of :mod:`retrievalkit.models`."""

from __future__ import annotations

import torch

from retrievalkit.errors import BadInputError


class ShapeError(BadInputError, ValueError):
    """A tensor has the wrong rank, shape or dtype; the message says expected vs got (exit code 3)."""


def check_map(x: object, what: str = "feature map", channels: int | None = None) -> torch.Tensor:
    """Check that ``x`` is a floating (B, C, H, W) tensor with H, W >= 1 (and C == ``channels`` if given)."""
    if not isinstance(x, torch.Tensor):
        raise ShapeError(f"{what}: expected a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        raise ShapeError(f"{what}: expected shape (B, C, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ShapeError(f"{what}: expected a floating-point tensor, got dtype {x.dtype}")
    if x.shape[-1] < 1 or x.shape[-2] < 1:
        raise ShapeError(f"{what}: expected a non-empty spatial size, got {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise ShapeError(f"{what}: expected {channels} channels (B, {channels}, H, W), got {tuple(x.shape)}")
    return x


def check_images(x: object, what: str = "images") -> torch.Tensor:
    """Check that ``x`` is a floating (B, 3, H, W) image batch."""
    return check_map(x, what, channels=3)
