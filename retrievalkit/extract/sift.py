"""SIFT keypoints with RootSIFT descriptors (OpenCV): the hand-crafted local features of rkit.

Used by ``rkit extract --local --local-method sift``, by spatial verification's view synthesis
(:mod:`retrievalkit.verify.viewsynth`) and by copy detection's local verification
(:mod:`retrievalkit.copydetect.verify`).
"""

from __future__ import annotations

import numpy as np


def root_sift(desc: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """RootSIFT (Arandjelović & Zisserman 2012): L1-normalise, square-root; rows come out L2-unit."""
    desc = np.asarray(desc, dtype=np.float32)
    desc = desc / (np.abs(desc).sum(axis=1, keepdims=True) + eps)
    return np.sqrt(np.maximum(desc, 0.0)).astype(np.float32)


def sift_features(img_gray: np.ndarray, max_features: int = 2000, root: bool = True,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV SIFT keypoints and (Root)SIFT descriptors of a grayscale uint8 image.

    Returns:
        kp (n, 4) float32: x, y (pixels of ``img_gray``), scale (keypoint size, pixels), angle (degrees);
        desc (n, 128) float32, L2-normalised rows (RootSIFT when ``root``). The strongest ``max_features``
        responses are kept; a blank image gives n = 0.
    """
    import cv2

    img = np.asarray(img_gray)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    if img.dtype != np.uint8:
        raise ValueError(f"sift_features: expected a uint8 grayscale image, got {img.dtype}")
    sift = cv2.SIFT_create(nfeatures=int(max_features) if max_features else 0)
    kps, desc = sift.detectAndCompute(img, None)
    if desc is None or not kps:
        return np.zeros((0, 4), np.float32), np.zeros((0, 128), np.float32)
    if max_features and len(kps) > max_features:  # OpenCV may keep ties beyond nfeatures
        order = np.argsort([-k.response for k in kps], kind="stable")[:max_features]
        kps = [kps[i] for i in order]
        desc = desc[order]
    kp = np.array([[k.pt[0], k.pt[1], k.size, k.angle] for k in kps], dtype=np.float32)
    if root:
        desc = root_sift(desc)
    else:
        desc = np.asarray(desc, np.float32)
        desc /= np.linalg.norm(desc, axis=1, keepdims=True) + 1e-7
    return kp, desc


__all__ = ["root_sift", "sift_features"]
