"""Feature taps are data in the backbone registry: every declared tap of every backbone gives a map of the
declared channels and stride, and local descriptors take their tap from the registry."""

from __future__ import annotations

import pytest
import torch

from retrievalkit.errors import UsageError
from retrievalkit.extract.local_deep import LocalBackbone
from retrievalkit.models import create_backbone, get_backbone_spec, list_backbones

# the deep ResNets are slow to build on a shared CPU; one of each block kind covers the layouts
NAMES = [n for n in list_backbones() if n not in ("resnet101", "resnet152", "resnet34")]


@pytest.mark.parametrize("name", NAMES)
def test_every_declared_tap_has_its_channels_and_stride(name):
    spec = get_backbone_spec(name)
    taps = spec.feature_taps()
    assert next(iter(taps)) == "head" and taps["head"].channels == spec.out_channels
    assert spec.local_tap in taps
    net = create_backbone(name, weights="random").eval()
    x = torch.rand(1, 3, 128, 192)
    with torch.no_grad():
        for tap in taps.values():
            fm = net.features_at(x, tap.name)
            assert fm.shape[1] == tap.channels, (name, tap)
            assert abs(128 / fm.shape[2] - tap.stride) <= tap.stride / 4, (name, tap, fm.shape)
            assert abs(192 / fm.shape[3] - tap.stride) <= tap.stride / 4, (name, tap, fm.shape)
    with pytest.raises(UsageError, match="no-such-tap"):
        net.features_at(x, "no-such-tap")


def test_local_backbone_asks_the_registry():
    net = LocalBackbone(create_backbone("efficientnet-lite0", weights="random"))
    assert net.layer == "s16" and net.out_channels == 672 and net.stride == 16  # auto = the registered local tap
    head = LocalBackbone(create_backbone("tiny-cnn"), "auto")
    assert head.layer == "head" and head.out_channels == 64
    with pytest.raises(UsageError, match="s16"):
        LocalBackbone(create_backbone("tiny-cnn"), "s16")
