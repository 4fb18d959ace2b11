"""The local-features file (kind ``rkit/locals``): a variable number of descriptors per image.

Layout (see docs/local.md):
    names         (N,)    utf-8   image names relative to the image root
    descriptors   (M, D)  float32 or float16, rows L2-normalised; image i owns rows offsets[i]:offsets[i+1]
    offsets       (N+1,)  int64   offsets[0] == 0, non-decreasing, offsets[N] == M
    keypoints     (M, K)  float32 K >= 4: x, y (pixels of the original image, before any resize or crop
                                  offset is removed: query-box crops are shifted back), scale (pixels of the
                                  original image), angle (degrees, SIFT) or strength (activation norm, deep)
    image_sizes   (N, 2)  int64   (width, height) of the original images
    failed        (F,)    utf-8   images that could not be read (never silently dropped)
    failed_reason (F,)    utf-8
    pca_mean      (C,)    float32 deep locals with PCA only: the whitening applied, l2n((x - mean) @ pca_projection)
    pca_projection (C, D) float32 (in memory the library's convention ``(mean, proj)``, proj = its transpose (D, C))
    attrs: kind, schema, config (method, model, size, scales, max_features, pca, image_root, ...)
An image with no features (a blank photo) has an empty slice; it is not a failure.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retrievalkit.errors import BadInputError
from retrievalkit.io.h5file import (
    atomic_h5,
    check_finite,
    open_checked,
    read_config,
    read_names,
    require_dataset,
    write_names,
)

KIND = "rkit/locals"
SCHEMA = 1


@dataclass
class Locals:
    """Local features of a set of images.

    ``descriptors`` (M, D) float32, ``offsets`` (N+1,) int64, ``keypoints`` (M, K>=4) float32,
    ``image_sizes`` (N, 2) int64 (width, height).
    """

    names: list[str]
    descriptors: np.ndarray
    offsets: np.ndarray
    keypoints: np.ndarray
    image_sizes: np.ndarray | None = None
    config: dict = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    failed_reason: list[str] = field(default_factory=list)
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.names)

    @property
    def dim(self) -> int:
        return int(self.descriptors.shape[1])

    def counts(self) -> np.ndarray:
        """(N,) number of local features per image."""
        return np.diff(self.offsets)

    def image(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(keypoints (n, K), descriptors (n, D)) of image ``i``."""
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.keypoints[a:b], self.descriptors[a:b]

    def image_ids(self) -> np.ndarray:
        """(M,) int64: the image each descriptor row belongs to."""
        return np.repeat(np.arange(len(self.names), dtype=np.int64), self.counts())


def pack_locals(names: list[str], per_image: list[tuple[np.ndarray, np.ndarray]], dim: int,
                image_sizes: np.ndarray | None = None, config: dict | None = None,
                failed: list[tuple[str, str]] = ()) -> Locals:
    """Build a :class:`Locals` from a list of (keypoints (n, K), descriptors (n, D)) per image."""
    counts = [int(d.shape[0]) for _, d in per_image]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    desc = np.concatenate([d for _, d in per_image], 0).astype(np.float32) if per_image else np.zeros((0, dim))
    kdim = max([k.shape[1] for k, _ in per_image] + [4])
    kps = np.zeros((int(offsets[-1]), kdim), np.float32)
    for (k, _), a in zip(per_image, offsets[:-1]):
        kps[a:a + k.shape[0], :k.shape[1]] = k
    return Locals(list(names), desc.reshape(-1, dim).astype(np.float32), offsets, kps,
                  None if image_sizes is None else np.asarray(image_sizes, np.int64).reshape(-1, 2),
                  dict(config or {}), [a for a, _ in failed], [b for _, b in failed])


def validate_locals(loc: Locals, path: str | os.PathLike = "<memory>") -> None:
    """Raise BadInputError when the arrays of ``loc`` are inconsistent."""
    n = len(loc.names)
    off = np.asarray(loc.offsets)
    if off.shape != (n + 1,) or (n + 1 and off[0] != 0) or np.any(np.diff(off) < 0):
        raise BadInputError(f"{path}: 'offsets' must be (N+1,) non-decreasing from 0 for {n} images; corrupt file")
    m = int(off[-1]) if off.size else 0
    if loc.descriptors.ndim != 2 or loc.descriptors.shape[0] != m:
        raise BadInputError(f"{path}: {loc.descriptors.shape} descriptors but offsets end at {m}; corrupt file")
    if loc.keypoints.ndim != 2 or loc.keypoints.shape[0] != m or loc.keypoints.shape[1] < 4:
        raise BadInputError(f"{path}: keypoints {loc.keypoints.shape} must be ({m}, >=4); corrupt file")
    if loc.image_sizes is not None and loc.image_sizes.shape != (n, 2):
        raise BadInputError(f"{path}: image_sizes {loc.image_sizes.shape} must be ({n}, 2); corrupt file")


