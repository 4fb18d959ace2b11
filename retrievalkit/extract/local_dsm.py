"""Deep Spatial Matching features: blobs detected on the CNN activation maps themselves (Siméoni, Avrithis &
Chum, "Local Features and Visual Words Emerge in Activations", CVPR 2019).

No extra extractor: the feature map of a backbone tap (``head``, the last convolutional map, by default) is
computed once at one scale; on each of its ``channels`` strongest channels (by GeM, p = 3, of the channel map)
every prominent local maximum is a feature, its region the blob around it at half its peak (on the map enlarged
:data:`UPSAMPLE` times). A feature is the region's centroid, its second-moment matrix (an ellipse), the channel
id (its "visual word": two features correspond when their channels are equal, no descriptor is compared) and
its response (the peak activation).

The paper detects MSERs on the channel maps; on smooth activation blobs OpenCV's MSER is erratic (synthetic
Gaussian blobs of 1, 1.5, 2 and 3 cells: a region for 1.5 only, with its default stability), so the blob
extent at half maximum stands in for it: it covers the same bright connected region and scales with the blob.

Keypoint columns (:data:`KEYPOINT_COLUMNS`), in pixels of the image given to :func:`dsm_locals`: x, y, cell size
(input pixels per feature-map cell), response, channel, then the region's second-moment matrix sxx, sxy, syy
(pixels²; the ellipse ``(u - c)ᵀ S⁻¹ (u - c) = 4`` covers the region, as a disc of radius r has S = r²/4 I).
"""

from __future__ import annotations

import numpy as np

#: the columns of a DSM keypoint row
KEYPOINT_COLUMNS = ("x", "y", "cell", "response", "channel", "sxx", "sxy", "syy")
#: channel maps are enlarged this many times (bilinear) before MSER, so regions get sub-cell shapes
UPSAMPLE = 4
#: a local maximum weaker than this fraction of its channel's largest activation is not a feature
MIN_PEAK = 0.25


def channel_strength(fmap: np.ndarray, p: float = 3.0) -> np.ndarray:
    """(C,) GeM (power ``p``) of each channel of a (C, h, w) map (negative activations count as 0)."""
    a = np.maximum(np.asarray(fmap, np.float64).reshape(fmap.shape[0], -1), 0.0)
    return np.mean(a ** p, axis=1) ** (1.0 / p)


