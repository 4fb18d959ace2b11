"""Global pooling of CNN feature maps: MAC, SPoC, GeM and R-MAC, plus L2 normalisation.

Every pooling exists as a plain function on a (B, C, H, W) map returning (B, C) and as an ``nn.Module``.
The definitions follow the cnnimageretrieval-pytorch (cirtorch) line so that its trained networks give the
same descriptors: GeM clamps at ``eps`` before the power, R-MAC uses cirtorch's region grid (whole map plus
``L`` levels of square regions, about 40 % overlap) and sums the L2-normalised region maxima.

Example:
    >>> x = torch.rand(2, 512, 30, 40)
    >>> gem(x, p=3.0).shape
    torch.Size([2, 512])
    >>> GeM(p=3.0)(x).shape, rmac_regions(x).shape
    (torch.Size([2, 512]), torch.Size([2, 21, 512]))
"""

from __future__ import annotations

import difflib
import math

import torch
from torch import nn

from retrievalkit.errors import UsageError
from retrievalkit.models._checks import ShapeError, check_map

RMAC_OVERLAP = 0.4
"""Desired overlap of neighbouring R-MAC regions (cirtorch and Tolias et al. use 0.4)."""


def _float32(x: torch.Tensor) -> torch.Tensor:
    # Powers of activations overflow float16 (50**3 > 65504), so pooling always runs in at least float32.
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def l2n(x: torch.Tensor, dim: int = -1, eps: float = 1e-6) -> torch.Tensor:
    """L2-normalise along ``dim``: ``x / (||x|| + eps)`` (cirtorch's ``l2n``; zero vectors stay zero).

    Args:
        x: any tensor, e.g. (B, D) descriptors.
        dim: the axis holding the vector entries.
        eps: added to the norm.
    Returns:
        tensor of the same shape.
    """
    return x / (torch.linalg.vector_norm(x, ord=2, dim=dim, keepdim=True) + eps)


def mac(x: torch.Tensor) -> torch.Tensor:
    """Maximum Activations of Convolutions: max over H, W. (B, C, H, W) -> (B, C)."""
    check_map(x)
    return _float32(x).amax(dim=(-2, -1))


def spoc(x: torch.Tensor) -> torch.Tensor:
    """Sum-Pooled Convolutional features (average pooling, as cirtorch): mean over H, W. (B, C, H, W) -> (B, C)."""
    check_map(x)
    return _float32(x).mean(dim=(-2, -1))


def gem(x: torch.Tensor, p: float | torch.Tensor = 3.0, eps: float = 1e-6) -> torch.Tensor:
    """Generalized-mean pooling: ``(mean_hw clamp(x, eps)^p)^(1/p)``. (B, C, H, W) -> (B, C).

    Args:
        x: (B, C, H, W) feature map.
        p: the power; a float, a one-element tensor (learnable GeM) or a (C,) tensor (one power per channel,
            cirtorch's ``gemmp``). p=1 is SPoC on the clamped map, p -> inf tends to MAC.
        eps: activations are clamped to at least ``eps`` so that fractional powers are defined.
    Returns:
        (B, C) descriptors (not normalised).
    """
    check_map(x)
    x = _float32(x)
    if isinstance(p, torch.Tensor):
        if p.numel() == x.shape[1] and p.numel() > 1:
            p = p.reshape(1, -1, 1, 1)
        elif p.numel() == 1:
            p = p.reshape(1, 1, 1, 1)
        else:
            raise ShapeError(f"gem: expected p with 1 or {x.shape[1]} entries, got shape {tuple(p.shape)}")
        pooled = x.clamp(min=eps).pow(p).mean(dim=(-2, -1), keepdim=True)
        return pooled.pow(1.0 / p).flatten(1)
    return x.clamp(min=eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)


def rmac_grid(height: int, width: int, levels: int = 3, overlap: float = RMAC_OVERLAP) -> list[tuple[int, int, int]]:
    """The R-MAC regions of an H x W map, as cirtorch computes them.

    The first region is the whole map. Level l = 1..L adds square regions of side ``floor(2 min(H, W) / (l + 1))``
    on an (l + extra_h) x (l + extra_w) grid, where the long side gets the extra regions (chosen among 1..6 so that
    neighbours overlap by about ``overlap``). Grid positions are computed in float32 with floors, as in cirtorch,
    so that the very same regions come out.

    Args:
        height, width: map size H, W (>= 1).
        levels: number of levels L.
        overlap: desired overlap of neighbouring regions.
    Returns:
        list of (top, left, side) for the square regions, in cirtorch's order (row-major per level); the first
        entry is (0, 0, 0) and stands for the whole H x W map.
    """
    if height < 1 or width < 1:
        raise ShapeError(f"rmac_grid: expected a map of at least 1 x 1, got {height} x {width}")
    if levels < 1:
        raise UsageError(f"R-MAC levels must be >= 1, got {levels}")
    # Same float32 torch arithmetic, in the same order, as cirtorch: the argmin below can be a near tie (e.g. an
    # 11 x 47 map) where any other rounding picks a different grid.
    side = min(height, width)
    steps = torch.arange(2, 8, dtype=torch.float32)  # candidate numbers of regions along the long side
    shift = (max(height, width) - side) / (steps - 1)
    score = torch.abs((side**2 - side * shift) / side**2 - overlap)
    extra = int(torch.argmin(score).item()) + 1
    extra_h = extra if height > width else 0
    extra_w = extra if width > height else 0

    def starts(length: int, count: int, region: int, half: int) -> list[int]:
        step = 0.0 if count == 1 else (length - region) / (count - 1)
        centres = torch.floor(half + torch.arange(count, dtype=torch.float32) * step) - half
        return [int(c) for c in centres.tolist()]

    regions = [(0, 0, 0)]
    for level in range(1, levels + 1):
        region = math.floor(2 * side / (level + 1))
        if region == 0:
            continue
        half = math.floor(region / 2 - 1)
        tops = starts(height, level + extra_h, region, half)
        lefts = starts(width, level + extra_w, region, half)
        regions.extend((top, left, region) for top in tops for left in lefts)
    return regions


