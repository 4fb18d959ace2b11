"""Local verification of copy candidates: SIFT matches + RANSAC, re-scoring the global shortlist.

A copy shares many local patches with its reference under one 2-D transform (crop, scale, rotation, overlay,
screenshot borders), which global descriptors blur. For each query's top candidates we fit an affine model to
ratio-test SIFT matches and add a bounded bonus to the global score of the pairs with geometric evidence::

    score = s' + bonus · n / (n + half)     with evidence, else s'      (n = inliers)

so verified pairs rise above unverified ones of similar global score, and the bonus saturates (50 and 500
inliers are both certain). Mirrored copies are caught by also matching the horizontally flipped query.

Evidence (``VerifyConfig.promote``): by default the a-contrario number of false alarms
(:mod:`retrievalkit.verify.significance`) below ``nfa``, with every pair verified in the run as the number of
tests (the matching track's µAP pools all queries, so the expected number of chance verifications is bounded over
the whole run, not per query); ``min-inliers``: at least ``min_inliers`` inliers, the earlier rule.

The matching itself is spatial verification's (:func:`retrievalkit.verify.rerank.pair_evidence`: ratio-test +
mutual ``match_descriptors``, RANSAC ``fit_pair``, the NFA) on RootSIFT
(:func:`retrievalkit.extract.sift.sift_features`), with its one settings type: :class:`VerifyConfig` extends
:class:`~retrievalkit.verify.rerank.VerifyParams` with copy detection's defaults (an affine model covers crops,
scaling, rotation, shear and overlays; Lowe's ratio 0.8; 5 px at 512 px; 12 inliers) and its own settings.
"""
# ruff: noqa: E741  (faiss naming from STYLE.md: D scores, I ids)

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from retrievalkit.configs.copydetect import VerifyConfig
from retrievalkit.extract.sift import sift_features
from retrievalkit.images.decode import ImageReadError, load_image, resize_longer
from retrievalkit.verify.rerank import pair_evidence
from retrievalkit.verify.significance import NO_EVIDENCE


class LocalMatcher:
    """Cached SIFT features of images and pairwise geometric evidence."""

    def __init__(self, cfg: VerifyConfig):
        cfg.check()
        self.cfg = cfg
        self._cache: dict[str, tuple | None] = {}

    def features(self, path: str | os.PathLike, with_flip: bool = False):
        """(kpts, desc, kpts of the flipped image, desc of the flipped image, (width, height) of the resized image)
        or None when unreadable."""
        key = f"{path}|{with_flip}"
        if key not in self._cache:
            try:
                img = resize_longer(load_image(path, gray=True), self.cfg.size)
            except ImageReadError:
                self._cache[key] = None
                return None
            k, d = self._sift(img)
            kf, df = self._sift(np.ascontiguousarray(img[:, ::-1])) if with_flip else (None, None)
            self._cache[key] = (k, d, kf, df, (img.shape[1], img.shape[0]))
        return self._cache[key]

    def _sift(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return sift_features(img, max_features=self.cfg.max_keypoints)

    def evidence(self, query_path, ref_path) -> tuple[int, float]:
        """(inliers, log10 NFA of one test) between a query and a reference image: the best of the plain and the
        mirrored query (most inliers; smallest NFA). (0, inf) when an image cannot be read."""
        fq = self.features(query_path, self.cfg.flip)
        fr = self.features(ref_path, False)
        if fq is None or fr is None:
            return 0, NO_EVIDENCE
        ev = pair_evidence(fq[0], fq[1], fr[0], fr[1], self.cfg, kind="sift", size2=fr[4])
        n, lnfa = ev.inliers, ev.log10_nfa
        if self.cfg.flip and fq[2] is not None:
            ev = pair_evidence(fq[2], fq[3], fr[0], fr[1], self.cfg, kind="sift", size2=fr[4])
            n, lnfa = max(n, ev.inliers), min(lnfa, ev.log10_nfa)
        return int(n), float(lnfa)

    def inliers(self, query_path, ref_path) -> int:
        """Inlier count between a query and a reference image (best of plain and mirrored query)."""
        return self.evidence(query_path, ref_path)[0]


def has_evidence(inliers: np.ndarray, log10_nfa: np.ndarray, cfg: VerifyConfig, tests: int | None = None,
                 ) -> np.ndarray:
    """Which verified pairs get the bonus under ``cfg.promote``.

    Args:
        inliers: inlier counts (-1: not verified). log10_nfa: log10 NFA of each pair for one test.
        tests: pairs verified in the run (None: those with ``inliers >= 0``); with ``cfg.flip`` each counts twice.
    """
    n = np.asarray(inliers, np.int64)
    if cfg.promote == "min-inliers":
        return n >= cfg.min_inliers
    if tests is None:
        tests = int((n >= 0).sum())
    tests = max(int(tests), 1) * (2 if cfg.flip else 1)
    return (n >= 0) & (np.asarray(log10_nfa, np.float64) + math.log10(tests) < math.log10(cfg.nfa))


def verification_bonus(inliers: np.ndarray, cfg: VerifyConfig, evidence: np.ndarray | None = None) -> np.ndarray:
    """``bonus · n / (n + half)`` where the pair has evidence, else 0; ``evidence`` (bool, same shape) from
    :func:`has_evidence`, None: ``n >= min_inliers``."""
    n = np.asarray(inliers, np.float64)
    ok = n >= cfg.min_inliers if evidence is None else np.asarray(evidence, bool)
    return np.where(ok, cfg.bonus * np.maximum(n, 0) / (np.maximum(n, 0) + cfg.half), 0.0)


def verify_candidates(query_paths: Sequence[str | Path], ref_paths: Sequence[str | Path], D: np.ndarray,
                      I: np.ndarray, cfg: VerifyConfig,
                      progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Re-score each query's first ``cfg.top`` candidates.

    Args:
        query_paths: Q image paths. ref_paths: R image paths.
        D: (Q, K) global scores of the candidates, I: (Q, K) their reference rows (-1 = none).
    Returns:
        (scores (Q, K) float64 re-scored, inliers (Q, K) int64 (-1 where not verified), evidence (Q, K) bool:
        the pairs that got the bonus).
    """
    matcher = LocalMatcher(cfg)
    D2 = np.asarray(D, np.float64).copy()
    inl = np.full(I.shape, -1, np.int64)
    lnfa = np.full(I.shape, NO_EVIDENCE, np.float64)
    top = min(cfg.top, I.shape[1])
    for qi in range(I.shape[0]):
        for j in range(top):
            r = int(I[qi, j])
            if r < 0:
                continue
            inl[qi, j], lnfa[qi, j] = matcher.evidence(query_paths[qi], ref_paths[r])
        if progress:
            progress(1)
    ok = has_evidence(inl, lnfa, cfg)
    D2 += verification_bonus(inl, cfg, ok)
    return D2, inl, ok
