"""Training losses on L2-normalised embeddings: contrastive, triplet, the Recall@k surrogate and the joint loss.

Tuple losses take the batch embeddings ``e`` (B, D) and, per tuple t, the row of its query ``qi[t]``, of its
positive ``pi[t]`` and of its negatives ``ni[t]`` (M rows, -1 pads). They return the mean over tuples of the
per-tuple sum, as cirtorch sums over the pairs of one tuple.

Example:
    >>> loss = contrastive_loss(e, qi, pi, ni, margin=0.7)
    >>> loss = recall_k_loss(e[qi] @ e.T, pos, neg, ks=(1, 2, 4, 8, 16))
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from retrievalkit.configs.train import LOSSES  # noqa: F401  (re-exported)
from retrievalkit.errors import UsageError

DEFAULT_KS = (1, 2, 4, 8, 16)


def _tuple_index(e: torch.Tensor, qi, pi, ni) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    qi = torch.as_tensor(qi, dtype=torch.long, device=e.device)
    pi = torch.as_tensor(pi, dtype=torch.long, device=e.device)
    ni = torch.as_tensor(ni, dtype=torch.long, device=e.device).reshape(qi.shape[0], -1)
    if e.dim() != 2 or qi.dim() != 1 or qi.shape != pi.shape or qi.numel() == 0:
        raise UsageError(f"tuple loss: expected e (B, D) and equal (T,) qi/pi, got {tuple(e.shape)}, "
                         f"{tuple(qi.shape)}, {tuple(pi.shape)}")
    return qi, pi, ni


def _weighted_mean(loss: torch.Tensor, weight) -> torch.Tensor:
    """Mean over tuples of ``weight * loss`` (weight None: plain mean); weights come from pseudo-labelled tuples."""
    if weight is None:
        return loss.mean()
    w = torch.as_tensor(weight, dtype=loss.dtype, device=loss.device).reshape(-1)
    if w.shape != loss.shape:
        raise UsageError(f"tuple loss: {w.numel()} weights for {loss.numel()} tuples")
    return (w * loss).mean()


def contrastive_loss(e: torch.Tensor, qi, pi, ni, margin: float = 0.7, weight=None) -> torch.Tensor:
    """Contrastive loss (Hadsell et al.; cirtorch): per tuple ``0.5 d(q,p)^2 + sum_n 0.5 max(0, margin - d(q,n))^2``.

    ``d`` is the Euclidean distance. Returns the mean over tuples (a scalar), each tuple's loss times its
    ``weight`` (T,) if given.
    """
    qi, pi, ni = _tuple_index(e, qi, pi, ni)
    dp = torch.linalg.vector_norm(e[qi] - e[pi], dim=1)
    loss = 0.5 * dp.pow(2)
    if ni.shape[1]:
        valid = ni >= 0
        dn = torch.linalg.vector_norm(e[qi].unsqueeze(1) - e[ni.clamp_min(0)], dim=2)
        loss = loss + (0.5 * torch.clamp(margin - dn, min=0).pow(2) * valid).sum(dim=1)
    return _weighted_mean(loss, weight)


def triplet_loss(e: torch.Tensor, qi, pi, ni, margin: float = 0.1, weight=None) -> torch.Tensor:
    """Triplet loss (cirtorch): per tuple ``sum_n max(0, ||q-p||^2 - ||q-n||^2 + margin)``; mean over tuples
    (each times its ``weight`` if given)."""
    qi, pi, ni = _tuple_index(e, qi, pi, ni)
    if ni.shape[1] == 0:
        raise UsageError("triplet loss needs at least one negative per tuple")
    valid = ni >= 0
    dp = (e[qi] - e[pi]).pow(2).sum(dim=1, keepdim=True)
    dn = (e[qi].unsqueeze(1) - e[ni.clamp_min(0)]).pow(2).sum(dim=2)
    return _weighted_mean((torch.clamp(dp - dn + margin, min=0) * valid).sum(dim=1), weight)


def recall_k_loss(sim: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, ks: Sequence[int] = DEFAULT_KS,
                  tau1: float = 1.0, tau2: float = 0.01, chunk: int = 64, weight=None) -> torch.Tensor:
    """Recall@k surrogate loss (Patel, Tolias & Matas, CVPR 2022).

    For query a and a positive i, the rank is relaxed with a sigmoid of temperature ``tau2``::

        rank(a, i) = 1 + sum_{j in pos(a) u neg(a), j != i} sigmoid((s_aj - s_ai) / tau2)

    and recall at k with a sigmoid of temperature ``tau1``::

        R_k(a) = min(k, sum_{i in pos(a)} sigmoid((k - rank(a, i)) / tau1)) / min(k, |pos(a)|)

    The loss is ``1 - mean_k mean_a R_k(a)`` over queries with at least one positive.

    Args:
        sim: (Q, N) similarities of each query to the N database items of the batch.
        pos, neg: (Q, N) bool masks; items in neither (the query itself, unlabelled pairs) are ignored.
        ks: the k values averaged over.
        tau1, tau2: temperatures of the recall and of the rank sigmoids.
        chunk: queries processed at once (memory is chunk * N * N).
        weight: optional (Q,) weight per query (pseudo-labelled tuples): ``R_k(a)`` counts ``weight_a`` times.
    Returns:
        a scalar tensor.
    """
    if sim.dim() != 2 or pos.shape != sim.shape or neg.shape != sim.shape:
        raise UsageError(f"recall_k_loss: sim, pos and neg must share one (Q, N) shape, got {tuple(sim.shape)}, "
                         f"{tuple(pos.shape)}, {tuple(neg.shape)}")
    if (pos & neg).any():
        raise UsageError("recall_k_loss: an item is both positive and negative for a query")
    pos, neg = pos.bool(), neg.bool()
    has_pos = pos.any(dim=1)
    if not has_pos.any():
        raise UsageError("recall_k_loss: no query has a positive in the batch")
    wq = None if weight is None else torch.as_tensor(weight, dtype=sim.dtype, device=sim.device).reshape(-1)
    if wq is not None and wq.shape[0] != sim.shape[0]:
        raise UsageError(f"recall_k_loss: {wq.shape[0]} weights for {sim.shape[0]} queries")
    sim, pos, neg = sim[has_pos], pos[has_pos], neg[has_pos]
    wq = None if wq is None else wq[has_pos]
    ks_t = torch.as_tensor([float(k) for k in ks], dtype=sim.dtype, device=sim.device)
    total = sim.new_zeros(())
    n = sim.shape[1]
    eye = torch.eye(n, dtype=torch.bool, device=sim.device)
    for s in range(0, sim.shape[0], chunk):
        S, Pm, Nm = sim[s:s + chunk], pos[s:s + chunk], neg[s:s + chunk]
        counted = (Pm | Nm).unsqueeze(1) & ~eye  # (c, i, j): j counts in the rank of i
        diff = (S.unsqueeze(1) - S.unsqueeze(2)) / tau2  # [c, i, j] = s_j - s_i
        rank = 1.0 + (torch.sigmoid(diff) * counted).sum(dim=2)  # (c, N)
        soft = torch.sigmoid((ks_t.view(1, 1, -1) - rank.unsqueeze(2)) / tau1) * Pm.unsqueeze(2)  # (c, N, K)
        npos = Pm.sum(dim=1, keepdim=True).to(sim.dtype)  # (c, 1)
        recall = torch.minimum(soft.sum(dim=1), ks_t.view(1, -1)) / torch.minimum(ks_t.view(1, -1), npos)
        r = recall.mean(dim=1)
        total = total + (r.sum() if wq is None else (wq[s:s + chunk] * r).sum())
    if wq is None:
        return 1.0 - total / sim.shape[0]
    return (wq.sum() - total) / sim.shape[0]  # mean over queries of weight * (1 - recall)


def similarity_mixup(e: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, qrows: torch.Tensor,
                     generator: torch.Generator | None = None, max_virtual: int = 4096
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SiMix (Patel et al.): virtual database items that mix two positives of each other.

    For every pair (i, j) of batch rows that are positives of each other (``pos`` over all rows, (B, B)), a
    virtual embedding ``v = a e_i + (1 - a) e_j`` (a ~ U(0, 1), not re-normalised, so its similarity to a query
    is the same mixture of the two similarities) joins the database. It is a positive of query q when both i
    and j are, a negative when both are negatives, and ignored otherwise.

    Args:
        e: (B, D) embeddings. pos, neg: (B, B) bool masks over all rows. qrows: (Q,) rows that are queries.
    Returns:
        (e_aug (B + V, D), pos_q (Q, B + V), neg_q (Q, B + V)).
    """
    ii, jj = torch.nonzero(torch.triu(pos, diagonal=1), as_tuple=True)
    if ii.numel() > max_virtual:
        keep = torch.randperm(ii.numel(), generator=generator)[:max_virtual].to(ii.device)
        ii, jj = ii[keep], jj[keep]
    a = torch.rand(ii.numel(), 1, generator=generator).to(e.device, e.dtype)
    v = a * e[ii] + (1 - a) * e[jj]
    pq, nq = pos[qrows], neg[qrows]
    pos_v = pq[:, ii] & pq[:, jj]
    neg_v = nq[:, ii] & nq[:, jj]
    return torch.cat([e, v]), torch.cat([pq, pos_v], dim=1), torch.cat([nq, neg_v], dim=1)


