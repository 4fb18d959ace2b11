"""Settings of ``rkit whiten`` (learn) and ``rkit whiten apply``: the one place their defaults live."""

from __future__ import annotations

from dataclasses import dataclass

from retrievalkit.configs.checks import at_least, one_of, within

WHITEN_METHODS = ("pca", "learned")


@dataclass
class WhitenConfig:
    """method: ``pca`` or ``learned`` (from tuples' pairs); dim: output dimension (None: all); shrinkage of the
    covariance towards a scaled identity, in [0, 1]; power: pca eigenvalue power (0.5 full whitening, 0 plain PCA)."""

    method: str = "pca"
    dim: int | None = None
    shrinkage: float = 0.0
    power: float = 0.5

    def __post_init__(self) -> None:
        one_of("method", self.method, WHITEN_METHODS)
        at_least("dim", self.dim, 1)
        within("shrinkage", self.shrinkage, 0.0, 1.0)
        within("power", self.power, 0.0, 1.0)


@dataclass
class ApplyWhiteningConfig:
    """dim: keep only the first ``dim`` whitened dimensions (None: all)."""

    dim: int | None = None

    def __post_init__(self) -> None:
        at_least("dim", self.dim, 1)
