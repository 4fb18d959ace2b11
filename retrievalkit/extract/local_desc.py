"""The local-features stage: deep HOW-style activations or SIFT/RootSIFT of every image → a locals file.

Deep locals (:mod:`retrievalkit.extract.local_deep`) are reduced to ``pca_dim`` dimensions by a PCA-whitening
(:func:`retrievalkit.whiten.core.pca_whitening`, learned on a sample of this run's descriptors, or reused from
another locals file so queries and database share it), then L2-normalised again. SIFT locals are RootSIFT
(:func:`retrievalkit.extract.sift.sift_features`). DSM locals (:mod:`retrievalkit.extract.local_dsm`) are blobs on
the activation maps, with no descriptor. The file is written by :func:`retrievalkit.io.locals.write_locals`.

Keypoints are stored in pixels of the original image (query-box crops shifted back): x, y, scale (feature
cell size for deep locals, SIFT size for SIFT), and strength (deep) or angle (SIFT).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from retrievalkit.configs.checks import stage_config
from retrievalkit.configs.extract import LOCAL_LAYERS, LOCAL_METHODS, LocalExtractConfig
from retrievalkit.errors import BadInputError
from retrievalkit.extract.inputs import resolve_inputs
from retrievalkit.extract.local_deep import DEFAULT_SCALES, HOW_SCALES, LocalBackbone, deep_locals, how_select
from retrievalkit.images.decode import ImageReadError, crop_box, load_image, resize_longer
from retrievalkit.images.discover import select_shard
from retrievalkit.io.locals import pack_locals, pca_id, read_locals_pca, write_locals
from retrievalkit.io.output import config_paths, writes_output
from retrievalkit.whiten.core import apply_whitening, pca_whitening

METHODS = LOCAL_METHODS
#: ``layer`` values: ``auto`` or a feature tap the backbone declares (``head``; ``s16`` where offered)
LAYERS = LOCAL_LAYERS
#: eigenvalue ridge of the deep locals' PCA-whitening (× the largest eigenvalue)
PCA_RIDGE = 1e-6
#: descriptors sampled at most to learn the PCA-whitening
PCA_SAMPLE = 50_000

#: describe(i) → (keypoints (n, 4) in original pixels, descriptors (n, C), original (width, height))
Describer = Callable[[int], tuple[np.ndarray, np.ndarray, tuple[int, int]]]


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


# ----------------------------------------------------------------------------------------- describers
def sift_describer(root: Path, names: list[str], boxes, size: int | None, max_features: int) -> Describer:
    """RootSIFT of image ``i`` (``max_features`` strongest), keypoints in original pixels."""
    from retrievalkit.extract.sift import sift_features

    def describe(i: int):
        img, factor, off, full = _load(root, names[i], boxes[i] if boxes is not None else None, size)
        kp, desc = sift_features(img, max_features, root=True)
        return _to_original(kp, factor, off), desc, full

    return describe


def deep_describer(net: LocalBackbone, root: Path, names: list[str], boxes, size: int | None,
                   scales: Sequence[float], max_features: int, smooth: bool, device: str) -> Describer:
    """HOW-style deep locals of image ``i`` from ``net``, keypoints in original pixels (not yet PCA-whitened)."""
    import torch

    mean = np.asarray(net.mean, np.float32).reshape(1, 1, 3)
    std = np.asarray(net.std, np.float32).reshape(1, 1, 3)

    def describe(i: int):
        img, factor, off, full = _load(root, names[i], boxes[i] if boxes is not None else None, size)
        x = torch.from_numpy(np.ascontiguousarray(((img.astype(np.float32) / 255 - mean) / std).transpose(2, 0, 1)))
        kp, desc = deep_locals(net, x[None].to(device), scales, max_features, smooth)
        if desc.shape[1] == 0:
            desc = np.zeros((0, net.out_channels), np.float32)
        return _to_original(kp, factor, off), desc, full

    return describe


# ----------------------------------------------------------------------------------------- PCA-whitening
def dsm_describer(net: LocalBackbone, root: Path, names: list[str], boxes, size: int | None, channels: int,
                  max_features: int, device: str) -> Describer:
    """DSM features (:mod:`retrievalkit.extract.local_dsm`) of image ``i``: keypoints in original pixels
    (second moments scaled too), descriptors (n, 1) of ones (the channel id in keypoint column 4 is the word)."""
    import torch

    from retrievalkit.extract.local_dsm import dsm_locals

    mean = np.asarray(net.mean, np.float32).reshape(1, 1, 3)
    std = np.asarray(net.std, np.float32).reshape(1, 1, 3)

    def describe(i: int):
        img, factor, off, full = _load(root, names[i], boxes[i] if boxes is not None else None, size)
        x = torch.from_numpy(np.ascontiguousarray(((img.astype(np.float32) / 255 - mean) / std).transpose(2, 0, 1)))
        kp = dsm_locals(net, x[None].to(device), channels, max_features)
        kp = _to_original(kp, factor, off)
        kp[:, 5:8] *= factor * factor
        return kp, np.ones((kp.shape[0], 1), np.float32), full

    return describe


def learn_local_pca(describe: Describer, sample: Sequence[int], channels: int, dim: int, source) -> tuple:
    """PCA-whitening ``(mean, proj)`` learned on up to :data:`PCA_SAMPLE` descriptors of the images ``sample``."""
    per = max(10, PCA_SAMPLE // max(1, len(sample)))
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
    allx = np.concatenate(rows) if rows else np.zeros((0, channels), np.float32)
    if allx.shape[0] < max(dim, 2):
        raise BadInputError(f"{source}: only {allx.shape[0]} local descriptors to learn a {dim}-d "
                            "PCA-whitening; give --pca FILE or more images")
    return pca_whitening(allx, min(dim, channels), power=0.5, ridge=PCA_RIDGE)


def _local_pca(pca, pca_dim: int, pca_images: int, sel: list[int], describe: Describer, net: LocalBackbone,
               model: str, images, config: dict) -> tuple | None:
    """The PCA-whitening of this run (read from ``pca``, learned, or None) and its config entries."""
    if pca is not None:
        mean, proj = read_locals_pca(pca)
        if mean.shape[0] != net.out_channels:
            raise BadInputError(f"{pca}: its PCA takes {mean.shape[0]}-d descriptors but {model} layer "
                                f"{net.layer} gives {net.out_channels}; use the same model and layer")
        config["pca_from"] = str(pca)
        return mean, proj
    if not pca_dim or pca_images <= 0:
        return None
    # learn on a spread sample of this run's images
    sample = sel[:: max(1, len(sel) // pca_images)][:pca_images]
    whitening = learn_local_pca(describe, sample, net.out_channels, pca_dim, images)
    config["pca_from"] = "learned"
    config["pca_images"] = len(sample)
    return whitening


# ----------------------------------------------------------------------------------------- the stage
def describe_images(sel: Sequence[int], names: list[str], describe: Describer, whitening: tuple | None, dim: int,
                    config: dict, progress: Callable[[int], None] | None = None,
                    on_failure: Callable[[str, str], None] | None = None):
    """Describe the images ``sel`` into a :class:`~retrievalkit.io.locals.Locals`; unreadable ones are listed
    as failed (and reported to ``on_failure(name, why)``), never dropped silently."""
    failed: list[tuple[str, str]] = []
    out_names: list[str] = []
    per_image: list[tuple[np.ndarray, np.ndarray]] = []
    sizes: list[tuple[int, int]] = []
    for i in sel:
        try:
            kp, desc, full = describe(i)
        except ImageReadError as e:
            failed.append((names[i], str(e)))
            if on_failure:
                on_failure(names[i], str(e))
        else:
            if whitening is not None:
                desc = apply_whitening(desc, *whitening)
            out_names.append(names[i])
            per_image.append((kp, desc))
            sizes.append(full)
        if progress:
            progress(1)
    return pack_locals(out_names, per_image, dim, np.array(sizes).reshape(-1, 2), config, failed)


@writes_output("output", inputs=("images", "list_file", "gnd", "pca", config_paths("weights", "model")))
def extract_local(
    images: str | os.PathLike,
    output: str | os.PathLike,
    config: LocalExtractConfig | None = None,
    *,
    pca: str | os.PathLike | None = None,
    list_file: str | os.PathLike | None = None,
    gnd: str | os.PathLike | None = None,
    split: str | None = None,
    use_boxes: bool = True,
    shard: tuple[int, int] | None = None,
    device: str = "cpu",
    progress: Callable[[int], None] | None = None,
    on_failure: Callable[[str, str], None] | None = None,
) -> Path:
    """Extract local features of a folder / list / ground-truth split and write a locals file.

    Args:
        config: :class:`LocalExtractConfig` (None: the defaults). ``method``: 'deep' (HOW-style activations of
            ``model``), 'sift' (OpenCV SIFT, RootSIFT) or 'dsm' (blobs on the ``dsm_channels`` strongest channels
            of ``model``'s map, one scale; for Deep Spatial Matching). ``size``: longer side in pixels the image is
            resized to first (never upscaled; None: original). ``scales``: deep only: resize factors of the
            pyramid. ``max_features``: n kept per image (over all scales). ``dim``: deep: PCA-whitened dimension
            (0: no PCA). ``layer``: deep and dsm: 'auto' (deep: the registry's local tap; dsm: head) or a feature
            tap of the backbone ('head', 's16'; see the backbone registry).
        pca: deep only: a deep locals file whose PCA-whitening to reuse (give the database's when extracting
            queries); None learns one on descriptors of up to ``config.pca_images`` images of this run.
        list_file, gnd, split, use_boxes, shard: which images (as :func:`extract_global`).
        progress: advances by the images done.
    Returns:
        the output path. Unreadable images go to the ``failed`` list (and ``on_failure``); an image without
        features (blank) gets an empty slice.
    """
    c = stage_config(config, LocalExtractConfig)
    method, model, weights, layer, scales = c.method, c.model, c.weights, c.layer, c.scales
    max_features = c.max_features
    smooth, pca_dim, pca_images, half, dsm_channels = c.smooth, c.dim, c.pca_images, c.half, c.dsm_channels
    size = c.size or None
    root = Path(images)
    names, boxes = resolve_inputs(images, list_file, gnd, split, use_boxes)
    start, stop = select_shard(names, shard)
    sel = list(range(start, stop))
    config: dict = {
        "method": method, "size": size, "max_features": int(max_features), "image_root": str(root.resolve()),
        "names_from": str(gnd or list_file or "folder"), "split": split, "boxes": boxes is not None,
        "shard": list(shard) if shard else None, "shard_range": [start, stop], "total_images": len(names),
    }
    whitening = None
    if method == "sift":
        config.update({"descriptor": "rootsift", "dim": 128})
        describe, dim = sift_describer(root, names, boxes, size, max_features), 128
    elif method == "dsm":
        from retrievalkit.extract.local_dsm import KEYPOINT_COLUMNS
        from retrievalkit.models.registry import create_backbone, seeded_init

        with seeded_init():
            backbone = create_backbone(model, weights=weights).to(device).eval()
        # auto: the last convolutional map (head), as in the paper: its activations are sparse blobs
        net = LocalBackbone(backbone, "head" if layer == "auto" else layer).to(device).eval()
        config.update({"model": str(weights or model), "layer": net.layer, "channels": net.out_channels,
                       "dsm_channels": int(dsm_channels), "keypoint_columns": list(KEYPOINT_COLUMNS),
                       "descriptor": "none (the channel, keypoint column 4, is the visual word)", "dim": 1})
        describe, dim = dsm_describer(net, root, names, boxes, size, dsm_channels, max_features, device), 1
    else:
        from retrievalkit.models.registry import create_backbone, seeded_init

        with seeded_init():
            backbone = create_backbone(model, weights=weights).to(device).eval()
        net = LocalBackbone(backbone, layer).to(device).eval()
        config.update({"model": str(weights or model), "layer": net.layer, "scales": [float(s) for s in scales],
                       "smooth": smooth, "channels": net.out_channels})
        describe = deep_describer(net, root, names, boxes, size, scales, max_features, smooth, device)
        whitening = _local_pca(pca, pca_dim, pca_images, sel, describe, net, model, images, config)
        dim = net.out_channels if whitening is None else int(whitening[1].shape[0])
        if whitening is not None:
            config["pca"] = pca_id(*whitening)
        config["dim"] = dim
    loc = describe_images(sel, names, describe, whitening, dim, config, progress, on_failure)
    if not loc.names:
        raise BadInputError(f"{images}: none of the {stop - start} images could be read; nothing to write")
    return write_locals(output, loc, half=half, pca=whitening)


def read_pca(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """The PCA-whitening ``(mean (C,), proj (D, C))`` stored in a deep locals file (``read_locals_pca``)."""
    return read_locals_pca(path)


__all__ = ["METHODS", "HOW_SCALES", "DEFAULT_SCALES", "LAYERS", "LocalBackbone", "how_select", "deep_locals",
           "sift_describer", "deep_describer", "dsm_describer", "learn_local_pca", "describe_images", "read_pca",
           "extract_local"]
