"""Global descriptor extraction: images → one L2-normalised vector per image (or per region)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from retrievalkit.configs.checks import stage_config
from retrievalkit.configs.extract import GlobalExtractConfig
from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.extract.allocator import retained_heap
from retrievalkit.extract.inputs import resolve_inputs
from retrievalkit.images.discover import select_shard
from retrievalkit.images.loader import ImageDataset, iter_images
from retrievalkit.io.features import FeaturesWriter
from retrievalkit.io.output import config_paths, writes_output

_G = GlobalExtractConfig()


def build_network(model: str = "efficientnet-lite0", weights: str | None = None, pooling: str | None = None,
                  p: float | None = None, whitening: str | None = None, device: str = "cpu"):
    """The retrieval network for extraction: a registry name or model file, optional backbone weights file
    (``model`` then names the architecture) and optional whitening file loaded into the whitening layer."""
    from retrievalkit.models.checkpoint import load_model, load_whitening_into
    from retrievalkit.models.registry import seeded_init

    with seeded_init():
        if weights:
            net = load_model(weights, device, backbone=model, pooling=pooling, p=p)
        else:
            net = load_model(model, device, pooling=pooling, p=p)
    if whitening:
        from retrievalkit.whiten.whitening_file import load_whitening

        mean, proj = load_whitening(whitening)
        if proj.shape[1] != net.dim:
            raise BadInputError(f"{whitening}: whitening expects {proj.shape[1]}-D input but the network gives "
                                f"{net.dim}-D descriptors; learn it on features of the same model")
        if net.whiten is not None:
            raise UsageError(f"{model}: the model already has a whitening layer; do not pass --whitening")
        net = load_whitening_into(net, mean, proj)
    return net.to(device).eval()


def describe_batch(net, x: torch.Tensor, scales: Sequence[float], regions: bool = False) -> list[np.ndarray]:
    """Descriptors of a same-shaped batch ``x`` (B, 3, H, W): a list of B arrays, each (1, D) or (R, D).

    With ``regions``, each image gives its R-MAC region vectors at every scale (stacked)."""
    with torch.inference_mode():
        if regions:
            per_scale = []
            for s in scales:
                xs = x if s == 1.0 else torch.nn.functional.interpolate(x, scale_factor=s, mode="bilinear",
                                                                         align_corners=False)
                per_scale.append(net.regions(xs, whiten=net.whiten is not None).float())
            r = torch.cat(per_scale, dim=1).cpu().numpy()
            return [r[i] for i in range(r.shape[0])]
        v = net.describe(x, scales=scales).float().cpu().numpy()
    return [v[i:i + 1] for i in range(v.shape[0])]


@writes_output("output", inputs=("images", "list_file", "gnd", config_paths("weights", "whitening", "model")))
def extract_global(
    images: str | os.PathLike,
    output: str | os.PathLike,
    config: GlobalExtractConfig | None = None,
    *,
    list_file: str | os.PathLike | None = None,
    gnd: str | os.PathLike | None = None,
    split: str | None = None,
    use_boxes: bool = True,
    shard: tuple[int, int] | None = None,
    resume: bool = False,
    device: str = "cpu",
    flush_every: int = 64,
    progress: Callable[[int], None] | None = None,
    on_failure: Callable[[str, str], None] | None = None,
) -> Path:
    """Extract global descriptors for a folder / list / ground-truth split and write a features file.

    ``config`` (:class:`GlobalExtractConfig`, None: the defaults) holds every setting of the descriptor.
    ``list_file`` / ``gnd`` + ``split`` choose the images (and query boxes, ``use_boxes``) instead of the folder.
    Unreadable images are recorded in the output's ``failed`` list (and reported via ``on_failure``),
    never silently dropped. With ``resume`` an interrupted run continues from its partial output.
    With ``shard=(i, n)`` only the i-th of n contiguous blocks of the sorted names is processed;
    ``rkit merge`` joins the shard outputs. ``progress(n)`` advances by the images done.
    """
    c = stage_config(config, GlobalExtractConfig)
    model, weights, pooling, p, whitening = c.model, c.weights, c.pooling, c.p, c.whitening
    scales, batch_size, workers = c.scales, c.batch_size, c.workers
    half, upscale, regions = c.half, c.upscale, c.regions
    size = c.size or None
    names, boxes = resolve_inputs(images, list_file, gnd, split, use_boxes)
    start, stop = select_shard(names, shard)

    prefetch = _prefetch(batch_size, workers, size)
    # a registry network's standardisation is known before it is built: the decode workers start first and
    # decode the first batch while the network loads (files and --resume: the network first)
    standard = None if (weights or resume) else _registry_standardisation(model)
    early = None
    if standard is not None:
        ds = ImageDataset(images, names, size, *standard, boxes=boxes, upscale=upscale)
        early = _started(iter_images(ds, workers=workers, start=start, stop=stop, prefetch=prefetch))
    net = build_network(model, weights=weights, pooling=pooling, p=p, whitening=whitening, device=device)
    net.eval()
    if early is not None and (tuple(net.mean), tuple(net.std)) != standard:
        early.close()  # pragma: no cover - the registry and the network disagree: decode again
        early = None
    config = {
        "model": net.config,
        "model_source": str(weights or model),
        "size": size,
        "scales": [float(s) for s in scales],
        "upscale": upscale,
        "regions": regions,
        "image_root": str(Path(images).resolve()),
        "names_from": str(gnd or list_file or "folder"),
        "split": split,
        "boxes": boxes is not None,
        "shard": list(shard) if shard else None,
        "shard_range": [start, stop],
        "total_images": len(names),
    }
    writer = FeaturesWriter(output, int(net.dim), config, resume=resume, half=half, regions=regions)
    try:
        done = writer.done
        if progress and done:
            progress(done)
        if early is not None and done:  # pragma: no cover - a fresh output starts at its first image
            early.close()
            early = None
        if early is None:
            ds = ImageDataset(images, names, size, net.mean, net.std, boxes=boxes, upscale=upscale)
            early = iter_images(ds, workers=workers, start=start + done, stop=stop, prefetch=prefetch)
        # channels-last on CPU: the convolutions run ~1.2x faster (benchmarks/extract_throughput.py --configs),
        # the descriptors agree to float tolerance
        channels_last = str(device) == "cpu"
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        batches = _Batches(net, writer, scales, regions, batch_size, device, channels_last)
        # CPU forward passes reuse their freed activation buffers instead of mapping fresh pages each call
        with retained_heap(str(device) == "cpu"):
            for it in early:
                batches.add(it, on_failure)
                if batches.consumed >= flush_every:
                    batches.flush()
                if progress:
                    progress(1)
            batches.flush()
        if not writer.names:
            writer.discard()  # every image was tried: nothing to resume, so no partial is left behind
            raise BadInputError(f"{images}: none of the {stop - start} images could be read; nothing to write")
        return writer.finish()
    finally:
        writer.close()


def _registry_standardisation(model: str) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """(mean, std) of a registry network (its backbone's), known without building it; None for a model file
    or an unknown name (building the network then says what is wrong)."""
    from retrievalkit.models.registry import get_backbone_spec

    if Path(str(model)).suffix or "/" in str(model) or os.sep in str(model) or Path(str(model)).is_file():
        return None
    try:
        spec = get_backbone_spec(str(model))
    except UsageError:
        return None
    return tuple(float(v) for v in spec.mean), tuple(float(v) for v in spec.std)


def _started(items):
    """The loader started now (the first item is taken at once): its workers decode ahead while the caller
    loads the network. Returns a generator of the same items (``close`` shuts the workers down)."""
    try:
        first = [next(items)]
    except StopIteration:
        first = []

    def rest():
        yield from first
        yield from items

    return rest()


class _Batches:
    """Decoded images gathered until a flush, described in same-shape batches and appended to the writer in
    input order, with the images that failed since the last flush (so ``--resume`` can continue).

    A same-shape batch runs as soon as it is full, not at the flush: the decode workers keep decoding the next
    images while it runs (their prefetch covers a batch, :func:`_prefetch`), so decoding overlaps the forward
    passes. The batches are the ones :func:`group_same_shape` makes of a flush's images (full batches in
    order of completion, then the partial ones at the flush): the same tensors, the same descriptors."""

    def __init__(self, net, writer: FeaturesWriter, scales: Sequence[float], regions: bool, batch_size: int,
                 device: str, channels_last: bool = False):
        self.net, self.writer, self.scales, self.regions = net, writer, scales, regions
        self.batch_size, self.device, self.channels_last = batch_size, device, channels_last
        self.groups: dict[tuple, list] = {}  # shape -> images waiting for a full batch (first-seen order)
        self.rows: list = []  # (image, descriptors) described since the last flush
        self.failed: list[tuple[str, str]] = []
        self.consumed = 0

    def add(self, it, on_failure: Callable[[str, str], None] | None) -> None:
        self.consumed += 1
        if it.tensor is None:
            self.failed.append((it.name, it.error or "unreadable"))
            if on_failure:
                on_failure(it.name, it.error or "unreadable")
            return
        group = self.groups.setdefault(tuple(it.tensor.shape), [])
        group.append(it)
        if len(group) == self.batch_size:
            self._describe(group)
            group.clear()

    def _describe(self, group: list) -> None:
        x = torch.stack([it.tensor for it in group]).to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        self.rows.extend(zip(group, describe_batch(self.net, x, self.scales, self.regions)))

    def flush(self) -> None:
        for group in self.groups.values():
            if group:
                self._describe(group)
        self.groups = {}
        rows = sorted(self.rows, key=lambda r: r[0].index)
        vecs = [v for _, v in rows]
        arr = np.concatenate(vecs, 0) if vecs else np.zeros((0, int(self.net.dim)), np.float32)
        owners = (np.concatenate([np.full(v.shape[0], j) for j, v in enumerate(vecs)])
                  if self.regions and vecs else None)
        self.writer.append([it.name for it, _ in rows], arr, self.failed, consumed=self.consumed, owners=owners)
        self.rows, self.failed, self.consumed = [], [], 0


#: decoded images the loader may hold ahead of the forward passes, at most (bytes of float32 tensors)
PREFETCH_BYTES = 256 * 2**20


def _prefetch(batch_size: int, workers: int, size: int | None) -> int:
    """Images each decode worker prepares ahead: enough for the next full batch while one runs (a batch
    waits for all its images), within :data:`PREFETCH_BYTES` when ``size`` bounds an image
    (3 × size² floats); the loader's default of 4 when it does not (full-resolution images)."""
    if workers <= 0 or not size:
        return 4
    per_image = 3 * 4 * size * size
    ahead = min(batch_size + 2, max(1, PREFETCH_BYTES // per_image))
    return max(4, -(-ahead // workers))
