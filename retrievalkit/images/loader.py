"""A batched, multi-worker image loader built on torch's DataLoader.

Items are yielded in input order. An image that cannot be read is yielded with ``tensor=None``
and the reason, so the caller records it instead of stopping the run.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from retrievalkit.images.decode import ImageReadError, crop_box, load_image, resize_longer
from retrievalkit.images.policy import image_policy


@dataclass
class LoadedImage:
    index: int  # position in the input list
    name: str
    tensor: torch.Tensor | None  # (3, H, W) float32, normalised
    error: str | None = None


class ImageDataset(torch.utils.data.Dataset):
    """Decode → optional crop → resize longer side → RGB float tensor normalised by mean/std."""

    def __init__(self, root: str | Path, names: Sequence[str], size: int | None,
                 mean: Sequence[float], std: Sequence[float], boxes: Sequence | None = None,
                 upscale: bool = False):
        self.root = Path(root)
        self.names = list(names)
        self.size = size
        self.mean = np.asarray(mean, dtype=np.float32).reshape(1, 1, 3)
        self.std = np.asarray(std, dtype=np.float32).reshape(1, 1, 3)
        self.boxes = list(boxes) if boxes is not None else None
        self.upscale = upscale
        self.max_pixels = image_policy().max_pixels  # travels to the worker processes with the dataset

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> LoadedImage:
        name = self.names[i]
        try:
            img = load_image(self.root / name, max_pixels=self.max_pixels)
            if self.boxes is not None and self.boxes[i] is not None:
                img = crop_box(img, self.boxes[i])
            img = resize_longer(img, self.size, self.upscale)
        except ImageReadError as e:
            return LoadedImage(i, name, None, str(e))
        x = (img.astype(np.float32) / 255.0 - self.mean) / self.std
        return LoadedImage(i, name, torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))))


def _identity(x):
    return x


def iter_images(dataset: ImageDataset, workers: int = 2, start: int = 0, stop: int | None = None,
                prefetch: int = 4) -> Iterator[LoadedImage]:
    """Yield the dataset's items ``start..stop`` in order, decoding in ``workers`` processes."""
    stop = len(dataset) if stop is None else stop
    subset = torch.utils.data.Subset(dataset, range(start, stop))
    if len(subset) == 0:
        return
    dl = torch.utils.data.DataLoader(
        subset, batch_size=None, shuffle=False, num_workers=workers, collate_fn=_identity,
        prefetch_factor=prefetch if workers > 0 else None, persistent_workers=False)
    yield from iterate_quietly(dl)


def _quiet_when_main_left(args) -> None:
    """A worker's helper thread (the one that hands tensors to the main process) loses its connection when the
    main process stops on Ctrl-C: nothing to report then. Anything else is reported as usual."""
    if issubclass(args.exc_type, (ConnectionError, EOFError)):
        return
    threading.__excepthook__(args)


def _quiet_excepthook(exc_type, exc, tb) -> None:
    if issubclass(exc_type, (ConnectionError, EOFError)):
        return
    sys.__excepthook__(exc_type, exc, tb)


class _IgnoreSigint:
    """Worker init: ignore SIGINT (the main process handles Ctrl-C and shuts the workers down), then run the
    loader's own init, if any. A class, not a closure, so that it pickles for spawned workers."""

    def __init__(self, then=None):
        self.then = then

    def __call__(self, worker_id: int) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        threading.excepthook = _quiet_when_main_left
        sys.excepthook = _quiet_excepthook  # multiprocessing's resource sharer reports through sys.excepthook
        if self.then is not None:
            self.then(worker_id)


def iterate_quietly(dl: torch.utils.data.DataLoader) -> Iterator:
    """Iterate ``dl`` with worker processes that ignore SIGINT: Ctrl-C interrupts the main process alone, which
    shuts the workers down, instead of a worker dying mid-start and the loader printing its traceback."""
    if not dl.num_workers:
        yield from dl
        return
    if not isinstance(dl.worker_init_fn, _IgnoreSigint):
        dl.worker_init_fn = _IgnoreSigint(dl.worker_init_fn)
    held: list[int] = []
    try:  # while the workers are forked, a Ctrl-C is held (the children inherit this handler, not Python's)
        previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    except ValueError:  # not the main thread: leave signals alone
        yield from dl
        return
    try:
        it = iter(dl)
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        del it  # shuts the workers down
        raise KeyboardInterrupt
    yield from it


def group_same_shape(items: list[LoadedImage], batch_size: int) -> list[list[LoadedImage]]:
    """Split ``items`` (in order) into batches of same-shaped tensors of at most ``batch_size``."""
    groups: dict[tuple, list[LoadedImage]] = {}
    out = []
    for it in items:
        key = tuple(it.tensor.shape)
        g = groups.setdefault(key, [])
        g.append(it)
        if len(g) == batch_size:
            out.append(g)
            groups[key] = []
    out.extend(g for g in groups.values() if g)
    return out
