"""Spatial verification re-ranking of a shortlist (fast spatial matching, Philbin et al. CVPR 2007).

For each query, the top ``shortlist`` database images of a ranks file are matched with the query's local
features (mutual nearest neighbours, plus Lowe's ratio test for SIFT) and checked geometrically — a model fitted
by RANSAC (homography, affine, fundamental) or Hough Pyramid Matching (``method='hpm'``,
:mod:`retrievalkit.verify.hpm`). Each pair gets its evidence (:class:`PairEvidence`: inliers, a strength that
orders verified images, and the a-contrario number of false alarms, :mod:`retrievalkit.verify.significance`).

The re-ranking is safe by default (``promote='significant'``): only images whose evidence is conclusive
(NFA < ε, fewer than ε chance verifications expected per query) move up, ordered by significance; every other
image keeps its original order relative to the others. ``promote='min-inliers'`` is the earlier rule: images
with at least ``min_inliers`` inliers come first, by inlier count. Either way promoted images score
``strength + original score`` and the others keep their scores shifted below; scores below the shortlist are
left unchanged.

With ``VerifyParams(view_tilts=...)`` (SIFT locals only) each query image is read again and matched through
ASIFT-style simulated views (:mod:`retrievalkit.verify.viewsynth`), for extreme viewpoint changes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrievalkit.configs.checks import stage_config
from retrievalkit.configs.verify import DEFAULT_MIN_INLIERS, DEFAULT_SHORTLIST, GEOMETRIES, VerifyParams
from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.io.output import writes_output
from retrievalkit.neighbours import Neighbours
from retrievalkit.verify.geometry import fit_pair, match_descriptors
from retrievalkit.verify.significance import NO_EVIDENCE, pair_log10_nfa

DEFAULT_TOP_K = DEFAULT_SHORTLIST
#: significance is recorded up to 10^-MAX_SIGNIFICANCE (beyond it every image is equally certain)
MAX_SIGNIFICANCE = 300.0


@dataclass
class PairEvidence:
    """What verification found for one pair: ``inliers`` (RANSAC inliers, or HPM's correspondences grouped at
    its finest level), ``strength`` (orders promoted images: inliers, or HPM's similarity) and ``log10_nfa``
    (a-contrario number of false alarms, log10; inf without a model)."""

    inliers: int = 0
    strength: float = 0.0
    log10_nfa: float = NO_EVIDENCE


def _deep_threshold(kp1: np.ndarray, kp2: np.ndarray, m: np.ndarray) -> float:
    """The deep-locals inlier threshold of a pair: half the median feature cell of its matches, at least 8 px."""
    cells = np.concatenate([kp1[m[:, 0], 2], kp2[m[:, 1], 2]])
    return max(8.0, 0.5 * float(np.median(cells)))


def check_matches(kp1: np.ndarray, kp2: np.ndarray, m: np.ndarray, p: VerifyParams, kind: str, thr: float | None,
                  size2=None, tests: int = 1, rotation: bool | None = None) -> tuple[np.ndarray, PairEvidence]:
    """The geometric check of tentative matches ``m`` ((M, 2) rows into kp1, kp2): the (M,) bool inlier mask
    and the pair's :class:`PairEvidence`. ``size2``: image 2's (width, height) (None: its keypoints' extent);
    ``tests``: images verified for the same query (the NFA's shortlist factor)."""
    if m.shape[0] == 0:
        return np.zeros(0, bool), PairEvidence()
    if thr is None:
        thr = _deep_threshold(kp1, kp2, m)
    if p.method == "hpm":
        from retrievalkit.verify.hpm import hough_pyramid

        rot = (kind == "sift") if rotation is None else rotation
        r = hough_pyramid(kp1, kp2, m, size2=size2, rotation=rot, cell=thr, tests=tests)
        return r.grouped, PairEvidence(int(r.grouped.sum()), r.score, r.log10_nfa)
    _, mask = fit_pair(kp1, kp2, m, method=p.method, ransac_threshold=thr, max_iters=p.max_iters)
    n = int(mask.sum())
    return mask, PairEvidence(n, float(n), pair_log10_nfa(kp1, kp2, m, mask, p.method, thr, size2, tests))


def pair_evidence(kp1: np.ndarray, d1: np.ndarray, kp2: np.ndarray, d2: np.ndarray, p: VerifyParams,
                  kind: str = "sift", size2=None, tests: int = 1) -> PairEvidence:
    """Match two images' local features and check the matches geometrically (:func:`check_matches`)."""
    return _match_and_check(kp1, d1, kp2, d2, p, kind, size2, tests)[2]


def _match_and_check(kp1, d1, kp2, d2, p: VerifyParams, kind: str, size2=None, tests: int = 1):
    if kind == "dsm":  # Deep Spatial Matching: same-channel correspondences, single-correspondence hypotheses
        return _dsm_match_and_check(kp1, kp2, p, size2, tests)
    ratio, thr = resolve_params(p, kind)
    m = match_descriptors(d1, d2, ratio=ratio, mutual=p.mutual)
    mask, ev = check_matches(kp1, kp2, m, p, kind, thr, size2, tests)
    return m, mask, ev


def _dsm_match_and_check(kp1, kp2, p: VerifyParams, size2=None, tests: int = 1):
    """DSM's matches and inliers (:mod:`retrievalkit.verify.dsm`) with the evidence of the other methods; in the
    NFA the minimal sample is one correspondence (DSM makes one hypothesis from each pair of local frames)."""
    from retrievalkit.verify.dsm import dsm_threshold, match_dsm_params

    m, mask = match_dsm_params(kp1, kp2, p)
    if m.shape[0] == 0:
        return m, mask, PairEvidence()
    thr = p.threshold if p.threshold is not None else dsm_threshold(kp1, kp2)
    n = int(mask.sum())
    return m, mask, PairEvidence(n, float(n), pair_log10_nfa(kp1, kp2, m, mask, p.method, thr, size2, tests,
                                                                sample=(1, 1)))


def resolve_params(p: VerifyParams, kind: str) -> tuple[float | None, float | None]:
    """(ratio, fixed threshold or None for the per-pair deep rule) for locals of method ``kind``."""
    ratio = p.ratio if p.ratio is not None else (0.8 if kind == "sift" else None)
    if ratio is not None and ratio <= 0:
        ratio = None  # --ratio 0 switches the test off
    thr = p.threshold if p.threshold is not None else (8.0 if kind == "sift" else None)
    return ratio, thr


def count_inliers(kp1: np.ndarray, d1: np.ndarray, kp2: np.ndarray, d2: np.ndarray, p: VerifyParams,
                  kind: str = "sift") -> int:
    """Inliers of the best geometric model between two images' local features (0 when none); for
    ``method='hpm'`` the correspondences HPM groups at its finest level."""
    return int(match_pair(kp1, d1, kp2, d2, p, kind)[1].sum())


def match_pair(kp1: np.ndarray, d1: np.ndarray, kp2: np.ndarray, d2: np.ndarray, p: VerifyParams,
               kind: str = "sift") -> tuple[np.ndarray, np.ndarray]:
    """The tentative matches ((M, 2) rows into kp1, kp2) and their (M,) bool RANSAC inlier mask, exactly as
    :func:`count_inliers` counts them (for drawing the matches of a pair)."""
    m, mask, _ = _match_and_check(kp1, d1, kp2, d2, p, kind)
    return m, mask


def count_inliers_views(vf, kp2: np.ndarray, d2: np.ndarray, p: VerifyParams) -> int:
    """Inliers between a query's simulated views (:class:`~retrievalkit.verify.viewsynth.ViewFeatures`) and
    one image's SIFT features: matches pooled over the views, one model fitted in original pixels."""
    return views_evidence(vf, kp2, d2, p).inliers


def views_evidence(vf, kp2: np.ndarray, d2: np.ndarray, p: VerifyParams, size2=None, tests: int = 1,
                   ) -> PairEvidence:
    """:class:`PairEvidence` of a query's simulated views against one image (RANSAC models only: the views'
    keypoint scales and angles are not those of the query)."""
    from retrievalkit.verify.viewsynth import match_views

    ratio, thr = resolve_params(p, "sift")
    m = match_views(vf, d2, ratio=ratio, mutual=p.mutual)
    return check_matches(vf.keypoints, kp2, m, p, "sift", thr, size2, tests)[1]


def query_views(locals_config: dict, name: str, tilts):
    """SIFT of the simulated views of one query image, read again from the locals' image root at the
    locals' size; keypoints in pixels of the original image (as in the locals file)."""
    import cv2

    from retrievalkit.images import load_image, resize_longer
    from retrievalkit.verify.viewsynth import view_features

    root = locals_config.get("image_root")
    if locals_config.get("method") != "sift" or not root:
        raise UsageError("view synthesis needs SIFT locals that record their image root (--local-method sift)")
    if locals_config.get("boxes"):
        raise UsageError("view synthesis does not support box (cropped) queries; extract whole-image query locals")
    path = Path(root) / name
    try:
        img = load_image(path)
    except Exception as e:  # noqa: BLE001 - any decode failure is a bad input
        raise BadInputError(f"{path}: cannot read the query image for view synthesis ({e})") from None
    small = resize_longer(img, locals_config.get("size"))
    vf = view_features(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), tilts=tuple(tilts),
                       max_features=int(locals_config.get("max_features") or 2000))
    vf.keypoints[:, :2] *= np.array([img.shape[1] / small.shape[1], img.shape[0] / small.shape[0]], np.float32)
    return vf


def promoted_mask(ev_inliers: np.ndarray, ev_log10_nfa: np.ndarray, p: VerifyParams) -> np.ndarray:
    """Which pairs of a shortlist move up under ``p.promote`` (see :class:`VerifyParams`)."""
    if p.promote == "min-inliers":
        return np.asarray(ev_inliers) >= p.min_inliers
    return np.asarray(ev_log10_nfa, np.float64) < math.log10(p.nfa)


def promotion_key(ev_strength: np.ndarray, ev_log10_nfa: np.ndarray, p: VerifyParams) -> np.ndarray:
    """What orders the promoted pairs: significance (−log10 NFA, at most ``MAX_SIGNIFICANCE``) under the
    safe rule, the strength (inliers, HPM similarity) under ``min-inliers``."""
    if p.promote == "min-inliers":
        return np.asarray(ev_strength, np.float64)
    nfa = np.asarray(ev_log10_nfa, np.float64)
    return np.clip(-np.where(np.isfinite(nfa), nfa, -MAX_SIGNIFICANCE), -MAX_SIGNIFICANCE, MAX_SIGNIFICANCE)


def rerank_shortlist(scores: np.ndarray, indices: np.ndarray, strength: np.ndarray, min_inliers: int | None = None,
                     *, promoted: np.ndarray | None = None) -> Neighbours:
    """Re-order one query's ranked list given the evidence of its first ``len(strength)`` entries.

    Args:
        scores, indices: (K,) the original ranking (-1 pads at the end), in ``Neighbours`` order.
        strength: (k,) what orders the promoted entries of indices[:k] (inlier counts, significance).
        min_inliers: promote the entries with ``strength >= min_inliers`` (the fixed-count rule), or
        promoted: (k,) bool, the entries that move up (the safe rule gives the significant ones).
    Returns:
        ``Neighbours(scores, ids)`` re-ordered over the first k entries; promoted entries score
        ``strength + score``, ordered by it, above the others, which keep their relative order with
        scores below the lowest promoted one.
    """
    strength = np.asarray(strength, np.float64)
    k = len(strength)
    if promoted is None:
        if min_inliers is None:
            raise ValueError("rerank_shortlist: give min_inliers or promoted")
        promoted = strength >= min_inliers
    idx, sc = indices.copy(), scores.astype(np.float64).copy()
    head_i, head_s = idx[:k], sc[:k]
    valid = head_i >= 0
    ok = valid & np.asarray(promoted, bool)
    new = np.where(ok, strength + head_s, head_s)
    ver = np.flatnonzero(ok)
    ver = ver[np.lexsort((ver, -new[ver]))]
    rest = np.flatnonzero(~ok & valid)
    pads = np.flatnonzero(~valid)
    order = np.concatenate([ver, rest, pads])
    out_i = head_i[order]
    out_s = new[order]
    if ver.size and rest.size:
        # keep the list monotone: unverified entries sit below the lowest verified score
        floor = new[ver].min()
        shift = max(0.0, new[rest].max() - floor + 1e-3)
        out_s[ver.size:ver.size + rest.size] -= shift
    idx[:k], sc[:k] = out_i, out_s
    if k < len(sc) and k and (idx[k:] >= 0).any():
        tail = sc[k:]
        low = sc[:k][idx[:k] >= 0].min() if (idx[:k] >= 0).any() else np.inf
        if np.isfinite(low) and tail.max() > low:
            sc[k:] = tail - (tail.max() - low + 1e-3)
    return Neighbours(sc.astype(np.float32), idx)


@writes_output("output", inputs=("ranks", "queries_locals", "database_locals"))
def verify_ranks(
    ranks: str | os.PathLike,
    queries_locals: str | os.PathLike,
    database_locals: str | os.PathLike,
    output: str | os.PathLike,
    config: VerifyParams | None = None,
    *,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Spatially verify the top ``config.shortlist`` of every query in a ranks file and write the re-ranked ranks
    file. ``progress(n)`` advances by the queries done.

    Query and database names of the ranks file are looked up in the locals files (which may hold more
    images); a query without local features keeps its original list.
    """
    from retrievalkit.io.locals import read_locals
    from retrievalkit.io.ranks import Ranks, read_ranks, write_ranks

    p = stage_config(config, VerifyParams)
    p.__post_init__()  # the ranges, also after fields were changed in place
    top_k = p.shortlist
    r = read_ranks(ranks)
    ql = read_locals(queries_locals)
    dl = read_locals(database_locals)
    kind_q, kind_d = ql.config.get("method"), dl.config.get("method")
    if kind_q != kind_d or ql.dim != dl.dim or ql.config.get("pca") != dl.config.get("pca"):
        raise BadInputError(f"{queries_locals}: {kind_q} {ql.dim}-d locals cannot be matched with {kind_d} "
                            f"{dl.dim}-d locals of {database_locals} (or another PCA); extract both alike")
    if p.view_tilts and kind_q != "sift":
        raise UsageError(f"{queries_locals}: view synthesis needs SIFT locals, not {kind_q}")
    qpos = {n: i for i, n in enumerate(ql.names)}
    dpos = {n: i for i, n in enumerate(dl.names)}
    miss_q = [n for n in r.query_names if n not in qpos]
    if miss_q:
        raise BadInputError(f"{queries_locals}: no local features for {len(miss_q)} queries of {ranks} "
                            f"(e.g. {miss_q[0]!r}); extract locals for the same queries")
    miss_d = sorted({r.db_names[j] for j in np.unique(r.indices[:, :top_k]) if j >= 0} - set(dpos))
    if miss_d:
        raise BadInputError(f"{database_locals}: no local features for {len(miss_d)} shortlisted database images "
                            f"(e.g. {miss_d[0]!r}); extract locals for the whole database")
    if p.view_tilts and p.method not in GEOMETRIES:
        raise UsageError("view synthesis works with a RANSAC model (--method homography, affine or fundamental), "
                         f"not {p.method}")
    if kind_q == "deep":
        import warnings

        from retrievalkit.errors import RkitWarning

        warnings.warn(f"{queries_locals}: deep locals make weak geometric evidence (their matches follow the image "
                      "layout, so chance models look significant); verify with SIFT locals "
                      "(rkit extract --local --local-method sift)", RkitWarning, stacklevel=2)
    k = min(top_k, r.indices.shape[1])
    out_i = r.indices.copy()
    out_s = r.scores.copy()
    nq = len(r.query_names)
    inl = np.zeros((nq, k), np.int32)
    strength = np.zeros((nq, k), np.float64)
    lnfa = np.full((nq, k), NO_EVIDENCE, np.float64)
    kind = kind_q or "sift"
    for qi, qn in enumerate(r.query_names):
        kq, dq = ql.image(qpos[qn])
        vf = query_views(ql.config, qn, p.view_tilts) if p.view_tilts and dq.shape[0] else None
        n_tested = int((r.indices[qi, :k] >= 0).sum())
        if dq.shape[0]:
            for j in range(k):
                di = int(r.indices[qi, j])
                if di < 0:
                    break
                row = dpos[r.db_names[di]]
                kd, dd = dl.image(row)
                size2 = None if dl.image_sizes is None else tuple(float(v) for v in dl.image_sizes[row])
                if vf is None:
                    ev = pair_evidence(kq, dq, kd, dd, p, kind, size2=size2, tests=n_tested)
                else:
                    ev = views_evidence(vf, kd, dd, p, size2=size2, tests=n_tested)
                inl[qi, j], strength[qi, j], lnfa[qi, j] = ev.inliers, ev.strength, ev.log10_nfa
        up = promoted_mask(inl[qi], lnfa[qi], p)
        out_s[qi], out_i[qi] = rerank_shortlist(r.scores[qi], r.indices[qi], promotion_key(strength[qi], lnfa[qi], p),
                                                promoted=up)
        if progress:
            progress(1)
    up_all = promoted_mask(inl, lnfa, p) & (r.indices[:, :k] >= 0)
    config = {**{f"input_{a}": b for a, b in r.config.items() if a in ("method",)}, "verified": True,
              "top_k": int(k), "geometry": p.method, "ratio": resolve_params(p, kind)[0],
              "mutual": p.mutual, "threshold": p.threshold, "view_tilts": [float(t) for t in p.view_tilts],
              "promote": p.promote, "nfa": float(p.nfa), "min_inliers": int(p.min_inliers),
              "locals_method": kind_q, "ranks_config": r.config,
              "verified_pairs": int(up_all.sum())}
    return write_ranks(output, Ranks(r.query_names, r.db_names, out_i, out_s, config),
                       inputs={"ranks": str(ranks), "queries_locals": str(queries_locals),
                               "database_locals": str(database_locals)})


__all__ = ["DEFAULT_TOP_K", "DEFAULT_MIN_INLIERS", "MAX_SIGNIFICANCE", "VerifyParams", "PairEvidence",
           "resolve_params", "check_matches", "pair_evidence", "count_inliers", "match_pair", "count_inliers_views",
           "views_evidence", "query_views", "promoted_mask", "promotion_key", "rerank_shortlist", "verify_ranks"]
