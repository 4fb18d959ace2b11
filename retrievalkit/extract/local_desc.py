"""Local descriptor extraction: deep HOW-style activations or SIFT/RootSIFT → a locals file.

Deep locals (HOW, Tolias, Jenicek & Chum, ECCV 2020): a backbone feature map is computed at several scales;
each spatial position is a candidate descriptor whose attention (strength) is its L2 norm; an optional 3×3
average pooling smooths the map first; the ``max_features`` strongest positions over all scales are kept,
L2-normalised, and reduced to ``pca_dim`` dimensions by a PCA-whitening (learned on a sample of the database
descriptors, or reused from another locals file so queries and database share it), then L2-normalised again.

SIFT: OpenCV SIFT with RootSIFT descriptors (:func:`retrievalkit.verify.geometry.sift_features`).

Keypoints are stored in pixels of the original image (query-box crops shifted back): x, y, scale (feature
cell size for deep locals, SIFT size for SIFT), and strength (deep) or angle (SIFT).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from retrievalkit.configs.extract import LOCAL_LAYERS, LOCAL_METHODS, LOCAL_SCALES, LocalExtractConfig
from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.extract.inputs import resolve_inputs
from retrievalkit.images.decode import ImageReadError, crop_box, load_image, resize_longer
from retrievalkit.images.discover import select_shard
from retrievalkit.io.h5file import open_checked
from retrievalkit.io.locals import KIND as LOCALS_KIND
from retrievalkit.io.locals import SCHEMA as LOCALS_SCHEMA
from retrievalkit.io.locals import Locals, pack_locals, validate_locals
from retrievalkit.io.output import writes_output

METHODS = LOCAL_METHODS
#: HOW's scale pyramid; on a CPU use a shorter one (see docs/local.md)
HOW_SCALES = (2.0, 1.414, 1.0, 0.707, 0.5, 0.353, 0.25)
DEFAULT_SCALES = LOCAL_SCALES
#: backbone layers for deep locals: 'head' (the network's own output map) or, for EfficientNet-Lite0,
#: 's16' (the 672-channel expansion of block 11, stride 16: finer positions, as HOW's ResNet conv4);
#: 'auto' is s16 where the backbone has it, else head
LAYERS = LOCAL_LAYERS
#: pyramid levels whose shorter side falls below this (pixels) are skipped
MIN_SIDE = 96


# ----------------------------------------------------------------------------------------- deep: the core
class LocalBackbone(torch.nn.Module):
    """A backbone cut at the layer local descriptors are taken from: (1, 3, H, W) → (1, C, h, w)."""

    def __init__(self, backbone: torch.nn.Module, layer: str = "auto"):
        super().__init__()
        if layer not in LAYERS:
            raise UsageError(f"--local-layer {layer!r}: expected one of {', '.join(LAYERS)}")
        if layer == "auto":
            layer = "s16" if hasattr(backbone, "_blocks") else "head"
        if layer == "s16" and not hasattr(backbone, "_blocks"):
            raise UsageError("--local-layer s16 is defined for efficientnet-lite0 only; use 'head'")
        self.backbone = backbone
        self.layer = layer
        self.mean, self.std = backbone.mean, backbone.std
        self.out_channels = int(backbone.out_channels) if layer == "head" else \
            int(backbone._blocks[11]._expand_conv.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layer == "head":
            return self.backbone(x)
        b = self.backbone
        x = F.relu6(b._bn0(b._conv_stem(x)))
        for block in b._blocks[:11]:
            x = block(x)
        blk = b._blocks[11]
        return F.relu6(blk._bn0(blk._expand_conv(x)))


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


# ----------------------------------------------------------------------------------------- PCA whitening
def learn_pca_whitening(x: np.ndarray, dim: int = 128, shrinkage: float = 1.0, eps: float = 1e-6,
                        ) -> tuple[np.ndarray, np.ndarray]:
    """PCA-whitening learned on rows of ``x`` (M, C): returns (mean (C,), projection (C, d)), d = min(dim, C).

    ``whiten(v) = l2n((v - mean) @ projection)``, projection = eigenvectors / eigenvalue**(shrinkage / 2).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise BadInputError(f"PCA-whitening needs at least 2 descriptors, got {x.shape}")
    mean = x.mean(0)
    xc = x - mean
    cov = xc.T @ xc / (x.shape[0] - 1)
    eigval, eigvec = np.linalg.eigh(cov)
    order = np.argsort(eigval)[::-1][:min(dim, x.shape[1])]
    eigval, eigvec = np.maximum(eigval[order], 0), eigvec[:, order]
    proj = eigvec / (eigval + eps * max(eigval.max(), eps)) ** (shrinkage / 2)
    return mean.astype(np.float32), proj.astype(np.float32)


