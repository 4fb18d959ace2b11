"""Training images: decoded, resized to the training size and standardised on demand, optionally cached."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from retrievalkit.errors import BadInputError
from retrievalkit.images.decode import ImageReadError, load_image, read_image_bytes, resize_longer
from retrievalkit.images.discover import check_names
from retrievalkit.io.tuples import Tuples


def resolve_image_root(tuples: Tuples, images: str | os.PathLike | None) -> Path:
    """The folder the tuples' names are relative to: ``images`` if given, else the file's ``image_root``
    (a relative root is tried against the working folder, then against the tuples file's folder)."""
    if images is not None:
        root = Path(images)
    else:
        root = Path(tuples.image_root or ".")
        if not root.is_absolute() and not root.is_dir() and tuples.path is not None:
            root = Path(tuples.path).parent / root
    if not root.is_dir():
        raise BadInputError(f"{tuples.path}: image root {str(root)!r} is not a folder; pass --images DIR (the folder "
                            "the tuples' image names are relative to)")
    return root


def check_tuple_images(tuples: Tuples, root: str | os.PathLike) -> None:
    """Refuse, before any training, a tuples file whose names leave ``root`` or whose images cannot be read
    (missing, empty, not an image, cut short, over the pixel limit): exit 3 naming the first one."""
    check_names(root, tuples.names, tuples.path or "tuples")
    bad = []
    for name in tuples.names:
        try:
            read_image_bytes(Path(root) / name)
        except ImageReadError as e:
            bad.append((name, str(e)))
    if bad:
        name, why = bad[0]
        raise BadInputError(f"{Path(root) / name}: {why} ({len(bad)} of the {len(tuples.names)} images of "
                            f"{tuples.path} cannot be read); replace the images or mine the tuples again without them")


class TrainImages:
    """Image ``i`` of ``names`` as a standardised (3, H, W) float32 tensor, longer side ``size``."""

    def __init__(self, root: str | os.PathLike, names: Sequence[str], size: int | None, mean: Sequence[float],
                 std: Sequence[float], cache: bool = True):
        self.root = Path(root)
        self.names = list(names)
        self.size = size
        self.mean = np.asarray(mean, np.float32).reshape(1, 1, 3)
        self.std = np.asarray(std, np.float32).reshape(1, 1, 3)
        self.cache: dict[int, torch.Tensor] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> torch.Tensor:
        i = int(i)
        if self.cache is not None and i in self.cache:
            return self.cache[i]
        path = self.root / self.names[i]
        try:
            img = resize_longer(load_image(path), self.size)
        except ImageReadError as e:
            raise BadInputError(f"{path}: {e}; training needs every image of the tuples (fix or re-mine)") from None
        x = (img.astype(np.float32) / 255.0 - self.mean) / self.std
        t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))
        if self.cache is not None:
            self.cache[i] = t
        return t

    def get(self, idx: Sequence[int]) -> list[torch.Tensor]:
        return [self[i] for i in idx]
