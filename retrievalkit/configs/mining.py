"""Settings of ``rkit manifold-mine`` and ``rkit sfm-mine``: the one place their defaults live."""

from __future__ import annotations

from dataclasses import dataclass

from retrievalkit.configs.checks import at_least, one_of, positive, within

MANIFOLD_METHODS = ("manifold", "euclidean")
POSITIVES = ("random", "most-shared", "closest")
MATCHERS = ("exhaustive", "sequential")


@dataclass
class ManifoldMineConfig:
    """Mining on Manifolds (Iscen et al. CVPR 2018).

    Attributes:
        method: ``manifold`` (hard positives/negatives) or ``euclidean`` (plain kNN baseline).
        anchors: anchors kept (most probable graph modes). k_pos / k_neg: the top-k of each space compared.
        max_pos / max_neg: at most this many per anchor (0: all).
        gamma, alpha, iters: affinity exponent, diffusion alpha in (0, 1), conjugate-gradient iterations.
        graph_k: use only the first k neighbours of the graph (None: all). mutual: keep mutual kNN edges only
            (the same default as ``rkit diffuse``).
        block_size: anchors per diffusion solve. seed: random seed (euclidean negatives).
    """

    method: str = "manifold"
    anchors: int = 100
    k_pos: int = 10
    k_neg: int = 10
    max_pos: int = 0
    max_neg: int = 0
    gamma: float = 3.0
    alpha: float = 0.99
    iters: int = 20
    graph_k: int | None = None
    mutual: bool = True
    block_size: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        one_of("method", self.method, MANIFOLD_METHODS)
        for name in ("anchors", "k_pos", "k_neg", "iters", "graph_k", "block_size"):
            at_least(name, getattr(self, name), 1)
        at_least("max_pos", self.max_pos, 0)
        at_least("max_neg", self.max_neg, 0)
        positive("gamma", self.gamma)
        within("alpha", self.alpha, 0.0, 1.0, open_low=True, open_high=True)


@dataclass
class SfmMineConfig:
    """Tuples from Structure-from-Motion models (pycolmap); see ``retrievalkit.mining.sfm.sfm_mine``.

    Attributes:
        positive: random, most-shared or closest. per_query: positives per query image.
        min_overlap, max_scale, min_shared: what makes an image a positive (fraction of the query's 3D points,
            scale change either way, shared points). negatives: fixed random negatives per tuple.
        val_fraction: queries held out as validation pairs, in [0, 1).
        sift_size, max_features, matcher, overlap, min_model_size, relaxed_init, mapper_trials, timeout:
            reconstruction (``SfmOptions``; threads come from ``rkit --threads``).
        model, size: global descriptors when none are given. graph_k, cluster_threshold: flat-folder clustering.
        retry_failed: reconstruct scenes that failed in an earlier run. seed: positives, negatives, mapper.
    """

    positive: str = "random"
    per_query: int = 1
    min_overlap: float = 0.2
    max_scale: float = 1.5
    min_shared: int = 10
    negatives: int = 5
    val_fraction: float = 0.0
    sift_size: int = 1024
    max_features: int = 4096
    matcher: str = "exhaustive"
    overlap: int = 10
    min_model_size: int = 3
    relaxed_init: bool = True
    mapper_trials: int = 3
    timeout: float = 0.0
    model: str = "efficientnet-lite0"
    size: int = 512
    graph_k: int = 5
    cluster_threshold: float = 0.65
    retry_failed: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        one_of("positive", self.positive, POSITIVES)
        one_of("matcher", self.matcher, MATCHERS)
        for name in ("per_query", "min_shared", "max_features", "overlap", "min_model_size", "mapper_trials",
                     "graph_k"):
            at_least(name, getattr(self, name), 1)
        at_least("sift_size", self.sift_size, 64)
        at_least("size", self.size, 16)
        at_least("negatives", self.negatives, 0)
        at_least("timeout", self.timeout, 0)
        at_least("max_scale", self.max_scale, 1.0)
        within("min_overlap", self.min_overlap, 0.0, 1.0)
        within("val_fraction", self.val_fraction, 0.0, 1.0, open_high=True)
        within("cluster_threshold", self.cluster_threshold, -1.0, 1.0)