def apply_pca_whitening(x: np.ndarray, mean: np.ndarray, proj: np.ndarray) -> np.ndarray:
    """(M, C) → (M, d) whitened and L2-normalised rows."""
    if x.shape[0] == 0:
        return np.zeros((0, proj.shape[1]), np.float32)
    y = (np.asarray(x, np.float32) - mean) @ proj
    return (y / (np.linalg.norm(y, axis=1, keepdims=True) + 1e-12)).astype(np.float32)


def pca_id(mean: np.ndarray, proj: np.ndarray) -> str:
    """A short fingerprint of a PCA-whitening: query and database locals must share it."""
    h = hashlib.sha1(np.ascontiguousarray(mean, np.float32).tobytes())
    h.update(np.ascontiguousarray(proj, np.float32).tobytes())
    return h.hexdigest()[:16]


def read_pca(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """The PCA-whitening (mean, projection) stored in a deep locals file."""
    path = Path(path)
    with open_checked(path, LOCALS_KIND, LOCALS_SCHEMA) as f:
        if "pca_mean" not in f or "pca_projection" not in f:
            raise BadInputError(f"{path}: holds no PCA-whitening; pass the database's deep locals file")
        return f["pca_mean"][()].astype(np.float32), f["pca_projection"][()].astype(np.float32)


# ----------------------------------------------------------------------------------------- images
def _load(root: Path, name: str, box, size: int | None) -> tuple[np.ndarray, float, tuple[float, float], tuple]:
    """Decode, crop, resize. Returns (image, original pixels per resized pixel, crop offset, original (w, h))."""
    img = load_image(root / name)
    full = (img.shape[1], img.shape[0])
    off = (0.0, 0.0)
    if box is not None:
        img = crop_box(img, box)
        off = (float(max(0, int(np.floor(box[0])))), float(max(0, int(np.floor(box[1])))))
    w = img.shape[1]
    img = resize_longer(img, size)
    return img, w / img.shape[1], off, full


def _to_original(kp: np.ndarray, factor: float, off: tuple[float, float]) -> np.ndarray:
    kp = kp.copy()
    kp[:, 0] = kp[:, 0] * factor + off[0]
    kp[:, 1] = kp[:, 1] * factor + off[1]
    kp[:, 2] *= factor
    return kp


# ----------------------------------------------------------------------------------------- the stage
_L = LocalExtractConfig()


@writes_output("output", inputs=("images", "list_file", "gnd", "weights", "model", "pca"))
def extract_local(
    images: str | os.PathLike,
    output: str | os.PathLike,
    *,
    method: str = _L.method,
    model: str = _L.model,
    weights: str | None = _L.weights,
    layer: str = _L.layer,
    size: int | None = _L.size,
    scales: Sequence[float] = _L.scales,
    max_features: int = _L.max_features,
    smooth: bool = True,
    pca: str | os.PathLike | None = None,
    pca_dim: int = _L.dim,
    pca_images: int = 200,
    gnd: str | os.PathLike | None = None,
    split: str | None = None,
    use_boxes: bool = True,
    list_file: str | os.PathLike | None = None,
    shard: tuple[int, int] | None = None,
    device: str = "cpu",
    half: bool = _L.half,
    progress: Callable[[int], None] | None = None,
    on_failure: Callable[[str, str], None] | None = None,
) -> Path:
    """Extract local features of a folder / list / ground-truth split and write a locals file.

    Args:
        method: 'deep' (HOW-style activations of ``model``) or 'sift' (OpenCV SIFT, RootSIFT).
        size: longer side in pixels the image is resized to first (never upscaled; None: original).
        scales: deep only: resize factors of the pyramid.
        max_features: n kept per image (over all scales).
        pca: deep only: a deep locals file whose PCA-whitening to reuse (give the database's when extracting
            queries); None learns one on descriptors of up to ``pca_images`` images of this run (0: no PCA).
        layer: deep only: 'auto', 'head' or 's16' (see :data:`LAYERS`).
    Returns:
        the output path. Unreadable images go to the ``failed`` list (and ``on_failure``); an image without
        features (blank) gets an empty slice.
    """
    LocalExtractConfig(method=method, model=model, weights=weights, layer=layer, size=size, scales=tuple(scales),
                       max_features=max_features, dim=pca_dim, half=half)  # checks the ranges
    size = size or None
    root = Path(images)
    names, boxes = resolve_inputs(images, list_file, gnd, split, use_boxes)
    start, stop = select_shard(names, shard)
    sel = list(range(start, stop))
    config: dict = {
        "method": method, "size": size, "max_features": int(max_features), "image_root": str(root.resolve()),
        "names_from": str(gnd or list_file or "folder"), "split": split, "boxes": boxes is not None,
        "shard": list(shard) if shard else None, "shard_range": [start, stop], "total_images": len(names),
    }
    failed: list[tuple[str, str]] = []
    out_names: list[str] = []
    per_image: list[tuple[np.ndarray, np.ndarray]] = []
    sizes: list[tuple[int, int]] = []

    def box(i):
        return boxes[i] if boxes is not None else None

    if method == "sift":
        from retrievalkit.verify.geometry import sift_features

        config.update({"descriptor": "rootsift", "dim": 128})
        for i in sel:
            try:
                img, factor, off, full = _load(root, names[i], box(i), size)
            except ImageReadError as e:
                failed.append((names[i], str(e)))
                if on_failure:
                    on_failure(names[i], str(e))
            else:
                kp, desc = sift_features(img, max_features, root=True)
                out_names.append(names[i])
                per_image.append((_to_original(kp, factor, off), desc))
                sizes.append(full)
            if progress:
                progress(1)
        loc = pack_locals(out_names, per_image, 128, np.array(sizes).reshape(-1, 2), config, failed)
        return _finish(output, loc, images, stop - start, half, None)

    from retrievalkit.models.registry import create_backbone, seeded_init

    with seeded_init():
        backbone = create_backbone(model, weights=weights).to(device).eval()
    net = LocalBackbone(backbone, layer).to(device).eval()
    mean = np.asarray(net.mean, np.float32).reshape(1, 1, 3)
    std = np.asarray(net.std, np.float32).reshape(1, 1, 3)
    config.update({"model": str(weights or model), "layer": net.layer, "scales": [float(s) for s in scales],
                   "smooth": smooth, "channels": net.out_channels})

    def describe(i):
        img, factor, off, full = _load(root, names[i], box(i), size)
        x = torch.from_numpy(np.ascontiguousarray(((img.astype(np.float32) / 255 - mean) / std).transpose(2, 0, 1)))
        kp, desc = deep_locals(net, x[None].to(device), scales, max_features, smooth)
        if desc.shape[1] == 0:
            desc = np.zeros((0, net.out_channels), np.float32)
        return _to_original(kp, factor, off), desc, full

    pca_mean = pca_proj = None
    if pca is not None:
        pca_mean, pca_proj = read_pca(pca)
        if pca_mean.shape[0] != net.out_channels:
            raise BadInputError(f"{pca}: its PCA takes {pca_mean.shape[0]}-d descriptors but {model} layer "
                                f"{layer} gives {net.out_channels}; use the same model and layer")
        config["pca_from"] = str(pca)
    elif pca_dim and pca_images > 0:
        # learn on a spread sample of this run's images; keep up to 50k descriptors
        sample = sel[:: max(1, len(sel) // pca_images)][:pca_images]
        per = max(10, 50_000 // max(1, len(sample)))
        rng = np.random.default_rng(0)
        rows = []
        for i in sample:
            try:
                _, desc, _ = describe(i)
            except ImageReadError:
                continue
            if desc.shape[0] > per:
                desc = desc[rng.choice(desc.shape[0], per, replace=False)]
            rows.append(desc)
        allx = np.concatenate(rows) if rows else np.zeros((0, net.out_channels), np.float32)
        if allx.shape[0] < max(pca_dim, 2):
            raise BadInputError(f"{images}: only {allx.shape[0]} local descriptors to learn a {pca_dim}-d "
                                "PCA-whitening; give --pca FILE or more images")
        pca_mean, pca_proj = learn_pca_whitening(allx, pca_dim)
        config["pca_from"] = "learned"
        config["pca_images"] = len(sample)
    dim = net.out_channels if pca_mean is None else int(pca_proj.shape[1])
    if pca_mean is not None:
        config["pca"] = pca_id(pca_mean, pca_proj)
    config["dim"] = dim

    for i in sel:
        try:
            kp, desc, full = describe(i)
        except ImageReadError as e:
            failed.append((names[i], str(e)))
            if on_failure:
                on_failure(names[i], str(e))
        else:
            if pca_mean is not None:
                desc = apply_pca_whitening(desc, pca_mean, pca_proj)
            out_names.append(names[i])
            per_image.append((kp, desc))
            sizes.append(full)
        if progress:
            progress(1)
    loc = pack_locals(out_names, per_image, dim, np.array(sizes).reshape(-1, 2), config, failed)
    return _finish(output, loc, images, stop - start, half, (pca_mean, pca_proj) if pca_mean is not None else None)


def _finish(output, loc: Locals, images, total: int, half: bool, pca) -> Path:
    from retrievalkit.io.h5file import atomic_h5, write_names
    from retrievalkit.io.locals import KIND, SCHEMA

    if not loc.names:
        raise BadInputError(f"{images}: none of the {total} images could be read; nothing to write")
    validate_locals(loc, output)
    output = Path(output)
    with atomic_h5(output, KIND, SCHEMA, loc.config) as f:
        write_names(f, "names", loc.names)
        m, d = loc.descriptors.shape
        f.create_dataset("descriptors", data=loc.descriptors.astype(np.float16 if half else np.float32),
                         chunks=(max(1, min(m, 2**18 // max(d, 1))), d) if m else None)
        f.create_dataset("offsets", data=loc.offsets.astype(np.int64))
        f.create_dataset("keypoints", data=loc.keypoints.astype(np.float32))
        f.create_dataset("image_sizes", data=loc.image_sizes.astype(np.int64))
        write_names(f, "failed", loc.failed)
        write_names(f, "failed_reason", loc.failed_reason)
        if pca is not None:
            f.create_dataset("pca_mean", data=pca[0])
            f.create_dataset("pca_projection", data=pca[1])
        f.attrs["done"] = len(loc.names) + len(loc.failed)
    return output


__all__ = ["METHODS", "HOW_SCALES", "DEFAULT_SCALES", "LAYERS", "LocalBackbone", "how_select", "deep_locals",
           "learn_pca_whitening", "apply_pca_whitening", "pca_id", "read_pca", "extract_local"]