def rmac_regions(x: torch.Tensor, levels: int = 3, eps: float = 1e-6, normalize: bool = True) -> torch.Tensor:
    """MAC of every R-MAC region. (B, C, H, W) -> (B, R, C), region order as :func:`rmac_grid`.

    Args:
        x: (B, C, H, W) feature map.
        levels: number of levels L (3: R = 21 regions on a 5 x 7 map, 1 + 2 + 6 + 12).
        eps: added to each region's norm.
        normalize: L2-normalise every region vector (``v / (||v|| + eps)``), as R-MAC does before summing.
    Returns:
        (B, R, C) region vectors; the first is the MAC of the whole map.
    """
    check_map(x)
    x = _float32(x)
    vectors = []
    for top, left, side in rmac_grid(x.shape[-2], x.shape[-1], levels):
        region = x if side == 0 else x[:, :, top : top + side, left : left + side]
        vectors.append(region.amax(dim=(-2, -1)))
    v = torch.stack(vectors, dim=1)
    return l2n(v, dim=-1, eps=eps) if normalize else v


def rmac(x: torch.Tensor, levels: int = 3, eps: float = 1e-6) -> torch.Tensor:
    """Regional MAC: the sum of the L2-normalised region MACs. (B, C, H, W) -> (B, C), not normalised."""
    return rmac_regions(x, levels=levels, eps=eps, normalize=True).sum(dim=1)


class MAC(nn.Module):
    """Module form of :func:`mac`: (B, C, H, W) -> (B, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mac(x)


class SPoC(nn.Module):
    """Module form of :func:`spoc`: (B, C, H, W) -> (B, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return spoc(x)


class GeM(nn.Module):
    """Generalized-mean pooling with a learnable power ``p`` (parameter named ``p``, so cirtorch's ``pool.p``
    loads). (B, C, H, W) -> (B, C).

    Args:
        p: initial power (3 in cirtorch).
        eps: clamp of the activations.
        channels: give C for one power per channel (cirtorch's ``gemmp``); None for a single power.
        trainable: whether ``p`` receives gradients.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6, channels: int | None = None, trainable: bool = True):
        super().__init__()
        self.p = nn.Parameter(torch.full((channels or 1,), float(p)), requires_grad=trainable)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gem(x, self.p, self.eps)

    def extra_repr(self) -> str:
        p = f"{self.p.item():.4f}" if self.p.numel() == 1 else f"per-channel ({self.p.numel()})"
        return f"p={p}, eps={self.eps}"


class RMAC(nn.Module):
    """Module form of :func:`rmac`: (B, C, H, W) -> (B, C)."""

    def __init__(self, levels: int = 3, eps: float = 1e-6):
        super().__init__()
        self.levels = levels
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rmac(x, self.levels, self.eps)

    def extra_repr(self) -> str:
        return f"levels={self.levels}"


POOLINGS = ("mac", "spoc", "gem", "gemmp", "rmac")
"""Names accepted by :func:`create_pooling` ("gemmp": GeM with one learnable power per channel, as cirtorch)."""


def create_pooling(name: str, p: float = 3.0, levels: int = 3, channels: int | None = None) -> nn.Module:
    """Build a pooling module by name (see :data:`POOLINGS`).

    Args:
        name: 'mac', 'spoc', 'gem', 'gemmp' or 'rmac'.
        p: initial GeM power.
        levels: R-MAC levels.
        channels: C, needed by 'gemmp' (one power per channel).
    Raises:
        UsageError: unknown name (the message lists close matches).
    """
    key = name.lower()
    if key == "gem":
        return GeM(p=p)
    if key == "gemmp":
        if channels is None:
            raise UsageError("pooling 'gemmp' needs the number of channels")
        return GeM(p=p, channels=channels)
    if key == "mac":
        return MAC()
    if key == "spoc":
        return SPoC()
    if key == "rmac":
        return RMAC(levels=levels)
    close = difflib.get_close_matches(key, POOLINGS, n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UsageError(f"unknown pooling {name!r}; choose one of {', '.join(POOLINGS)}.{hint}")
