"""Settings of ``rkit copy-detect`` (DISC21): the one place their defaults live.

The defaults are the documented pipeline: EfficientNet-Lite0 GeM at 320 px, six query views (full, centre crop,
2×2 grid) combined by max, PCA-whitening (256-d) and score normalisation (SSCD: β = 1, mean of the top 3) learned
on the training images, and SIFT + RANSAC verification of each query's top 10.

Rule shared by the library and the CLI: PCA-whitening and score normalisation are learned on the training images.
Their settings ``dim`` and ``norm_beta`` default to None, which means "on (256, 1.0) with training images, off
without"; a value given explicitly without training images is refused (:meth:`CopyDetectConfig.resolved`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from retrievalkit.configs.checks import at_least, one_of, positive, within
from retrievalkit.configs.verify import PROMOTE, VerifyParams
from retrievalkit.errors import UsageError

VIEW_NAMES = ("full", "center", "grid")
COMBINE = ("max", "mean")
STATS = ("mean", "kth")
#: with training images: PCA-whitening dimension and normalisation weight
TRAINED_DIM = 256
TRAINED_NORM_BETA = 1.0


@dataclass
class VerifyConfig(VerifyParams):
    """Local verification of copy candidates: the spatial check's settings type
    (:class:`~retrievalkit.configs.verify.VerifyParams`, the one type of that step) with copy detection's
    defaults (literature values: affine model for crops/scaling/rotation/overlays, Lowe's ratio 0.8, a few pixels
    of RANSAC error), plus the image size and the score bonus. ``shortlist`` (``rkit copy-detect --shortlist``)
    is the number of candidates per query to verify (0: none).

    Which pairs get the bonus (``promote``): ``significant`` (default) — pairs whose a-contrario number of false
    alarms is below ``nfa``, counted over **every pair verified in the run** (all queries' shortlists, twice with
    ``flip``), because the matching track's µAP pools all queries into one list, so a chance verification of any
    query costs; ``min-inliers`` — pairs with at least ``min_inliers`` inliers (the rule of earlier versions).
    """

    shortlist: int = 10      # candidates per query to verify
    method: str = "affine"
    ratio: float | None = 0.8  # Lowe's ratio test
    threshold: float | None = 5.0  # RANSAC reprojection threshold at ``size`` pixels
    min_inliers: int = 12    # with promote="min-inliers": fewer inliers count as no geometric evidence
    size: int = 512          # longer image side for SIFT
    max_keypoints: int = 1000
    half: float = 20.0       # inliers at which half of the bonus is given
    bonus: float = 1.0       # bonus for a saturated match (global scores live in about [-1, 1])
    flip: bool = True        # also try the mirrored query

    @property
    def top(self) -> int:
        """Candidates per query to verify (the shortlist)."""
        return self.shortlist

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        at_least("shortlist", self.shortlist, 0)
        at_least("min_inliers", self.min_inliers, 4)
        one_of("promote", self.promote, PROMOTE)
        positive("nfa", self.nfa)
        if self.size < 32 or self.max_keypoints < 8 or not 0 < (self.ratio or 1) <= 1:
            raise UsageError("verification: need size >= 32, keypoints >= 8, 0 < ratio <= 1")
        if self.half <= 0 or self.bonus < 0:
            raise UsageError("verification: need half > 0 and bonus >= 0")
        one_of("method", self.method, ("homography", "affine", "fundamental"))
        if self.view_tilts:
            raise UsageError("verification of copy candidates takes no view tilts")


@dataclass
class CopyDetectConfig:
    """Every setting of a copy-detection run (the defaults are the literature's, not tuned on any dev set).

    Attributes:
        model, weights, size, scales: the global descriptor (backbone name or model file; longer side in pixels).
        query_views: views of each query (``full``, ``center``, ``grid``; see :mod:`retrievalkit.copydetect.crops`).
        combine: ``max`` (best view per reference) or ``mean`` (one averaged descriptor).
        dim: PCA-whitening dimension learned on the training images (0: off; None: 256 with training images, off
            without). shrinkage: covariance shrinkage towards a scaled identity, in [0, 1].
        norm_beta, norm_k, norm_stat: score normalisation s' = s − β·b(q) (β = 0: off; None: 1 with training
            images, off without), SSCD's β=1, mean of the top 3.
        top_k, max_rows: rows kept per query and overall (matching track).
        verify: local verification settings, or None (off).
        device, workers, block_size: where and how fast (queries per search block).
    """

    model: str = "efficientnet-lite0"
    weights: str | None = None
    size: int | None = 320
    scales: tuple[float, ...] = (1.0,)
    query_views: str = "full,center,grid"
    combine: str = "max"
    dim: int | None = None
    shrinkage: float = 0.0
    norm_beta: float | None = None
    norm_k: int = 3
    norm_stat: str = "mean"
    top_k: int = 10
    max_rows: int | None = None
    verify: VerifyConfig | None = field(default_factory=VerifyConfig)
    device: str = "cpu"
    workers: int = 2
    block_size: int = 4096
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.scales = tuple(float(s) for s in self.scales)
        self.check()

    def check(self) -> None:
        views = [t.strip() for t in self.query_views.split(",") if t.strip()]
        if not views:
            raise UsageError("--query-views: give at least one of " + ", ".join(VIEW_NAMES))
        for v in views:
            one_of("query_views", v, VIEW_NAMES)
        one_of("combine", self.combine, COMBINE)
        one_of("norm_stat", self.norm_stat, STATS)
        at_least("norm_beta", self.norm_beta, 0)
        at_least("norm_k", self.norm_k, 1)
        at_least("dim", self.dim, 0)
        within("shrinkage", self.shrinkage, 0.0, 1.0)
        at_least("top_k", self.top_k, 1)
        at_least("max_rows", self.max_rows, 1)
        at_least("workers", self.workers, 0)
        at_least("block_size", self.block_size, 1)
        for s in self.scales:
            positive("scales", s)
        if self.size is not None and self.size != 0 and self.size < 16:
            raise UsageError(f"--size {self.size}: too small (use at least 16 pixels, or 0 for the original size)")
        if self.verify is not None:
            self.verify.check()

    def resolved(self, has_training: bool) -> CopyDetectConfig:
        """The settings of a run with or without training images: ``dim``/``norm_beta`` None become 256/1.0 with
        training images and 0 without; a non-zero value given without training images is a UsageError."""
        if has_training:
            return replace(self, dim=TRAINED_DIM if self.dim is None else self.dim,
                           norm_beta=TRAINED_NORM_BETA if self.norm_beta is None else self.norm_beta)
        for name, value in (("--dim", self.dim), ("--norm-beta", self.norm_beta)):
            if value:
                raise UsageError(f"{name} {value:g}: PCA-whitening and score normalisation are learned on the "
                                 "training images; give --training, or leave the option out (off without them)")
        return replace(self, dim=0, norm_beta=0.0)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["scales"] = list(self.scales)
        return d
