"""The one shape of a search result: :class:`Neighbours` ``(scores, ids)``.

Every search in the library (exact inner product, kNN graphs, diffusion, ASMK, copy-detection matching)
returns its results as ``Neighbours(scores, ids)``: row ``i`` lists query ``i``'s neighbours best first,
``scores`` (Q, k) float and ``ids`` (Q, k) int64 rows of the database, ``-1`` where fewer than k exist.
It is a plain tuple too, so ``scores, ids = search_ip(...)`` unpacks in that order (faiss's ``D, I``).
It lives outside every package so that io/, search/, diffusion/ and copydetect/ can all use it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Neighbours(NamedTuple):
    """Search results: ``scores`` (Q, k) best first and ``ids`` (Q, k) int64 database rows (-1 = none)."""

    scores: np.ndarray
    ids: np.ndarray


__all__ = ["Neighbours"]
