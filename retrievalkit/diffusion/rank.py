"""Array core of ``rkit diffuse``: database and query vectors (+ optional kNN list / eigenpairs) -> ranks.

No files, no printing. Queries are processed in blocks of columns; every step is torch, so the same code
runs on CPU and CUDA. Region files (several vectors per image) diffuse on the region graph and pool the
scores back to images.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from retrievalkit.configs.diffusion import DiffusionConfig
from retrievalkit.diffusion.cg import cg_solve_torch, sparse_operator
from retrievalkit.diffusion.graph import affinity_from_knn, graph_from_vectors, normalize_symmetric
from retrievalkit.diffusion.hybrid import HybridSolver
from retrievalkit.diffusion.qe import alpha_dba, weighted_expansion
from retrievalkit.diffusion.query import query_weights
from retrievalkit.diffusion.regions import pool_rows
from retrievalkit.diffusion.spectral import spectral_filter, spectral_rank, top_eigenpairs
from retrievalkit.diffusion.truncated import truncated_solve
from retrievalkit.errors import UsageError
from retrievalkit.neighbours import Neighbours

REACHED = 1e-6  # diffusion scores below this fraction of a query's best count as "not reached"


LITERATURE_SCALE = 5000  # Oxford5k / Paris6k: the smallest collections the published defaults were tuned on


def auto_graph_k(n_nodes: int) -> int:
    """Graph k from the collection size (see docs/diffuse.md): about 1 % of the nodes, within [5, 50].

    1 % reproduces the published k = 50 at the scale it was tuned on (5-6k images) and keeps k below the
    size of small scenes in small collections (k = 6 for 650 images), where k = 50 links every scene to
    dozens of unrelated images and the diffusion collapses onto high-degree hubs.
    """
    return int(min(50, max(5, round(0.01 * n_nodes))))


def auto_fuse(n_nodes: int) -> float:
    """Weight of the cosine in the final score: 0.9 below literature scale, 0 (pure diffusion) from it on.

    In a small collection most scenes have too few members to form a manifold, so the diffusion score is
    used as a bounded bonus (at most 0.1 in cosine units) that reorders near-ties of the Euclidean ranking.
    """
    return 0.9 if n_nodes < LITERATURE_SCALE else 0.0


def resolve_graph_k(graph_k: int | None, n_nodes: int, graph_k_available: int | None = None) -> int:
    """The graph's k: ``graph_k`` or the automatic choice for ``n_nodes`` vectors, within what a given graph file
    holds (``graph_k_available``) and below ``n_nodes``."""
    if graph_k is None:
        graph_k = auto_graph_k(n_nodes)
        if graph_k_available is not None:
            graph_k = min(graph_k, graph_k_available)
    elif graph_k_available is not None and graph_k > graph_k_available:
        raise UsageError(f"--graph-k {graph_k}: the graph file only has {graph_k_available} neighbours per item; "
                         f"rebuild it with `rkit index knn -k {graph_k}` or lower --graph-k")
    return int(min(graph_k, max(1, n_nodes - 1)))


def resolve_config(cfg: DiffusionConfig, n_nodes: int, graph_k_available: int | None = None) -> DiffusionConfig:
    """Validate ``cfg`` and fill the automatic settings for a graph of ``n_nodes`` database vectors."""
    cfg.__post_init__()  # the ranges, also after fields were changed in place
    out = dataclasses.replace(cfg)
    out.graph_k = resolve_graph_k(out.graph_k, n_nodes, graph_k_available)
    if out.fuse is None:
        out.fuse = auto_fuse(n_nodes)
    if out.rank is None:
        out.rank = int(min(n_nodes, 1000))
    out.trunc_n = int(min(out.trunc_n, n_nodes))
    out.query_k = int(min(out.query_k, n_nodes))
    return out


def _group_rows(owner: np.ndarray | None, n: int) -> list[np.ndarray]:
    if owner is None:
        return [np.array([i]) for i in range(n)]
    order = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[order], np.arange(n + 1))
    return [order[bounds[i]:bounds[i + 1]] for i in range(n)]


class DiffusionRanking(NamedTuple):
    """The result of :func:`diffusion_ranking`: ``scores``/``ids`` as :class:`Neighbours`, plus the resolved
    settings."""

    scores: np.ndarray
    ids: np.ndarray
    config: DiffusionConfig


def diffusion_ranking(xb: np.ndarray, xq: np.ndarray, cfg: DiffusionConfig,
                      knn: Neighbours | None = None,
                      eig: tuple[np.ndarray, np.ndarray] | None = None,
                      db_owner: np.ndarray | None = None, n_db_images: int | None = None,
                      q_owner: np.ndarray | None = None, n_q_images: int | None = None,
                      device: str = "cpu", progress: Callable[[int], None] | None = None
                      ) -> DiffusionRanking:
    """Rank database images for every query image.

    Args:
        xb: (M, D) database vectors (L2-normalised); ``db_owner`` (M,) maps rows to ``n_db_images`` images
            (None: one row per image). xq / q_owner / n_q_images: the same for queries.
        cfg: settings; ``None`` fields are chosen by :func:`resolve_config`.
        knn: ``(scores (M, k), ids (M, k))`` kNN list of ``xb`` to build the graph from (None: built here).
        eig: (eigvals (r,), eigvecs (M, r)) for ``spectral`` / ``hybrid`` (None: computed here).
    Returns:
        ``DiffusionRanking(scores (Q, K) float32 decreasing, ids (Q, K) int64 database images (-1 pads),
        config)``: the resolved settings.
    """
    xb = np.ascontiguousarray(xb, dtype=np.float32)
    xq = np.ascontiguousarray(xq, dtype=np.float32)
    if xb.ndim != 2 or xq.ndim != 2 or xb.shape[1] != xq.shape[1]:
        raise UsageError(f"query vectors {xq.shape} and database vectors {xb.shape} must share the dimension")
    m = xb.shape[0]
    n_db = m if db_owner is None else int(n_db_images)
    n_q = xq.shape[0] if q_owner is None else int(n_q_images)
    cfg = resolve_config(cfg, m, None if knn is None else int(knn[1].shape[1]))

    if cfg.dba:
        reuse = knn if (knn is not None and knn[1].shape[1] >= cfg.dba_k) else None
        xb = alpha_dba(xb, cfg.dba_k, cfg.dba_alpha, device=device, knn=reuse)
    tb = torch.from_numpy(xb).to(device)

    S_t = W = U_t = h_t = None
    if cfg.method in ("cg", "truncated", "spectral", "hybrid") and not (cfg.method == "spectral" and eig is not None):
        D_g, I_g = knn if knn is not None else graph_from_vectors(xb, cfg.graph_k, device=device)
        W = affinity_from_knn(D_g, I_g, gamma=cfg.gamma, mutual=cfg.mutual, k=cfg.graph_k)
    if cfg.method == "cg":
        S_t = sparse_operator(normalize_symmetric(W), device)
    elif cfg.method in ("spectral", "hybrid"):
        S = normalize_symmetric(W) if W is not None else None
        lam, U = eig if eig is not None else top_eigenpairs(S, cfg.rank)
        if U.shape[0] != m:
            raise UsageError(f"eigenvectors of {U.shape[0]} nodes do not match the database of {m} vectors")
        if cfg.method == "hybrid":  # --rank may use fewer eigenpairs than the file holds (they are sorted)
            lam, U = lam[:cfg.rank], U[:, :cfg.rank]
        cfg.rank = int(U.shape[1])
        if cfg.method == "hybrid":
            S_t = HybridSolver(S, U, lam, cfg.alpha, device)
        else:
            U_t = torch.from_numpy(np.ascontiguousarray(U, dtype=np.float32)).to(device)
            h_t = torch.from_numpy(spectral_filter(lam, cfg.alpha)).to(device)

    K = int(min(cfg.top_k, n_db))
    groups = _group_rows(q_owner, n_q)
    block = cfg.block_size or int(max(1, min(256, (2**30) // max(1, 24 * m))))
    I_out = np.full((n_q, K), -1, dtype=np.int64)
    D_out = np.zeros((n_q, K), dtype=np.float32)
    for s in range(0, n_q, block):
        cols = list(range(s, min(n_q, s + block)))
        rows = np.concatenate([groups[c] for c in cols])
        col_of_row = np.concatenate([np.full(len(groups[c]), j) for j, c in enumerate(cols)])
        xqb = xq[rows]
        if cfg.qe != "none":
            e_rows = (tb @ torch.from_numpy(xqb).to(device).T).cpu().numpy().T  # (R, M)
            n_exp = min(cfg.qe_n, m)
            nn = np.argpartition(-e_rows, n_exp - 1, axis=1)[:, :n_exp]
            xqb = weighted_expansion(xqb, xb, np.take_along_axis(e_rows, nn, 1), nn,
                                     0.0 if cfg.qe == "aqe" else cfg.qe_alpha)
        E_rows = tb @ torch.from_numpy(xqb).to(device).T  # (M, R)
        E = _pool_query_side(E_rows, col_of_row, len(cols))  # (M, B): best query region per column
        img_e = pool_rows(E, db_owner, n_db, "max")
        if cfg.method == "none":
            F_img = img_e
        else:
            F_img = _diffuse_block(E, cfg, W, S_t, U_t, h_t, db_owner, n_db, img_e, device)
            if cfg.fuse > 0:
                F_img = (1.0 - cfg.fuse) * _unit_max(F_img) + cfg.fuse * img_e
        v, i = torch.topk(F_img, K, dim=0)
        I_out[s:s + len(cols)] = i.T.cpu().numpy()
        D_out[s:s + len(cols)] = v.T.cpu().numpy()
        if progress:
            progress(len(cols))
    return DiffusionRanking(D_out, I_out, cfg)


def _pool_query_side(E_rows: torch.Tensor, col_of_row: np.ndarray, n_cols: int) -> torch.Tensor:
    if len(col_of_row) == n_cols:
        return E_rows
    idx = torch.from_numpy(col_of_row).to(E_rows.device)[None, :].expand_as(E_rows)
    out = torch.full((E_rows.shape[0], n_cols), -torch.inf, dtype=E_rows.dtype, device=E_rows.device)
    return out.scatter_reduce_(1, idx, E_rows, reduce="amax", include_self=True)


def _unit_max(F: torch.Tensor) -> torch.Tensor:
    mx = F.max(dim=0, keepdim=True).values
    return F / torch.where(mx > 0, mx, torch.ones_like(mx))


def _diffuse_block(E, cfg, W, S_t, U_t, h_t, db_owner, n_db, img_e, device) -> torch.Tensor:
    m, B = E.shape
    if cfg.method == "truncated":
        v, cand = torch.topk(E, cfg.trunc_n, dim=0)  # (n, B) nearest first
        y_local = torch.zeros_like(v)
        y_local[:cfg.query_k] = v[:cfg.query_k].clamp_min(0) ** cfg.gamma
        f = truncated_solve(W, cand.T.cpu().numpy(), y_local.T.cpu().numpy(), cfg.alpha, cfg.iters, cfg.tol, device)
        f_t = torch.from_numpy(f).to(device).T  # (n, B)
        full = torch.zeros((m, B), dtype=E.dtype, device=device)
        full.scatter_(0, cand, f_t)
        reached = full > REACHED * full.max(dim=0, keepdim=True).values.clamp_min(0)
        return _rank_unreached_last(full, reached, cfg, db_owner, n_db, img_e)
    k = cfg.query_k
    v, nn = torch.topk(E, k, dim=0)
    Y = torch.zeros_like(E)
    Y.scatter_(0, nn, torch.from_numpy(query_weights(v.cpu().numpy(), cfg.gamma)).to(device))
    if cfg.method == "cg":
        F, _ = cg_solve_torch(S_t, Y, cfg.alpha, cfg.iters, cfg.tol)
    elif cfg.method == "hybrid":  # S_t is the HybridSolver: spectral part + CG on the complement
        F, _ = S_t(Y, cfg.iters, cfg.tol)
    else:
        F = spectral_rank(U_t, h_t, Y)
    # nodes the diffusion did not reach (other components, beyond `iters` hops, numerically nothing) would tie
    # at ~0 in an arbitrary order: they follow the reached ones in Euclidean order instead
    reached = F > REACHED * F.max(dim=0, keepdim=True).values.clamp_min(0)
    return _rank_unreached_last(F, reached, cfg, db_owner, n_db, img_e)


def _rank_unreached_last(F, reached, cfg, db_owner, n_db, img_e) -> torch.Tensor:
    """Image scores: pooled diffusion scores of reached nodes; unreached images below all, in Euclidean order."""
    if db_owner is not None:
        img_reached = pool_rows(reached.to(F.dtype), db_owner, n_db, "max") > 0
        fill = torch.zeros_like(F) if cfg.pool == "sum" else torch.full_like(F, -torch.inf)
        img_f = pool_rows(torch.where(reached, F, fill), db_owner, n_db, cfg.pool)
    else:
        img_reached, img_f = reached, F
    lowest = torch.where(img_reached, img_f, torch.full_like(img_f, torch.inf)).min(0, keepdim=True).values
    lowest = torch.where(torch.isfinite(lowest), lowest, torch.zeros_like(lowest))
    return torch.where(img_reached, img_f, lowest - 3.0 + img_e)
