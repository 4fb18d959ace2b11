"""Local verification of copy candidates: SIFT matches + RANSAC, re-scoring the global shortlist.

A copy shares many local patches with its reference under one 2-D transform (crop, scale, rotation, overlay,
screenshot borders), which global descriptors blur. For each query's top candidates we count RANSAC inliers
of ratio-test SIFT matches and add a bounded bonus to the global score::

    score = s' + bonus · n / (n + half)     if n >= min_inliers, else s'      (n = inliers)

so verified pairs rise above unverified ones of similar global score, and the bonus saturates (50 and 500
inliers are both certain). Mirrored copies are caught by also matching the horizontally flipped query.

The matching itself is spatial verification's (:func:`retrievalkit.verify.rerank.count_inliers`: ratio-test +
mutual ``match_descriptors``, RANSAC ``verify_pair``) on RootSIFT (:func:`retrievalkit.extract.sift.sift_features`),
with its one settings type: :class:`VerifyConfig` extends :class:`~retrievalkit.verify.rerank.VerifyParams`
with copy detection's defaults (an affine model covers crops, scaling, rotation, shear and overlays; Lowe's
ratio 0.8; 5 px at 512 px; 12 inliers) and its own settings.
"""
# ruff: noqa: E741  (faiss naming from STYLE.md: D scores, I ids)

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from retrievalkit.configs.copydetect import VerifyConfig
from retrievalkit.extract.sift import sift_features
from retrievalkit.images.decode import ImageReadError, load_image, resize_longer
from retrievalkit.verify.rerank import count_inliers


class LocalMatcher:
    """Cached SIFT features of images and pairwise inlier counts."""

    def __init__(self, cfg: VerifyConfig):
        cfg.check()
        self.cfg = cfg
        self._cache: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None] = {}

    def features(self, path: str | os.PathLike, with_flip: bool = False):
        """(kpts, desc, kpts of the flipped image, desc of the flipped image) or None when unreadable."""
        key = f"{path}|{with_flip}"
        if key not in self._cache:
            try:
                img = resize_longer(load_image(path, gray=True), self.cfg.size)
            except ImageReadError:
                self._cache[key] = None
                return None
            k, d = self._sift(img)
            kf, df = self._sift(np.ascontiguousarray(img[:, ::-1])) if with_flip else (None, None)
            self._cache[key] = (k, d, kf, df)
        return self._cache[key]

    def _sift(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return sift_features(img, max_features=self.cfg.max_keypoints)

    def _count(self, k1, d1, k2, d2) -> int:
        return int(count_inliers(k1, d1, k2, d2, self.cfg, kind="sift"))

    def inliers(self, query_path, ref_path) -> int:
        """Inlier count between a query and a reference image (best of plain and mirrored query)."""
        fq = self.features(query_path, self.cfg.flip)
        fr = self.features(ref_path, False)
        if fq is None or fr is None:
            return 0
        n = self._count(fq[0], fq[1], fr[0], fr[1])
        if self.cfg.flip and fq[2] is not None:
            n = max(n, self._count(fq[2], fq[3], fr[0], fr[1]))
        return n


def verification_bonus(inliers: np.ndarray, cfg: VerifyConfig) -> np.ndarray:
    """``bonus · n / (n + half)`` where n >= min_inliers, else 0."""
    n = np.asarray(inliers, np.float64)
    return np.where(n >= cfg.min_inliers, cfg.bonus * n / (n + cfg.half), 0.0)


def verify_candidates(query_paths: Sequence[str | Path], ref_paths: Sequence[str | Path], D: np.ndarray,
                      I: np.ndarray, cfg: VerifyConfig,
                      progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Re-score each query's first ``cfg.top`` candidates.

    Args:
        query_paths: Q image paths. ref_paths: R image paths.
        D: (Q, K) global scores of the candidates, I: (Q, K) their reference rows (-1 = none).
    Returns:
        (scores (Q, K) float64 re-scored, inliers (Q, K) int64; -1 where not verified).
    """
    matcher = LocalMatcher(cfg)
    D2 = np.asarray(D, np.float64).copy()
    inl = np.full(I.shape, -1, np.int64)
    top = min(cfg.top, I.shape[1])
    for qi in range(I.shape[0]):
        for j in range(top):
            r = int(I[qi, j])
            if r < 0:
                continue
            inl[qi, j] = matcher.inliers(query_paths[qi], ref_paths[r])
        if progress:
            progress(1)
    mask = inl >= 0
    D2[mask] += verification_bonus(inl[mask], cfg)
    return D2, inl