def strongest_channels(fmap: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` channels of a (C, h, w) map with the largest GeM, strongest first (all-zero
    channels never)."""
    s = channel_strength(fmap)
    order = np.argsort(-s, kind="stable")[:n]
    return order[s[order] > 0]


def detect_channel(a: np.ndarray, upsample: int = UPSAMPLE) -> list[tuple[float, float, np.ndarray, float]]:
    """Blobs of one (h, w) channel map: one per local maximum.

    A local maximum is a cell (or a plateau of equal cells, as ReLU6 saturates) not below its 8 neighbours and
    at least :data:`MIN_PEAK` × the channel's largest activation. Its region is the connected part of the map,
    enlarged ``upsample`` times (bilinear), at or above half the peak (the blob's extent at half maximum); a
    maximum whose region holds a stronger one is a shoulder of that blob, not a feature. Returns a list of (x, y,
    second-moment matrix (2, 2), response = the peak activation), in map cells: cell (i, j) spans
    [j, j+1) × [i, i+1), so its centre is (j + 0.5, i + 0.5).
    """
    import cv2

    a = np.maximum(np.nan_to_num(np.asarray(a, np.float32)), 0.0)
    h, w = a.shape
    top = float(a.max()) if a.size else 0.0
    if top <= 0:
        return []
    peaks = (a >= cv2.dilate(a, np.ones((3, 3), np.uint8))) & (a >= MIN_PEAK * top) & (a > 0)
    n, lab = cv2.connectedComponents(peaks.astype(np.uint8), connectivity=8)
    cand = []  # (value, x, y) of each maximum (plateau centroid), cells
    for k in range(1, n):
        ys, xs = np.nonzero(lab == k)
        cand.append((float(a[ys[0], xs[0]]), xs.mean() + 0.5, ys.mean() + 0.5))
    cand.sort(key=lambda t: -t[0])
    big = cv2.resize(a, (w * upsample, h * upsample), interpolation=cv2.INTER_LINEAR)
    pts = np.array([[c[1] * upsample - 0.5, c[2] * upsample - 0.5] for c in cand])  # upsampled pixel coords
    out, taken = [], []
    for k, (val, _, _) in enumerate(cand):
        px = np.clip(np.rint(pts[k]).astype(int), 0, [big.shape[1] - 1, big.shape[0] - 1])
        _, comp = cv2.connectedComponents((big >= 0.5 * val).astype(np.uint8), connectivity=8)
        label = comp[px[1], px[0]]
        if label == 0:
            continue
        if any(comp[q[1], q[0]] == label for q in taken):
            continue  # a shoulder of a stronger blob: not separated from it at half this peak
        taken.append(px)
        ys, xs = np.nonzero(comp == label)
        d = (np.stack([xs, ys]).astype(np.float64) + 0.5) / upsample
        cov = (np.cov(d) if xs.size > 1 else np.zeros((2, 2))) + np.eye(2) / (12.0 * upsample * upsample)
        out.append((float(d[0].mean()), float(d[1].mean()), cov, val))
    return out


def dsm_detect(fmap: np.ndarray, channels: int, max_features: int, upsample: int = UPSAMPLE) -> np.ndarray:
    """DSM features of one (C, h, w) activation map, in map cells.

    Args:
        channels: how many of the strongest channels (GeM) are searched for regions.
        max_features: the strongest features kept (by response).
    Returns:
        (n, 8) float32 rows in :data:`KEYPOINT_COLUMNS` order, positions and moments in cells (cell size 1).
    """
    rows = []
    for c in strongest_channels(fmap, channels):
        for x, y, cov, resp in detect_channel(fmap[c], upsample):
            rows.append((x, y, 1.0, resp, float(c), cov[0, 0], cov[0, 1], cov[1, 1]))
    if not rows:
        return np.zeros((0, len(KEYPOINT_COLUMNS)), np.float32)
    kp = np.asarray(rows, np.float64)
    order = np.argsort(-kp[:, 3], kind="stable")[:max_features]
    return kp[order].astype(np.float32)


def to_pixels(kp: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Keypoints in cells → pixels: a cell is ``sx`` × ``sy`` pixels (positions, cell size, moments scaled)."""
    kp = np.array(kp, np.float32, copy=True)
    kp[:, 0] *= sx
    kp[:, 1] *= sy
    kp[:, 2] *= 0.5 * (sx + sy)
    kp[:, 5] *= sx * sx
    kp[:, 6] *= sx * sy
    kp[:, 7] *= sy * sy
    return kp


def dsm_locals(net, x, channels: int, max_features: int) -> np.ndarray:
    """DSM features of one standardised image ``x`` (1, 3, H, W) from ``net``'s feature map (one scale).

    Returns (n, 8) keypoints in pixels of ``x`` (:data:`KEYPOINT_COLUMNS`).
    """
    import torch
    import torch.nn.functional as F

    from retrievalkit.extract.local_deep import MIN_SIDE

    h0, w0 = x.shape[-2:]
    if min(h0, w0) < MIN_SIDE:  # too small for the deepest kernels: enlarge to the smallest usable size
        x = F.interpolate(x, scale_factor=(MIN_SIDE + 0.5) / min(h0, w0), mode="bilinear", align_corners=False)
    with torch.inference_mode():
        fm = net(x)[0].float().cpu().numpy()
    kp = dsm_detect(fm, channels, max_features)
    return to_pixels(kp, w0 / fm.shape[-1], h0 / fm.shape[-2])


__all__ = ["KEYPOINT_COLUMNS", "UPSAMPLE", "channel_strength", "strongest_channels", "detect_channel",
           "dsm_detect", "to_pixels", "dsm_locals"]
