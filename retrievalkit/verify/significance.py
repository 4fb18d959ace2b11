"""A-contrario significance of geometric verification: how likely are this many inliers by chance?

The background model H0: the tentative matches of a wrong image are random — each one's point in the database
image falls anywhere in that image, independently of the others. A model fitted to the matches then keeps a
random match as an inlier with probability ``p``, the share of the image inside its tolerance region: a disc of
radius r (the inlier threshold) around the predicted point for a homography or an affinity (``π r² / area``), a
band of half-width r around the epipolar line for a fundamental matrix (``2 r · diagonal / area``).

The number of false alarms of a model with k inliers among n tentative matches (Moisan & Stival, IJCV 2004,
"A probabilistic criterion to detect rigid point matches between two images and estimate the fundamental
matrix"; Moisan, Moulon & Monasse, IPOL 2012, "Automatic homographic registration of a pair of images, with
a contrario elimination of outliers")::

    NFA = S · N_out · (n − s) · C(n, s) · P[Binomial(n − s, p) ≥ k − s]

s is the minimal sample (4 for a homography, 3 for an affinity, 7 for a fundamental matrix: the s points fit the
model exactly, so they are no evidence), N_out the models one sample can give (3 for the 7-point fundamental
solver, else 1), C(n, s) the models one could try, (n − s) the choices of k, and S the images tested for the
same query (the shortlist), so that ``NFA < ε`` bounds the expected number of chance verifications **per
query** by ε. ε = 1 is the a-contrario convention.

Inliers that repeat one location are one piece of evidence, not several (deep locals of several pyramid levels
at one position, SIFT keypoints with two orientations): k counts distinct locations, on a grid of the inlier
threshold, in each image (the smaller of the two counts); n stays the number of tentative matches (counting
them as distinct locations too would make crowded images look emptier than they are: conservative this way).
"""

from __future__ import annotations

import math

import numpy as np

#: minimal sample size and models per sample of each geometric model
SAMPLE = {"homography": (4, 1), "affine": (3, 1), "fundamental": (7, 3), "similarity": (2, 1)}
#: log10 NFA reported when there is no model (or no more inliers than the sample)
NO_EVIDENCE = float("inf")


def log10_binomial_tail(n: int, k: int, p: float) -> float:
    """log10 P[X ≥ k] for X ~ Binomial(n, p) (0 for k ≤ 0, -inf for k > n)."""
    if k <= 0:
        return 0.0
    if k > n:
        return -math.inf
    p = min(max(float(p), 1e-300), 1.0)
    if p >= 1.0:
        return 0.0
    from scipy.special import gammaln

    i = np.arange(k, n + 1, dtype=np.float64)
    terms = gammaln(n + 1) - gammaln(i + 1) - gammaln(n - i + 1) + i * math.log(p) + (n - i) * math.log1p(-p)
    top = terms.max()
    return float((top + math.log(np.exp(terms - top).sum())) / math.log(10))


def log10_choose(n: int, k: int) -> float:
    """log10 C(n, k)."""
    if k < 0 or k > n:
        return -math.inf
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)) / math.log(10)


def tolerance_probability(method: str, threshold: float, width: float, height: float) -> float:
    """Probability that a uniformly random point of a ``width`` × ``height`` image falls within ``threshold``
    pixels of a model's prediction: a disc (homography, affine, similarity) or a band along the epipolar line
    (fundamental). Clipped to (0, 1]."""
    area = max(float(width) * float(height), 1.0)
    r = float(threshold)
    if method == "fundamental":
        p = 2.0 * r * math.hypot(width, height) / area
    else:
        p = math.pi * r * r / area
    return float(min(max(p, 1e-300), 1.0))


def distinct_locations(points: np.ndarray, cell: float) -> int:
    """Number of distinct ``cell``-pixel grid cells the (m, 2) points fall in."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    if points.shape[0] == 0:
        return 0
    c = np.floor(points / max(float(cell), 1e-9)).astype(np.int64)
    return int(np.unique(c, axis=0).shape[0])


def effective_count(p1: np.ndarray, p2: np.ndarray, cell: float) -> int:
    """Matches counted as distinct locations: the smaller of the distinct cells on either side."""
    return min(distinct_locations(p1, cell), distinct_locations(p2, cell))


def ransac_log10_nfa(n: int, k: int, p: float, method: str, tests: int = 1,
                     sample: tuple[int, int] | None = None) -> float:
    """log10 NFA of a model with ``k`` inliers among ``n`` tentative matches (module docstring); ``tests`` is S,
    the images tested for the query; ``sample`` (s, N_out) overrides the method's minimal sample (``(1, 1)`` for
    hypotheses made from one correspondence of two local frames, as Deep Spatial Matching does).
    :data:`NO_EVIDENCE` (inf) when k does not exceed the minimal sample."""
    s, n_out = SAMPLE[method] if sample is None else sample
    if k <= s or n <= s:
        return NO_EVIDENCE
    return (math.log10(max(tests, 1)) + math.log10(n_out) + math.log10(n - s) + log10_choose(n, s)
            + log10_binomial_tail(n - s, k - s, p))


def pair_log10_nfa(kp1: np.ndarray, kp2: np.ndarray, matches: np.ndarray, inliers: np.ndarray, method: str,
                   threshold: float, size2: tuple[float, float] | None, tests: int = 1,
                   sample: tuple[int, int] | None = None) -> float:
    """log10 NFA of one verified pair: tentative ``matches`` ((M, 2) rows into kp1, kp2), their (M,) bool
    ``inliers`` mask, the model ``method`` and inlier ``threshold`` (pixels of image 2), image 2's
    (width, height) (None: the extent of its keypoints); ``sample`` as in :func:`ransac_log10_nfa`."""
    matches = np.asarray(matches, np.int64).reshape(-1, 2)
    inliers = np.asarray(inliers, bool)
    if matches.shape[0] == 0 or not inliers.any():
        return NO_EVIDENCE
    p1 = np.asarray(kp1, np.float64)[matches[:, 0], :2]
    p2 = np.asarray(kp2, np.float64)[matches[:, 1], :2]
    if size2 is None or min(size2) <= 0:
        kp2 = np.asarray(kp2, np.float64)
        size2 = (float(np.ptp(kp2[:, 0])) + 1.0, float(np.ptp(kp2[:, 1])) + 1.0)
    n = int(matches.shape[0])
    k = effective_count(p1[inliers], p2[inliers], threshold)
    p = tolerance_probability(method, threshold, size2[0], size2[1])
    return ransac_log10_nfa(n, k, p, method, tests, sample)


__all__ = ["SAMPLE", "NO_EVIDENCE", "log10_binomial_tail", "log10_choose", "tolerance_probability",
           "distinct_locations", "effective_count", "ransac_log10_nfa", "pair_log10_nfa"]
