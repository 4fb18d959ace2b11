"""Hough Pyramid Matching (Tolias & Avrithis, ICCV 2011 / IJCV 2013): relaxed spatial matching.

Each tentative correspondence between two local features with position, scale and orientation fixes a
similarity transformation (4 degrees of freedom): scale ratio σ = s₂/s₁, rotation θ = θ₂ − θ₁ and translation,
here the point of image 2 that image 1's reference point (the centre of its keypoints) maps to. The
transformation space is partitioned hierarchically: at the finest level each dimension has ``2**levels`` bins,
and each coarser level merges pairs of bins along every dimension, down to 2 bins per dimension. Correspondences that
fall into the same bin agree on the transformation; a correspondence's strength adds, level by level from the
finest, the correspondences newly grouped with it, weighted by ``2**-level`` — so agreement at a fine level
counts more, and several transformations (several objects, or a non-rigid one) are all rewarded. The image
similarity is the sum of strengths. One-to-one matching: a feature taking part in several correspondences
keeps the one in the most populated finest bin (the others are "conflicting" and erased). Everything is a
few sorts of the correspondences: linear in their number (up to the sort), no model is fitted.

Locals without an orientation (deep locals: their 4th column is a strength, not an angle) give 3 degrees of
freedom (upright features, rotation not binned).

Significance (for the safe re-ranking rule, :mod:`retrievalkit.verify.significance`): a bin with k distinct
locations among n correspondences is tested against the background model where a wrong image's
correspondences pair random features: their translation has a density of at most 1/area of image 2 (the point
of image 2 is uniform), and their scale ratio and rotation follow the distribution of random pairs of the two
images' matched features (the convolution of the two marginal histograms). The NFA multiplies the binomial
tail by the bins tested at all levels (and the shortlist size), as for RANSAC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from retrievalkit.verify.significance import NO_EVIDENCE, log10_binomial_tail

#: pyramid levels: the finest has 2**LEVELS = 32 bins per dimension, the coarsest 2 (the paper's L = 5)
LEVELS = 5
#: scale ratios outside [1/MAX_SCALE, MAX_SCALE] are implausible (erased)
MAX_SCALE = 8.0
#: translations: image 1's reference point maps within image 2 extended by this fraction on each side
MARGIN = 0.5


@dataclass
class HpmResult:
    """Strength of each correspondence (0 for erased ones), the image similarity, the correspondences grouped
    with at least one other at the finest level (``grouped``), and the log10 NFA of the strongest bin."""

    strength: np.ndarray
    score: float
    grouped: np.ndarray
    log10_nfa: float


def _transforms(kp1: np.ndarray, kp2: np.ndarray, matches: np.ndarray, rotation: bool):
    a = np.asarray(kp1, np.float64)[matches[:, 0]]
    b = np.asarray(kp2, np.float64)[matches[:, 1]]
    ref = np.asarray(kp1, np.float64)[:, :2]
    c1 = 0.5 * (ref.min(0) + ref.max(0))
    s1 = np.maximum(a[:, 2], 1e-6)
    s2 = np.maximum(b[:, 2], 1e-6)
    log_s = np.log2(s2) - np.log2(s1)  # as the significance's pair differences are computed
    theta = np.deg2rad(b[:, 3] - a[:, 3]) if rotation else np.zeros(len(a))
    theta = np.mod(theta, 2 * np.pi)
    sig = s2 / s1
    d = a[:, :2] - c1
    co, si = np.cos(theta), np.sin(theta)
    t = b[:, :2] - sig[:, None] * np.stack([co * d[:, 0] - si * d[:, 1], si * d[:, 0] + co * d[:, 1]], 1)
    return t, log_s, theta, np.log2(s1), np.log2(s2), np.deg2rad(a[:, 3]) if rotation else None, \
        np.deg2rad(b[:, 3]) if rotation else None


def _pair_probability(x1: np.ndarray, x2: np.ndarray, lo: float, width: float, nbins: int,
                      circular: bool) -> np.ndarray:
    """P[x2_j − x1_i ∈ bin] over all pairs (i, j), for each of ``nbins`` bins of ``width`` from ``lo`` (angles:
    modulo 2π). Exact, by sorted search: O((n1 · nbins) log n2)."""
    x2 = np.sort(np.asarray(x2, np.float64))
    x1 = np.asarray(x1, np.float64)
    starts = lo + width * np.arange(nbins)
    if circular:
        ext = np.concatenate([x2, x2 + 2 * np.pi])
        a = np.mod(x1[:, None] + starts[None, :], 2 * np.pi)
        cnt = np.searchsorted(ext, a + width, "left") - np.searchsorted(ext, a, "left")
    else:
        edges = x1[:, None] + np.append(starts, lo + width * nbins)[None, :]
        c = np.searchsorted(x2, edges, "left")
        cnt = c[:, 1:] - c[:, :-1]
    return cnt.sum(0) / float(len(x1) * len(x2))


def _distinct_per_group(group: np.ndarray, cells: np.ndarray, n_groups: int) -> np.ndarray:
    """Distinct ``cells`` (int ids, 0 … m − 1) within each group (groups 0 … n_groups − 1)."""
    u = np.unique(group * (int(cells.max()) + 1) + cells)
    return np.bincount(u // (int(cells.max()) + 1), minlength=n_groups)


def _cell_ids(points: np.ndarray, cell: float) -> np.ndarray:
    """An int id per ``cell``-pixel grid cell of each (m, 2) point (equal ids ↔ same cell)."""
    c = np.floor(points / max(cell, 1e-9)).astype(np.int64)
    c -= c.min(0)
    return np.unique(c[:, 0] * (int(c[:, 1].max()) + 1) + c[:, 1], return_inverse=True)[1].ravel()


def _min_log10_tail(n: int, k: np.ndarray, p: np.ndarray) -> float:
    """min over bins of log10 P[Binomial(n, p) ≥ k] (exact where the vectorised tail underflows)."""
    from scipy.special import bdtrc

    k = np.minimum(k, n)
    p = np.clip(p, 1e-300, 1.0)
    tail = bdtrc(k - 1, n, p)  # P[X > k − 1]
    pos = tail > 1e-280
    best = float(np.log10(tail[pos]).min()) if pos.any() else math.inf
    for i in np.flatnonzero(~pos):
        best = min(best, log10_binomial_tail(n, int(k[i]), float(p[i])))
    return best


def hough_pyramid(kp1: np.ndarray, kp2: np.ndarray, matches: np.ndarray, size2: tuple[float, float] | None = None,
                  rotation: bool = True, levels: int = LEVELS, cell: float = 8.0, tests: int = 1) -> HpmResult:
    """Hough Pyramid Matching of tentative correspondences (module docstring).

    Args:
        kp1, kp2: (n, 4) keypoints x, y, scale, angle (degrees; ignored when ``rotation`` is False).
        matches: (M, 2) int rows into kp1 and kp2 (several per feature allowed: conflicts are resolved).
        size2: image 2's (width, height); None: the extent of kp2.
        cell: locations closer than this (pixels) count once in the significance test.
        tests: images tested for the same query (the NFA's shortlist factor).
    """
    matches = np.asarray(matches, np.int64).reshape(-1, 2)
    m = matches.shape[0]
    empty = HpmResult(np.zeros(m), 0.0, np.zeros(m, bool), NO_EVIDENCE)
    if m < 2:
        return empty
    kp2a = np.asarray(kp2, np.float64)
    if size2 is None or min(size2) <= 0:
        size2 = (float(np.ptp(kp2a[:, 0])) + 1.0, float(np.ptp(kp2a[:, 1])) + 1.0)
    w2, h2 = float(size2[0]), float(size2[1])
    nb = 2 ** levels
    t, log_s, theta, ls1, ls2, th1, th2 = _transforms(kp1, kp2, matches, rotation)
    tx0, ty0 = -MARGIN * w2, -MARGIN * h2
    tw, th_ = (1 + 2 * MARGIN) * w2 / nb, (1 + 2 * MARGIN) * h2 / nb
    s_w = 2 * math.log2(MAX_SCALE) / nb
    s_lo = -math.log2(MAX_SCALE) - 0.5 * s_w  # a bin centred on "same scale" (no edge at 0 or ±1/2 octave)
    r_w = 2 * np.pi / nb
    bx = np.floor((t[:, 0] - tx0) / tw).astype(np.int64)
    by = np.floor((t[:, 1] - ty0) / th_).astype(np.int64)
    bs = np.floor((log_s - s_lo) / s_w).astype(np.int64)
    br = (np.floor(theta / r_w).astype(np.int64) % nb) if rotation else np.zeros(m, np.int64)
    alive = (bx >= 0) & (bx < nb) & (by >= 0) & (by < nb) & (bs >= 0) & (bs < nb)
    bins = np.stack([bx, by, bs, br], 1)

    def keys(level: int) -> np.ndarray:
        b = bins >> level
        n = max(nb >> level, 1)
        return ((b[:, 0] * n + b[:, 1]) * n + b[:, 2]) * n + b[:, 3]

    # one-to-one: a feature keeps its correspondence in the most populated finest bin
    k0 = keys(0)
    _, inv, cnt = np.unique(np.where(alive, k0, -1), return_inverse=True, return_counts=True)
    pop = np.where(alive, cnt[inv], 0)
    order = np.lexsort((np.arange(m), -pop))
    for side in (0, 1):
        first = np.zeros(m, bool)
        cand = order[alive[order]]
        _, fi = np.unique(matches[cand, side], return_index=True)  # the first in ``order`` of each feature
        first[cand[fi]] = True
        alive &= first
    strength = np.zeros(m)
    prev = np.ones(m)
    idx = np.flatnonzero(alive)
    grouped = np.zeros(m, bool)
    best = NO_EVIDENCE
    if idx.size >= 2:
        p1 = np.asarray(kp1, np.float64)[matches[idx, 0], :2]
        p2 = kp2a[matches[idx, 1], :2]
        c1, c2 = _cell_ids(p1, cell), _cell_ids(p2, cell)
        n_eff = int(idx.size)  # k below counts distinct locations, n all correspondences (conservative)
        ps = _pair_probability(ls1[idx], ls2[idx], s_lo, s_w, nb, False)
        pr = _pair_probability(th1[idx], th2[idx], 0.0, r_w, nb, True) if rotation else np.ones(nb)
        # the observed correspondences are random pairs too: no bin holds less than their share (rounding)
        ps = np.maximum(ps, np.bincount(bins[idx, 2], minlength=nb) / float(n_eff) ** 2)
        if rotation:
            pr = np.maximum(pr, np.bincount(bins[idx, 3], minlength=nb) / float(n_eff) ** 2)
        tests_bins = sum((max(nb >> lv, 1) ** (4 if rotation else 3)) for lv in range(levels))
        for lv in range(levels):
            kk = keys(lv)[idx]
            uk, inv, cnt = np.unique(kk, return_inverse=True, return_counts=True)
            nbin = cnt[inv].astype(np.float64)
            strength[idx] += 2.0 ** -lv * (nbin - prev[idx])
            prev[idx] = nbin
            if lv == 0:
                grouped[idx] = nbin >= 2
            # significance of each bin: its distinct locations on either side
            k_eff = np.minimum(_distinct_per_group(inv, c1, len(uk)), _distinct_per_group(inv, c2, len(uk)))
            sel = np.flatnonzero(k_eff >= 3)
            if sel.size == 0:
                continue
            rep = np.zeros(len(uk), np.int64)
            rep[inv] = idx
            f = 1 << lv
            bb = bins[rep[sel]] >> lv
            p_t = min(1.0, (tw * f) * (th_ * f) / max(w2 * h2, 1.0))
            cs = np.concatenate([[0.0], np.cumsum(ps)])
            p_b = p_t * (cs[(bb[:, 2] + 1) * f] - cs[bb[:, 2] * f])
            if rotation:
                cr = np.concatenate([[0.0], np.cumsum(pr)])
                p_b = p_b * (cr[(bb[:, 3] + 1) * f] - cr[bb[:, 3] * f])
            best = min(best, _min_log10_tail(n_eff, k_eff[sel], p_b))
        if math.isfinite(best):
            best += math.log10(max(tests, 1)) + math.log10(tests_bins)
    return HpmResult(strength, float(strength.sum()), grouped, best)


__all__ = ["LEVELS", "MAX_SCALE", "MARGIN", "HpmResult", "hough_pyramid"]
