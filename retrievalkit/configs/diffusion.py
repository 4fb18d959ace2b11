"""Settings of ``rkit diffuse`` and ``rkit diffuse-prepare``: the one place their defaults live.

``None`` means "choose from the collection" (see :func:`retrievalkit.diffusion.rank.resolve_config`). Kept free of
torch so that the command line can show the defaults without importing it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from retrievalkit.configs.checks import at_least, one_of, positive, within

METHODS = ("cg", "truncated", "spectral", "hybrid", "none")
EXPANSIONS = ("none", "aqe", "alpha-qe")
POOLS = ("max", "sum")


@dataclass
class DiffusionConfig:
    """Settings of one diffusion run. ``None`` means "choose from the collection" (see :func:`resolve_config`)."""

    method: str = "cg"
    qe: str = "none"
    qe_n: int = 10
    qe_alpha: float = 3.0
    dba: bool = False
    dba_k: int = 10
    dba_alpha: float = 3.0
    graph_k: int | None = None
    mutual: bool = True
    gamma: float = 3.0
    alpha: float = 0.99
    query_k: int = 10
    iters: int = 20
    tol: float = 1e-6
    trunc_n: int = 1000
    rank: int | None = None
    fuse: float | None = None
    pool: str = "max"
    top_k: int = 1000
    block_size: int | None = None

    def __post_init__(self) -> None:
        one_of("method", self.method, METHODS)
        one_of("qe", self.qe, EXPANSIONS)
        one_of("pool", self.pool, POOLS)
        within("alpha", self.alpha, 0.0, 1.0, open_low=True, open_high=True)
        for name in ("qe_n", "dba_k", "query_k", "trunc_n", "top_k", "graph_k", "rank", "block_size"):
            at_least(name, getattr(self, name), 1)
        at_least("iters", self.iters, 0 if self.method == "hybrid" else 1)  # hybrid, 0: the spectral part alone
        positive("gamma", self.gamma)
        positive("tol", self.tol)
        positive("qe_alpha", self.qe_alpha)
        positive("dba_alpha", self.dba_alpha)
        within("fuse", self.fuse, 0.0, 1.0)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class PropagationConfig:
    """Settings of ``rkit propagate``; ``graph_k=None``: 1 % of the images within [5, 50] (as ``rkit diffuse``)."""

    graph_k: int | None = None
    mutual: bool = True
    gamma: float = 3.0
    alpha: float = 0.99
    iters: int = 20
    tol: float = 1e-6

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Refuse invalid settings (before any file is read)."""
        within("alpha", self.alpha, 0.0, 1.0, open_low=True, open_high=True)
        at_least("iters", self.iters, 1)
        positive("gamma", self.gamma)
        positive("tol", self.tol)
        at_least("graph_k", self.graph_k, 1)

    def resolve(self, n: int, graph_k_available: int | None = None) -> PropagationConfig:
        """Validated copy with the automatic graph k filled for ``n`` images."""
        from retrievalkit.diffusion.rank import resolve_graph_k

        self.check()
        out = dataclasses.replace(self)
        out.graph_k = resolve_graph_k(out.graph_k, n, graph_k_available)
        return out
