"""Settings of ``rkit extract`` (global descriptors) and ``rkit extract --local`` (local features).

These dataclasses are the one place the defaults live: :func:`~retrievalkit.extract.global_desc.extract_global`
and :func:`~retrievalkit.extract.local_desc.extract_local` take one as ``config`` (None: the defaults), the
presets start from them, and the CLI fills only the options a user gave. Values are checked in ``__post_init__``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from retrievalkit.configs.checks import at_least, one_of, positive

POOLINGS = ("mac", "spoc", "gem", "gemmp", "rmac")
LOCAL_METHODS = ("deep", "sift", "dsm")
LOCAL_LAYERS = ("auto", "head", "s16")
#: pyramid of deep local features (HOW uses 2, 1.414, 1, 0.707, 0.5, 0.353, 0.25 at a smaller base size)
LOCAL_SCALES = (1.0, 0.707, 0.5, 0.353)
#: dsm: the strongest channels (GeM of the activation map) searched for blobs per image (Deep Spatial Matching)
DSM_CHANNELS = 64


def _check_size(size: int | None) -> None:
    if size is not None and size != 0 and size < 16:
        from retrievalkit.errors import UsageError

        raise UsageError(f"--size {size}: too small (use at least 16 pixels, or 0 for the original size)")


@dataclass
class GlobalExtractConfig:
    """One global descriptor per image.

    Attributes:
        model: backbone name or model file. weights: weights file for the backbone (None: the registry's).
        pooling, p: pooling (None: the model's, GeM) and GeM power (None: the model's, 3; must be > 0).
        whitening: whitening file applied inside the network.
        size: longer image side in pixels (0 or None: original size); never upscaled unless ``upscale``.
        scales: image scales whose descriptors are combined by GeM.
        batch_size: images per forward pass (same-sized images are batched). workers: decoding processes.
        half: store float16. regions: R-MAC region vectors (several per image).
    """

    model: str = "efficientnet-lite0"
    weights: str | None = None
    pooling: str | None = None
    p: float | None = None
    whitening: str | None = None
    size: int | None = 512
    scales: tuple[float, ...] = (1.0,)
    batch_size: int = 1
    workers: int = 2
    half: bool = False
    upscale: bool = False
    regions: bool = False

    def __post_init__(self) -> None:
        self.scales = tuple(float(s) for s in self.scales)
        one_of("pooling", self.pooling, POOLINGS)
        positive("p", self.p)
        _check_size(self.size)
        for s in self.scales:
            positive("scales", s)
        at_least("batch_size", self.batch_size, 1)
        at_least("workers", self.workers, 0)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LocalExtractConfig:
    """A variable number of local features per image (``rkit extract --local``).

    Attributes:
        method: ``deep`` (strongest CNN activations, HOW), ``sift`` (RootSIFT) or ``dsm`` (blobs on the
            activation maps' :data:`DSM_CHANNELS` strongest channels, for Deep Spatial Matching).
        model, weights, layer: deep and dsm: the backbone and its feature map (``auto``: deep: s16 where the
            backbone has it; dsm: head, the last convolutional map).
        size: longer image side in pixels (0 or None: original size). scales: deep: pyramid scales.
        max_features: local features kept per image. dim: deep: PCA-whitened dimension (0: no PCA).
        pca_images: deep: images whose descriptors learn the PCA when none is given. smooth: deep: smooth the
            attention map before selecting features. dsm_channels: dsm: strongest channels searched for blobs.
        half: store float16.
    """

    method: str = "deep"
    model: str = "efficientnet-lite0"
    weights: str | None = None
    layer: str = "auto"
    size: int | None = 512
    scales: tuple[float, ...] = LOCAL_SCALES
    max_features: int = 1000
    dim: int = 128
    pca_images: int = 200
    smooth: bool = True
    dsm_channels: int = DSM_CHANNELS
    half: bool = False

    def __post_init__(self) -> None:
        self.scales = tuple(float(s) for s in self.scales)
        at_least("pca_images", self.pca_images, 0)
        at_least("dsm_channels", self.dsm_channels, 1)
        one_of("local_method", self.method, LOCAL_METHODS)
        one_of("local_layer", self.layer, LOCAL_LAYERS)
        _check_size(self.size)
        for s in self.scales:
            positive("scales", s)
        at_least("max_features", self.max_features, 1)
        at_least("dim", self.dim, 0)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class MergeConfig:
    """``rkit merge``: no settings (the shards' own settings must agree); here so that every stage has the one
    shape ``stage(inputs..., output, config=None, *, progress=None)``."""

    def to_dict(self) -> dict:
        return asdict(self)
