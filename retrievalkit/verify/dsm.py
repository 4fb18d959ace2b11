"""Deep Spatial Matching verification (Siméoni, Avrithis & Chum, CVPR 2019) of DSM features
(:mod:`retrievalkit.extract.local_dsm`): no descriptors are compared.

Tentative correspondences are the pairs of features with the same channel (the channel is the visual word).
Verification is fast spatial matching (Philbin et al., CVPR 2007) with single-correspondence hypotheses: the
two ellipses of a correspondence give an upright affine transformation (the lower-triangular square roots of
the second-moment matrices, so the vertical direction is kept: the gravity-vector assumption), each
hypothesis is scored by the correspondences it transfers to within the threshold whose ellipse areas change
as the model's does (within :data:`MAX_AREA_CHANGE`), and the best one is refined
by least squares on its inliers (the model of ``VerifyParams.method``: affine or homography) and scored again.
Inliers are then made one-to-one (each feature counted once, nearest first), so the count is one of distinct
features, as the significance of a count assumes.
"""

from __future__ import annotations

import numpy as np

#: a correspondence's hypothesis is not tried when its scale change is beyond this factor (either way) or its
#: anisotropy (ratio of singular values) is beyond :data:`MAX_ANISOTROPY`
MAX_SCALE_CHANGE = 10.0
MAX_ANISOTROPY = 10.0
#: an inlier's ellipse area changes as the model's does, within this factor (either way): the areas of
#: half-maximum blobs are measured to within a few tens of percent (a factor 2 in area is √2 in scale)
MAX_AREA_CHANGE = 2.0
#: hypotheses tried per pair at most (the correspondences with the strongest responses)
MAX_HYPOTHESES = 1000
#: tentative correspondences per pair at most (the strongest response products); one channel's features
#: are all paired with each other, so a repeated texture could otherwise make many
MAX_CORRESPONDENCES = 5000
#: hypotheses × correspondences evaluated at once (bounds the memory: 16 bytes each)
HYPOTHESIS_BLOCK = 1 << 20
#: least-squares refinements of the best hypothesis
REFINEMENTS = 2
#: the DSM geometries (``fundamental`` transfers no point and is refused)
GEOMETRIES = ("affine", "homography")


def correspondences(kp1: np.ndarray, kp2: np.ndarray, max_matches: int = MAX_CORRESPONDENCES) -> np.ndarray:
    """(M, 2) int64 pairs (row of kp1, row of kp2) of features with the same channel (column 4), strongest
    response products first, at most ``max_matches``."""
    kp1 = np.asarray(kp1, np.float32)
    kp2 = np.asarray(kp2, np.float32)
    if kp1.shape[0] == 0 or kp2.shape[0] == 0:
        return np.zeros((0, 2), np.int64)
    c1 = kp1[:, 4].astype(np.int64)
    c2 = kp2[:, 4].astype(np.int64)
    o2 = np.argsort(c2, kind="stable")
    s2 = c2[o2]
    lo = np.searchsorted(s2, c1, "left")
    hi = np.searchsorted(s2, c1, "right")
    n = hi - lo
    if n.sum() == 0:
        return np.zeros((0, 2), np.int64)
    i = np.repeat(np.arange(kp1.shape[0]), n)
    start = np.repeat(lo - np.concatenate([[0], np.cumsum(n)[:-1]]), n)
    j = o2[np.arange(i.size) + start]
    m = np.stack([i, j], 1).astype(np.int64)
    strength = kp1[i, 3].astype(np.float64) * kp2[j, 3]
    order = np.argsort(-strength, kind="stable")[:max_matches]
    return m[order]


def upright_frames(kp: np.ndarray) -> np.ndarray:
    """(n, 2, 2) lower-triangular L with L Lᵀ = the feature's second-moment matrix (columns 5–7: sxx, sxy,
    syy): the upright local affine frame of its ellipse. Degenerate moments are floored (a positive matrix)."""
    sxx = np.asarray(kp[:, 5], np.float64)
    sxy = np.asarray(kp[:, 6], np.float64)
    syy = np.asarray(kp[:, 7], np.float64)
    floor = 1e-6 * np.maximum(sxx + syy, 1e-12)
    # Cholesky of [[syy, sxy], [sxy, sxx]] in (y, x) order keeps the vertical axis: L = [[a, 0], [b, c]] in (x, y)
    # with L Lᵀ = [[a², ab], [ab, b² + c²]] = [[sxx, sxy], [sxy, syy]]
    a = np.sqrt(np.maximum(sxx, floor))
    b = sxy / a
    c = np.sqrt(np.maximum(syy - b * b, floor))
    out = np.zeros((kp.shape[0], 2, 2))
    out[:, 0, 0], out[:, 1, 0], out[:, 1, 1] = a, b, c
    return out


