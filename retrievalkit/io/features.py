"""The global-features file (kind ``rkit/features``).

Layout (see docs/formats.md):
    names         (N,)   utf-8   image names relative to the image root
    vectors       (M, D) float32 or float16; M == N unless ``image_index`` is present
    image_index   (M,)   int64   optional: row -> index into ``names`` (several vectors per image, e.g. regions)
    failed        (F,)   utf-8   images that could not be read (never silently dropped)
    failed_reason (F,)   utf-8
    attrs: kind, schema, config (model, pooling, size, scales, image_root, ...), done (items consumed)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from retrievalkit.errors import BadInputError
from retrievalkit.io.h5file import (
    STR_DTYPE,
    atomic_h5,
    check_finite,
    open_checked,
    partial_path,
    read_config,
    read_names,
    require_dataset,
    write_header,
    write_names,
)
from retrievalkit.io.output import acquire_lock, commit, release_lock

KIND = "rkit/features"
SCHEMA = 1


@dataclass
class Features:
    """Global descriptors of a set of images. ``vectors`` is (M, D) float32, rows L2-normalised."""

    names: list[str]
    vectors: np.ndarray
    config: dict = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    failed_reason: list[str] = field(default_factory=list)
    image_index: np.ndarray | None = None
    path: Path | None = None

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.names)


def write_features(path: str | os.PathLike, feats: Features, inputs: dict[str, str] | None = None,
                   half: bool = False) -> Path:
    """Write ``feats`` atomically to ``path`` and return the path."""
    path = Path(path)
    with atomic_h5(path, KIND, SCHEMA, feats.config, inputs) as f:
        write_names(f, "names", feats.names)
        f.create_dataset("vectors", data=np.asarray(feats.vectors, dtype=np.float16 if half else np.float32))
        if feats.image_index is not None:
            f.create_dataset("image_index", data=np.asarray(feats.image_index, dtype=np.int64))
        write_names(f, "failed", feats.failed)
        write_names(f, "failed_reason", feats.failed_reason)
        f.attrs["done"] = len(feats.names) + len(feats.failed)
    return path


def read_features(path: str | os.PathLike) -> Features:
    """Read and validate a features file; vectors come back as float32."""
    path = Path(path)
    with open_checked(path, KIND, SCHEMA) as f:
        names = read_names(f, "names", path)
        vec = require_dataset(f, "vectors", path)
        if vec.ndim != 2:
            raise BadInputError(f"{path}: 'vectors' must be 2-D (N, D), got shape {vec.shape}")
        stored_half = vec.dtype == np.float16
        vectors = vec[()].astype(np.float32, copy=False)
        image_index = f["image_index"][()].astype(np.int64) if "image_index" in f else None
        failed = read_names(f, "failed", path) if "failed" in f else []
        failed_reason = read_names(f, "failed_reason", path) if "failed_reason" in f else []
        config = read_config(f)
    if image_index is None and vectors.shape[0] != len(names):
        raise BadInputError(f"{path}: {vectors.shape[0]} vectors for {len(names)} names; the file is corrupt")
    if image_index is not None and (image_index.shape[0] != vectors.shape[0] or (
            image_index.size and (image_index.min() < 0 or image_index.max() >= len(names)))):
        raise BadInputError(f"{path}: 'image_index' does not map vectors to names; the file is corrupt")
    check_unique_names(names, path)
    vectors = unit_rows(vectors, path, tol=1e-2 if stored_half else 1e-3)  # also refuses NaN/Inf
    return Features(names, vectors, config, failed, failed_reason, image_index, path)


def check_unique_names(names: list[str], path) -> None:
    """Refuse a file that names an image twice: ranks, ground truth and merges address images by name."""
    if len(set(names)) != len(names):
        seen: set[str] = set()
        dup = next(n for n in names if n in seen or seen.add(n))
        raise BadInputError(f"{path}: image {dup!r} appears more than once in 'names'; each image must have one "
                            "entry (extract again, or merge parts that do not overlap)")


def unit_rows(vectors: np.ndarray, path, tol: float = 1e-3) -> np.ndarray:
    """Rows L2-normalised, as cosine similarity assumes: rows off unit length by more than ``tol`` are
    re-normalised with one warning; an all-zero row or a NaN/Inf value is refused.

    One pass over the matrix: the squared norms (float32 dot products) are finite exactly when the row's values
    are (barring overflow of values ~1e19, which the full check then reports as Inf)."""
    if vectors.size == 0:
        return vectors
    sq = np.einsum("ij,ij->i", vectors, vectors) if vectors.dtype == np.float32 else \
        np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64)
    if not np.isfinite(sq).all():
        check_finite(vectors, path, "vectors")
    norms = np.sqrt(sq)
    off = np.abs(norms - 1.0) > tol
    if not off.any():
        return vectors
    if (norms == 0).any():
        raise BadInputError(f"{path}: vector {int(np.flatnonzero(norms == 0)[0])} is all zeros; a descriptor needs a "
                            "direction (extract it again)")
    import warnings

    from retrievalkit.errors import RkitWarning

    warnings.warn(f"{path}: {int(off.sum())} of {len(norms)} vectors are not unit-length (norms "
                  f"{norms[off].min():.3g} to {norms[off].max():.3g}); re-normalised, as cosine similarity assumes",
                  RkitWarning, stacklevel=3)
    return (vectors / norms[:, None]).astype(np.float32)


class FeaturesWriter:
    """Incremental, resumable writer used by long extractions.

    Rows are appended to a hidden partial file next to the output and flushed after every
    batch; ``finish()`` renames it into place. ``done`` counts the input items consumed
    (written or failed) so an interrupted run restarts where it stopped.
    """

    def __init__(self, path: str | os.PathLike, dim: int, config: dict, resume: bool = False,
                 half: bool = False, inputs: dict[str, str] | None = None, regions: bool = False):
        self.path = Path(path)
        self.partial = partial_path(self.path)
        self.dim = dim
        self.f = None
        self._locked = False
        # The partial file belongs to the output's lock (io/output.py): a second writer of the same output
        # fails before it can touch the partial; re-entrant when the stage already claimed the output.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        acquire_lock(self.path)
        self._locked = True
        try:
            self._open(dim, config, resume, half, inputs, regions)
        except BaseException:
            self.close()
            raise

    def _open(self, dim, config, resume, half, inputs, regions) -> None:
        dtype = np.float16 if half else np.float32
        if resume and self.partial.exists():
            damaged = None
            try:
                self.f = h5py.File(self.partial, "a")
            except OSError:
                damaged = "cannot be opened"
            if damaged is None:
                old = read_config(self.f)
                if old != config or "vectors" not in self.f or int(self.f["vectors"].shape[1]) != dim:
                    raise BadInputError(
                        f"{self.partial}: the partial output was made with other settings; "
                        f"drop --resume to start again (or delete {self.partial})")
                if self._partial_is_consistent():
                    return
                damaged = "is inconsistent"
                self.f.close()
                self.f = None
            # HDF5 is not crash-safe: a run killed inside a write can leave a partial that no longer opens, or
            # whose rows and counters disagree. Nothing in it can be trusted, so the run starts over (same result
            # as a clean run, only slower) instead of stopping or building on a damaged prefix.
            import warnings

            from retrievalkit.errors import RkitWarning

            warnings.warn(f"{self.partial}: the partial output {damaged} (the run was killed while writing it); "
                          "starting again from the first image", RkitWarning, stacklevel=2)
            self.partial.unlink()
        # Created under a scratch name and renamed once its header is on disk, so a run killed while creating it
        # never leaves a half-made partial for --resume to trip over.
        fresh = self.partial.with_name(self.partial.name + ".new")
        self.f = h5py.File(fresh, "w")
        write_header(self.f, KIND, SCHEMA, config, inputs)
        write_names(self.f, "names", [], resizable=True)
        self.f.create_dataset("vectors", shape=(0, dim), maxshape=(None, dim), dtype=dtype,
                              chunks=(max(1, min(1024, 2**20 // max(dim, 1))), dim))
        if regions:
            self.f.create_dataset("image_index", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(4096,))
        write_names(self.f, "failed", [], resizable=True)
        write_names(self.f, "failed_reason", [], resizable=True)
        self.f.attrs["done"] = 0
        self.f.flush()
        os.replace(fresh, self.partial)

    def _partial_is_consistent(self) -> bool:
        """A partial left by a killed run must be a consistent prefix: every consumed item is a row or a failure."""
        f = self.f
        try:
            n, m = f["names"].shape[0], f["vectors"].shape[0]
            nf, nr = f["failed"].shape[0], f["failed_reason"].shape[0]
            done = int(f.attrs["done"])
            rows_ok = (m == n) if "image_index" not in f else (f["image_index"].shape[0] == m and m >= n)
            return rows_ok and nf == nr and n + nf == done
        except (KeyError, OSError, ValueError):
            return False

    @property
    def done(self) -> int:
        return int(self.f.attrs["done"])

    @property
    def names(self) -> list[str]:
        return [s.decode() if isinstance(s, bytes) else s for s in self.f["names"][()]]

    def append(self, names: list[str], vectors: np.ndarray, failed: list[tuple[str, str]] = (),
               consumed: int | None = None, owners: np.ndarray | None = None) -> None:
        """Append images and their vectors; ``consumed`` is how many input items this covers.

        ``owners`` (regions files only): for each vector row, the index of its image within ``names``.
        """
        n = len(names)
        if n:
            nd = self.f["names"]
            base = nd.shape[0]
            nd.resize(base + n, axis=0)
            nd[base:] = np.asarray(names, dtype=object)
            ds = self.f["vectors"]
            start = ds.shape[0]
            ds.resize(start + vectors.shape[0], axis=0)
            ds[start:] = vectors
            if "image_index" in self.f:
                if owners is None or len(owners) != vectors.shape[0]:
                    raise ValueError("a regions features file needs one owner per vector row")
                ii = self.f["image_index"]
                ii.resize(start + vectors.shape[0], axis=0)
                ii[start:] = base + np.asarray(owners, dtype=np.int64)
        if failed:
            for key, vals in (("failed", [a for a, _ in failed]), ("failed_reason", [b for _, b in failed])):
                d = self.f[key]
                s = d.shape[0]
                d.resize(s + len(vals), axis=0)
                d[s:] = np.asarray(vals, dtype=object)
        self.f.attrs["done"] = self.done + (consumed if consumed is not None else n + len(failed))
        self.f.flush()

    def finish(self) -> Path:
        vec = self.f["vectors"]
        if vec.shape[0] and not np.isfinite(vec[()].astype(np.float32)).all():
            self.close()
            raise BadInputError(f"{self.partial}: extraction produced NaN/Inf vectors; check the model")
        self.f.close()
        commit(self.partial, self.path)
        self.close()
        return self.path

    def discard(self) -> None:
        """Close and delete the partial file (a finished run that has nothing to keep or resume)."""
        self.close()
        self.partial.unlink(missing_ok=True)

    def close(self) -> None:
        if self.f is not None and self.f.id.valid:
            self.f.close()
        if self._locked:
            self._locked = False
            release_lock(self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


__all__ = ["Features", "FeaturesWriter", "read_features", "write_features", "KIND", "SCHEMA", "STR_DTYPE"]
