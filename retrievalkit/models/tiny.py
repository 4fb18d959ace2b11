"""A tiny randomly initialised CNN, for fast tests of the stages that need a backbone."""

from __future__ import annotations

import torch
from torch import nn

from retrievalkit.errors import UsageError
from retrievalkit.models._checks import check_images


class TinyCNN(nn.Module):
    """Three 3x3 conv + BN + ReLU layers (32, 64, 64 channels; strides 2, 2, 1).

    (B, 3, H, W) -> (B, 64, ceil(H/4), ceil(W/4)); activations are >= 0 like a real backbone's.
    """

    out_channels = 64

    def __init__(self):
        super().__init__()
        layers = []
        for c_in, c_out, stride in ((3, 32, 2), (32, 64, 2), (64, 64, 1)):
            layers += [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x)
        return self.body(x)

    def features_at(self, x: torch.Tensor, tap: str) -> torch.Tensor:
        """The feature map at a declared tap; the tiny CNN has only ``head``."""
        if tap != "head":
            raise UsageError(f"tiny-cnn has no feature tap {tap!r}; taps: head")
        return self.forward(x)
