"""Deep local descriptors, HOW-style (Tolias, Jenicek & Chum, ECCV 2020).

A backbone feature map (a tap declared in the backbone registry) is computed at several scales; each spatial
position is a candidate descriptor whose attention (strength) is its L2 norm; an optional 3×3 average pooling
smooths the map first; the ``max_features`` strongest positions over all scales are kept, L2-normalised.
Keypoints are (x, y, cell size, strength) in pixels of the input image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

#: HOW's scale pyramid; on a CPU use a shorter one (see docs/local.md)
HOW_SCALES = (2.0, 1.414, 1.0, 0.707, 0.5, 0.353, 0.25)
DEFAULT_SCALES = (1.0, 0.707, 0.5, 0.353)
#: pyramid levels whose shorter side falls below this (pixels) are skipped
MIN_SIDE = 96


class LocalBackbone(torch.nn.Module):
    """A backbone cut at the feature tap local descriptors are taken from: (1, 3, H, W) → (1, C, h, w).

    The tap is data in the backbone registry (:class:`~retrievalkit.models.registry.FeatureTap`: name,
    channels, stride); ``auto`` is the registered backbone's ``local_tap`` (``s16`` for efficientnet-lite0/1/2,
    else ``head``). The backbone computes the map itself (``features_at``).
    """

    def __init__(self, backbone: torch.nn.Module, layer: str = "auto"):
        super().__init__()
        from retrievalkit.models.registry import get_backbone_spec

        spec = get_backbone_spec(getattr(backbone, "name", type(backbone).__name__))
        tap = spec.tap(layer)
        self.backbone = backbone
        self.layer = tap.name
        self.mean, self.std = backbone.mean, backbone.std
        self.out_channels = int(tap.channels)
        self.stride = int(tap.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.features_at(x, self.layer)


def how_select(fmaps: Sequence[torch.Tensor], strides: Sequence[float], max_features: int,
               smooth: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Strongest activations over several feature maps (one per scale).

    Args:
        fmaps: (C, h_s, w_s) maps, one per scale.
        strides: for each map, the size of one cell in pixels of the reference image (stride / scale).
        max_features: n, the number kept over all scales (by L2 norm, the attention).
        smooth: 3×3 average pooling of each map first (HOW's smoothing).
    Returns:
        kp (n, 4) float32: x, y, cell size (pixels of the reference image), strength; desc (n, C) float32,
        L2-normalised. Positions with zero activation are never kept.
    """
    kps, descs, strengths = [], [], []
    for fm, st in zip(fmaps, strides):
        fm = fm.float()
        if smooth:
            fm = F.avg_pool2d(fm[None], 3, 1, padding=1, count_include_pad=False)[0]
        c, h, w = fm.shape
        d = fm.reshape(c, h * w).t()
        a = d.norm(dim=1)
        k = min(max_features, h * w)
        top = torch.topk(a, k).indices
        yy, xx = top // w, top % w
        kps.append(torch.stack([(xx.float() + 0.5) * st, (yy.float() + 0.5) * st,
                                torch.full((k,), float(st)), a[top]], 1))
        descs.append(d[top])
        strengths.append(a[top])
    if not kps:
        return np.zeros((0, 4), np.float32), np.zeros((0, 0), np.float32)
    kp = torch.cat(kps)
    desc = torch.cat(descs)
    s = torch.cat(strengths)
    order = torch.argsort(s, descending=True)[:max_features]
    order = order[s[order] > 0]
    desc = F.normalize(desc[order], dim=1)
    return kp[order].cpu().numpy().astype(np.float32), desc.cpu().numpy().astype(np.float32)


def deep_locals(net: torch.nn.Module, x: torch.Tensor, scales: Sequence[float], max_features: int = 1000,
                smooth: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """HOW-style local descriptors of one standardised image ``x`` (1, 3, H, W) at several ``scales``.

    Returns kp (n, 4) (x, y, cell size in pixels of ``x``, strength) and desc (n, C) L2-normalised.
    """
    fmaps, strides = [], []
    h0, w0 = x.shape[-2:]
    scales = [float(s) for s in scales]
    if scales and min(h0, w0) * max(scales) < MIN_SIDE:
        scales = [(MIN_SIDE + 0.5) / min(h0, w0)]  # a tiny image: one level, enlarged to the smallest usable size
    with torch.inference_mode():
        for s in scales:
            xs = x if s == 1 else F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)
            if min(xs.shape[-2:]) < MIN_SIDE:
                continue  # too small for the backbone's kernels at its deepest layers
            fm = net(xs)[0]
            fmaps.append(fm)
            # pixels of x per cell (average over both axes; maps may be rounded up)
            strides.append(0.5 * (w0 / fm.shape[-1] + h0 / fm.shape[-2]))
    return how_select(fmaps, strides, max_features, smooth)


__all__ = ["HOW_SCALES", "DEFAULT_SCALES", "MIN_SIDE", "LocalBackbone", "how_select", "deep_locals"]