# --- joint loss: pairwise ranking + landmark classification, balanced by learned weights ---------------------


def adacos_scale(num_classes: int) -> float:
    """AdaCos' fixed scale ``sqrt(2) ln(C - 1)`` (Zhang et al., CVPR 2019) of a cosine classifier over C classes."""
    if num_classes < 3:
        raise UsageError(f"--loss joint: {num_classes} landmark classes (clusters) give no default --cls-scale "
                         "(sqrt(2) ln(C - 1) needs C >= 3); pass --cls-scale")
    return math.sqrt(2.0) * math.log(num_classes - 1)


def cosine_classification_loss(e: torch.Tensor, labels, prototypes: torch.Tensor, scale: float,
                               weight=None) -> torch.Tensor | None:
    """Softmax cross-entropy of a normalised-weights cosine classifier (NormFace, Wang et al. 2017).

    Logits are ``scale * cos(e_r, w_c)`` for the L2-normalised class prototypes ``w_c`` (rows of ``prototypes``,
    (C, D)). Rows with label -1 (no landmark class) are left out; the result is the mean over labelled rows of
    ``weight_r * CE_r`` (``weight`` (B,) or None for 1), or None when no row is labelled.
    """
    labels = torch.as_tensor(labels, dtype=torch.long, device=e.device).reshape(-1)
    if labels.shape[0] != e.shape[0]:
        raise UsageError(f"classification loss: {labels.shape[0]} labels for {e.shape[0]} rows")
    keep = labels >= 0
    if not bool(keep.any()):
        return None
    en = torch.nn.functional.normalize(e[keep], dim=1)
    wn = torch.nn.functional.normalize(prototypes, dim=1)
    ce = torch.nn.functional.cross_entropy(scale * en @ wn.T, labels[keep], reduction="none")
    if weight is None:
        return ce.mean()
    w = torch.as_tensor(weight, dtype=ce.dtype, device=ce.device).reshape(-1)[keep]
    return (w * ce).mean()


