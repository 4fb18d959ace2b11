"""Training batches built from tuples, and the one- and two-pass gradient of a batch loss.

A batch is the concatenation, per tuple, of its query, its positive and its negatives (rows of the batch;
the same image may occur in several rows). Besides the tuple rows it carries ``pos``/``neg`` masks over all
row pairs (a known matching pair / different clusters) used by the Recall@k loss.

Two-pass large batches (Patel et al.): pass 1 embeds every row without a graph, the loss and its gradient
with respect to the embeddings are computed on the (B, D) matrix, pass 2 re-embeds the rows chunk by chunk
with a graph and back-propagates the matching rows of that gradient. The parameter gradient equals that of the
one-pass batch (the network must be deterministic: eval mode, as ``train`` runs it), while activation memory
is that of one chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from retrievalkit.train.losses import JointLoss, contrastive_loss, recall_k_loss, similarity_mixup, triplet_loss


@dataclass
class Batch:
    images: np.ndarray  # (B,) image index (into the tuples' names) of each row
    qrows: np.ndarray  # (T,) row of each tuple's query
    prows: np.ndarray  # (T,) row of its positive
    nrows: np.ndarray  # (T, M) rows of its negatives, -1 pads
    pos: np.ndarray  # (B, B) bool: rows a, b are a known matching pair (different images)
    neg: np.ndarray  # (B, B) bool: rows a, b are non-matching (different clusters)
    weight: np.ndarray | None = None  # (T,) loss weight per tuple (pseudo-labelled tuples), None: all 1

    def __len__(self) -> int:
        return int(self.images.shape[0])


def pair_keys(qidx: np.ndarray, pidx: np.ndarray, n: int) -> np.ndarray:
    """Sorted unique keys ``min * n + max`` of the undirected pairs (for fast membership tests)."""
    a, b = np.minimum(qidx, pidx), np.maximum(qidx, pidx)
    return np.unique(a.astype(np.int64) * n + b)


def is_pair(keys: np.ndarray, a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    k = np.minimum(a, b).astype(np.int64) * n + np.maximum(a, b)
    pos = np.searchsorted(keys, k)
    pos = np.minimum(pos, len(keys) - 1)
    return (keys[pos] == k) & (a != b)


def build_batch(tuples: Sequence[tuple], cluster: np.ndarray, keys: np.ndarray, n_images: int) -> Batch:
    """Rows and masks of a batch of (query, positive, negatives[, weight]) image-index tuples."""
    images, qrows, prows, nrows = [], [], [], []
    m = max((len(t[2]) for t in tuples), default=0)
    weights = [float(t[3]) for t in tuples] if tuples and all(len(t) > 3 for t in tuples) else None
    for q, p, negs, *_ in tuples:
        base = len(images)
        images += [q, p, *negs]
        qrows.append(base)
        prows.append(base + 1)
        nrows.append([base + 2 + j for j in range(len(negs))] + [-1] * (m - len(negs)))
    img = np.asarray(images, np.int64)
    a, b = np.meshgrid(img, img, indexing="ij")
    pos = is_pair(keys, a.ravel(), b.ravel(), n_images).reshape(a.shape)
    ca, cb = cluster[a], cluster[b]
    neg = (a != b) & ~pos & ((ca != cb) | (ca < 0))
    # a tuple's own negatives are negatives of its query whatever the clusters say
    for t, row in enumerate(nrows):
        for r in row:
            if r >= 0 and not pos[qrows[t], r] and img[r] != img[qrows[t]]:
                neg[qrows[t], r] = neg[r, qrows[t]] = True
    return Batch(img, np.asarray(qrows, np.int64), np.asarray(prows, np.int64),
                 np.asarray(nrows, np.int64).reshape(len(tuples), m), pos, neg,
                 None if weights is None else np.asarray(weights, np.float32))


def row_weights(batch: Batch) -> np.ndarray | None:
    """(B,) weight of each row: the weight of the tuple the row belongs to (None when the batch is unweighted)."""
    if batch.weight is None:
        return None
    tuple_of_row = np.searchsorted(batch.qrows, np.arange(len(batch)), side="right") - 1
    return batch.weight[tuple_of_row]


def make_loss(kind: str, margin: float | None = None, ks: Sequence[int] = (1, 2, 4, 8, 16), tau1: float = 1.0,
              tau2: float = 0.01, mixup: bool = False, generator: torch.Generator | None = None,
              joint: JointLoss | None = None, labels: np.ndarray | None = None
              ) -> Callable[[torch.Tensor, Batch], torch.Tensor]:
    """The batch loss ``fn(e, batch)`` for ``kind`` in contrastive, triplet, recall-k, joint.

    joint: ``joint`` is the :class:`JointLoss` module (its margin is used) and ``labels`` (N,) the landmark class
    of every image of the tuples file (-1: none).
    """
    if kind == "joint" and (joint is None or labels is None):
        raise ValueError("make_loss('joint') needs the JointLoss module and the class labels")

    def fn(e: torch.Tensor, batch: Batch) -> torch.Tensor:
        if kind == "joint":
            return joint(e, batch.qrows, batch.prows, batch.nrows, labels[batch.images], weight=batch.weight,
                         row_weight=row_weights(batch))
        if kind == "contrastive":
            return contrastive_loss(e, batch.qrows, batch.prows, batch.nrows, 0.7 if margin is None else margin,
                                    weight=batch.weight)
        if kind == "triplet":
            return triplet_loss(e, batch.qrows, batch.prows, batch.nrows, 0.1 if margin is None else margin,
                                weight=batch.weight)
        q = torch.as_tensor(batch.qrows, device=e.device)
        pos = torch.as_tensor(batch.pos, device=e.device)
        neg = torch.as_tensor(batch.neg, device=e.device)
        if mixup:
            db, pq, nq = similarity_mixup(e, pos, neg, q, generator=generator)
        else:
            db, pq, nq = e, pos[q], neg[q]
        return recall_k_loss(e[q] @ db.T, pq, nq, ks, tau1, tau2, weight=batch.weight)

    return fn


def embed(net: torch.nn.Module, xs: Sequence[torch.Tensor], device: str | torch.device = "cpu") -> torch.Tensor:
    """Embed images (each (3, H, W), standardised) with ``net``; same-shaped neighbours share a forward pass.

    Runs with or without a graph depending on the caller's grad mode. Returns (len(xs), D).
    """
    out: list[torch.Tensor | None] = [None] * len(xs)
    groups: dict[tuple, list[int]] = {}
    for i, x in enumerate(xs):
        groups.setdefault(tuple(x.shape), []).append(i)
    for idx in groups.values():
        v = net(torch.stack([xs[i] for i in idx]).to(device))
        for j, i in enumerate(idx):
            out[i] = v[j]
    return torch.stack(out)


def batch_backward(net: torch.nn.Module, xs: Sequence[torch.Tensor], loss_fn: Callable[[torch.Tensor], torch.Tensor],
                   chunk: int | None = None, device: str | torch.device = "cpu") -> float:
    """Accumulate into ``net``'s ``.grad`` the gradient of ``loss_fn(embed(net, xs))``; return the loss value.

    ``chunk`` None: one pass, the graph of the whole batch is kept. ``chunk`` = c: two passes, at most c images
    have a graph at once (memory flat in the batch size), same gradient. Parameters of the loss itself (the
    joint loss's prototypes and weights) get their gradient in both cases.
    """
    if not chunk or chunk >= len(xs):
        loss = loss_fn(embed(net, xs, device))
        loss.backward()
        return float(loss.detach())
    with torch.no_grad():
        e = torch.cat([embed(net, xs[s:s + chunk], device) for s in range(0, len(xs), chunk)])
    e.requires_grad_(True)
    loss = loss_fn(e)
    loss.backward()  # the gradient w.r.t. e, and into the loss's own parameters (joint loss), as one pass does
    grad = e.grad
    for s in range(0, len(xs), chunk):
        ec = embed(net, xs[s:s + chunk], device)
        ec.backward(grad[s:s + chunk])
    return float(loss.detach())
