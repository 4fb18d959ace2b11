"""ResNet-18/34/50/101/152 in plain torch with torchvision's state-dict names, and cirtorch key conversion.

State-dict keys are torchvision's (``conv1``, ``bn1``, ``layer1``..``layer4``, ``fc`` when a classifier is
kept), so torchvision ImageNet files load as they are. cirtorch networks store the same modules as
``features`` = Sequential(conv1, bn1, relu, maxpool, layer1..4), i.e. ``features.0`` ... ``features.7``;
:func:`from_cirtorch_keys` and :func:`to_cirtorch_keys` convert between the two namings.

Example:
    >>> net = ResNet("resnet50")
    >>> net(torch.rand(2, 3, 224, 224)).shape
    torch.Size([2, 2048, 7, 7])
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import nn

from retrievalkit.errors import UsageError
from retrievalkit.models._checks import check_images

RESNET_LAYOUTS: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
}
"""Block type and number of blocks per stage of each ResNet."""

CIRTORCH_FEATURES = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
"""Module names behind cirtorch's ``features.0`` .. ``features.7``."""


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a skip; (B, C_in, H, W) -> (B, planes, H / stride, W / stride)."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride, as torchvision), 1x1 expand by 4, with a skip;
    (B, C_in, H, W) -> (B, 4 planes, H / stride, W / stride)."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, planes * 4, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))


class ResNet(nn.Module):
    """ResNet feature extractor. (B, 3, H, W) ImageNet-standardised RGB -> (B, C, ~H/32, ~W/32) from layer4.

    Args:
        arch: one of :data:`RESNET_LAYOUTS` ("resnet18", "resnet50", ...).
        num_classes: keep the classifier ``fc`` (C -> num_classes) for :meth:`classify`; None builds none.
    Attributes:
        out_channels: C = 512 (basic blocks) or 2048 (bottlenecks).
    """

    def __init__(self, arch: str = "resnet50", num_classes: int | None = None):
        super().__init__()
        if arch not in RESNET_LAYOUTS:
            raise UsageError(f"unknown ResNet {arch!r}; choose one of {', '.join(RESNET_LAYOUTS)}")
        kind, counts = RESNET_LAYOUTS[arch]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.arch = arch
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        channels = 64
        for i, (count, planes) in enumerate(zip(counts, (64, 128, 256, 512)), start=1):
            layers = []
            for j in range(count):
                layers.append(block(channels, planes, stride=2 if (j == 0 and i > 1) else 1))
                channels = planes * block.expansion
            setattr(self, f"layer{i}", nn.Sequential(*layers))
        self.out_channels = channels
        if num_classes is not None:
            self.fc = nn.Linear(channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, out_channels, h, w), h = ceil(H/32) for H a multiple of 32."""
        check_images(x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def features_at(self, x: torch.Tensor, tap: str) -> torch.Tensor:
        """The feature map at a declared tap: ``head`` (layer4, stride 32) or ``s16`` (layer3 = conv4, stride 16,
        HOW's layer for local descriptors)."""
        if tap == "head":
            return self.forward(x)
        if tap != "s16":
            raise UsageError(f"{self.arch} has no feature tap {tap!r}; taps: head, s16")
        check_images(x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer3(self.layer2(self.layer1(x)))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (B, num_classes); needs ``num_classes`` at construction."""
        if not hasattr(self, "fc"):
            raise UsageError(f"this {self.arch} has no classifier; build it with num_classes=1000")
        return self.fc(self.forward(x).mean(dim=(-2, -1)))


def from_cirtorch_keys(state_dict: Mapping[str, torch.Tensor], prefix: str = "features.") -> dict[str, torch.Tensor]:
    """Select ``features.N.*`` entries of a cirtorch state dict and rename them to torchvision names.

    ``features.0.weight`` -> ``conv1.weight``, ``features.1.*`` -> ``bn1.*``, ``features.4.0.conv1.weight`` ->
    ``layer1.0.conv1.weight`` ... Other entries (``pool.p``, ``whiten.*``) are left out.
    """
    out = {}
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.(.*)")
    for key, value in state_dict.items():
        m = pattern.fullmatch(key)
        if m and int(m.group(1)) < len(CIRTORCH_FEATURES):
            out[f"{CIRTORCH_FEATURES[int(m.group(1))]}.{m.group(2)}"] = value
    return out


def to_cirtorch_keys(state_dict: Mapping[str, torch.Tensor], prefix: str = "features.") -> dict[str, torch.Tensor]:
    """Inverse of :func:`from_cirtorch_keys` (drops ``fc.*``, which cirtorch networks do not have)."""
    index = {name: i for i, name in enumerate(CIRTORCH_FEATURES)}
    out = {}
    for key, value in state_dict.items():
        head, _, rest = key.partition(".")
        if head in index:
            out[f"{prefix}{index[head]}.{rest}"] = value
    return out


def infer_resnet_arch(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """Which ResNet a torchvision-named state dict belongs to (from its block type and count), or None."""
    if "conv1.weight" not in state_dict or "layer1.0.conv1.weight" not in state_dict:
        return None
    kind = "bottleneck" if "layer1.0.conv3.weight" in state_dict else "basic"
    counts = []
    for i in range(1, 5):
        blocks = {int(k.split(".")[1]) for k in state_dict if k.startswith(f"layer{i}.")}
        counts.append(max(blocks) + 1 if blocks else 0)
    for arch, layout in RESNET_LAYOUTS.items():
        if layout == (kind, tuple(counts)):
            return arch
    return None
