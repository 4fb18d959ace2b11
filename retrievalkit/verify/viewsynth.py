"""View synthesis for extreme viewpoint changes (ASIFT, Morel & Yu 2009; MODS, Mishkin et al. 2015).

A plane seen under a large tilt is affinely compressed along one direction, which SIFT's similarity
invariance does not undo. The query is therefore warped into a few simulated views — a rotation φ, then a
compression of x by the tilt t (anti-aliased along x with σ = 0.8·√(t²−1)) — SIFT is run on each view and
the keypoints are mapped back to the query's own pixels. Matching is done view by view (so Lowe's ratio
test is not fooled by the same point seen in two views), the matches are pooled, duplicates removed and one
model is fitted on the pool by RANSAC in the original coordinates.

Only the query side is simulated (bounded cost: one query's views against a shortlist of database images).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: ASIFT-style default tilts (t = 1, the original view, is always included)
DEFAULT_TILTS = (2.0, 4.0)
#: rotation step at tilt t is ROT_STEP / t degrees over [0, 180)
ROT_STEP = 72.0
#: simulated-view features mapping back within this many pixels of the image edge are dropped
BORDER_PX = 4.0


@dataclass
class ViewFeatures:
    """SIFT features of the simulated views of one image.

    keypoints: (n, 4) x, y in pixels of the input image, scale, angle (as in the view);
    descriptors: (n, 128) RootSIFT; view: (n,) int view id (0 = the original view).
    """

    keypoints: np.ndarray
    descriptors: np.ndarray
    view: np.ndarray

    @property
    def n_views(self) -> int:
        return int(self.view.max()) + 1 if self.view.size else 0


def view_params(tilts=DEFAULT_TILTS, rot_step: float = ROT_STEP) -> list[tuple[float, float]]:
    """(tilt, angle in degrees) of every simulated view, starting with (1, 0)."""
    out = [(1.0, 0.0)]
    for t in tilts:
        if t <= 1:
            raise ValueError(f"view_params: tilts must be > 1, got {t}")
        step = rot_step / t
        out += [(float(t), float(a)) for a in np.arange(0.0, 180.0 - 1e-6, step)]
    return out


def simulate_view(img: np.ndarray, tilt: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Warp ``img`` into one simulated view.

    Returns:
        (view image, A) where A (2, 3) maps input pixel coordinates to view coordinates: v = A @ [x, y, 1].
    """
    import cv2

    h, w = img.shape[:2]
    a = np.deg2rad(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float64) @ rot.T
    lo = corners.min(0)
    size = np.ceil(corners.max(0) - lo).astype(int)
    m = np.hstack([rot, -lo[:, None]])
    view = img if angle == 0 else cv2.warpAffine(img, m, (int(size[0]), int(size[1])),
                                                 flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    if tilt > 1:
        view = cv2.GaussianBlur(view, (0, 0), sigmaX=0.8 * np.sqrt(tilt * tilt - 1), sigmaY=0.01)
        nw = max(1, int(round(view.shape[1] / tilt)))
        view = cv2.resize(view, (nw, view.shape[0]), interpolation=cv2.INTER_LINEAR)
        m = np.diag([1.0 / tilt, 1.0]) @ m
    return view, m


def view_features(img_gray: np.ndarray, tilts=DEFAULT_TILTS, max_features: int = 2000,
                  max_features_view: int = 1000, rot_step: float = ROT_STEP) -> ViewFeatures:
    """RootSIFT of the original view (``max_features``) and of each simulated view (``max_features_view``),
    keypoints mapped back to ``img_gray``'s pixels."""
    from retrievalkit.extract.sift import sift_features

    kps, descs, views = [], [], []
    for v, (t, a) in enumerate(view_params(tilts, rot_step)):
        im, m = simulate_view(img_gray, t, a)
        kp, d = sift_features(im, max_features if v == 0 else max_features_view)
        if kp.shape[0]:
            inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
            kp = kp.copy()
            kp[:, :2] = (np.c_[kp[:, :2].astype(np.float64), np.ones(len(kp))] @ inv.T).astype(np.float32)
            if v:  # drop features of the warped image's border (they map onto or outside the image edge)
                h, w = img_gray.shape[:2]
                b = BORDER_PX
                ok = (kp[:, 0] >= b) & (kp[:, 0] < w - b) & (kp[:, 1] >= b) & (kp[:, 1] < h - b)
                kp, d = kp[ok], d[ok]
        kps.append(kp)
        descs.append(d)
        views.append(np.full(len(kp), v, np.int32))
    return ViewFeatures(np.concatenate(kps), np.concatenate(descs), np.concatenate(views))


def match_views(q: ViewFeatures, d2: np.ndarray, ratio: float | None = 0.8, mutual: bool = True,
                dedupe_px: float = 2.0) -> np.ndarray:
    """Tentative matches of every simulated view against one image's descriptors, pooled.

    A database feature matched from several views keeps one match (the first view's), and of matches whose
    query positions round to the same ``dedupe_px`` cell only the first is kept.
    Returns (M, 2) rows into ``q.keypoints`` and ``d2``.
    """
    from retrievalkit.verify.geometry import match_descriptors

    out = []
    for v in range(q.n_views):
        rows = np.flatnonzero(q.view == v)
        if rows.size == 0:
            continue
        m = match_descriptors(q.descriptors[rows], d2, ratio=ratio, mutual=mutual)
        if m.shape[0]:
            out.append(np.stack([rows[m[:, 0]], m[:, 1]], 1))
    if not out:
        return np.zeros((0, 2), np.int64)
    m = np.concatenate(out).astype(np.int64)
    _, first = np.unique(m[:, 1], return_index=True)
    m = m[np.sort(first)]
    cell = np.round(q.keypoints[m[:, 0], :2] / max(dedupe_px, 1e-6)).astype(np.int64)
    _, first = np.unique(cell, axis=0, return_index=True)
    return m[np.sort(first)]


__all__ = ["DEFAULT_TILTS", "ROT_STEP", "ViewFeatures", "view_params", "simulate_view", "view_features",
           "match_views"]