def uncertainty_weighted(terms: Sequence[torch.Tensor | None], log_vars: torch.Tensor) -> torch.Tensor:
    """Homoscedastic-uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018): ``sum_i exp(-s_i) L_i + s_i``.

    ``s_i = log sigma_i^2`` are learned with the network. A naive learned weight ``w L`` would collapse to 0;
    here the ``+ s_i`` term stops that: for fixed L_i the optimum is ``s_i = log L_i``, so each weighted term
    settles near 1 and the terms are balanced by their own scale. Terms that are None (nothing to classify in
    the batch) are left out together with their ``s_i``, which then gets no gradient.
    """
    if len(terms) != log_vars.shape[0]:
        raise UsageError(f"uncertainty_weighted: {len(terms)} terms for {log_vars.shape[0]} log-variances")
    total = log_vars.new_zeros(())
    for i, term in enumerate(terms):
        if term is not None:
            total = total + torch.exp(-log_vars[i]) * term + log_vars[i]
    return total


class JointLoss(torch.nn.Module):
    """``--loss joint``: contrastive loss on the tuples + cosine-classifier cross-entropy over the landmark classes
    (the tuples' clusters), balanced by two learned log-variances (:func:`uncertainty_weighted`)::

        L = exp(-s_rank) L_contrastive + s_rank + exp(-s_cls) L_classification + s_cls

    The class prototypes (C, D) and ``log_vars = (s_rank, s_cls)`` are training-only parameters: they go into the
    optimiser and the training state, never into the descriptor network that ``rkit extract`` loads.
    ``last_terms`` holds the two loss values of the last call (floats, for the log).
    """

    def __init__(self, num_classes: int, dim: int, scale: float | None = None, margin: float = 0.7):
        super().__init__()
        if num_classes < 2:
            raise UsageError(f"--loss joint needs at least 2 landmark classes (clusters), found {num_classes}")
        self.scale = adacos_scale(num_classes) if scale is None else float(scale)
        if not self.scale > 0:
            raise UsageError(f"--cls-scale {scale}: must be positive")
        self.margin = float(margin)
        gen = torch.Generator().manual_seed(0)  # placeholders until imprint(); the global RNG stays untouched
        self.prototypes = torch.nn.Parameter(torch.nn.functional.normalize(torch.randn(num_classes, dim, generator=gen),
                                                                           dim=1))
        self.log_vars = torch.nn.Parameter(torch.zeros(2))
        self.last_terms: tuple[float, float | None] = (float("nan"), None)

    @torch.no_grad()
    def imprint(self, e: torch.Tensor, labels) -> None:
        """Set each class prototype to the normalised mean of its images' embeddings (weight imprinting, Qi, Brown &
        Lowe, CVPR 2018); classes without an image keep their random unit vector."""
        labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
        en = torch.nn.functional.normalize(e.to(self.prototypes), dim=1)
        for c in torch.unique(labels[labels >= 0]).tolist():
            self.prototypes[c] = torch.nn.functional.normalize(en[labels == c].mean(dim=0), dim=0)

    def forward(self, e: torch.Tensor, qi, pi, ni, labels, weight=None, row_weight=None) -> torch.Tensor:
        """``e`` (B, D) batch embeddings; tuples as in :func:`contrastive_loss`; ``labels`` (B,) class per row
        (-1: none); ``weight`` (T,) per-tuple and ``row_weight`` (B,) per-row weights, None for 1."""
        rank = contrastive_loss(e, qi, pi, ni, self.margin, weight=weight)
        cls = cosine_classification_loss(e, labels, self.prototypes.to(e.dtype), self.scale, weight=row_weight)
        self.last_terms = (float(rank.detach()), None if cls is None else float(cls.detach()))
        return uncertainty_weighted((rank, cls), self.log_vars.to(e.dtype))


