"""``manifold-mine``: Mining on Manifolds (Iscen, Tolias, Avrithis, Chum, CVPR 2018), no labels needed.

On the kNN graph of a collection's global descriptors:

1. anchors: nodes whose stationary random-walk probability beats all their graph neighbours (the modes of
   the graph), the ``n_anchors`` most probable kept;
2. manifold similarity of every node to an anchor: diffusion from the anchor, i.e. the solution ``f`` of
   ``(I - alpha S) f = e_anchor`` (``retrievalkit.diffusion.cg.cg_solve``; S the normalised affinity);
3. hard positives of an anchor = its top-``k_pos`` manifold neighbours that are not among its top-``k_pos``
   Euclidean neighbours (far in descriptor space, yet connected through the manifold);
   hard negatives = its top-``k_neg`` Euclidean neighbours that are not among its top-``k_neg`` manifold
   neighbours (close in descriptor space, yet off its manifold).

``method="euclidean"`` is the plain baseline: positives = top-``k_pos`` Euclidean neighbours, negatives =
random images outside the top-``k_neg`` Euclidean neighbours.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from retrievalkit.configs.checks import stage_config
from retrievalkit.configs.mining import ManifoldMineConfig
from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.io.output import writes_output

METHODS = ("manifold", "euclidean")


@dataclass
class MinedSets:
    """Per anchor, its positives and negatives (indices into the collection)."""

    anchors: np.ndarray  # (A,) int64
    positives: list[np.ndarray]
    negatives: list[np.ndarray]


def stationary_distribution(W: sp.spmatrix, iters: int = 1000, tol: float = 1e-12) -> np.ndarray:
    """Stationary probabilities (N,) of the random walk with transitions ``D^-1 W``.

    For a symmetric ``W`` it is the normalised degree (exact); otherwise power iteration of the lazy walk.
    Isolated nodes get probability 0.
    """
    W = sp.csr_matrix(W, dtype=np.float64)
    d = np.asarray(W.sum(axis=1)).ravel()
    if d.sum() <= 0:
        return np.zeros(W.shape[0])
    if abs(W - W.T).max() <= 1e-9 * max(W.max(), 1e-30):
        return d / d.sum()
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 0.0)
    P = sp.diags(inv) @ W
    pi = d / d.sum()
    for _ in range(iters):
        nxt = 0.5 * pi + 0.5 * (P.T @ pi)
        nxt /= max(nxt.sum(), 1e-300)
        if np.abs(nxt - pi).sum() < tol:
            return nxt
        pi = nxt
    return pi


def find_anchors(W: sp.spmatrix, pi: np.ndarray, n_anchors: int) -> np.ndarray:
    """The ``n_anchors`` most probable nodes among those whose ``pi`` beats every neighbour's in ``W``.

    Ties are broken by index (the lower index wins) so that exactly one node of a plateau can be a mode.
    """
    W = sp.csr_matrix(W)
    n = W.shape[0]
    order = np.lexsort((np.arange(n), -pi))  # rank 0 = most probable
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    rows = np.repeat(np.arange(n), np.diff(W.indptr))
    beaten = np.zeros(n, bool)
    # a node loses when a neighbour ranks before it
    np.logical_or.at(beaten, rows, rank[W.indices] < rank[rows])
    modes = np.flatnonzero(~beaten & (np.diff(W.indptr) > 0) & (pi > 0))
    modes = modes[np.argsort(rank[modes])]
    return modes[:max(int(n_anchors), 0)].astype(np.int64)


def _topk_rows(M: np.ndarray, k: int, exclude: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Per row of ``M`` (A, N), the indices of the ``k`` largest entries, skipping ``exclude[a]``.

    With ``valid`` (A, N) bool, only valid entries are taken (rows may return fewer, -1 padded).
    """
    M = np.array(M, dtype=np.float64, copy=True)
    M[np.arange(M.shape[0]), exclude] = -np.inf
    if valid is not None:
        M[~valid] = -np.inf
    k = min(k, M.shape[1])
    idx = np.argsort(-M, axis=1, kind="stable")[:, :k]
    bad = ~np.isfinite(np.take_along_axis(M, idx, axis=1))
    idx[bad] = -1
    return idx


