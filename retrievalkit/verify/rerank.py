"""Spatial verification re-ranking of a shortlist (fast spatial matching, Philbin et al. CVPR 2007, with RANSAC).

For each query, the top ``top_k`` database images of a ranks file are matched with the query's local features
(mutual nearest neighbours, plus Lowe's ratio test for SIFT), a geometric model is fitted by RANSAC, and the
shortlist is re-ordered: images with at least ``min_inliers`` inliers come first, by inlier count (the original
score breaks ties), then the others in their original order. Scores below the shortlist are left unchanged.
The new score of a verified image is ``inliers + original score``; an unverified one keeps its score, shifted
below every verified one.

With ``VerifyParams(view_tilts=...)`` (SIFT locals only) each query image is read again and matched through
ASIFT-style simulated views (:mod:`retrievalkit.verify.viewsynth`), for extreme viewpoint changes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from retrievalkit.configs.verify import DEFAULT_MIN_INLIERS, DEFAULT_SHORTLIST, VerifyParams
from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.io.output import writes_output
from retrievalkit.neighbours import Neighbours
from retrievalkit.verify.geometry import fit_pair, match_descriptors, verify_pair

DEFAULT_TOP_K = DEFAULT_SHORTLIST


def resolve_params(p: VerifyParams, kind: str) -> tuple[float | None, float | None]:
    """(ratio, fixed threshold or None for the per-pair deep rule) for locals of method ``kind``."""
    ratio = p.ratio if p.ratio is not None else (0.8 if kind == "sift" else None)
    if ratio is not None and ratio <= 0:
        ratio = None  # --ratio 0 switches the test off
    thr = p.threshold if p.threshold is not None else (8.0 if kind == "sift" else None)
    return ratio, thr


def count_inliers(kp1: np.ndarray, d1: np.ndarray, kp2: np.ndarray, d2: np.ndarray, p: VerifyParams,
                  kind: str = "sift") -> int:
    """Inliers of the best geometric model between two images' local features (0 when none)."""
    return int(match_pair(kp1, d1, kp2, d2, p, kind)[1].sum())


def match_pair(kp1: np.ndarray, d1: np.ndarray, kp2: np.ndarray, d2: np.ndarray, p: VerifyParams,
               kind: str = "sift") -> tuple[np.ndarray, np.ndarray]:
    """The tentative matches ((M, 2) rows into kp1, kp2) and their (M,) bool RANSAC inlier mask, exactly as
    :func:`count_inliers` counts them (for drawing the matches of a pair)."""
    if kind == "dsm":  # Deep Spatial Matching: same-channel correspondences, single-correspondence hypotheses
        from retrievalkit.verify.dsm import match_dsm_params

        return match_dsm_params(kp1, kp2, p)
    ratio, thr = resolve_params(p, kind)
    m = match_descriptors(d1, d2, ratio=ratio, mutual=p.mutual)
    if m.shape[0] == 0:
        return m, np.zeros(0, bool)
    if thr is None:
        cells = np.concatenate([kp1[m[:, 0], 2], kp2[m[:, 1], 2]])
        thr = max(8.0, 0.5 * float(np.median(cells)))
    _, mask = fit_pair(kp1, kp2, m, method=p.method, ransac_threshold=thr, max_iters=p.max_iters)
    return m, mask


def count_inliers_views(vf, kp2: np.ndarray, d2: np.ndarray, p: VerifyParams) -> int:
    """Inliers between a query's simulated views (:class:`~retrievalkit.verify.viewsynth.ViewFeatures`) and
    one image's SIFT features: matches pooled over the views, one model fitted in original pixels."""
    from retrievalkit.verify.viewsynth import match_views

    ratio, thr = resolve_params(p, "sift")
    m = match_views(vf, d2, ratio=ratio, mutual=p.mutual)
    n, _ = verify_pair(vf.keypoints, kp2, m, method=p.method, ransac_threshold=thr, max_iters=p.max_iters)
    return n


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


def rerank_shortlist(scores: np.ndarray, indices: np.ndarray, inliers: np.ndarray, min_inliers: int,
                     ) -> Neighbours:
    """Re-order one query's ranked list given inlier counts of its first ``len(inliers)`` entries.

    Args:
        scores, indices: (K,) the original ranking (-1 pads at the end), in ``Neighbours`` order.
        inliers: (k,) inlier counts of indices[:k].
    Returns:
        ``Neighbours(scores, ids)`` re-ordered over the first k entries; verified entries score
        ``inliers + score``, the others keep their relative order with scores below the lowest verified one.
    """
    k = len(inliers)
    idx, sc = indices.copy(), scores.astype(np.float64).copy()
    head_i, head_s = idx[:k], sc[:k]
    valid = head_i >= 0
    ok = valid & (inliers >= min_inliers)
    new = np.where(ok, inliers + head_s, head_s)
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
    *,
    top_k: int | None = None,
    params: VerifyParams | None = None,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Spatially verify the top ``top_k`` of every query in a ranks file and write the re-ranked ranks file.

    Query and database names of the ranks file are looked up in the locals files (which may hold more
    images); a query without local features keeps its original list.
    """
    from retrievalkit.io.locals import read_locals
    from retrievalkit.io.ranks import Ranks, read_ranks, write_ranks

    p = params or VerifyParams()
    p.__post_init__()  # the ranges, also after fields were changed in place
    if top_k is None:
        top_k = p.shortlist
    VerifyParams(shortlist=top_k)  # checks the range
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
    k = min(top_k, r.indices.shape[1])
    out_i = r.indices.copy()
    out_s = r.scores.copy()
    inl = np.zeros((len(r.query_names), k), np.int32)
    for qi, qn in enumerate(r.query_names):
        kq, dq = ql.image(qpos[qn])
        vf = query_views(ql.config, qn, p.view_tilts) if p.view_tilts and dq.shape[0] else None
        if dq.shape[0]:
            for j in range(k):
                di = int(r.indices[qi, j])
                if di < 0:
                    break
                kd, dd = dl.image(dpos[r.db_names[di]])
                if vf is None:
                    inl[qi, j] = count_inliers(kq, dq, kd, dd, p, kind_q or "sift")
                else:
                    inl[qi, j] = count_inliers_views(vf, kd, dd, p)
        out_s[qi], out_i[qi] = rerank_shortlist(r.scores[qi], r.indices[qi], inl[qi], p.min_inliers)
        if progress:
            progress(1)
    config = {**{f"input_{a}": b for a, b in r.config.items() if a in ("method",)}, "verified": True,
              "top_k": int(k), "geometry": p.method, "ratio": resolve_params(p, kind_q or "sift")[0],
              "mutual": p.mutual, "threshold": p.threshold, "view_tilts": [float(t) for t in p.view_tilts],
              "min_inliers": int(p.min_inliers),
              "locals_method": kind_q, "ranks_config": r.config,
              "verified_pairs": int((inl >= p.min_inliers).sum())}
    return write_ranks(output, Ranks(r.query_names, r.db_names, out_i, out_s, config),
                       inputs={"ranks": str(ranks), "queries_locals": str(queries_locals),
                               "database_locals": str(database_locals)})


__all__ = ["DEFAULT_TOP_K", "DEFAULT_MIN_INLIERS", "VerifyParams", "resolve_params", "count_inliers",
           "rerank_shortlist", "verify_ranks", "match_pair", "count_inliers_views", "query_views"]
