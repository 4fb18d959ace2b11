"""The ASMK index file (kind ``rkit/asmk``): codebook + inverted file, plain HDF5 arrays (no pickle).

The in-memory :class:`InvertedFile` is defined here, with its file, so the io layer needs nothing from the
algorithm (:mod:`retrievalkit.search.asmk` builds and searches it).

Layout (see docs/local.md):
    names          (N,)       utf-8    database image names (row i = image id i)
    codebook       (K, D)     float32  k-means centroids (visual words)
    word_offsets   (K+1,)     int64    word c's postings are rows word_offsets[c]:word_offsets[c+1]
    entry_images   (E,)       int32    the database image of each posting (ascending within a word)
    entry_codes    (E, B)     uint8    packed binarised aggregated residuals (B = ceil(D/8); 16 for 128-D)
    image_words    (N,)       int64    distinct words per image (ASMK self-similarity)
    codebooks/J/   (optional) the same five arrays (codebook ... image_words) of codebook J + 1, J = 1 .. n - 1,
                   for an index of n codebooks (``rkit index asmk --codebooks n``); codebook 1 is the top level,
                   so a reader that knows one codebook reads the first
    attrs: kind, schema, config (codebook_id, ma, alpha, tau, locals config, shard, ...; with n > 1 codebooks
           also ``codebooks`` n, ``codebook_ids`` and ``seeds``, one per codebook)
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retrievalkit.errors import BadInputError
from retrievalkit.io.h5file import atomic_h5, open_checked, read_config, read_names, require_dataset, write_names

KIND = "rkit/asmk"
SCHEMA = 1


@dataclass
class InvertedFile:
    """ASMK* inverted file over N database images.

    Attributes:
        codebook: (K, D) float32. word_offsets: (K+1,) int64: word c's entries are rows
        word_offsets[c]:word_offsets[c+1] of ``entry_images`` (E,) int32 and ``entry_codes`` (E, B) uint8.
        image_words: (N,) int64 number of entries (distinct words) per image: its self-similarity.
    """

    codebook: np.ndarray
    word_offsets: np.ndarray
    entry_images: np.ndarray
    entry_codes: np.ndarray
    image_words: np.ndarray
    dim: int
    config: dict = field(default_factory=dict)

    @property
    def n_images(self) -> int:
        return int(self.image_words.shape[0])

    @property
    def n_entries(self) -> int:
        return int(self.entry_images.shape[0])

    def nbytes(self) -> int:
        return int(self.word_offsets.nbytes + self.entry_images.nbytes + self.entry_codes.nbytes
                   + self.image_words.nbytes)



def codebook_id(codebook: np.ndarray) -> str:
    """A short fingerprint of a codebook: shards of one index must share it."""
    return hashlib.sha1(np.ascontiguousarray(codebook, np.float32).tobytes()).hexdigest()[:16]


CODEBOOKS_GROUP = "codebooks"


def write_asmk_index(path: str | os.PathLike, names: list[str], ivf, inputs: dict[str, str] | None = None) -> Path:
    """Write an :class:`InvertedFile` (or a list of them: one per codebook, over the same images) and its image
    names atomically. The first inverted file's config is the file's."""
    path = Path(path)
    ivfs = list(ivf) if isinstance(ivf, (list, tuple)) else [ivf]
    if not ivfs:
        raise ValueError("write_asmk_index: no inverted file given")
    if any(len(names) != v.n_images for v in ivfs):
        raise ValueError(f"write_asmk_index: {len(names)} names for {[v.n_images for v in ivfs]} images")
    first = ivfs[0]
    config = {**first.config, "codebook_id": codebook_id(first.codebook), "dim": int(first.dim)}
    if len(ivfs) > 1:
        config["codebooks"] = len(ivfs)
        config["codebook_ids"] = [codebook_id(v.codebook) for v in ivfs]
    with atomic_h5(path, KIND, SCHEMA, config, inputs) as f:
        write_names(f, "names", names)
        for j, v in enumerate(ivfs):
            _write_arrays(f if j == 0 else f.create_group(f"{CODEBOOKS_GROUP}/{j}"), v)
    return path


def _write_arrays(group, ivf) -> None:
    group.create_dataset("codebook", data=np.asarray(ivf.codebook, np.float32))
    group.create_dataset("word_offsets", data=np.asarray(ivf.word_offsets, np.int64))
    e, b = ivf.entry_codes.shape
    group.create_dataset("entry_images", data=np.asarray(ivf.entry_images, np.int32),
                         chunks=(min(max(e, 1), 2**20),) if e else None)
    group.create_dataset("entry_codes", data=np.asarray(ivf.entry_codes, np.uint8),
                         chunks=(min(max(e, 1), 2**16), b) if e else None)
    group.create_dataset("image_words", data=np.asarray(ivf.image_words, np.int64))


def read_asmk_index(path: str | os.PathLike, codebook_only: bool = False):
    """Read an ASMK index: (names, InvertedFile) of its first codebook (see :func:`read_asmk_indexes` for all).
    With ``codebook_only`` the postings are left empty."""
    names, ivfs = read_asmk_indexes(path, codebook_only, first_only=True)
    return names, ivfs[0]


def read_asmk_indexes(path: str | os.PathLike, codebook_only: bool = False, first_only: bool = False):
    """Read an ASMK index with all its codebooks: (names, [InvertedFile, one per codebook]).
    With ``codebook_only`` the postings are left empty."""
    path = Path(path)
    with open_checked(path, KIND, SCHEMA) as f:
        names = read_names(f, "names", path)
        config = read_config(f)
        n_cb = int(config.get("codebooks", 1))
        ids = config.get("codebook_ids") or [config.get("codebook_id")]
        keys = [f"{CODEBOOKS_GROUP}/{j}" for j in range(1, n_cb)]
        if n_cb < 1 or len(ids) != n_cb or any(k not in f for k in keys):
            raise BadInputError(f"{path}: its config names {n_cb} codebook(s) that the file does not hold; the "
                                "file is corrupt, rebuild it")
        groups = [f, *(f[k] for k in keys)]
        ivfs = []
        for j, g in enumerate(groups[:1] if first_only else groups):
            cfg = dict(config) if j == 0 else {**config, "codebook_id": ids[j]}
            ivfs.append(_read_arrays(g, path, names, cfg, codebook_only))
    return names, ivfs


def _read_arrays(g, path: Path, names: list[str], config: dict, codebook_only: bool) -> InvertedFile:
    codebook = require_dataset(g, "codebook", path)[()].astype(np.float32)
    k, d = codebook.shape
    b = (d + 7) // 8
    if codebook_only:
        return InvertedFile(codebook, np.zeros(k + 1, np.int64), np.zeros(0, np.int32),
                            np.zeros((0, b), np.uint8), np.zeros(len(names), np.int64), d, config)
    offsets = require_dataset(g, "word_offsets", path)[()].astype(np.int64)
    images = require_dataset(g, "entry_images", path)[()].astype(np.int32)
    codes = require_dataset(g, "entry_codes", path)[()]
    image_words = require_dataset(g, "image_words", path)[()].astype(np.int64)
    e = images.shape[0]
    if (offsets.shape != (k + 1,) or offsets[0] != 0 or offsets[-1] != e or np.any(np.diff(offsets) < 0)
            or codes.shape != (e, b) or image_words.shape != (len(names),)
            or (e and (images.min() < 0 or images.max() >= len(names)))):
        raise BadInputError(f"{path}: inconsistent inverted file arrays; the file is corrupt, rebuild it")
    return InvertedFile(codebook, offsets, images, codes.astype(np.uint8), image_words, d, config)


__all__ = ["KIND", "SCHEMA", "InvertedFile", "codebook_id", "write_asmk_index", "read_asmk_index",
           "read_asmk_indexes"]
