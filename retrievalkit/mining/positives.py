"""Positive pairs from 3D models (Radenović, Tolias, Chum, ECCV 2016 / TPAMI 2018), on plain arrays.

A model is given by its observations: image ``i`` sees 3D point ``p`` at depth ``d`` (in the camera frame)
with focal length ``f_i`` (pixels). Two images that see the same point at depths ``d_q``, ``d_i`` draw it at
relative scale ``(f_i / d_i) / (f_q / d_q)``; the median over their shared points is the pair's scale change.

For a query ``q`` with point set ``P(q)``, the candidate positives are the images ``i`` with
``|P(i) ∩ P(q)| >= min_overlap * |P(q)|`` (they see a large part of what the query sees) and a scale change
of at most ``max_scale`` either way (not a far zoom in or out). Among them, one picks (``strategy``):

- ``random``: uniformly at random (the paper's best: hard, varied positives);
- ``most-shared``: the most shared points (easy, near-duplicate views);
- ``closest``: the most similar global descriptor (easiest for the current network).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from retrievalkit.errors import UsageError

STRATEGIES = ("random", "most-shared", "closest")


@dataclass
class ModelObservations:
    """One 3D model as arrays.

    Attributes:
        names: (n,) names of the registered images.
        focal: (n,) focal length of each image's camera in pixels.
        obs_image: (O,) int64 index into ``names`` of each observation.
        obs_point: (O,) int64 3D point id of each observation (any non-negative ids).
        obs_depth: (O,) float depth of the point in that image's camera frame (> 0).
    """

    names: list[str]
    focal: np.ndarray
    obs_image: np.ndarray
    obs_point: np.ndarray
    obs_depth: np.ndarray

    def __len__(self) -> int:
        return len(self.names)


def pair_statistics(model: ModelObservations) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shared-point counts and scale changes between every two images of a model.

    Returns:
        shared: (n, n) int64, ``shared[q, i] = |P(q) ∩ P(i)|`` (diagonal: ``|P(q)|``).
        scale: (n, n) float64, median of ``(f_i / d_i) / (f_q / d_q)`` over the shared points
            (``nan`` where nothing is shared); ``scale[q, i] * scale[i, q] == 1``.
        npoints: (n,) int64, ``|P(q)|``.
    """
    n = len(model)
    img = np.asarray(model.obs_image, np.int64)
    pts = np.asarray(model.obs_point, np.int64)
    depth = np.asarray(model.obs_depth, np.float64)
    focal = np.asarray(model.focal, np.float64)
    if not (img.shape == pts.shape == depth.shape) or focal.shape != (n,):
        raise UsageError("model observations: obs_image, obs_point, obs_depth must have one entry per "
                         "observation and focal one per image")
    ok = (depth > 0) & np.isfinite(depth)
    img, pts, depth = img[ok], pts[ok], depth[ok]
    _, col = np.unique(pts, return_inverse=True)
    ncol = int(col.max()) + 1 if col.size else 0
    logscale = np.log(focal[img] / depth)  # log of the point's image-space scale in that view
    # one observation per (image, point); duplicates (should not happen) keep the first
    B = sp.csr_matrix((np.ones(img.size), (img, col)), shape=(n, ncol))
    B.data[:] = 1.0
    shared = np.asarray((B @ B.T).todense(), dtype=np.int64)
    npoints = np.diag(shared).copy()

    scale = np.full((n, n), np.nan)
    order = np.lexsort((col, img))
    img_s, col_s, ls_s = img[order], col[order], logscale[order]
    starts = np.searchsorted(img_s, np.arange(n + 1))
    # per point, the list of (image, log-scale) observing it
    by_point = np.lexsort((img_s, col_s))
    p_col, p_img, p_ls = col_s[by_point], img_s[by_point], ls_s[by_point]
    p_starts = np.searchsorted(p_col, np.arange(ncol + 1))
    for q in range(n):
        qcols = col_s[starts[q]:starts[q + 1]]
        qls = ls_s[starts[q]:starts[q + 1]]
        if qcols.size == 0:
            continue
        lo, hi = p_starts[qcols], p_starts[qcols + 1]
        counts = hi - lo
        idx = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)]) if counts.sum() else np.zeros(0, int)
        other = p_img[idx]
        diff = p_ls[idx] - np.repeat(qls, counts)
        keep = other != q
        other, diff = other[keep], diff[keep]
        if other.size == 0:
            continue
        o = np.lexsort((diff, other))
        other, diff = other[o], diff[o]
        uniq, first, cnt = np.unique(other, return_index=True, return_counts=True)
        lower = diff[first + (cnt - 1) // 2]
        upper = diff[first + cnt // 2]
        scale[q, uniq] = np.exp(0.5 * (lower + upper))
    scale[np.arange(n), np.arange(n)] = 1.0
    return shared, scale, npoints


def candidate_positives(shared: np.ndarray, scale: np.ndarray, npoints: np.ndarray, q: int,
                        min_overlap: float = 0.2, max_scale: float = 1.5, min_shared: int = 10) -> np.ndarray:
    """Indices of the images that qualify as positives of query ``q`` (see the module docstring)."""
    n = shared.shape[0]
    s = shared[q].astype(np.float64)
    with np.errstate(invalid="ignore"):
        sc = np.maximum(scale[q], 1.0 / scale[q])
        ok = (s >= max(min_shared, 1)) & (s >= min_overlap * max(npoints[q], 1)) & (sc <= max_scale)
    ok &= np.arange(n) != q
    return np.flatnonzero(ok)


def mine_model_pairs(model: ModelObservations, strategy: str = "random", per_query: int = 1,
                     min_overlap: float = 0.2, max_scale: float = 1.5, min_shared: int = 10,
                     descriptors: np.ndarray | None = None, rng: np.random.Generator | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(query, positive) pairs within one model, as indices into ``model.names``.

    Every registered image with at least one candidate positive becomes a query with up to ``per_query``
    distinct positives chosen by ``strategy``. ``descriptors`` (n, D), L2-normalised, is needed by ``closest``.

    Returns:
        qidx, pidx: (T,) int64.
    """
    if strategy not in STRATEGIES:
        raise UsageError(f"positive strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
    if per_query < 1:
        raise UsageError(f"positives per query {per_query}: must be at least 1")
    if strategy == "closest" and (descriptors is None or len(descriptors) != len(model)):
        raise UsageError("the 'closest' positive strategy needs one global descriptor per registered image")
    rng = rng if rng is not None else np.random.default_rng(0)
    shared, scale, npoints = pair_statistics(model)
    qs, ps = [], []
    for q in range(len(model)):
        cand = candidate_positives(shared, scale, npoints, q, min_overlap, max_scale, min_shared)
        if cand.size == 0:
            continue
        m = min(per_query, cand.size)
        if strategy == "random":
            chosen = rng.choice(cand, size=m, replace=False)
        elif strategy == "most-shared":
            chosen = cand[np.argsort(-shared[q, cand], kind="stable")[:m]]
        else:
            sims = descriptors[cand] @ descriptors[q]
            chosen = cand[np.argsort(-sims, kind="stable")[:m]]
        qs.append(np.full(m, q, np.int64))
        ps.append(np.asarray(chosen, np.int64))
    if not qs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(qs), np.concatenate(ps)


def sample_negatives(qidx: np.ndarray, group: np.ndarray, count: int,
                     rng: np.random.Generator | None = None) -> np.ndarray:
    """``count`` random negatives per query, drawn from images whose ``group`` differs from the query's.

    ``group`` (N,) int64: images with group < 0 are never drawn. Returns (T, count) int64, -1 pads when the
    pool is smaller than ``count``.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    out = np.full((len(qidx), max(count, 0)), -1, np.int64)
    if count <= 0:
        return out
    valid = np.flatnonzero(group >= 0)
    for t, q in enumerate(qidx):
        pool = valid[group[valid] != group[q]]
        if pool.size:
            m = min(count, pool.size)
            out[t, :m] = rng.choice(pool, size=m, replace=False)
    return out
