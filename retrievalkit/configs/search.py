"""Settings of the ``rkit index`` stages: exact search, kNN graph, ASMK* index and search, rank fusion.

The one place their defaults live: the CLI fills only the options a user gave, and the library functions take
the same values (``tests/cli/test_defaults.py`` checks that they agree). Values are checked in ``__post_init__``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from retrievalkit.configs.checks import at_least, positive, within


@dataclass
class SearchConfig:
    """``rkit index search``: exact inner-product search. top_k: results kept per query; block_size: queries
    per block (bounds memory)."""

    top_k: int = 100
    block_size: int = 4096

    def __post_init__(self) -> None:
        at_least("top_k", self.top_k, 1)
        at_least("block_size", self.block_size, 1)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class KnnConfig(SearchConfig):
    """``rkit index knn``: each database item's top_k nearest others (self excluded); block_size rows at a time."""

    top_k: int = 50


@dataclass
class AsmkConfig:
    """``rkit index asmk``: the ASMK* index of database locals.

    Attributes:
        codebook_size: visual words (None: a power of two near descriptors/256, within 256..65536).
        ma: multiple assignment, words per database descriptor. block_size: database images added at a time.
        iters: k-means iterations. seed: k-means seed (of the first codebook).
        codebooks: codebooks trained (seeds seed, seed + 1, ...) and indexed in the one file; search averages
            their scores.
    """

    codebook_size: int | None = None
    ma: int = 1
    block_size: int = 500
    iters: int = 10
    seed: int = 0
    codebooks: int = 1

    def __post_init__(self) -> None:
        at_least("codebook_size", self.codebook_size, 2)
        at_least("ma", self.ma, 1)
        at_least("block_size", self.block_size, 1)
        at_least("iters", self.iters, 1)
        at_least("codebooks", self.codebooks, 1)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class AsmkSearchConfig:
    """``rkit index search-asmk``: top_k results kept per query; ma words per query descriptor; selectivity
    exponent alpha and threshold tau (on the word similarity, in [-1, 1])."""

    top_k: int = 100
    ma: int = 5
    alpha: float = 3.0
    tau: float = 0.0

    def __post_init__(self) -> None:
        at_least("top_k", self.top_k, 1)
        at_least("ma", self.ma, 1)
        positive("alpha", self.alpha)
        within("tau", self.tau, -1.0, 1.0)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FuseConfig:
    """``rkit index fuse``: top_k results kept per query after summing per-query z-scores."""

    top_k: int = 100

    def __post_init__(self) -> None:
        at_least("top_k", self.top_k, 1)

    def to_dict(self) -> dict:
        return asdict(self)
