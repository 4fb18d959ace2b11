"""Reading a features file (kind ``rkit/features``) in blocks, for collections larger than memory.

``read_features`` loads the whole (N, D) matrix; :class:`FeaturesStream` keeps the file open and hands out row
blocks, random samples and arbitrary rows (read in increasing order, as HDF5 wants), so index building and
re-ranking never hold more than a block. Rows come back as float32 whatever is stored (float16 files from
``extract --half`` included).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from retrievalkit.errors import BadInputError
from retrievalkit.io.features import KIND, SCHEMA
from retrievalkit.io.h5file import open_checked, read_config, read_names

#: rows of the sample hashed into the fingerprint
FINGERPRINT_ROWS = 64


class FeaturesStream:
    """An open features file read in blocks. Use as a context manager.

    Attributes: ``path``, ``names`` (list of N str), ``n`` (rows), ``dim``, ``dtype`` (stored), ``config``.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._cm = open_checked(self.path, KIND, SCHEMA)
        f = self._cm.__enter__()
        try:
            self.names = read_names(f, "names", self.path)
            if "vectors" not in f:
                raise BadInputError(f"{self.path}: dataset 'vectors' is missing; the file is incomplete")
            self._ds: h5py.Dataset = f["vectors"]
            if self._ds.ndim != 2:
                raise BadInputError(f"{self.path}: 'vectors' must be 2-D (N, D), got shape {self._ds.shape}")
            if "image_index" in f:
                raise BadInputError(f"{self.path}: holds several vectors per image (regions); a faiss index needs "
                                    "one vector per image — extract without --regions")
            if self._ds.shape[0] != len(self.names):
                raise BadInputError(f"{self.path}: {self._ds.shape[0]} vectors for {len(self.names)} names; "
                                    "the file is corrupt")
            self.config = read_config(f)
        except BaseException:
            self._cm.__exit__(None, None, None)
            raise
        self.n, self.dim = (int(s) for s in self._ds.shape)
        self.dtype = self._ds.dtype
        self._rows_view: np.ndarray | None | bool = False  # False: not looked up yet; None: not mappable

    def _mapped_rows(self) -> np.ndarray | None:
        """A read-only view whose element ``e`` is the stored row starting at element offset ``e`` of the file
        (``np.memmap``), with ``_row_offset(ids)`` giving each row's element offset; None when the dataset is
        compressed, unaligned or not fully written (then rows are read through h5py).

        Uncompressed HDF5 data are raw bytes at known offsets (one block when contiguous, one per chunk when
        chunked), so reading scattered rows from the page cache skips h5py's per-selection cost (re-ranking).
        """
        if self._rows_view is not False:
            return self._rows_view
        self._rows_view = None
        ds, isz = self._ds, self._ds.dtype.itemsize
        try:
            if ds.compression is not None or ds.scaleoffset is not None or ds.shuffle or ds.fletcher32 \
                    or self.n == 0 or ds.dtype.byteorder not in "=|<":
                return None
            if ds.chunks is None:
                off = ds.id.get_offset()
                if off is None or off % isz:
                    return None
                self._chunk_rows, self._chunk_base = self.n, np.array([off // isz], np.int64)
            else:
                if ds.chunks[1] != self.dim:
                    return None
                rows = int(ds.chunks[0])
                nchunks = -(-self.n // rows)
                if ds.id.get_num_chunks() != nchunks:
                    return None
                base = np.empty(nchunks, np.int64)
                for i in range(nchunks):
                    info = ds.id.get_chunk_info(i)
                    if info.filter_mask or info.byte_offset is None or info.byte_offset % isz \
                            or info.chunk_offset[0] != i * rows:
                        return None
                    base[info.chunk_offset[0] // rows] = info.byte_offset // isz
                self._chunk_rows, self._chunk_base = rows, base
            flat = np.memmap(self.path, dtype=ds.dtype.newbyteorder("<"), mode="r")
            if int(self._chunk_base.max()) + self._chunk_rows * self.dim > flat.shape[0]:
                return None
            self._rows_view = np.lib.stride_tricks.as_strided(flat, shape=(flat.shape[0] - self.dim + 1, self.dim),
                                                              strides=(isz, isz), writeable=False)
        except (OSError, ValueError, AttributeError, RuntimeError):
            self._rows_view = None
        return self._rows_view

    def _row_offset(self, ids: np.ndarray) -> np.ndarray:
        return self._chunk_base[ids // self._chunk_rows] + (ids % self._chunk_rows) * self.dim

    def close(self) -> None:
        self._rows_view = None
        self._cm.__exit__(None, None, None)

    def __enter__(self) -> FeaturesStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def rows(self, start: int, end: int) -> np.ndarray:
        """Rows ``start:end`` as a (end-start, D) float32 array (checked finite)."""
        x = np.ascontiguousarray(self._ds[start:end], dtype=np.float32)
        if x.size and not np.isfinite(x).all():
            raise BadInputError(f"{self.path}: vectors in rows {start}..{end - 1} contain NaN or Inf; re-extract")
        return x

    def blocks(self, block_size: int, start: int = 0, end: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_row, (b, D) float32 block)`` over rows ``start:end``, ``block_size`` rows at a time."""
        end = self.n if end is None else end
        for s in range(start, end, block_size):
            yield s, self.rows(s, min(s + block_size, end))

    def take(self, ids: np.ndarray, block_size: int = 65536) -> np.ndarray:
        """Rows ``ids`` (any order, repeats allowed) as (len(ids), D) float32.

        The file is read in increasing row order, one block range at a time: a range that holds many of the wanted
        rows is read whole, a sparse one row by row, so memory stays at one block plus the result.
        """
        ids = np.asarray(ids, dtype=np.int64)
        out = np.empty((ids.shape[0], self.dim), dtype=np.float32)
        if ids.size == 0:
            return out
        if ids.min() < 0 or ids.max() >= self.n:
            raise BadInputError(f"{self.path}: row ids outside 0..{self.n - 1} requested; the index does not "
                                "belong to this features file")
        view = self._mapped_rows()
        if view is not None:  # straight from the mapped file, in the order asked
            for s in range(0, ids.shape[0], block_size):  # bounds the gather's temporaries
                out[s:s + block_size] = view[self._row_offset(ids[s:s + block_size])]
            if not np.isfinite(out).all():
                raise BadInputError(f"{self.path}: vectors contain NaN or Inf; re-extract")
            return out
        uniq, inverse = np.unique(ids, return_inverse=True)
        got = self._take_h5(uniq, block_size)
        if not np.isfinite(got).all():
            raise BadInputError(f"{self.path}: vectors contain NaN or Inf; re-extract")
        out[:] = got[inverse.reshape(-1)]
        return out

    def _take_h5(self, uniq: np.ndarray, block_size: int) -> np.ndarray:
        got = np.empty((uniq.shape[0], self.dim), dtype=np.float32)
        for s in range(0, self.n, block_size):
            lo, hi = np.searchsorted(uniq, [s, s + block_size])
            if lo == hi:
                continue
            want = uniq[lo:hi]
            if hi - lo > block_size // 16:
                got[lo:hi] = self.rows(s, min(s + block_size, self.n))[want - s]
            else:
                got[lo:hi] = np.asarray(self._ds[want.tolist()], dtype=np.float32)
        return got

    def sample(self, size: int, seed: int = 0, block_size: int = 65536) -> np.ndarray:
        """``size`` distinct rows drawn uniformly at random (all rows when size >= N), in file order."""
        if size >= self.n:
            return np.concatenate([b for _, b in self.blocks(block_size)], 0) if self.n else \
                np.empty((0, self.dim), np.float32)
        ids = np.sort(np.random.default_rng(seed).choice(self.n, size=size, replace=False))
        return self.take(ids, block_size)

    def fingerprint(self) -> str:
        """A short hash of what identifies these features: names, shape and a fixed sample of rows (as float32,
        so a float16 copy of the same file differs). Two files with the same fingerprint index alike."""
        h = hashlib.sha256()
        h.update(f"{self.n}x{self.dim}\n".encode())
        for name in self.names:
            h.update(name.encode())
            h.update(b"\n")
        if self.n:
            ids = np.unique(np.linspace(0, self.n - 1, num=min(FINGERPRINT_ROWS, self.n)).astype(np.int64))
            h.update(np.ascontiguousarray(self._ds[ids.tolist()], dtype=np.float32).tobytes())
        return h.hexdigest()[:32]


def features_fingerprint(path: str | os.PathLike) -> str:
    """The fingerprint of a features file (see :meth:`FeaturesStream.fingerprint`)."""
    with FeaturesStream(path) as fs:
        return fs.fingerprint()