def write_locals(path: str | os.PathLike, loc: Locals, inputs: dict[str, str] | None = None,
                 half: bool = False, pca: tuple[np.ndarray, np.ndarray] | None = None) -> Path:
    """Write ``loc`` atomically to ``path`` and return the path.

    ``half`` stores the descriptors as float16. ``pca``: the PCA-whitening ``(mean (C,), proj (D, C))`` the
    descriptors went through (deep locals), stored so that queries can be extracted with the same one.
    """
    path = Path(path)
    validate_locals(loc, path)
    with atomic_h5(path, KIND, SCHEMA, loc.config, inputs) as f:
        write_names(f, "names", loc.names)
        dt = np.float16 if half else np.float32
        m, d = loc.descriptors.shape
        chunks = (max(1, min(m, 2**18 // max(d, 1))), d) if m else None
        f.create_dataset("descriptors", data=np.asarray(loc.descriptors, dtype=dt), chunks=chunks)
        f.create_dataset("offsets", data=np.asarray(loc.offsets, dtype=np.int64))
        f.create_dataset("keypoints", data=np.asarray(loc.keypoints, dtype=np.float32))
        if loc.image_sizes is not None:
            f.create_dataset("image_sizes", data=np.asarray(loc.image_sizes, dtype=np.int64))
        write_names(f, "failed", loc.failed)
        write_names(f, "failed_reason", loc.failed_reason)
        if pca is not None:
            f.create_dataset("pca_mean", data=np.asarray(pca[0], np.float32))
            f.create_dataset("pca_projection", data=np.ascontiguousarray(np.asarray(pca[1], np.float32).T))
        f.attrs["done"] = len(loc.names) + len(loc.failed)
    return path


def read_locals_pca(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """The PCA-whitening stored in a deep locals file, as ``(mean (C,), proj (D, C))`` float32."""
    path = Path(path)
    with open_checked(path, KIND, SCHEMA) as f:
        if "pca_mean" not in f or "pca_projection" not in f:
            raise BadInputError(f"{path}: holds no PCA-whitening; pass the database's deep locals file")
        mean = f["pca_mean"][()].astype(np.float32)
        proj = f["pca_projection"][()].astype(np.float32).T
    if mean.ndim != 1 or proj.ndim != 2 or proj.shape[1] != mean.shape[0]:
        raise BadInputError(f"{path}: pca_mean {mean.shape} and pca_projection {proj.T.shape} do not fit; corrupt file")
    return mean, np.ascontiguousarray(proj)


def pca_id(mean: np.ndarray, proj: np.ndarray) -> str:
    """A short fingerprint of a PCA-whitening ``(mean, proj (D, C))`` as stored in a locals file: query and
    database locals must share it (recorded as ``config["pca"]``)."""
    h = hashlib.sha1(np.ascontiguousarray(mean, np.float32).tobytes())
    h.update(np.ascontiguousarray(np.asarray(proj, np.float32).T).tobytes())
    return h.hexdigest()[:16]


def read_locals(path: str | os.PathLike, rows: slice | None = None) -> Locals:
    """Read and validate a locals file; ``rows`` (a slice of images) reads only those images' features."""
    path = Path(path)
    with open_checked(path, KIND, SCHEMA) as f:
        names = read_names(f, "names", path)
        offsets = require_dataset(f, "offsets", path)[()].astype(np.int64)
        desc = require_dataset(f, "descriptors", path)
        kps = require_dataset(f, "keypoints", path)
        sizes = f["image_sizes"][()].astype(np.int64) if "image_sizes" in f else None
        failed = read_names(f, "failed", path) if "failed" in f else []
        failed_reason = read_names(f, "failed_reason", path) if "failed_reason" in f else []
        config = read_config(f)
        if offsets.shape != (len(names) + 1,):
            raise BadInputError(f"{path}: 'offsets' {offsets.shape} does not fit {len(names)} names; corrupt file")
        if rows is not None:
            start, stop, _ = rows.indices(len(names))
            a, b = int(offsets[start]), int(offsets[stop]) if stop > start else int(offsets[start])
            names = names[start:stop]
            offsets = offsets[start:max(stop, start) + 1] - a
            sizes = None if sizes is None else sizes[start:stop]
            descriptors = desc[a:b].astype(np.float32)
            keypoints = kps[a:b].astype(np.float32)
        else:
            descriptors = desc[()].astype(np.float32)
            keypoints = kps[()].astype(np.float32)
    loc = Locals(names, descriptors, offsets, keypoints, sizes, config, failed, failed_reason, path)
    validate_locals(loc, path)
    check_finite(loc.descriptors, path, "descriptors")
    return loc


def count_locals(path: str | os.PathLike) -> tuple[int, int, int]:
    """(images, total descriptors, dimension) of a locals file without reading the descriptors."""
    path = Path(path)
    with open_checked(path, KIND, SCHEMA) as f:
        n = len(require_dataset(f, "names", path))
        shape = require_dataset(f, "descriptors", path).shape
    return n, int(shape[0]), int(shape[1])


__all__ = ["Locals", "pack_locals", "validate_locals", "write_locals", "read_locals", "count_locals",
           "read_locals_pca", "pca_id", "KIND", "SCHEMA"]
