"""Backbone registry, pooling layers, the retrieval network and model files.

Public API::

    from retrievalkit.models import create_backbone, RetrievalNet, describe, load_model, save_model
    net = load_model("efficientnet-lite0", "cpu")               # ImageNet EfficientNet-Lite0 + GeM p=3
    v = describe(net, net.standardize(x), scales=(1, 2**-0.5))  # (B, 1280), unit norm
"""

from retrievalkit.devices import resolve_device
from retrievalkit.models._checks import ShapeError
from retrievalkit.models.checkpoint import load_model, load_whitening_into, save_model
from retrievalkit.models.network import RetrievalNet, describe
from retrievalkit.models.pooling import (
    MAC,
    POOLINGS,
    RMAC,
    GeM,
    SPoC,
    create_pooling,
    gem,
    l2n,
    mac,
    rmac,
    rmac_grid,
    rmac_regions,
    spoc,
)
from retrievalkit.models.registry import (
    BACKBONES,
    BackboneSpec,
    FeatureTap,
    create_backbone,
    get_backbone_spec,
    list_backbones,
    load_backbone_weights,
)

__all__ = [
    "BACKBONES", "BackboneSpec", "FeatureTap", "GeM", "MAC", "POOLINGS", "RMAC", "RetrievalNet", "SPoC", "ShapeError",
    "create_backbone", "create_pooling", "describe", "gem", "get_backbone_spec", "l2n", "list_backbones",
    "load_backbone_weights", "load_model", "load_whitening_into", "mac", "resolve_device", "rmac", "rmac_grid",
    "rmac_regions", "save_model", "spoc",
]