def manifold_similarity(S: sp.spmatrix, anchors: np.ndarray, alpha: float = 0.99, iters: int = 20,
                        tol: float = 1e-6, device: str = "cpu") -> np.ndarray:
    """(A, N) diffusion scores from each anchor (one CG solve per anchor, all at once)."""
    from retrievalkit.diffusion.cg import cg_solve

    n = S.shape[0]
    Y = np.zeros((n, len(anchors)), np.float32)
    Y[anchors, np.arange(len(anchors))] = 1.0
    return cg_solve(S, Y, alpha=alpha, iters=iters, tol=tol, device=device).T


def mine_manifold(vectors: np.ndarray, scores: np.ndarray, indices: np.ndarray, *, method: str = "manifold",
                  n_anchors: int = 100, k_pos: int = 10, k_neg: int = 10, max_pos: int = 0, max_neg: int = 0,
                  gamma: float = 3.0, alpha: float = 0.99, iters: int = 20, mutual: bool = False,
                  graph_k: int | None = None, batch: int = 256, device: str = "cpu", seed: int = 0,
                  progress: Callable[[int], None] | None = None) -> MinedSets:
    """Anchors and their hard positives / negatives.

    Args:
        vectors: (N, D) L2-normalised descriptors (Euclidean neighbours = largest inner products).
        scores, indices: (N, k) kNN graph of the same vectors (-1 pads), nearest first (``Neighbours`` order).
        method: ``manifold`` (the paper) or ``euclidean`` (baseline; same anchors).
        n_anchors: anchors kept (the most probable modes). k_pos, k_neg: neighbourhood sizes.
        max_pos, max_neg: keep at most this many per anchor (0: all), nearest on the manifold first for
            positives, nearest in descriptor space first for negatives.
        gamma, mutual, graph_k: graph construction (``retrievalkit.diffusion.graph.affinity_from_knn``).
        alpha, iters: diffusion (``cg_solve``). batch: anchors per CG solve.
        progress: called with the number of anchors done after each batch.
    """
    from retrievalkit.diffusion.graph import affinity_from_knn, normalize_symmetric
    from retrievalkit.search.exact import search_ip

    if method not in METHODS:
        raise UsageError(f"--method {method!r}: expected one of {', '.join(METHODS)}")
    if k_pos < 1 or k_neg < 1:
        raise UsageError(f"--k-pos {k_pos} / --k-neg {k_neg}: must be at least 1")
    if n_anchors < 1:
        raise UsageError(f"--anchors {n_anchors}: must be at least 1")
    xb = np.asarray(vectors, np.float32)
    n = xb.shape[0]
    W = affinity_from_knn(scores, indices, gamma=gamma, mutual=mutual, k=graph_k)
    anchors = find_anchors(W, stationary_distribution(W), n_anchors)
    S = normalize_symmetric(W)
    rng = np.random.default_rng(seed)
    positives: list[np.ndarray] = []
    negatives: list[np.ndarray] = []
    kmax = min(max(k_pos, k_neg) + 1, n)
    for s in range(0, len(anchors), max(1, batch)):
        a = anchors[s:s + batch]
        _, nbr = search_ip(xb[a], xb, kmax)
        eu = np.full((len(a), kmax - 1), -1, np.int64)
        for r in range(len(a)):  # drop the anchor itself from its Euclidean list
            row = nbr[r][nbr[r] != a[r]][:kmax - 1]
            eu[r, :row.size] = row
        if method == "manifold":
            F = manifold_similarity(S, a, alpha=alpha, iters=iters, device=device)
            mpos = _topk_rows(F, k_pos, a, valid=F > 0)
            mneg = _topk_rows(F, k_neg, a, valid=F > 0)
        for r in range(len(a)):
            e_pos, e_neg = eu[r, :k_pos], eu[r, :k_neg]
            e_pos, e_neg = e_pos[e_pos >= 0], e_neg[e_neg >= 0]
            if method == "manifold":
                m_pos = mpos[r][mpos[r] >= 0]
                m_neg = mneg[r][mneg[r] >= 0]
                pos = m_pos[~np.isin(m_pos, e_pos)]  # kept in manifold order
                neg = e_neg[~np.isin(e_neg, m_neg)]  # kept in Euclidean order
            else:
                pos = e_pos
                pool = np.setdiff1d(np.arange(n), np.append(e_neg, a[r]))
                m = min(max_neg if max_neg > 0 else k_neg, pool.size)
                neg = rng.choice(pool, size=m, replace=False) if m else pool[:0]
            if max_pos > 0:
                pos = pos[:max_pos]
            if max_neg > 0:
                neg = neg[:max_neg]
            positives.append(pos.astype(np.int64))
            negatives.append(np.asarray(neg, np.int64))
        if progress:
            progress(len(a))
    return MinedSets(anchors, positives, negatives)


