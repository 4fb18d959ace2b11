"""Score normalisation with a background (training) set, folded into one augmented search.

A query that resembles many unrelated images (a texture, a plain sky) gets high similarities to every reference,
so its scores are not comparable with those of a distinctive query once all predictions are pooled (DISC21 µAP
ranks every (query, reference) pair of every query together). Normalisation subtracts, per query descriptor,
how similar it is to a background set that holds no copies (the training images)::

    s'(q, r) = q·r − β · b(q),   b(q) = mean of the k largest q·t over training vectors t   (stat="mean")
                                 b(q) = the k-th largest q·t                                  (stat="kth")

SSCD (Pizzi et al., CVPR 2022) uses β=1 and the mean of the top 3; the DISC21 baseline uses β=2 and the 10th
neighbour. Since the bias depends only on the query, it is folded into the vectors so that one plain
inner-product search returns normalised scores directly:

    matching track (inner product):  q' = [q, −β·b(q)],  r' = [r, 1]    ⇒  q'·r' = q·r − β·b(q)
    descriptor track (L2 distance):  q' = [q, √(2β(b(q)+1))],  r' = [r, 0]   (unit q, r)
                                     ⇒  −‖q'−r'‖² = 2·(q·r − β·b(q)) − 2 − 2β,
                                     an increasing affine map of s', so the challenge's L2 scorer ranks the
                                     pooled pairs exactly as s' does (b ≥ −1 keeps the root real).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from retrievalkit.configs.copydetect import STATS  # noqa: F401  (re-exported)
from retrievalkit.errors import UsageError
from retrievalkit.neighbours import Neighbours
from retrievalkit.search import search_ip


def background_similarity(xq: np.ndarray, xt: np.ndarray, k: int = 3, stat: str = "mean", block: int = 4096,
                          device: str = "cpu") -> np.ndarray:
    """b(q): how similar each query row is to the background set.

    Args:
        xq: (Q, D) query descriptors. xt: (T, D) training (background) descriptors, T >= k.
        k: neighbours used. stat: "mean" (mean of the top k) or "kth" (the k-th largest similarity).
    Returns:
        (Q,) float32.
    """
    if stat not in STATS:
        raise UsageError(f"normalisation statistic {stat!r}: expected one of {', '.join(STATS)}")
    if k < 1:
        raise UsageError(f"--norm-k {k}: must be at least 1")
    if xt.shape[0] < k:
        raise UsageError(f"--norm-k {k}: the training set has only {xt.shape[0]} images; lower --norm-k")
    D, _ = search_ip(xq, xt, k, block=block, device=device)
    return (D.mean(axis=1) if stat == "mean" else D[:, k - 1]).astype(np.float32)


def augment_for_ip(xq: np.ndarray, xr: np.ndarray, bias: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Append the normalisation dimension for an inner-product search: (Q, D+1) queries, (R, D+1) references."""
    xq = np.asarray(xq, np.float32)
    xr = np.asarray(xr, np.float32)
    q = np.hstack([xq, (-beta * np.asarray(bias, np.float32))[:, None]])
    r = np.hstack([xr, np.ones((xr.shape[0], 1), np.float32)])
    return q, r


def augment_for_l2(xq: np.ndarray, xr: np.ndarray, bias: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Append the normalisation dimension for an L2 (descriptor-track) scorer; q and r must be unit vectors."""
    xq = np.asarray(xq, np.float32)
    xr = np.asarray(xr, np.float32)
    extra = np.sqrt(np.maximum(2.0 * beta * (np.asarray(bias, np.float64) + 1.0), 0.0)).astype(np.float32)
    q = np.hstack([xq, extra[:, None]])
    r = np.hstack([xr, np.zeros((xr.shape[0], 1), np.float32)])
    return q, r


def normalized_search(xq: np.ndarray, xr: np.ndarray, k: int, xt: np.ndarray | None = None, beta: float = 1.0,
                      norm_k: int = 3, stat: str = "mean", block: int = 4096, device: str = "cpu",
                      progress: Callable[[int], None] | None = None) -> Neighbours:
    """The ``k`` best references of each query row by (normalised) inner product.

    Without ``xt`` (or with ``beta`` = 0) this is a plain search. Memory is bounded by ``block`` queries at a time
    (``retrievalkit.search.search_ip``).

    Returns:
        ``Neighbours(scores (Q, k) float32 s' decreasing, ids (Q, k) int64 reference rows)``.
    """
    if xt is None or beta == 0:
        return search_ip(xq, xr, k, block=block, device=device, progress=progress)
    bias = background_similarity(xq, xt, norm_k, stat, block=block, device=device)
    q, r = augment_for_ip(xq, xr, bias, beta)
    return search_ip(q, r, k, block=block, device=device, progress=progress)
