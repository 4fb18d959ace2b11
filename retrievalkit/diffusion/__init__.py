"""Diffusion (manifold ranking) and query expansion: graph normalisation, CG, spectral ranking, truncation."""

from retrievalkit.diffusion.cg import cg_solve
from retrievalkit.diffusion.graph import affinity_from_knn, normalize_symmetric
from retrievalkit.diffusion.qe import alpha_dba, alpha_qe, aqe
from retrievalkit.diffusion.rank import DiffusionConfig, diffusion_ranking

__all__ = ["affinity_from_knn", "normalize_symmetric", "cg_solve", "alpha_qe", "aqe", "alpha_dba",
           "DiffusionConfig", "diffusion_ranking"]