def to_tuples_arrays(mined: MinedSets) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(qidx, pidx, nidx): one tuple per (anchor, positive); nidx (T, M) = the anchor's negatives, -1 pads."""
    qs, ps, ns = [], [], []
    width = max((len(n) for n in mined.negatives), default=0)
    for a, pos, neg in zip(mined.anchors, mined.positives, mined.negatives):
        row = np.full(width, -1, np.int64)
        row[:len(neg)] = neg
        for p in pos:
            qs.append(a)
            ps.append(p)
            ns.append(row)
    nidx = np.stack(ns) if ns else np.zeros((0, width), np.int64)
    return np.asarray(qs, np.int64), np.asarray(ps, np.int64), nidx


@writes_output("output", inputs=("features", "graph"))
def manifold_mine(features: str | os.PathLike, graph: str | os.PathLike, output: str | os.PathLike,
                  config: ManifoldMineConfig | None = None, *, device: str = "cpu",
                  progress: Callable[[int], None] | None = None) -> Path:
    """Mine tuples from a features file and its kNN graph; write a tuples file and return its path.

    ``cluster`` is -1 for every image (no labels): the tuples carry their negatives in ``nidx``.
    ``progress(n)`` advances by the anchors done; their count is the file's ``config["anchors"]``.
    """
    from retrievalkit.io.features import read_features
    from retrievalkit.io.h5file import check_same_names
    from retrievalkit.io.knn import read_knn
    from retrievalkit.io.tuples import Tuples, write_tuples

    c = stage_config(config, ManifoldMineConfig)
    method, n_anchors, k_pos, k_neg, max_pos, max_neg = c.method, c.anchors, c.k_pos, c.k_neg, c.max_pos, c.max_neg
    gamma, alpha, iters, mutual, graph_k, batch, seed = (c.gamma, c.alpha, c.iters, c.mutual, c.graph_k, c.block_size,
                                                         c.seed)
    feats = read_features(features)
    if feats.image_index is not None:
        raise BadInputError(f"{features}: holds several vectors per image; manifold-mine needs one per image")
    g = read_knn(graph)
    check_same_names(feats.names, g.names, features, graph)
    if len(feats) < 3:
        raise BadInputError(f"{features}: {len(feats)} images; mining needs at least 3")

    mined = mine_manifold(feats.vectors, g.scores, g.indices, method=method, n_anchors=n_anchors, k_pos=k_pos,
                          k_neg=k_neg, max_pos=max_pos, max_neg=max_neg, gamma=gamma, alpha=alpha, iters=iters,
                          mutual=mutual, graph_k=graph_k, batch=batch, device=device, seed=seed,
                          progress=progress)
    qidx, pidx, nidx = to_tuples_arrays(mined)
    if qidx.size == 0:
        raise BadInputError(f"{features}: no anchor got a hard positive (graph {graph}); try a larger --k-pos, "
                            "more --anchors or --method euclidean")
    image_root = str(feats.config.get("image_root", ""))
    settings = {"method": method, "anchors": [int(a) for a in mined.anchors], "n_anchors": n_anchors,
              "k_pos": k_pos, "k_neg": k_neg, "max_pos": max_pos, "max_neg": max_neg, "gamma": gamma,
              "alpha": alpha, "iters": iters, "mutual": mutual, "graph_k": graph_k, "seed": seed,
              "features_config": feats.config}
    t = Tuples(list(feats.names), np.full(len(feats), -1, np.int64), qidx, pidx, nidx, image_root, settings)
    return write_tuples(output, t, inputs={"features": str(features), "graph": str(graph)})
