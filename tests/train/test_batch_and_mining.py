"""Two-pass large batches give the one-pass gradient; batch masks; hard-negative mining rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from retrievalkit.models import RetrievalNet, create_backbone
from retrievalkit.train.batch import batch_backward, build_batch, make_loss, pair_keys
from retrievalkit.train.mining import mine_hard_negatives


def _net():
    torch.manual_seed(0)
    net = RetrievalNet(create_backbone("tiny-cnn"), pooling="gem").double().eval()
    return net


def _grads(net):
    return {k: p.grad.detach().clone() for k, p in net.named_parameters() if p.grad is not None}


def _images(n, seed, sizes=((24, 32),)):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(3, *sizes[i % len(sizes)], generator=g, dtype=torch.float64) for i in range(n)]


def _batch(n_tuples=4):
    # 4 clusters of 3 images; pairs within clusters; tuples (q, p, 2 negatives from other clusters)
    cluster = np.repeat(np.arange(4), 3)
    q = np.array([0, 3, 6, 9, 1, 4])
    p = np.array([1, 4, 7, 10, 2, 5])
    keys = pair_keys(q, p, 12)
    tuples = [(int(q[t]), int(p[t]), [int((q[t] + 3) % 12), int((q[t] + 6) % 12)]) for t in range(n_tuples)]
    return build_batch(tuples, cluster, keys, 12)


@pytest.mark.parametrize("loss,mixup", [("contrastive", False), ("triplet", False), ("recall-k", False),
                                        ("recall-k", True)])
@pytest.mark.parametrize("chunk", [1, 5])
def test_two_pass_gradient_equals_one_big_batch(loss, mixup, chunk):
    batch = _batch()
    xs = _images(len(batch), seed=1, sizes=((24, 32), (32, 24)))  # mixed shapes too
    grads, values = [], []
    for c in (None, chunk):
        net = _net()
        fn = make_loss(loss, ks=(1, 2, 4), tau2=0.05, mixup=mixup, generator=torch.Generator().manual_seed(3))
        values.append(batch_backward(net, xs, lambda e, f=fn: f(e, batch), chunk=c))
        grads.append(_grads(net))
    assert values[0] == pytest.approx(values[1], rel=1e-12)
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 3
    total = sum(float(g.abs().sum()) for g in grads[0].values())
    assert total > 0  # a real gradient, not all zeros
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], rtol=1e-9, atol=1e-12)


def test_build_batch_masks():
    b = _batch(2)
    # rows: [0, 1, 3, 6] and [3, 4, 6, 9]
    assert b.images.tolist() == [0, 1, 3, 6, 3, 4, 6, 9]
    assert b.qrows.tolist() == [0, 4] and b.prows.tolist() == [1, 5] and b.nrows.tolist() == [[2, 3], [6, 7]]
    assert b.pos[0, 1] and b.pos[1, 0] and b.pos[2, 5] and b.pos[4, 5]  # (3,4) pair in both tuples
    assert not b.pos[2, 4] and not b.neg[2, 4]  # the same image twice: neither
    assert b.neg[0, 2] and b.neg[0, 7] and not b.neg[0, 1]
    assert not (b.pos & b.neg).any()


def test_mining_one_per_cluster_and_never_positive_or_same_cluster():
    rng = np.random.default_rng(0)
    n = 30
    cluster = np.repeat(np.arange(10), 3)
    cluster[27:] = -1  # three images of unknown cluster
    x = rng.normal(size=(n, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    qidx, pidx = np.array([0, 3, 27]), np.array([1, 4, 28])
    keys = pair_keys(qidx, pidx, n)
    pool = np.arange(n)
    negs = mine_hard_negatives(x[qidx], x[pool], qidx, pool, cluster, keys, n, num_neg=4)
    for q, ng in zip(qidx, negs):
        assert len(ng) == 4
        assert q not in ng
        known = {c for c in cluster[ng] if c >= 0}
        assert len(known) == len([c for c in cluster[ng] if c >= 0])  # one per cluster
        if cluster[q] >= 0:
            assert cluster[q] not in cluster[ng]
        # they are the most similar admissible images, in decreasing similarity
        sims = x[ng] @ x[q]
        assert np.all(np.diff(sims) <= 1e-12)
    assert 28 not in negs[2]  # the known positive of the unknown-cluster query is never a negative
    # brute force for query 0: walk the pool by similarity and apply the rules
    order = np.argsort(-(x @ x[0]))
    want, used = [], set()
    for i in order:
        c = cluster[i]
        if i in (0, 1) or c == cluster[0] or (c >= 0 and c in used):
            continue
        want.append(int(i))
        if c >= 0:
            used.add(c)
        if len(want) == 4:
            break
    assert negs[0] == want