def _fit(p1: np.ndarray, p2: np.ndarray, method: str) -> np.ndarray | None:
    """Least-squares 3×3 model mapping p1 → p2 (affine: last row 0 0 1), or None when under-determined."""
    if method == "affine":
        if p1.shape[0] < 3:
            return None
        x = np.concatenate([p1, np.ones((p1.shape[0], 1))], 1)
        sol, _, rank, _ = np.linalg.lstsq(x, p2, rcond=None)
        if rank < 3:
            return None
        return np.vstack([sol.T, [0.0, 0.0, 1.0]])
    import cv2

    if p1.shape[0] < 4:
        return None
    try:
        h, _ = cv2.findHomography(p1.astype(np.float64), p2.astype(np.float64), 0)
    except cv2.error:
        return None
    return None if h is None or not np.all(np.isfinite(h)) else h


def _transfer_errors(model: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    q = p1 @ model[:2, :2].T + model[:2, 2]
    if model[2, 0] or model[2, 1]:
        z = p1 @ model[2, :2] + model[2, 2]
        z = np.where(np.abs(z) < 1e-9, 1e-9, z)
        q = (p1 @ model[:2, :2].T + model[:2, 2]) / z[:, None]
    return np.linalg.norm(q - p2, axis=1)


def one_to_one(matches: np.ndarray, errors: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``mask`` restricted so that no feature of either image is used twice (smallest error first)."""
    out = np.zeros_like(mask)
    used1, used2 = set(), set()
    for k in np.flatnonzero(mask)[np.argsort(errors[mask], kind="stable")]:
        a, b = int(matches[k, 0]), int(matches[k, 1])
        if a in used1 or b in used2:
            continue
        used1.add(a)
        used2.add(b)
        out[k] = True
    return out


def fit_dsm(kp1: np.ndarray, kp2: np.ndarray, matches: np.ndarray, threshold: float, method: str = "affine",
            max_hypotheses: int = MAX_HYPOTHESES) -> tuple[np.ndarray | None, np.ndarray]:
    """Fast spatial matching of DSM correspondences.

    Args:
        kp1, kp2: DSM keypoints (:data:`~retrievalkit.extract.local_dsm.KEYPOINT_COLUMNS`) in pixels.
        matches: (M, 2) rows into kp1, kp2 (strongest first: the first ``max_hypotheses`` are tried).
        threshold: inlier transfer error, in pixels of the second image.
        method: the refined model, 'affine' or 'homography'.
    Returns:
        (3×3 model mapping image 1 → image 2, or None; (M,) bool one-to-one inlier mask).
    """
    if method not in GEOMETRIES:
        raise ValueError(f"fit_dsm: method must be one of {', '.join(GEOMETRIES)}, got {method!r}")
    matches = np.asarray(matches, np.int64).reshape(-1, 2)
    m = matches.shape[0]
    if m == 0:
        return None, np.zeros(0, bool)
    p1 = np.asarray(kp1, np.float64)[matches[:, 0], :2]
    p2 = np.asarray(kp2, np.float64)[matches[:, 1], :2]
    h = min(m, max_hypotheses)
    l1 = upright_frames(np.asarray(kp1)[matches[:h, 0]])
    l2 = upright_frames(np.asarray(kp2)[matches[:h, 1]])
    inv1 = np.linalg.inv(l1)
    a = l2 @ inv1  # (h, 2, 2): upright affine mapping ellipse 1 onto ellipse 2
    det = np.linalg.det(a)
    sv = np.linalg.svd(a, compute_uv=False)
    ok = (det > 0) & (np.sqrt(np.abs(det)) <= MAX_SCALE_CHANGE) & (np.sqrt(np.abs(det)) >= 1 / MAX_SCALE_CHANGE)
    ok &= sv[:, 0] <= MAX_ANISOTROPY * np.maximum(sv[:, 1], 1e-12)
    if not ok.any():
        return None, np.zeros(m, bool)
    a, src, dst = a[ok], p1[:h][ok], p2[:h][ok]
    t = dst - (a @ src[:, :, None])[:, :, 0]
    # log of each correspondence's area change (ellipse 2 over ellipse 1): a model must agree with it
    log_area = _log_area(np.asarray(kp2)[matches[:, 1]]) - _log_area(np.asarray(kp1)[matches[:, 0]])
    log_det = np.log(det[ok])
    tol = np.log(MAX_AREA_CHANGE)
    # transfer errors of every hypothesis on every correspondence, a block of hypotheses at a time
    counts = np.zeros(a.shape[0], np.int64)
    step = max(1, HYPOTHESIS_BLOCK // m)
    for s in range(0, a.shape[0], step):
        b, u = a[s:s + step], t[s:s + step]
        dx = b[:, 0, 0, None] * p1[None, :, 0] + b[:, 0, 1, None] * p1[None, :, 1] + (u[:, 0, None] - p2[None, :, 0])
        dy = b[:, 1, 0, None] * p1[None, :, 0] + b[:, 1, 1, None] * p1[None, :, 1] + (u[:, 1, None] - p2[None, :, 1])
        agree = np.abs(log_det[s:s + step, None] - log_area[None, :]) <= tol
        counts[s:s + step] = ((dx * dx + dy * dy < threshold * threshold) & agree).sum(1)
    best = int(np.argmax(counts))
    model = np.eye(3)
    model[:2, :2], model[:2, 2] = a[best], t[best]
    e, mask = _inliers(model, p1, p2, log_area, threshold, tol)
    for _ in range(REFINEMENTS):
        refit = _fit(p1[mask], p2[mask], method)
        if refit is None:
            break
        e2, m2 = _inliers(refit, p1, p2, log_area, threshold, tol)
        if m2.sum() < mask.sum():
            break
        model, e, mask = refit, e2, m2
    return model, one_to_one(matches, e, mask)


def _log_area(kp: np.ndarray) -> np.ndarray:
    """log of each feature's ellipse area (up to a constant): ½ log det of its second-moment matrix."""
    det = np.asarray(kp[:, 5], np.float64) * kp[:, 7] - np.asarray(kp[:, 6], np.float64) ** 2
    return 0.5 * np.log(np.maximum(det, 1e-12))


def _inliers(model: np.ndarray, p1: np.ndarray, p2: np.ndarray, log_area: np.ndarray, threshold: float,
             tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Transfer errors of ``model`` and its inlier mask: error below ``threshold`` and the model's local area
    change (determinant of its Jacobian at the point) within ``tol`` (log) of the correspondence's."""
    e = _transfer_errors(model, p1, p2)
    z = p1 @ model[2, :2] + model[2, 2]
    det = np.linalg.det(model) / np.where(np.abs(z) < 1e-12, 1e-12, np.abs(z)) ** 3
    ok = det > 0
    agree = np.zeros(len(e), bool)
    agree[ok] = np.abs(np.log(det[ok]) - log_area[ok]) <= tol
    return e, (e < threshold) & agree


def dsm_threshold(kp1: np.ndarray, kp2: np.ndarray) -> float:
    """The default DSM inlier threshold: one feature-map cell, the larger of the two images' median cell sizes
    (column 2), at least 8 px."""
    return max(8.0, float(np.median(kp1[:, 2])), float(np.median(kp2[:, 2])))


def match_dsm(kp1: np.ndarray, kp2: np.ndarray, threshold: float | None = None, method: str = "affine",
              ) -> tuple[np.ndarray, np.ndarray]:
    """Tentative matches ((M, 2) rows into kp1, kp2: same channel) and their (M,) bool one-to-one inlier mask,
    the shape ``verify.rerank.match_pair`` returns. ``threshold`` None: one feature-map cell (the larger of
    the two images' median cell sizes, column 2; at least 8 px): positions quantised to cells differ by up to
    half a cell in each image."""
    m = correspondences(kp1, kp2)
    if m.shape[0] == 0:
        return m, np.zeros(0, bool)
    if threshold is None:
        threshold = dsm_threshold(kp1, kp2)
    _, mask = fit_dsm(kp1, kp2, m, threshold, method)
    return m, mask


def match_dsm_params(kp1: np.ndarray, kp2: np.ndarray, p) -> tuple[np.ndarray, np.ndarray]:
    """:func:`match_dsm` with the settings of ``rkit verify`` (a ``VerifyParams``): ``threshold`` and ``method``
    apply; the descriptor-matching settings (``ratio``, ``mutual`` off) and ``fundamental`` are refused."""
    from retrievalkit.errors import UsageError

    if p.ratio is not None:
        raise UsageError("--ratio does not apply to dsm locals (correspondences are same-channel features)")
    if not p.mutual:
        raise UsageError("--no-mutual does not apply to dsm locals (correspondences are same-channel features)")
    if p.method not in GEOMETRIES:
        raise UsageError(f"--method {p.method} does not apply to dsm locals; use {' or '.join(GEOMETRIES)}")
    return match_dsm(kp1, kp2, p.threshold, p.method)


__all__ = ["GEOMETRIES", "correspondences", "upright_frames", "fit_dsm", "one_to_one", "match_dsm",
           "match_dsm_params", "dsm_threshold"]
