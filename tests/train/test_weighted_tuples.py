"""Per-tuple loss weights (pseudo-labelled tuples of ``rkit propagate``): losses, batches, the tuples file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.io.tuples import Tuples, read_tuples, write_tuples
from retrievalkit.train.batch import build_batch, make_loss, pair_keys
from retrievalkit.train.losses import contrastive_loss, recall_k_loss, triplet_loss


def _e():
    x = torch.tensor([[1, 0], [0.8, 0.6], [0.95, 0.31], [0, 1], [-1, 0]], dtype=torch.float64)
    return x / x.norm(dim=1, keepdim=True)


@pytest.mark.parametrize("loss", [contrastive_loss, triplet_loss])
def test_weights_scale_each_tuple(loss):
    e = _e()
    qi, pi, ni = [0, 3], [1, 2], [[2, 3], [4, 1]]
    each = [loss(e, [q], [p], [n]).item() for q, p, n in zip(qi, pi, ni)]
    assert loss(e, qi, pi, ni, weight=[1.0, 1.0]).item() == pytest.approx(loss(e, qi, pi, ni).item(), rel=1e-12)
    got = loss(e, qi, pi, ni, weight=[2.0, 0.5]).item()
    assert got == pytest.approx((2.0 * each[0] + 0.5 * each[1]) / 2, rel=1e-12)
    with pytest.raises(UsageError, match="weights"):
        loss(e, qi, pi, ni, weight=[1.0])


def test_recall_k_weights_per_query():
    sim = torch.tensor([[1.0, 0.9, 0.2, 0.8], [0.1, 1.0, 0.95, 0.3]], dtype=torch.float64)
    pos = torch.tensor([[False, True, False, False], [False, False, True, False]])
    neg = torch.tensor([[False, False, True, True], [True, False, False, True]])
    each = [recall_k_loss(sim[i:i + 1], pos[i:i + 1], neg[i:i + 1], ks=(1, 2)).item() for i in range(2)]
    got = recall_k_loss(sim, pos, neg, ks=(1, 2), weight=[3.0, 1.0]).item()
    assert got == pytest.approx((3.0 * each[0] + 1.0 * each[1]) / 2, rel=1e-9)
    unweighted = recall_k_loss(sim, pos, neg, ks=(1, 2)).item()
    assert recall_k_loss(sim, pos, neg, ks=(1, 2), weight=[1.0, 1.0]).item() == pytest.approx(unweighted, rel=1e-12)


def test_batch_carries_weights_to_the_loss():
    cluster = np.array([0, 0, 1, 1, 2])
    keys = pair_keys(np.array([0, 3]), np.array([1, 2]), 5)
    plain = build_batch([(0, 1, [2, 3]), (3, 2, [4, 1])], cluster, keys, 5)
    weighted = build_batch([(0, 1, [2, 3], 2.0), (3, 2, [4, 1], 0.0)], cluster, keys, 5)
    assert plain.weight is None and weighted.weight.tolist() == [2.0, 0.0]
    e = _e()[torch.as_tensor(weighted.images)]
    fn = make_loss("contrastive")
    first = contrastive_loss(e, weighted.qrows[:1], weighted.prows[:1], weighted.nrows[:1]).item()
    assert fn(e, weighted).item() == pytest.approx(2.0 * first / 2, rel=1e-12)


def test_tuples_file_weight_round_trip(tmp_path):
    t = Tuples(["a", "b", "c"], np.array([0, 0, 1]), np.array([0, 1]), np.array([1, 0]), weight=np.array([0.5, 1.5]))
    back = read_tuples(write_tuples(tmp_path / "t.h5", t))
    np.testing.assert_allclose(back.weight, [0.5, 1.5])
    assert read_tuples(write_tuples(tmp_path / "u.h5", Tuples(["a", "b"], np.zeros(2), np.array([0]),
                                                              np.array([1])))).weight is None
    with pytest.raises(BadInputError, match="weight"):
        write_tuples(tmp_path / "bad.h5", Tuples(["a", "b"], np.zeros(2), np.array([0]), np.array([1]),
                                                 weight=np.array([-1.0])))


def test_training_uses_the_file_weights(tmp_path):
    import json

    from retrievalkit.train import TrainConfig, train
    from retrievalkit.train.loop import log_path
    from tests.train.test_train_run import CFG, _state, _synthetic_set

    src = read_tuples(_synthetic_set(tmp_path / "ims", val=False))
    cfg = TrainConfig(**CFG, epochs=1)
    runs = {}
    for key, w in (("plain", None), ("ones", np.ones(len(src))), ("zeros", np.zeros(len(src)))):
        src.weight = w
        tup = write_tuples(tmp_path / f"{key}.h5", src)
        out = train(tup, tmp_path / f"{key}.pt", cfg)
        runs[key] = (_state(out), json.loads(log_path(out).read_text())["epochs"][0]["loss"])
    # weight 1 everywhere is the unweighted run; weight 0 gives a zero loss (nothing to learn from)
    assert runs["ones"][1] == pytest.approx(runs["plain"][1], rel=1e-6)
    for k, v in runs["plain"][0].items():
        assert torch.equal(v, runs["ones"][0][k]), k
    assert runs["zeros"][1] == 0.0 and runs["plain"][1] > 0
