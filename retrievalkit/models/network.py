"""The retrieval network: backbone -> pooling -> L2 -> optional whitening -> L2, and multi-scale description.

Descriptors are computed as in cnnimageretrieval-pytorch (cirtorch): ``v = l2n(pool(backbone(x)))`` and, with
a whitening layer, ``v = l2n(whiten(v))``. Inputs are RGB batches in [0, 1] standardised with the network's
``mean``/``std`` (:meth:`RetrievalNet.standardize` does it).

Example:
    >>> net = RetrievalNet(create_backbone("tiny-cnn"), pooling="gem").eval()
    >>> x = net.standardize(torch.rand(2, 3, 64, 80))
    >>> net(x).shape, describe(net, x, scales=(1.0, 0.707, 0.5)).shape
    (torch.Size([2, 64]), torch.Size([2, 64]))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.models._checks import ShapeError, check_images
from retrievalkit.models.pooling import GeM, create_pooling, l2n, rmac_regions
from retrievalkit.models.registry import create_backbone


class RetrievalNet(nn.Module):
    """Global descriptor network. (B, 3, H, W) standardised RGB -> (B, D) descriptors.

    Args:
        backbone: a module with ``out_channels``, ``mean``, ``std`` (see :mod:`.registry`) or a registry name
            (built with its default weights).
        pooling: 'gem' (default), 'mac', 'spoc', 'rmac' or 'gemmp'.
        p: initial GeM power (learnable; stored as ``pool.p``).
        whitening: None; an ``nn.Linear(C, D_out)``; D_out (an int); or the pair (D_out, C). The layer is
            applied to the L2-normalised pooled vector and its output is L2-normalised again.
        normalize: L2-normalise (cirtorch always does). False returns the raw pooled (and whitened) vector.
        rmac_levels: levels L of the R-MAC grid (pooling 'rmac' and :meth:`regions`).
        mean, std: override the backbone's input standardisation (e.g. from a cirtorch checkpoint's meta).
    Attributes:
        backbone, pool, whiten (or None): the sub-modules; state-dict keys ``backbone.*``, ``pool.p``,
            ``whiten.weight``/``whiten.bias``.
        out_channels: C of the backbone map; ``dim``: D of the descriptor.
    """

    def __init__(self, backbone: nn.Module | str, pooling: str = "gem", p: float = 3.0,
                 whitening: nn.Linear | int | tuple[int, int] | None = None, normalize: bool = True,
                 rmac_levels: int = 3, mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        super().__init__()
        if isinstance(backbone, str):
            backbone = create_backbone(backbone)
        for attr in ("out_channels", "mean", "std"):
            if not hasattr(backbone, attr):
                raise UsageError(f"backbone {type(backbone).__name__} lacks attribute {attr!r}; build it with "
                                 "create_backbone(name) or set out_channels/mean/std")
        self.backbone = backbone
        self.out_channels = int(backbone.out_channels)
        self.pooling = pooling.lower()
        self.rmac_levels = rmac_levels
        self.pool = create_pooling(self.pooling, p=p, levels=rmac_levels, channels=self.out_channels)
        self.whiten = self._whitening_layer(whitening)
        self.normalize = normalize
        self.mean = tuple(float(v) for v in (backbone.mean if mean is None else mean))
        self.std = tuple(float(v) for v in (backbone.std if std is None else std))
        if len(self.mean) != 3 or len(self.std) != 3:
            raise UsageError(f"mean and std need 3 values (RGB), got {self.mean} and {self.std}")

    def _whitening_layer(self, whitening: nn.Linear | int | tuple[int, int] | None) -> nn.Linear | None:
        c = self.out_channels
        if whitening is None:
            return None
        if isinstance(whitening, nn.Linear):
            layer = whitening
        elif isinstance(whitening, int):
            layer = nn.Linear(c, whitening, bias=True)
        elif isinstance(whitening, (tuple, list)) and len(whitening) == 2:
            layer = nn.Linear(int(whitening[1]), int(whitening[0]), bias=True)
        else:
            raise UsageError(f"whitening must be None, an int, (D_out, C) or nn.Linear; got {whitening!r}")
        if layer.in_features != c:
            raise UsageError(f"whitening takes {layer.in_features}-d input but the backbone gives {c} channels")
        return layer

    @property
    def dim(self) -> int:
        """D, the descriptor dimension."""
        return self.out_channels if self.whiten is None else self.whiten.out_features

    @property
    def config(self) -> dict:
        """Settings that rebuild this network with :meth:`from_config` (JSON-serialisable)."""
        p = None
        if isinstance(self.pool, GeM):
            p = float(self.pool.p.detach().mean().item())
        return {
            "backbone": getattr(self.backbone, "name", type(self.backbone).__name__),
            "backbone_options": dict(getattr(self.backbone, "options", {})),
            "out_channels": self.out_channels,
            "pooling": self.pooling,
            "p": p,
            "rmac_levels": self.rmac_levels,
            "whitening": None if self.whiten is None else [self.whiten.out_features, self.whiten.in_features],
            "normalize": self.normalize,
            "mean": list(self.mean),
            "std": list(self.std),
            "dim": self.dim,
        }

    @classmethod
    def from_config(cls, config: Mapping, weights: str | None = "random") -> RetrievalNet:
        """Build the network described by ``config`` (from :attr:`config`); backbone weights as in
        :func:`~retrievalkit.models.registry.create_backbone` (random by default: a state dict follows)."""
        try:
            backbone = create_backbone(config["backbone"], weights=weights, **config.get("backbone_options", {}))
            whitening = config.get("whitening")
            return cls(backbone, pooling=config.get("pooling", "gem"), p=config.get("p") or 3.0,
                       whitening=tuple(whitening) if whitening else None, normalize=config.get("normalize", True),
                       rmac_levels=config.get("rmac_levels", 3), mean=config.get("mean"), std=config.get("std"))
        except (KeyError, TypeError, ValueError) as e:
            raise BadInputError(f"invalid model config ({type(e).__name__}: {e})") from e

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> standardised input ``(x - mean) / std``."""
        check_images(x)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone feature map: (B, 3, H, W) -> (B, C, h, w)."""
        check_images(x)
        return self.backbone(x)

    def head(self, fmap: torch.Tensor) -> torch.Tensor:
        """Pooling, normalisation and whitening of a feature map: (B, C, h, w) -> (B, D)."""
        v = self.pool(fmap)
        if self.normalize:
            v = l2n(v)
        if self.whiten is not None:
            v = self.whiten(v.to(self.whiten.weight.dtype))
            if self.normalize:
                v = l2n(v)
        return v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) standardised images -> (B, D) descriptors (unit L2 norm when ``normalize``)."""
        return self.head(self.features(x))

    def regions(self, x: torch.Tensor, levels: int | None = None, whiten: bool = False) -> torch.Tensor:
        """R-MAC region vectors: (B, 3, H, W) -> (B, R, C), each L2-normalised (R = 21 for L = 3 on most maps).

        With ``whiten`` and a whitening layer, each region is whitened and re-normalised: (B, R, D).
        """
        r = rmac_regions(self.features(x), levels=levels or self.rmac_levels)
        if whiten and self.whiten is not None:
            r = l2n(self.whiten(r))
        return r

    def multiscale_power(self, n_scales: int) -> float:
        """The power used to combine scales, as cirtorch: GeM's p for several scales with plain GeM pooling and no
        whitening (whitened vectors have negative entries), else 1 (average)."""
        if n_scales > 1 and self.pooling == "gem" and self.whiten is None:
            return float(self.pool.p.detach().item())
        return 1.0

    def describe(self, images: torch.Tensor | Sequence[torch.Tensor], scales: Sequence[float] = (1.0,),
                 p: float | None = None) -> torch.Tensor:
        """Multi-scale descriptors; see :func:`describe`."""
        return describe(self, images, scales, p)


