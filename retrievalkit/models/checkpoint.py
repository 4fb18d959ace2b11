"""Model files: rkit's own checkpoint format, and import of cirtorch and torchvision weights.

An rkit model file is ``torch.save`` of::

    {'format': 'rkit/model', 'schema': 1, 'rkit_version': '0.1.0', 'created': ISO-8601 time,
     'config': RetrievalNet.config, 'state_dict': RetrievalNet.state_dict() (CPU tensors), 'extra': {...}}

Example:
    >>> net = load_model("efficientnet-lite0")          # registry name: ImageNet backbone + GeM p=3
    >>> save_model(net, "model.pt"); net2 = load_model("model.pt", "cpu")
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn

from retrievalkit import __version__
from retrievalkit.devices import resolve_device
from retrievalkit.errors import BadInputError, MissingInputError, UsageError
from retrievalkit.io.output import atomic_file
from retrievalkit.models._checks import ShapeError
from retrievalkit.models._files import load_state_into, load_torch_file
from retrievalkit.models.efficientnet_lite import infer_lite_variant
from retrievalkit.models.network import RetrievalNet
from retrievalkit.models.pooling import GeM, create_pooling
from retrievalkit.models.registry import backbone_state_dict, create_backbone, get_backbone_spec
from retrievalkit.models.resnet import RESNET_LAYOUTS, from_cirtorch_keys, infer_resnet_arch

FORMAT = "rkit/model"
SCHEMA = 1


def save_model(net: RetrievalNet, path: str | Path, extra: Mapping | None = None) -> Path:
    """Write ``net`` as an rkit model file, atomically (temporary file in the same folder, then ``os.replace``).

    Args:
        net: the network.
        path: output file (its folder is created if needed).
        extra: JSON-like information to keep with the model (training settings, ...).
    Returns:
        the path written.
    """
    path = Path(path)
    payload = {
        "format": FORMAT,
        "schema": SCHEMA,
        "rkit_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": net.config,
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "extra": dict(extra or {}),
    }
    with atomic_file(path) as tmp:  # the one write path: locked target, temporary file, rename
        torch.save(payload, tmp)
    return path


def load_model(source: str | Path, device: str | torch.device | None = "cpu", *, backbone: str | None = None,
               pooling: str | None = None, p: float | None = None) -> RetrievalNet:
    """Load a retrieval network, in eval mode on ``device``.

    Args:
        source: a registry name ('efficientnet-lite0': its default weights with GeM p=3), an rkit model file,
            a cirtorch checkpoint (``{'state_dict': {'features.0.weight', ..., 'pool.p', 'whiten.*'},
            'meta': {...}}``; architecture from ``meta['architecture']``, else ``backbone``, else inferred from
            the keys), a bare cirtorch ``features`` state dict, a torchvision ResNet state dict or the
            efficientnet-lite-pytorch ImageNet file.
        device: see :func:`retrievalkit.devices.resolve_device`.
        backbone: architecture of a cirtorch/torchvision file that does not record one.
        pooling, p: override the pooling (and GeM power) of what is loaded; None keeps the file's (GeM p=3 for
            files without pooling).
    Raises:
        BadInputError: unreadable, corrupt or unrecognised file (the message names it).
        UsageError: unknown registry name (close matches listed) or conflicting options.
    """
    dev = torch.device(resolve_device(device))
    path = Path(source)
    if path.is_file():
        net = _load_file(path, backbone=backbone, pooling=pooling)
    elif path.suffix or "/" in str(source) or os.sep in str(source):
        raise MissingInputError(f"model file {path} does not exist")
    else:
        spec = get_backbone_spec(str(source))  # an unknown name raises UsageError listing the close matches
        net = RetrievalNet(create_backbone(spec.name), pooling=pooling or "gem", p=3.0 if p is None else p)
    _apply_overrides(net, pooling, p)
    return net.to(dev).eval()


def _apply_overrides(net: RetrievalNet, pooling: str | None, p: float | None) -> None:
    if pooling is not None and pooling.lower() != net.pooling:
        net.pooling = pooling.lower()
        net.pool = create_pooling(net.pooling, p=3.0 if p is None else p, levels=net.rmac_levels,
                                  channels=net.out_channels)
    if p is not None:
        if not isinstance(net.pool, GeM):
            raise UsageError(f"p={p} applies to GeM pooling only, not {net.pooling!r}")
        with torch.no_grad():
            net.pool.p.fill_(float(p))


def _load_file(path: Path, backbone: str | None, pooling: str | None) -> RetrievalNet:
    obj = load_torch_file(path)
    if not isinstance(obj, Mapping):
        raise BadInputError(f"{path} holds a {type(obj).__name__}, not a model checkpoint or state dict")
    if "format" in obj:
        if obj["format"] != FORMAT:
            raise BadInputError(f"{path} is a {obj['format']!r} file, not a model ({FORMAT})")
        net = _load_rkit(obj, path)
        arch = (obj.get("config") or {}).get("backbone")
        if backbone is not None and arch is not None and arch != backbone:
            raise UsageError(f"{path} holds an rkit {arch} model, but the architecture given is {backbone!r} "
                             f"(--model); give the file itself as --model {path} (it records its architecture)")
        return net
    state = obj.get("state_dict") if isinstance(obj.get("state_dict"), Mapping) else obj
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    meta = obj.get("meta") if isinstance(obj.get("meta"), Mapping) else {}
    if any(k.startswith("features.") for k in state):
        return _load_cirtorch(state, meta, path, backbone, pooling)
    if state and all(re.match(r"\d+\.", k) for k in state):  # cirtorch "features" file (Sequential, keys 0.*..7.*)
        return _load_cirtorch({f"features.{k}": v for k, v in state.items()}, meta, path, backbone, pooling)
    arch = infer_resnet_arch(state)
    if arch is None and "_conv_stem.weight" in state and "_conv_head.weight" in state:
        arch = f"efficientnet-{infer_lite_variant(state) or 'lite0'}"
    if backbone is not None:
        if arch is not None and arch != backbone:
            raise UsageError(f"{path} holds {arch} weights, but backbone={backbone!r} was given")
        arch = backbone
    if arch is None:
        raise BadInputError(f"{path}: not an rkit model, a cirtorch checkpoint or a torchvision/EfficientNet state "
                            "dict that rkit recognises; pass backbone=NAME (--backbone) if it holds backbone weights")
    net = RetrievalNet(create_backbone(arch, weights="random"), pooling=pooling or "gem")
    load_state_into(net.backbone, backbone_state_dict(obj, net.backbone, path), path, what=f"backbone {arch}")
    return net


def _load_rkit(obj: Mapping, path: Path) -> RetrievalNet:
    schema = obj.get("schema")
    if not isinstance(schema, int) or schema > SCHEMA:
        raise BadInputError(f"{path}: model schema {schema!r} is not supported by rkit {__version__} "
                            f"(reads schema <= {SCHEMA}); upgrade rkit")
    config, state = obj.get("config"), obj.get("state_dict")
    if not isinstance(config, Mapping) or not isinstance(state, Mapping):
        raise BadInputError(f"{path}: rkit model file without config or state_dict (damaged?)")
    try:
        net = RetrievalNet.from_config(config, weights="random")
    except (BadInputError, UsageError) as e:
        raise BadInputError(f"{path}: {e}") from e
    load_state_into(net, state, path)
    return net


def _load_cirtorch(state: Mapping, meta: Mapping, path: Path, backbone: str | None,
                   pooling: str | None) -> RetrievalNet:
    unsupported = sorted({k.split(".")[0] for k in state if k.split(".")[0] in ("lwhiten", "rpool")})
    if unsupported or meta.get("regional") or meta.get("local_whitening"):
        raise BadInputError(f"{path}: cirtorch networks with regional pooling or local whitening "
                            f"({', '.join(unsupported) or 'meta flags'}) are not supported")
    features = from_cirtorch_keys(state)
    arch = meta.get("architecture")
    if arch is not None and backbone is not None and arch != backbone:
        raise UsageError(f"{path} is a {arch} network (meta['architecture']), but backbone={backbone!r} was given")
    arch = arch or backbone or infer_resnet_arch(features)
    if arch is None:
        raise BadInputError(f"cannot tell the architecture of cirtorch checkpoint {path}; pass backbone=NAME "
                            f"(--backbone), one of {', '.join(RESNET_LAYOUTS)}")
    if arch not in RESNET_LAYOUTS:
        raise BadInputError(f"{path}: cirtorch architecture {arch!r} is not supported (rkit reads "
                            f"{', '.join(RESNET_LAYOUTS)})")
    pool_p = state.get("pool.p")
    file_pooling = meta.get("pooling")
    if file_pooling is None:
        if pool_p is not None:
            file_pooling = "gem" if pool_p.numel() == 1 else "gemmp"
        elif pooling is not None:
            file_pooling = pooling
        else:
            raise BadInputError(f"cannot tell the pooling of cirtorch checkpoint {path} (no meta, no pool.p); "
                                "pass pooling=NAME (--pooling)")
    whiten_w = state.get("whiten.weight")
    net = RetrievalNet(create_backbone(arch, weights="random"), pooling=file_pooling,
                       whitening=None if whiten_w is None else tuple(whiten_w.shape),
                       mean=meta.get("mean"), std=meta.get("std"))
    full = {f"backbone.{k}": v for k, v in features.items()}
    full.update({k: v for k, v in state.items() if k.startswith(("pool.", "whiten."))})
    if "pool.p" in full and net.pooling == "gem":
        full["pool.p"] = full["pool.p"].reshape(1)
    load_state_into(net, full, path, what=f"cirtorch {arch} network")
    return net


def load_whitening_into(net: RetrievalNet, mean: np.ndarray | torch.Tensor,
                        proj: np.ndarray | torch.Tensor) -> RetrievalNet:
    """Set the network's whitening layer from a whitening ``(mean, proj)``: ``whiten(x) = proj (x - mean)``.

    Args:
        net: the network (its whitening layer is replaced, or added).
        mean: (C,) mean (also accepted as (C, 1) or (1, C), as cirtorch stores it).
        proj: (D_out, C) projection (e.g. PCA-whitening or learned whitening, rows = output dimensions).
    Returns:
        ``net``, whose layer now has weight = P and bias = -P @ m.
    """
    P = torch.as_tensor(np.asarray(proj) if not isinstance(proj, torch.Tensor) else proj).detach().float().cpu()
    m = torch.as_tensor(np.asarray(mean) if not isinstance(mean, torch.Tensor) else mean).detach().float().cpu()
    c = net.out_channels
    if P.dim() != 2 or P.shape[1] != c:
        raise ShapeError(f"whitening projection: expected shape (D_out, {c}), got {tuple(P.shape)}")
    if m.numel() != c:
        raise ShapeError(f"whitening mean: expected {c} values, got shape {tuple(m.shape)}")
    m = m.reshape(c)
    layer = nn.Linear(c, P.shape[0], bias=True)
    with torch.no_grad():
        layer.weight.copy_(P)
        layer.bias.copy_(-(P @ m))
    param = next(net.parameters(), None)
    net.whiten = layer.to(param.device if param is not None else "cpu")
    return net

