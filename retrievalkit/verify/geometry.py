"""Two-view geometry for verification: tentative matches and RANSAC models (features: :mod:`retrievalkit.extract.sift`).

Keypoints are (n, 2+) arrays whose first two columns are x, y in pixels of the image they were
detected in (any further columns — scale, angle — are ignored here). Descriptors are (n, D) float
rows, L2-normalised for deep locals and RootSIFT alike, so a dot product is a cosine similarity.
"""

from __future__ import annotations

import numpy as np

_METHODS = ("homography", "affine", "fundamental")

#: the fewest tentative matches each model can be estimated from
MIN_MATCHES = {"homography": 4, "affine": 3, "fundamental": 8}


def _usac_flag(default: int) -> int:
    import cv2

    return getattr(cv2, "USAC_MAGSAC", default)


def match_descriptors(d1: np.ndarray, d2: np.ndarray, ratio: float | None = 0.8, mutual: bool = True,
                      block: int = 4096) -> np.ndarray:
    """Tentative matches between two descriptor sets by nearest neighbour (Euclidean = cosine on unit rows).

    Args:
        d1: (n1, D) descriptors of image 1; d2: (n2, D) of image 2 (same D).
        ratio: Lowe's ratio test on distances (keep when d(1st) < ratio * d(2nd)); None switches it off.
        mutual: keep only pairs that are each other's nearest neighbour.
    Returns:
        (M, 2) int64 array of (index into d1, index into d2); empty (0, 2) when either side is empty.
    """
    d1 = np.asarray(d1, dtype=np.float32)
    d2 = np.asarray(d2, dtype=np.float32)
    if d1.ndim != 2 or d2.ndim != 2 or (d1.size and d2.size and d1.shape[1] != d2.shape[1]):
        raise ValueError(f"match_descriptors: expected (n1, D) and (n2, D), got {d1.shape} and {d2.shape}")
    n1, n2 = d1.shape[0], d2.shape[0]
    if n1 == 0 or n2 == 0:
        return np.zeros((0, 2), np.int64)
    sq1 = (d1 * d1).sum(1)
    sq2 = (d2 * d2).sum(1)
    nn12 = np.empty(n1, np.int64)
    best = np.empty(n1, np.float32)
    second = np.full(n1, np.inf, np.float32)
    col_best = np.full(n2, np.inf, np.float32)
    nn21 = np.zeros(n2, np.int64)
    for s in range(0, n1, block):
        dist = sq1[s:s + block, None] + sq2[None, :] - 2.0 * (d1[s:s + block] @ d2.T)
        np.maximum(dist, 0.0, out=dist)
        j = np.argmin(dist, axis=1)
        rows = np.arange(dist.shape[0])
        nn12[s:s + block] = j
        best[s:s + block] = dist[rows, j]
        if n2 > 1:
            part = np.partition(dist, 1, axis=1)
            second[s:s + block] = part[:, 1]
        i = np.argmin(dist, axis=0)
        v = dist[i, np.arange(n2)]
        better = v < col_best
        col_best[better] = v[better]
        nn21[better] = i[better] + s
    keep = np.ones(n1, bool)
    if mutual:
        keep &= nn21[nn12] == np.arange(n1)
    if ratio is not None:
        # squared distances: d1 < r d2  <=>  d1² < r² d2²
        keep &= best < (ratio * ratio) * second
    idx = np.nonzero(keep)[0]
    return np.stack([idx, nn12[idx]], axis=1).astype(np.int64)


def verify_pair(kp1: np.ndarray, kp2: np.ndarray, matches: np.ndarray, method: str = "homography",
                ransac_threshold: float = 8.0, confidence: float = 0.999, max_iters: int = 2000,
                ) -> tuple[int, np.ndarray | None]:
    """Inlier count and model of :func:`fit_pair` (the same arguments): ``(0, None)`` when no model is found."""
    model, mask = fit_pair(kp1, kp2, matches, method, ransac_threshold, confidence, max_iters)
    return int(mask.sum()), model


def fit_pair(kp1: np.ndarray, kp2: np.ndarray, matches: np.ndarray, method: str = "homography",
             ransac_threshold: float = 8.0, confidence: float = 0.999, max_iters: int = 2000,
             ) -> tuple[np.ndarray | None, np.ndarray]:
    """Fit a geometric model to tentative matches by RANSAC (OpenCV, MAGSAC++ when available).

    Args:
        kp1, kp2: (n, 2+) keypoints, x and y in pixels in the first two columns.
        matches: (M, 2) int pairs of row indices into kp1 and kp2.
        method: 'homography' (3×3), 'affine' (2×3, full affine) or 'fundamental' (3×3).
        ransac_threshold: the inlier reprojection (or epipolar) error, in pixels.
    Returns:
        (model matrix, (M,) bool inlier mask over ``matches``) — (None, all False) when there are too few
        matches or no model is found.
    """
    import cv2

    if method not in _METHODS:
        raise ValueError(f"verify_pair: method must be one of {', '.join(_METHODS)}, got {method!r}")
    matches = np.asarray(matches, dtype=np.int64).reshape(-1, 2)
    none = np.zeros(matches.shape[0], bool)
    if matches.shape[0] < MIN_MATCHES[method]:
        return None, none
    p1 = np.ascontiguousarray(np.asarray(kp1, dtype=np.float64)[matches[:, 0], :2])
    p2 = np.ascontiguousarray(np.asarray(kp2, dtype=np.float64)[matches[:, 1], :2])
    # degenerate: all points (nearly) identical on one side
    if np.ptp(p1, axis=0).max() < 1e-6 or np.ptp(p2, axis=0).max() < 1e-6:
        return None, none
    try:
        if method == "homography":
            model, mask = cv2.findHomography(p1, p2, _usac_flag(cv2.RANSAC), ransac_threshold,
                                             maxIters=max_iters, confidence=confidence)
        elif method == "affine":
            model, mask = cv2.estimateAffine2D(p1, p2, method=cv2.RANSAC, ransacReprojThreshold=ransac_threshold,
                                               maxIters=max_iters, confidence=confidence)
        else:
            model, mask = cv2.findFundamentalMat(p1, p2, _usac_flag(cv2.FM_RANSAC), ransac_threshold,
                                                 confidence, max_iters)
    except cv2.error:
        return None, none
    if model is None or mask is None or model.size == 0:
        return None, none
    if method == "fundamental" and model.shape[0] > 3:  # the 7-point solver may return several solutions
        model = model[:3]
    return np.asarray(model, dtype=np.float64), np.asarray(mask).ravel().astype(bool)


__all__ = ["MIN_MATCHES", "match_descriptors", "verify_pair"]