def describe(net: RetrievalNet, images: torch.Tensor | Sequence[torch.Tensor], scales: Sequence[float] = (1.0,),
             p: float | None = None) -> torch.Tensor:
    """Multi-scale global descriptors, as cirtorch's ``extract_ms``.

    For each scale s the input is resized with ``F.interpolate(scale_factor=s, mode='bilinear',
    align_corners=False)`` (s = 1: no resize) and described, v_s = net(x_s); the result is
    ``l2n((mean_s v_s^p)^(1/p))``. Runs without gradients; put the network in eval mode first.

    Args:
        net: the network (its device is used).
        images: a (B, 3, H, W) batch, or a list of (3, H, W) / (1, 3, H, W) images of any sizes (each described
            on its own, no padding), standardised.
        scales: resize factors, e.g. (1, 2**-0.5, 0.5).
        p: combination power; None: :meth:`RetrievalNet.multiscale_power` (GeM's p when several scales, else 1).
    Returns:
        (N, D) float32 descriptors on the network's device.
    """
    scales = tuple(float(s) for s in scales)
    if not scales or any(s <= 0 for s in scales):
        raise UsageError(f"scales must be positive numbers, got {scales}")
    if p is None:
        p = net.multiscale_power(len(scales))
    param = next(net.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    if isinstance(images, torch.Tensor):
        batches = [check_images(images)]
    else:
        batches = []
        for i, im in enumerate(images):
            if not isinstance(im, torch.Tensor) or im.dim() not in (3, 4):
                got = tuple(im.shape) if isinstance(im, torch.Tensor) else type(im).__name__
                raise ShapeError(f"image {i}: expected (3, H, W) or (1, 3, H, W), got {got}")
            batches.append(check_images(im if im.dim() == 4 else im.unsqueeze(0), f"image {i}"))
    out = []
    with torch.no_grad():
        for batch in batches:
            batch = batch.to(device)
            acc = None
            for s in scales:
                xs = batch if s == 1.0 else F.interpolate(batch, scale_factor=s, mode="bilinear", align_corners=False)
                v = net(xs).float()
                v = v if p == 1.0 else v.pow(p)
                acc = v if acc is None else acc + v
            v = acc / len(scales)
            if p != 1.0:
                v = v.pow(1.0 / p)
            if net.normalize:
                v = v / torch.linalg.vector_norm(v, dim=1, keepdim=True).clamp_min(1e-12)
            out.append(v)
    return torch.cat(out, dim=0)
