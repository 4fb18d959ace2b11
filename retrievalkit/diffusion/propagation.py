"""Label propagation by diffusion (Iscen, Tolias, Avrithis & Chum, "Label propagation for deep semi-supervised
learning", CVPR 2019): a few labelled images give every image of the collection a class, a confidence and a
weight, transductively.

With the kNN graph of all images (``W_ij = max(s_ij, 0)^gamma``, ``S = D^-1/2 W D^-1/2``, the graph of
``rkit diffuse``) and ``Y`` (N, C) one-hot on the labelled images (zero rows elsewhere), the class scores are
the solution of

    (I - alpha S) Z = Y

for all C classes at once (one batched CG, one column per class). Image i gets the class ``argmax_j z_ij``;
with ``p_i = max(z_i, 0) / sum_j max(z_ij, 0)`` (its scores normalised to a distribution over classes) its
confidence is ``max_j p_ij`` and its pseudo-label weight is the paper's certainty ``1 - H(p_i) / log C``
(H the entropy: 1 for a single class, 0 for a uniform spread). The paper balances classes in the training
loss with ``zeta_j = 1 / (number of images with (pseudo-)label j)``; :func:`class_weights` gives it and
``rkit propagate --tuples`` multiplies it into each training tuple's weight. Labelled images keep their
label (confidence and weight 1). Images the diffusion does not reach (another graph component, beyond
``iters`` hops) take the class of their most similar labelled image, with confidence and weight 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from retrievalkit.configs.diffusion import PropagationConfig
from retrievalkit.diffusion.cg import cg_solve_torch, sparse_operator
from retrievalkit.diffusion.graph import affinity_from_knn, graph_from_vectors, normalize_symmetric
from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.neighbours import Neighbours


@dataclass
class Propagated:
    """Per image: ``label`` (N,) class index, ``confidence`` (N,), ``weight`` (N,), ``reached`` (N,) bool;
    ``scores`` (N, C) the diffusion scores Z; ``config`` the resolved settings."""

    label: np.ndarray
    confidence: np.ndarray
    weight: np.ndarray
    reached: np.ndarray
    scores: np.ndarray
    config: PropagationConfig


def certainty(p: np.ndarray) -> np.ndarray:
    """``1 - H(p) / log C`` per row of a (N, C) matrix of distributions (C = 1: all ones)."""
    c = p.shape[1]
    if c < 2:
        return np.ones(p.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    return np.clip(1.0 - h / np.log(c), 0.0, 1.0)


def propagate_labels(x: np.ndarray, seeds: np.ndarray, n_classes: int, cfg: PropagationConfig | None = None,
                     knn: Neighbours | None = None, device: str = "cpu") -> Propagated:
    """Diffuse the labels of a few images over the kNN graph of all of them.

    Args:
        x: (N, D) L2-normalised descriptors.
        seeds: (N,) int class index of each labelled image, -1 for the unlabelled ones.
        n_classes: C (class indices lie in 0..C-1; a class without a labelled image is never predicted).
        knn: ``(scores (N, k), ids (N, k))`` kNN list of ``x`` (``rkit index knn``); None: exact search here.
    Returns:
        :class:`Propagated`.
    """
    cfg = cfg or PropagationConfig()
    x = np.ascontiguousarray(x, dtype=np.float32)
    seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
    n = x.shape[0]
    if x.ndim != 2 or seeds.shape[0] != n:
        raise UsageError(f"label propagation: {seeds.shape[0]} seeds for descriptors of shape {x.shape}")
    if n < 2:
        raise BadInputError(f"label propagation needs at least 2 images, found {n}")
    if seeds.max(initial=-1) >= n_classes or seeds.min(initial=0) < -1:
        raise UsageError(f"label propagation: seed classes must lie in -1..{n_classes - 1}")
    lab = np.flatnonzero(seeds >= 0)
    if lab.size == 0:
        raise BadInputError("label propagation: no image is labelled")
    cfg = cfg.resolve(n, None if knn is None else int(knn[1].shape[1]))
    D_g, I_g = knn if knn is not None else graph_from_vectors(x, cfg.graph_k, device=device)
    S = normalize_symmetric(affinity_from_knn(D_g, I_g, gamma=cfg.gamma, mutual=cfg.mutual, k=cfg.graph_k))
    Y = torch.zeros((n, n_classes), dtype=torch.float32, device=device)
    Y[torch.from_numpy(lab).to(device), torch.from_numpy(seeds[lab]).to(device)] = 1.0
    Z, _ = cg_solve_torch(sparse_operator(S, device), Y, cfg.alpha, cfg.iters, cfg.tol)
    Z = Z.cpu().numpy().astype(np.float64)
    Zp = np.maximum(Z, 0.0)
    mass = Zp.sum(axis=1)
    reached = mass > 1e-6 * mass.max(initial=0.0)
    p = Zp / np.where(reached, mass, 1.0)[:, None]
    label = Zp.argmax(axis=1)
    confidence = np.where(reached, p.max(axis=1), 0.0)
    weight = np.where(reached, certainty(p), 0.0)
    if not reached.all():  # not reached: the class of the most similar labelled image, no confidence
        far = np.flatnonzero(~reached)
        sims = x[far] @ x[lab].T
        label[far] = seeds[lab[sims.argmax(axis=1)]]
    label[lab], confidence[lab], weight[lab], reached[lab] = seeds[lab], 1.0, 1.0, True
    return Propagated(label, confidence, weight, reached, Z.astype(np.float32), cfg)


def knn_classify(x: np.ndarray, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The baseline: each image takes the class of its most similar labelled image; confidence = that cosine.

    Labelled images keep their class (confidence 1). Returns (label (N,), confidence (N,)).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    seeds = np.asarray(seeds, dtype=np.int64)
    lab = np.flatnonzero(seeds >= 0)
    if lab.size == 0:
        raise BadInputError("kNN classification: no image is labelled")
    sims = x @ x[lab].T
    best = sims.argmax(axis=1)
    label, conf = seeds[lab[best]], sims[np.arange(len(x)), best].astype(np.float64)
    label[lab], conf[lab] = seeds[lab], 1.0
    return label, conf


def class_weights(label: np.ndarray, n_classes: int) -> np.ndarray:
    """The paper's class balancing ``zeta_j = 1 / |{i : label_i = j}|`` (0 for an empty class)."""
    counts = np.bincount(np.asarray(label, np.int64), minlength=n_classes).astype(np.float64)
    return np.where(counts > 0, 1.0 / np.maximum(counts, 1.0), 0.0)


def class_names(labels: Sequence[str]) -> list[str]:
    """Sorted distinct class names (class index = position)."""
    return sorted(set(labels))
