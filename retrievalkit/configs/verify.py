"""Settings of ``rkit verify``: spatial verification of each query's shortlist (the one place the defaults live)."""

from __future__ import annotations

from dataclasses import dataclass

from retrievalkit.configs.checks import at_least, one_of, positive, within

GEOMETRIES = ("homography", "affine", "fundamental")
#: RANSAC models, and Hough Pyramid Matching (no model fitted)
METHODS = GEOMETRIES + ("hpm",)
#: which images move up: a-contrario significant ones, or those with a fixed number of inliers (the old rule)
PROMOTE = ("significant", "min-inliers")
DEFAULT_SHORTLIST = 100
DEFAULT_MIN_INLIERS = 10
#: the a-contrario convention: fewer than one chance verification expected per query
DEFAULT_NFA = 1.0


@dataclass
class VerifyParams:
    """Matching and RANSAC settings of ``rkit verify``.

    Attributes:
        shortlist: the top of each query's list that is verified (the rest keeps its order below).
        method: geometric model fitted by RANSAC (homography, affine or fundamental), or hpm: Hough Pyramid
            Matching (relaxed matching in similarity-transformation space, no model fitted).
        ratio: Lowe's ratio test (0: off); None: 0.8 for SIFT locals, off for deep locals.
        mutual: keep mutual nearest neighbours only.
        threshold: RANSAC inlier threshold in pixels of the original images; None: 8 for SIFT, for deep
            locals half the median feature cell of the tentative matches (at least 8).
        promote: which images of the shortlist move up: ``significant`` — those whose number of false alarms
            (the expected number of chance verifications as good, a-contrario, over the shortlist) is below
            ``nfa``; ``min-inliers`` — those with at least ``min_inliers`` inliers (the fixed-count rule of
            earlier versions). The others keep their original order, below the promoted ones.
        nfa: with ``promote='significant'``, the largest number of false alarms that counts as evidence (ε).
        min_inliers: with ``promote='min-inliers'``, inliers needed to count an image as verified.
        max_iters: RANSAC iterations.
        view_tilts: ASIFT-style simulated tilts of the query (SIFT locals only), e.g. (2, 4, 6); () = off.
    """

    shortlist: int = DEFAULT_SHORTLIST
    method: str = "homography"
    ratio: float | None = None
    mutual: bool = True
    threshold: float | None = None
    promote: str = "significant"
    nfa: float = DEFAULT_NFA
    min_inliers: int = DEFAULT_MIN_INLIERS
    max_iters: int = 2000
    view_tilts: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        self.view_tilts = tuple(float(t) for t in self.view_tilts)
        at_least("shortlist", self.shortlist, 1)
        one_of("method", self.method, METHODS)
        one_of("promote", self.promote, PROMOTE)
        positive("nfa", self.nfa)
        within("ratio", self.ratio, 0.0, 1.0)
        positive("threshold", self.threshold)
        at_least("min_inliers", self.min_inliers, 1)
        at_least("max_iters", self.max_iters, 1)
        if any(t <= 1 for t in self.view_tilts):
            from retrievalkit.errors import UsageError

            raise UsageError(f"--view-tilts {','.join(f'{t:g}' for t in self.view_tilts)}: each tilt must be > 1")
