"""--loss joint: contrastive + cosine-classifier cross-entropy balanced by learned log-variances (Kendall et al.)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from retrievalkit.cli.app import app
from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.models import load_model
from retrievalkit.train import TrainConfig, log_path, state_path, train
from retrievalkit.train.batch import batch_backward, make_loss
from retrievalkit.train.loop import landmark_classes
from retrievalkit.train.losses import (
    JointLoss,
    adacos_scale,
    contrastive_loss,
    cosine_classification_loss,
    uncertainty_weighted,
)
from tests.train.test_batch_and_mining import _batch, _images, _net
from tests.train.test_train_run import CFG, _synthetic_set


def _unit(*rows):
    x = torch.tensor(rows, dtype=torch.float64)
    return x / x.norm(dim=1, keepdim=True)


def _ce_by_hand(e, label, protos, scale):
    def cos(a, b):
        dot = sum(float(x) * float(y) for x, y in zip(a, b))
        return dot / (math.hypot(*map(float, a)) * math.hypot(*map(float, b)))

    logits = [scale * cos(e, w) for w in protos]
    return -logits[label] + math.log(sum(math.exp(v) for v in logits))


def test_joint_loss_by_hand_and_unlabelled_rows_ignored():
    e = _unit([1, 0], [0.8, 0.6], [0.95, 0.31], [0, 1], [-1, 0]).requires_grad_(True)
    qi, pi, ni = [0, 3], [1, 2], [[2, 3], [4, -1]]
    labels = [0, 0, 1, 1, -1]  # row 4 has no landmark class
    head = JointLoss(3, 2, scale=5.0, margin=0.7).double()
    with torch.no_grad():
        head.prototypes.copy_(torch.tensor([[1.0, 0.2], [0.1, 1.0], [-1.0, -1.0]], dtype=torch.float64))
        head.log_vars.copy_(torch.tensor([0.3, -0.4], dtype=torch.float64))
    got = head(e, qi, pi, ni, labels)
    rank = contrastive_loss(e, qi, pi, ni, margin=0.7).item()  # checked by hand in test_losses.py
    protos = head.prototypes.detach()
    cls = sum(_ce_by_hand(e[r].detach(), labels[r], protos, 5.0) for r in range(4)) / 4  # row 4 left out
    hand = math.exp(-0.3) * rank + 0.3 + math.exp(0.4) * cls - 0.4
    assert got.item() == pytest.approx(hand, rel=1e-12)
    assert head.last_terms[0] == pytest.approx(rank) and head.last_terms[1] == pytest.approx(cls)
    # the unlabelled row gets gradient from the contrastive term only
    got.backward()
    g4 = e.grad[4].clone()
    e.grad = None
    (math.exp(-0.3) * contrastive_loss(e, qi, pi, ni, margin=0.7)).backward()
    torch.testing.assert_close(g4, e.grad[4], rtol=1e-12, atol=1e-15)
    # no labelled row at all: no classification term and no s_cls term
    assert cosine_classification_loss(e, [-1] * 5, protos, 5.0) is None
    head.zero_grad()
    head(e.detach(), qi, pi, ni, [-1] * 5).backward()
    assert head.log_vars.grad[1].item() == 0.0 and head.log_vars.grad[0].item() != 0.0


def test_weight_gradient_numerically_and_at_its_optimum():
    e = _unit([1, 0, 0.2], [0.8, 0.6, 0], [0.1, 0.9, 0.3], [0, 1, 1], [-1, 0.3, 0])
    qi, pi, ni = [0, 2], [1, 3], [[4, 2], [0, -1]]
    labels = [0, 0, 1, 1, 2]
    head = JointLoss(3, 3, scale=4.0).double()
    with torch.no_grad():
        head.imprint(e, labels)
        head.log_vars.copy_(torch.tensor([0.5, -1.0], dtype=torch.float64))

    def f(s):
        rank = contrastive_loss(e, qi, pi, ni, margin=0.7)
        cls = cosine_classification_loss(e, labels, head.prototypes, head.scale)
        return uncertainty_weighted((rank, cls), s)

    s = head.log_vars.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(f, (s,), eps=1e-6, atol=1e-8)
    # and the module's own gradient equals the closed form dL/ds_i = 1 - exp(-s_i) L_i
    head(e, qi, pi, ni, labels).backward()
    rank, cls = head.last_terms
    expect = torch.tensor([1 - math.exp(-0.5) * rank, 1 - math.exp(1.0) * cls], dtype=torch.float64)
    torch.testing.assert_close(head.log_vars.grad, expect, rtol=1e-10, atol=1e-12)
    # the weights cannot collapse: at s_i = log L_i the gradient vanishes (not at s -> infinity)
    s_opt = torch.tensor([math.log(rank), math.log(cls)], dtype=torch.float64, requires_grad=True)
    f(s_opt).backward()
    torch.testing.assert_close(s_opt.grad, torch.zeros(2, dtype=torch.float64), rtol=0, atol=1e-12)


def test_imprint_and_classes():
    e = _unit([1, 0], [0.9, 0.1], [0, 1], [0.5, 0.5])
    head = JointLoss(3, 2, scale=2.0)
    before = head.prototypes.detach().clone()
    head.imprint(e.float(), [0, 0, 1, -1])
    torch.testing.assert_close(head.prototypes[0], torch.nn.functional.normalize(e[:2].float().mean(0), dim=0))
    torch.testing.assert_close(head.prototypes[1], e[2].float())
    torch.testing.assert_close(head.prototypes[2], before[2])  # no image: left as it was
    labels, c = landmark_classes(np.array([7, -1, 3, 7, 12, -1]))
    assert c == 3 and labels.tolist() == [1, -1, 0, 1, 2, -1]
    assert adacos_scale(10) == pytest.approx(math.sqrt(2) * math.log(9))
    with pytest.raises(UsageError, match="--cls-scale"):
        JointLoss(2, 4)  # two classes: no AdaCos default
    assert JointLoss(2, 4, scale=3.0).scale == 3.0
    with pytest.raises(UsageError):
        JointLoss(1, 4, scale=3.0)


@pytest.mark.parametrize("chunk", [1, 5])
@pytest.mark.parametrize("weighted", [False, True])
def test_two_pass_gradient_equals_one_pass_including_the_head(chunk, weighted):
    batch = _batch()
    if weighted:
        batch.weight = np.array([1.0, 0.5, 0.25, 2.0], np.float32)
    xs = _images(len(batch), seed=1, sizes=((24, 32), (32, 24)))
    labels = np.repeat(np.arange(4), 3)
    labels[[2, 7]] = -1  # two images without a landmark class
    grads, heads, values = [], [], []
    for c in (None, chunk):
        net = _net()
        head = JointLoss(4, 64, scale=6.0).double()
        with torch.no_grad():
            head.log_vars.copy_(torch.tensor([0.2, -0.3], dtype=torch.float64))
        fn = make_loss("joint", joint=head, labels=labels)
        values.append(batch_backward(net, xs, lambda e, f=fn: f(e, batch), chunk=c))
        grads.append({k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None})
        heads.append({k: p.grad.clone() for k, p in head.named_parameters()})
    assert values[0] == pytest.approx(values[1], rel=1e-12)
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 3
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], rtol=1e-9, atol=1e-12)
    assert set(heads[0]) == {"prototypes", "log_vars"}
    assert float(heads[0]["log_vars"].abs().min()) > 0 and float(heads[0]["prototypes"].abs().sum()) > 0
    for k in heads[0]:
        torch.testing.assert_close(heads[1][k], heads[0][k], rtol=1e-9, atol=1e-12)


def test_joint_training_resumes_bit_identically_with_its_learned_weights(tmp_path):
    tup = _synthetic_set(tmp_path / "ims")  # 3 clusters: the AdaCos default scale applies
    cfg = TrainConfig(**CFG, loss="joint", batch_size=3, epochs=2, head_lr_mult=10.0)
    full = train(tup, tmp_path / "a" / "model.pt", cfg)
    train(tup, tmp_path / "b" / "model.pt", dataclasses.replace(cfg, epochs=1))
    s1 = torch.load(state_path(tmp_path / "b" / "model.pt"), weights_only=True)["joint"]["log_vars"].clone()
    train(tup, tmp_path / "b" / "model.pt", cfg, resume=True)
    a, b = load_model(full).state_dict(), load_model(tmp_path / "b" / "model.pt").state_dict()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0)
    sa = torch.load(state_path(full), weights_only=True)["joint"]
    sb = torch.load(state_path(tmp_path / "b" / "model.pt"), weights_only=True)["joint"]
    for k in sa:
        torch.testing.assert_close(sb[k], sa[k], rtol=0, atol=0)
    assert sa["prototypes"].shape == (3, 64)
    assert not torch.equal(s1, torch.zeros(2)) and not torch.equal(sa["log_vars"], s1)  # learned, and moving
    # the head stays out of the descriptor network; its weights are recorded with the model
    assert not any("prototypes" in k or "log_vars" in k for k in a)
    extra = torch.load(full, weights_only=True)["extra"]["joint"]
    assert extra["log_vars"] == pytest.approx(sa["log_vars"].tolist()) and extra["classes"] == 3
    log = json.loads(log_path(full).read_text())["epochs"]
    assert all(np.isfinite(r["loss_rank"]) and np.isfinite(r["loss_cls"]) for r in log)
    assert [r["s_rank"] for r in log][-1] == pytest.approx(float(sa["log_vars"][0]), abs=1e-5)
    # a contrastive state is no joint state
    train(tup, tmp_path / "c" / "model.pt", TrainConfig(**CFG, epochs=1))
    with pytest.raises(UsageError, match="loss"):
        train(tup, tmp_path / "c" / "model.pt", TrainConfig(**CFG, loss="joint", epochs=2), resume=True)


def test_cli_joint_options_and_refusals(tmp_path):
    tup = _synthetic_set(tmp_path / "ims", clusters=2)
    runner = CliRunner()
    base = ["train", str(tup), "-m", "tiny-cnn", "--size", "0", "--epochs", "1", "--query-size", "4",
            "--pool-size", "8", "--num-neg", "2", "--device", "cpu"]
    r = runner.invoke(app, [*base, "-o", str(tmp_path / "m.pt"), "--loss", "contrastive", "--cls-scale", "8"])
    assert r.exit_code == 2 and "--cls-scale" in r.output
    r = runner.invoke(app, [*base, "-o", str(tmp_path / "m.pt"), "--loss", "triplet", "--head-lr-mult", "10"])
    assert r.exit_code == 2 and "--head-lr-mult" in r.output
    r = runner.invoke(app, [*base, "-o", str(tmp_path / "m.pt"), "--loss", "joint"])  # 2 classes, no scale given
    assert r.exit_code == 2 and "--cls-scale" in r.output
    r = runner.invoke(app, [*base, "-o", str(tmp_path / "m.pt"), "--loss", "joint", "--cls-scale", "8",
                            "--head-lr-mult", "10"])
    assert r.exit_code == 0, r.output
    assert json.loads(log_path(tmp_path / "m.pt").read_text())["config"]["cls_scale"] == 8.0


def test_joint_needs_two_classes(tmp_path):
    from retrievalkit.io.tuples import read_tuples, write_tuples

    tup = read_tuples(_synthetic_set(tmp_path / "ims"))
    tup.cluster[:] = -1
    path = write_tuples(tmp_path / "unlabelled.h5", tup)
    with pytest.raises(BadInputError, match="at least 2 clusters"):
        train(path, tmp_path / "m.pt", TrainConfig(**{**CFG, "pool_size": 0, "num_neg": 0}, loss="joint", epochs=1))


def test_states_written_before_the_joint_options_still_resume(tmp_path):
    tup = _synthetic_set(tmp_path / "ims")
    out = tmp_path / "m.pt"
    train(tup, out, TrainConfig(**CFG, epochs=1))
    state = torch.load(state_path(out), weights_only=True)
    for key in ("cls_scale", "head_lr_mult"):
        del state["config"][key]
    torch.save(state, state_path(out))
    train(tup, out, TrainConfig(**CFG, epochs=2), resume=True)
    assert [r["epoch"] for r in json.loads(log_path(out).read_text())["epochs"]] == [1, 2]
    with pytest.raises(UsageError, match="head_lr_mult"):  # a missing key counts as its default, no more
        train(tup, out, TrainConfig(**CFG, epochs=3, head_lr_mult=5.0), resume=True)