# ------------------------------------------------------------------ self-supervised (SSCD, Pizzi et al. 2022)


def _view_labels(e: torch.Tensor, labels) -> torch.Tensor:
    lab = torch.as_tensor(labels, dtype=torch.long, device=e.device).reshape(-1)
    if e.dim() != 2 or lab.shape[0] != e.shape[0] or e.shape[0] < 2:
        raise UsageError(f"view loss: expected e (B, D) with B >= 2 and B labels, got {tuple(e.shape)}, "
                         f"{tuple(lab.shape)}")
    return lab


def infonce_loss(e: torch.Tensor, labels, temperature: float = 0.05) -> torch.Tensor:
    """InfoNCE (NT-Xent) over the views of a batch: rows with the same label (views of one image) are positives,
    every other row a negative.

    For row i with positives P(i) (same label, not i): ``−mean_{p∈P(i)} log softmax_{j≠i}(e_i·e_j / τ)_p``,
    averaged over the rows that have a positive (with two views per image, the NT-Xent loss of SimCLR over 2N
    views).
    """
    lab = _view_labels(e, labels)
    if temperature <= 0:
        raise UsageError(f"--temperature {temperature}: must be > 0")
    b = e.shape[0]
    eye = torch.eye(b, dtype=torch.bool, device=e.device)
    logits = (e @ e.T) / temperature
    logits = logits.masked_fill(eye, float("-inf"))
    logp = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    pos = (lab[:, None] == lab[None, :]) & ~eye
    npos = pos.sum(1)
    has = npos > 0
    if not bool(has.any()):
        raise UsageError("infonce: no row has a positive (each image needs at least two views in the batch)")
    per_row = -(logp.masked_fill(~pos, 0.0).sum(1)[has] / npos[has])
    return per_row.mean()


def entropy_loss(e: torch.Tensor, labels, eps: float = 1e-8) -> torch.Tensor:
    """SSCD's differential-entropy (KoLeo) regulariser: ``−mean_i log(min_{j: label_j ≠ label_i} ‖e_i − e_j‖)``.

    The nearest descriptor of another image is pushed away, which spreads the descriptors over the sphere.
    """
    lab = _view_labels(e, labels)
    other = lab[:, None] != lab[None, :]
    if not bool(other.any(1).all()):
        raise UsageError("entropy: every row needs a view of another image in the batch")
    sq = (e * e).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * (e @ e.T)).clamp_min(0.0)
    d2 = d2.masked_fill(~other, float("inf"))
    nearest = d2.min(dim=1).values
    return -0.5 * torch.log(nearest + eps).mean()
