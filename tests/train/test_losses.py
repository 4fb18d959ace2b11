"""Each loss against a hand computation on tiny examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from retrievalkit.errors import UsageError
from retrievalkit.train.losses import contrastive_loss, recall_k_loss, similarity_mixup, triplet_loss


def _unit(*rows):
    x = torch.tensor(rows, dtype=torch.float64)
    return x / x.norm(dim=1, keepdim=True)


def _dist(a, b):
    return math.sqrt(sum((float(x) - float(y)) ** 2 for x, y in zip(a, b)))


def test_contrastive_by_hand():
    e = _unit([1, 0], [0.8, 0.6], [0.95, 0.31], [0, 1], [-1, 0])
    # tuple 0: q=0, p=1, negatives 2, 3 ; tuple 1: q=3, p=2, negatives 4 and a pad
    qi, pi, ni = [0, 3], [1, 2], [[2, 3], [4, -1]]
    margin = 0.7
    hand = []
    for q, p, negs in zip(qi, pi, ni):
        v = 0.5 * _dist(e[q], e[p]) ** 2
        for n in negs:
            if n >= 0:
                v += 0.5 * max(0.0, margin - _dist(e[q], e[n])) ** 2
        hand.append(v)
    got = contrastive_loss(e, qi, pi, ni, margin=margin)
    assert got.item() == pytest.approx(sum(hand) / 2, rel=1e-12)
    # the negative 2 of tuple 0 is inside the margin, so it contributes
    assert _dist(e[0], e[2]) < margin


def test_triplet_by_hand():
    e = _unit([1, 0], [0.6, 0.8], [0.8, 0.6], [0, 1])
    qi, pi, ni = [0], [1], [[2, 3]]
    margin = 0.1
    dp = _dist(e[0], e[1]) ** 2
    hand = sum(max(0.0, dp - _dist(e[0], e[n]) ** 2 + margin) for n in (2, 3))
    assert triplet_loss(e, qi, pi, ni, margin=margin).item() == pytest.approx(hand, rel=1e-12)
    assert hand > 0  # negative 2 is closer than the positive: a violated triplet
    with pytest.raises(UsageError):
        triplet_loss(e, qi, pi, np.zeros((1, 0), np.int64))


def _recall_hand(S, pos, neg, ks, tau1, tau2):
    sig = lambda z: 1.0 / (1.0 + math.exp(-z))  # noqa: E731
    total, nq = 0.0, 0
    for a in range(S.shape[0]):
        P = [i for i in range(S.shape[1]) if pos[a, i]]
        if not P:
            continue
        nq += 1
        counted = [j for j in range(S.shape[1]) if pos[a, j] or neg[a, j]]
        rk = 0.0
        for k in ks:
            s = 0.0
            for i in P:
                rank = 1.0 + sum(sig((S[a, j] - S[a, i]) / tau2) for j in counted if j != i)
                s += sig((k - rank) / tau1)
            rk += min(k, s) / min(k, len(P))
        total += rk / len(ks)
    return 1.0 - total / nq


@pytest.mark.parametrize("tau2", [0.01, 0.1, 1.0])
def test_recall_k_by_hand(tau2):
    rng = np.random.default_rng(0)
    S = rng.uniform(-1, 1, size=(4, 9))
    pos = np.zeros((4, 9), bool)
    neg = np.zeros((4, 9), bool)
    pos[0, [1, 2]] = True
    neg[0, [3, 4, 5, 6, 7, 8]] = True
    pos[1, [0]] = True
    neg[1, [4, 5, 6]] = True  # items 2, 3, 7, 8 ignored for query 1
    pos[2, [5, 6, 7]] = True
    neg[2, [0, 1]] = True
    neg[3, [1, 2]] = True  # query 3 has no positive: left out
    ks = (1, 2, 4)
    hand = _recall_hand(S, pos, neg, ks, 1.0, tau2)
    got = recall_k_loss(torch.tensor(S), torch.tensor(pos), torch.tensor(neg), ks, tau1=1.0, tau2=tau2, chunk=2)
    assert got.item() == pytest.approx(hand, rel=1e-10)


def test_recall_k_tends_to_true_recall_with_small_temperatures():
    rng = np.random.default_rng(1)
    S = rng.uniform(-1, 1, size=(6, 12))
    pos = rng.uniform(size=S.shape) < 0.3
    pos[:, 0] = True
    neg = ~pos
    ks = (1, 2, 4)
    got = recall_k_loss(torch.tensor(S), torch.tensor(pos), torch.tensor(neg), ks, tau1=1e-4, tau2=1e-6).item()
    recalls = []
    for a in range(6):
        rank = np.empty(12)
        rank[np.argsort(-S[a])] = np.arange(1, 13)  # 1-based rank of every item
        for k in ks:
            # the step sigmoid((k - rank) / tau1) is 1 below k, 0 above and 1/2 at rank == k exactly
            hits = ((rank < k) + 0.5 * (rank == k))[pos[a]].sum()
            recalls.append(min(k, hits) / min(k, pos[a].sum()))
    assert got == pytest.approx(1 - np.mean(recalls), abs=0.01)


def test_recall_k_rejects_bad_masks():
    S = torch.zeros(2, 3)
    m = torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(UsageError):
        recall_k_loss(S, m, m)
    with pytest.raises(UsageError):
        recall_k_loss(S, ~m, m)


def test_similarity_mixup_labels():
    e = _unit([1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9])
    pos = torch.tensor([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=torch.bool)
    neg = ~pos & ~torch.eye(4, dtype=torch.bool)
    db, pq, nq = similarity_mixup(e, pos, neg, torch.tensor([0, 2]), generator=torch.Generator().manual_seed(0))
    assert db.shape == (6, 2)  # two virtual items: mix(0, 1) and mix(2, 3)
    # query 0: mix(0,1) involves the query itself -> ignored; mix(2,3) is a negative
    assert not pq[0, 4] and not nq[0, 4] and nq[0, 5] and not pq[0, 5]
    # the virtual similarity is the same mixture of the two similarities
    a = (db[4] - e[1]) @ (e[0] - e[1]) / ((e[0] - e[1]) @ (e[0] - e[1]))
    assert (e[2] @ db[4]).item() == pytest.approx((a * e[2] @ e[0] + (1 - a) * e[2] @ e[1]).item(), rel=1e-9)
