"""The training loop: resume == unbroken run, checkpoints, logs, CLI, cirtorch import, model loads in extract."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from retrievalkit.cli.app import app
from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.io.tuples import Tuples, read_tuples, write_tuples
from retrievalkit.models import load_model
from retrievalkit.train import TrainConfig, import_cirtorch, log_path, state_path, train

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _synthetic_set(root: Path, clusters=3, per=4, val=True) -> Path:
    rng = np.random.default_rng(0)
    names, cl = [], []
    for c in range(clusters):
        base = rng.integers(0, 255, size=(8, 10, 3)).astype(np.float32)
        for i in range(per):
            img = cv2.resize(base + rng.normal(0, 25, size=base.shape), (40, 32), interpolation=cv2.INTER_NEAREST)
            name = f"c{c}/im{i}.png"
            (root / f"c{c}").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / name), np.clip(img, 0, 255).astype(np.uint8))
            names.append(name)
            cl.append(c)
    cl = np.array(cl)
    q = np.array([a for a in range(len(names)) for b in range(len(names)) if a != b and cl[a] == cl[b] and b % per])
    p = np.array([b for a in range(len(names)) for b in range(len(names)) if a != b and cl[a] == cl[b] and b % per])
    vq = np.array([0, per]) if val else None
    vp = np.array([1, per + 1]) if val else None
    return write_tuples(root / "tuples.h5", Tuples(names, cl, q, p, None, str(root), {}, vq, vp))


CFG = dict(model="tiny-cnn", size=None, tuples_per_step=2, query_size=4, pool_size=8, num_neg=2, lr=1e-3, seed=5,
           embed_batch=4)


def _state(path):
    return load_model(path).state_dict()


@pytest.mark.parametrize("loss,chunk", [("contrastive", None), ("recall-k", 3)])
def test_resume_gives_the_weights_of_an_unbroken_run(tmp_path, loss, chunk):
    tup = _synthetic_set(tmp_path / "ims")
    cfg = TrainConfig(**CFG, loss=loss, batch_size=chunk, epochs=2)
    full = train(tup, tmp_path / "a" / "model.pt", cfg)
    train(tup, tmp_path / "b" / "model.pt", dataclasses.replace(cfg, epochs=1))
    first = _state(tmp_path / "b" / "model.pt")
    train(tup, tmp_path / "b" / "model.pt", cfg, resume=True)
    a, b = _state(full), _state(tmp_path / "b" / "model.pt")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0)
    # training moved the weights (epoch 2 differs from epoch 1), so the comparison means something
    assert any(not torch.equal(first[k], a[k]) for k in a if a[k].is_floating_point())
    log = json.loads(log_path(full).read_text())
    assert [r["epoch"] for r in log["epochs"]] == [1, 2]
    assert all(r["loss"] is not None and np.isfinite(r["loss"]) for r in log["epochs"])
    assert log["epochs"][0]["val_map"] is not None
    assert state_path(full).exists()


def test_resume_refuses_other_settings(tmp_path):
    tup = _synthetic_set(tmp_path / "ims")
    out = tmp_path / "m.pt"
    train(tup, out, TrainConfig(**CFG, epochs=1))
    with pytest.raises(UsageError, match="lr"):
        train(tup, out, TrainConfig(**{**CFG, "lr": 1e-2}, epochs=2), resume=True)
    with pytest.raises(BadInputError, match="no training state"):
        train(tup, tmp_path / "other.pt", TrainConfig(**CFG, epochs=1), resume=True)


def test_training_lowers_the_loss_on_fixed_tuples(tmp_path):
    tup = _synthetic_set(tmp_path / "ims")
    out = train(tup, tmp_path / "m.pt", TrainConfig(**{**CFG, "lr": 3e-3, "query_size": 8}, epochs=6))
    log = json.loads(log_path(out).read_text())["epochs"]
    assert log[-1]["loss"] < log[0]["loss"]


def test_cli_train_and_extract_with_the_model(tmp_path):
    tup = _synthetic_set(tmp_path / "ims")
    runner = CliRunner()
    r = runner.invoke(app, ["train", str(tup), "-o", str(tmp_path / "m.pt"), "-m", "tiny-cnn", "--size", "0",
                            "--epochs", "1", "--query-size", "4", "--pool-size", "8", "--num-neg", "2",
                            "--loss", "triplet", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip().endswith("m.pt")
    r = runner.invoke(app, ["train", str(tup), "-o", str(tmp_path / "m2.pt"), "--device", "cuda"])
    if not torch.cuda.is_available():
        assert r.exit_code == 4 and "CUDA" in r.output
    r = runner.invoke(app, ["train", str(tup), "-o", str(tmp_path / "m3.pt"), "--loss", "arcface"])
    assert r.exit_code == 2
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "retrievalkit", "-q", "extract", str(tmp_path / "ims"), "-o",
                        str(tmp_path / "f.h5"), "--model", str(tmp_path / "m.pt"), "--size", "0",
                        "--workers", "0", "--device", "cpu"], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    from retrievalkit.io.features import read_features

    assert read_features(tmp_path / "f.h5").dim == 64


def test_import_cirtorch(tmp_path):
    db = {"train": {"cids": ["aaaa0102030405", "bbbb0102030406", "cccc0102030407"], "cluster": [0, 0, 1],
                    "qidxs": [0], "pidxs": [1], "bbxs": [None]},
          "val": {"cids": ["dddd0102030408", "aaaa0102030405"], "cluster": [0, 0], "qidxs": [0], "pidxs": [1]}}
    pkl = tmp_path / "retrieval-SfM-tiny.pkl"
    pkl.write_bytes(pickle.dumps(db))
    r = CliRunner().invoke(app, ["train", "import-cirtorch", str(pkl), "--images", "ims", "-o",
                                 str(tmp_path / "t.h5")])
    assert r.exit_code == 0, r.output
    t = read_tuples(tmp_path / "t.h5")
    assert t.names[0] == "05/04/03/aaaa0102030405" and len(t.names) == 4  # one val image is also a train image
    assert t.cluster.tolist() == [0, 0, 1, 2]  # val clusters shifted past the training ones
    assert t.qidx.tolist() == [0] and t.pidx.tolist() == [1]
    assert t.val_qidx.tolist() == [3] and t.val_pidx.tolist() == [0]
    assert t.image_root == "ims"

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo hacked",))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"train": Evil()}))
    with pytest.raises(BadInputError, match="refusing"):
        import_cirtorch(tmp_path / "evil.pkl", tmp_path / "e.h5")
    (tmp_path / "bad.pkl").write_bytes(pickle.dumps({"train": {"cids": ["a"]}}))
    with pytest.raises(BadInputError, match="lacks"):
        import_cirtorch(tmp_path / "bad.pkl", tmp_path / "e.h5")


def test_real_photos_short_run(tmp_path):
    scenes = DATA / "scenes-dev"
    if not scenes.is_dir():
        pytest.skip(f"real photos not found at {scenes}")
    names = [f"{s}/images/{f.name}" for s in ("berlin", "statue", "cake")
             for f in sorted((scenes / s / "images").iterdir())[:3]]
    cl = np.repeat(np.arange(3), 3)
    q = np.array([a for a in range(9) for b in range(9) if a != b and cl[a] == cl[b]])
    p = np.array([b for a in range(9) for b in range(9) if a != b and cl[a] == cl[b]])
    tup = write_tuples(tmp_path / "t.h5", Tuples(names, cl, q, p, None, str(scenes)))
    r = CliRunner().invoke(app, ["train", str(tup), "-o", str(tmp_path / "m.pt"), "-m", "tiny-cnn", "--size", "48",
                                 "--epochs", "1", "--query-size", "3", "--pool-size", "9", "--num-neg", "2",
                                 "--loss", "recall-k", "--batch-size", "4", "--mixup", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert load_model(tmp_path / "m.pt").config["backbone"] == "tiny-cnn"


def test_train_with_a_whitening_layer(tmp_path):
    from retrievalkit.whiten import Whitening, write_whitening

    tup = _synthetic_set(tmp_path / "ims")
    rng = np.random.default_rng(1)
    P, m = rng.normal(size=(16, 64)).astype(np.float32) / 8, rng.normal(size=64).astype(np.float32) / 8
    w = write_whitening(tmp_path / "w.h5", Whitening(m, P, "pca"))
    out = train(tup, tmp_path / "m.pt", TrainConfig(**CFG, whitening=str(w), epochs=1))
    net = load_model(out)
    assert net.dim == 16 and net.config["whitening"] == [16, 64]
    # the layer started at (P, -P m) and was trained along
    assert not torch.allclose(net.whiten.weight, torch.from_numpy(P))
    assert torch.allclose(net.whiten.weight, torch.from_numpy(P), atol=0.05)
