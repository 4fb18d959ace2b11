"""Label propagation (rkit propagate): clean clusters, certainty weights, unreached images, tuples, CLI."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from typer.testing import CliRunner

from retrievalkit.cli.app import app
from retrievalkit.diffusion.propagation import (
    PropagationConfig,
    certainty,
    class_weights,
    knn_classify,
    propagate_labels,
)
from retrievalkit.diffusion.propagation_stage import pseudo_label_tuples
from retrievalkit.errors import BadInputError
from retrievalkit.io import Features, write_features
from retrievalkit.io.tuples import read_tuples
from tests.conftest import run_rkit
from tests.diffusion.conftest import curves

runner = CliRunner()


def test_two_clusters_one_label_each_labels_every_point():
    x, lab = curves(n_clusters=2, per=40, noise=0.05, seed=3)
    seeds = np.full(len(x), -1)
    seeds[[5, 70]] = lab[[5, 70]]
    res = propagate_labels(x, seeds, 2, PropagationConfig(graph_k=5))
    assert np.array_equal(res.label, lab)
    assert res.reached.all() and res.confidence.min() > 0.5


def test_certainty_and_class_weights():
    p = np.array([[1.0, 0, 0, 0], [0.25, 0.25, 0.25, 0.25], [0.5, 0.5, 0, 0]])
    np.testing.assert_allclose(certainty(p), [1.0, 0.0, 0.5], atol=1e-12)  # 1 - log 2 / log 4
    np.testing.assert_allclose(class_weights(np.array([0, 0, 2, 0]), 3), [1 / 3, 0, 1])


def test_mixed_region_has_lower_confidence_and_weight():
    x, lab = curves(n_clusters=3, per=30, noise=0.05, seed=1)
    # a bridge point halfway between two labelled points of clusters 0 and 1
    bridge = x[0] + x[30]
    x2 = np.vstack([x, bridge / np.linalg.norm(bridge)]).astype(np.float32)
    seeds = np.full(len(x2), -1)
    seeds[[0, 30, 60]] = [0, 1, 2]
    res = propagate_labels(x2, seeds, 3, PropagationConfig(graph_k=6, mutual=False))
    assert np.array_equal(res.label[:90], lab)
    assert res.weight[-1] < np.median(res.weight[:90]) and res.confidence[-1] < np.median(res.confidence[:90])


def test_unreached_images_take_the_nearest_label_with_zero_confidence():
    x, lab = curves(n_clusters=2, per=20, noise=0.05, seed=2)
    seeds = np.full(len(x), -1)
    seeds[[0, 20]] = [0, 1]
    # mutual graph with k=1: many nodes stay outside the labelled components
    res = propagate_labels(x, seeds, 2, PropagationConfig(graph_k=1, iters=2))
    far = ~res.reached
    assert far.any()
    assert np.all(res.confidence[far] == 0) and np.all(res.weight[far] == 0)
    base, _ = knn_classify(x, seeds)
    assert np.array_equal(res.label[far], base[far])


def test_pseudo_label_tuples():
    x, lab = curves(n_clusters=3, per=15, noise=0.05, seed=4)
    seeds = np.full(len(x), -1)
    seeds[[0, 15, 30]] = [0, 1, 2]
    res = propagate_labels(x, seeds, 3, PropagationConfig(graph_k=5))
    res.weight[3] = 0.0  # an unusable pseudo-label is left out
    cluster, q, p, w = pseudo_label_tuples(x, res, 3)
    assert cluster[3] == -1 and 3 not in q and 3 not in p
    assert np.all(cluster[q] == cluster[p]) and np.all(q != p)
    assert w.mean() == pytest.approx(1.0) and np.all(w >= 0)


@pytest.fixture
def synthetic(tmp_path):
    x, lab = curves(n_clusters=3, per=20, noise=0.05, seed=5)
    names = [f"scene{c}/img{i:03d}.jpg" for i, c in enumerate(lab)]
    write_features(tmp_path / "f.h5", Features(names, x))
    with open(tmp_path / "labels.csv", "w") as f:
        f.write("name,label\n")
        for i in (0, 20, 40):
            f.write(f"{names[i][:-4]},landmark-{lab[i]}\n")  # without the extension
    return tmp_path, names, lab


def test_cli_end_to_end(synthetic):
    t, names, lab = synthetic
    proc = run_rkit("-q", "propagate", t / "f.h5", "--labels", t / "labels.csv", "-o", t / "p.csv",
                    "--tuples", t / "pseudo.h5", "--graph-k", "5", "--device", "cpu")
    assert proc.stdout.strip() == str(t / "p.csv")
    rows = list(csv.DictReader(open(t / "p.csv")))
    assert [r["name"] for r in rows] == names
    assert [r["label"] for r in rows] == [f"landmark-{c}" for c in lab]
    assert all(0 <= float(r["confidence"]) <= 1 and 0 <= float(r["weight"]) <= 1 for r in rows)
    tup = read_tuples(t / "pseudo.h5")
    assert tup.weight is not None and len(tup) == 60 and tup.config["classes"] == [f"landmark-{c}" for c in range(3)]


def test_cli_bad_inputs(synthetic):
    t, _, _ = synthetic
    # a labelled name that is not in the features file; a CSV without the header
    (t / "bad.csv").write_text("name,label\nnot/there.jpg,x\n")
    (t / "nohead.csv").write_text("a,b\n")
    (t / "twice.csv").write_text("name,label\nscene0/img000.jpg,x\nscene0/img000.jpg,y\n")
    for csv_file, msg in (("bad.csv", "not/there.jpg"), ("nohead.csv", "name,label"), ("twice.csv", "both")):
        res = runner.invoke(app, ["propagate", str(t / "f.h5"), "--labels", str(t / csv_file), "-o",
                                  str(t / "q.csv")])
        assert res.exit_code == 3 and msg in res.output, (csv_file, res.output)
        assert not (t / "q.csv").exists()
    res = runner.invoke(app, ["propagate", str(t / "f.h5"), "--labels", str(t / "bad.csv"), "-o", str(t / "q.csv"),
                              "--alpha", "1.5"])
    assert res.exit_code == 2


def test_no_labels_is_bad_input():
    x, _ = curves(n_clusters=2, per=5)
    with pytest.raises(BadInputError):
        propagate_labels(x, np.full(len(x), -1), 2)
