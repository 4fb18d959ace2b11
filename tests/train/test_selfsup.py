"""Self-supervised copy-detection training: InfoNCE and the entropy regulariser against hand computations,
two-pass gradients equal one-pass, seeded views, and a tiny end-to-end run with resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from retrievalkit.configs.train import SelfSupervisedConfig
from retrievalkit.errors import UsageError
from retrievalkit.models import RetrievalNet, create_backbone
from retrievalkit.train.batch import batch_backward
from retrievalkit.train.losses import entropy_loss, infonce_loss
from retrievalkit.train.selfsup import ViewDataset, epoch_order, selfsup_loss


def _unit(rng, n, d):
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _infonce_by_hand(x, labels, tau):
    """Per row: −mean over positives of log(exp(s_ip/τ) / Σ_{j≠i} exp(s_ij/τ)), loops only."""
    n = len(x)
    rows = []
    for i in range(n):
        denom = sum(np.exp(x[i] @ x[j] / tau) for j in range(n) if j != i)
        pos = [j for j in range(n) if j != i and labels[j] == labels[i]]
        if pos:
            rows.append(-np.mean([np.log(np.exp(x[i] @ x[p] / tau) / denom) for p in pos]))
    return float(np.mean(rows))


def _entropy_by_hand(x, labels):
    out = []
    for i in range(len(x)):
        d = min(np.linalg.norm(x[i] - x[j]) for j in range(len(x)) if labels[j] != labels[i])
        out.append(-np.log(d))
    return float(np.mean(out))


@pytest.mark.parametrize("tau", [0.05, 0.5])
def test_infonce_matches_hand_computation(tau):
    rng = np.random.default_rng(0)
    x = _unit(rng, 8, 5)
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3])  # two views of 4 images: first views, then second views
    got = float(infonce_loss(torch.from_numpy(x), labels, tau))
    assert got == pytest.approx(_infonce_by_hand(x, labels, tau), rel=1e-10)


def test_infonce_two_rows_is_zero_and_three_views_average_positives():
    x = _unit(np.random.default_rng(1), 2, 3)
    # one image, two views: the positive is the only other row, so the softmax is 1
    assert float(infonce_loss(torch.from_numpy(x), [0, 0], 0.1)) == pytest.approx(0.0, abs=1e-12)
    y = _unit(np.random.default_rng(2), 6, 4)
    labels = np.array([0, 0, 0, 1, 1, 2])  # 3 views of image 0; image 2's single row has no positive
    got = float(infonce_loss(torch.from_numpy(y), labels, 0.2))
    assert got == pytest.approx(_infonce_by_hand(y, labels, 0.2), rel=1e-10)


def test_infonce_prefers_aligned_views():
    rng = np.random.default_rng(3)
    a = _unit(rng, 4, 16)
    close = np.concatenate([a, a + 0.01 * rng.normal(size=a.shape)])
    far = np.concatenate([a, _unit(rng, 4, 16)])
    lab = np.tile(np.arange(4), 2)
    assert float(infonce_loss(torch.from_numpy(close), lab)) < float(infonce_loss(torch.from_numpy(far), lab))


def test_entropy_matches_hand_computation_and_ignores_same_image():
    rng = np.random.default_rng(4)
    x = _unit(rng, 6, 3)
    labels = np.array([0, 1, 2, 0, 1, 2])
    got = float(entropy_loss(torch.from_numpy(x), labels, eps=0.0))
    assert got == pytest.approx(_entropy_by_hand(x, labels), rel=1e-9)
    # two views of one image at the same point: excluded, so the loss stays finite
    x[3] = x[0]
    assert np.isfinite(float(entropy_loss(torch.from_numpy(x), labels)))
    assert float(entropy_loss(torch.from_numpy(x), labels, eps=0.0)) == pytest.approx(_entropy_by_hand(x, labels),
                                                                                     rel=1e-9)


def test_entropy_falls_as_descriptors_spread():
    rng = np.random.default_rng(5)
    lab = np.arange(8)
    tight = _unit(rng, 1, 8) + 0.05 * rng.normal(size=(8, 8))
    tight /= np.linalg.norm(tight, axis=1, keepdims=True)
    spread = np.eye(8)
    assert float(entropy_loss(torch.from_numpy(spread), lab)) < float(entropy_loss(torch.from_numpy(tight), lab))
    assert float(entropy_loss(torch.from_numpy(spread), lab)) == pytest.approx(-np.log(np.sqrt(2)), rel=1e-6)


def test_losses_refuse_bad_shapes():
    with pytest.raises(UsageError):
        infonce_loss(torch.zeros(3, 2), [0, 1])
    with pytest.raises(UsageError):
        infonce_loss(torch.eye(3), [0, 1, 2])  # no positives at all
    with pytest.raises(UsageError):
        entropy_loss(torch.eye(2), [0, 0])  # no other image


@pytest.mark.parametrize("chunk", [1, 3])
def test_two_pass_gradient_equals_one_pass(chunk):
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(3, 24, 24, generator=g, dtype=torch.float64) for _ in range(8)]
    labels = torch.arange(4).repeat(2)
    grads, values = [], []
    for c in (None, chunk):
        torch.manual_seed(0)
        net = RetrievalNet(create_backbone("tiny-cnn"), pooling="gem").double().eval()
        parts: dict = {}
        values.append(batch_backward(net, xs, selfsup_loss(0.05, 30.0, labels, parts), chunk=c))
        assert parts["infonce"] > 0 and np.isfinite(parts["entropy"])
        grads.append({k: p.grad.detach().clone() for k, p in net.named_parameters() if p.grad is not None})
    assert values[0] == pytest.approx(values[1], rel=1e-12)
    assert len(grads[0]) > 3 and sum(float(v.abs().sum()) for v in grads[0].values()) > 0
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], rtol=1e-9, atol=1e-12)


def _folder(tmp_path, n=6):
    import cv2

    rng = np.random.default_rng(0)
    for i in range(n):
        img = (rng.random((40 + 4 * i, 56, 3)) * 255).astype(np.uint8)
        cv2.rectangle(img, (5, 5), (20 + i, 25), (255, 0, 0), -1)
        cv2.imwrite(str(tmp_path / f"im{i}.jpg"), img)
    return tmp_path


def test_views_seeded_by_seed_epoch_image(tmp_path):
    root = _folder(tmp_path)
    names = sorted(p.name for p in root.glob("*.jpg"))
    ds = ViewDataset(root, names, 48, (0.5,) * 3, (0.25,) * 3, seed=1)
    a, b = ds.views(2, 0), ds.views(2, 0)
    assert all(v.shape == (48, 48, 3) and v.dtype == np.uint8 for v in a)
    assert all((u == v).all() for u, v in zip(a, b))
    assert not (a[0] == a[1]).all()  # the two views differ
    assert not (ds.views(2, 1)[0] == a[0]).all()  # another epoch, other views
    x, i = ds[(2, 0)]
    assert i == 2 and x.shape == (2, 3, 48, 48) and x.dtype == torch.float32
    steps = epoch_order(7, 0, 0, 3)  # 3 + 3 + 1: the single-image remainder is dropped
    flat = sum(steps, [])
    assert len(flat) == len(set(flat)) == 6 and set(flat) <= set(range(7))
    assert all(len(s) >= 2 for s in steps) and steps == epoch_order(7, 0, 0, 3) and steps != epoch_order(7, 0, 1, 3)


def test_config_refuses_bad_values():
    with pytest.raises(UsageError):
        SelfSupervisedConfig(temperature=0)
    with pytest.raises(UsageError):
        SelfSupervisedConfig(loss="contrastive")
    with pytest.raises(UsageError):
        SelfSupervisedConfig(tuples_per_step=1)


def test_tiny_run_resumes_and_loads_as_model(tmp_path):
    from retrievalkit.models import load_model
    from retrievalkit.train.selfsup import train_selfsupervised

    (tmp_path / "imgs").mkdir()
    root = _folder(tmp_path / "imgs")
    cfg = SelfSupervisedConfig(model="tiny-cnn", epochs=1, tuples_per_step=4, batch_size=3, size=40, workers=0)
    out = train_selfsupervised(root, tmp_path / "m.pt", cfg)
    log = json.loads((tmp_path / "m.log.json").read_text())
    assert [r["epoch"] for r in log["epochs"]] == [1] and log["epochs"][0]["infonce"] > 0
    cfg.epochs = 2
    train_selfsupervised(root, out, cfg, resume=True)
    log = json.loads((tmp_path / "m.log.json").read_text())
    assert [r["epoch"] for r in log["epochs"]] == [1, 2]
    net = load_model(out, "cpu")
    assert net(torch.zeros(1, 3, 40, 40)).shape[0] == 1
    cfg.lr = 1e-3  # another setting: resume refused
    with pytest.raises(UsageError):
        train_selfsupervised(root, out, cfg, resume=True)


def test_resume_gives_the_weights_of_an_unbroken_run(tmp_path):
    from retrievalkit.train.selfsup import train_selfsupervised

    (tmp_path / "imgs").mkdir()
    root = _folder(tmp_path / "imgs", n=5)
    cfg = SelfSupervisedConfig(model="tiny-cnn", epochs=2, tuples_per_step=3, batch_size=2, size=36, workers=0,
                               lr=1e-3)
    train_selfsupervised(root, tmp_path / "a.pt", cfg)
    cfg.epochs = 1
    train_selfsupervised(root, tmp_path / "b.pt", cfg)
    one = torch.load(tmp_path / "b.state.pt", weights_only=True)["net"]
    cfg.epochs = 2
    train_selfsupervised(root, tmp_path / "b.pt", cfg, resume=True)
    a = torch.load(tmp_path / "a.state.pt", weights_only=True)["net"]
    b = torch.load(tmp_path / "b.state.pt", weights_only=True)["net"]
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert any(not torch.equal(one[k], b[k]) for k in one)  # the second epoch changed the weights


def test_cli_infonce_trains_a_model_copy_detect_takes(tmp_path):
    from typer.testing import CliRunner

    from retrievalkit.cli.app import app

    (tmp_path / "imgs").mkdir()
    root = _folder(tmp_path / "imgs", n=6)
    runner = CliRunner()
    model = tmp_path / "m.pt"
    r = runner.invoke(app, ["train", str(root), "-o", str(model), "--loss", "infonce", "-m", "tiny-cnn", "--size",
                            "40", "--epochs", "1", "--tuples-per-step", "4", "--batch-size", "4", "--workers", "0",
                            "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert model.exists() and json.loads((tmp_path / "m.log.json").read_text())["config"]["loss"] == "infonce"
    r = runner.invoke(app, ["copy-detect", "--queries", str(root), "--database", str(root), "--training", str(root),
                            "--model", str(model), "--size", "40", "--descriptors", str(tmp_path / "d.h5"),
                            "--workers", "0", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "d.h5").exists()
    # options of the other mode are refused, not ignored
    for extra in (["--margin", "0.5"], ["--num-neg", "3"], ["--val-gnd", str(model)]):
        r = runner.invoke(app, ["train", str(root), "-o", str(tmp_path / "x.pt"), "--loss", "infonce", *extra])
        assert r.exit_code == 2 and "does not apply" in r.output, r.output
    r = runner.invoke(app, ["train", str(model), "-o", str(tmp_path / "x.pt"), "--loss", "infonce"])
    assert r.exit_code == 2 and "folder" in r.output
    r = runner.invoke(app, ["train", str(model), "-o", str(tmp_path / "x.pt"), "--temperature", "0.1"])
    assert r.exit_code == 2 and "does not apply" in r.output


def test_unreadable_image_is_one_line_error_from_a_worker(tmp_path):
    """A broken file in the folder: the real `rkit`, exit 3, one line naming it (not the worker's traceback), no
    model written."""
    from tests.conftest import run_rkit

    (tmp_path / "imgs").mkdir()
    root = _folder(tmp_path / "imgs", n=4)
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    model = tmp_path / "m.pt"
    r = run_rkit("train", root, "-o", model, "--loss", "infonce", "-m", "tiny-cnn", "--size", "32", "--epochs", "1",
                 "--tuples-per-step", "5", "--workers", "1", "--device", "cpu", check=False)
    assert r.returncode == 3, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "broken.jpg" in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert not model.exists()
