"""Inputs that break an assumption of the computation: refused (exit 3) or fixed with one warning line, never
accepted silently; and options that conflict, refused naming both sides."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from retrievalkit.io.features import Features, write_features
from tests.reliability.inputs_helpers import assert_clean_refusal, demo_images, rkit, snapshot


def _feats(path, names, x, **config) -> None:
    write_features(path, Features(list(names), np.asarray(x, np.float32), {"model": "synthetic", **config}))


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _warnings(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("warning:")]


def test_duplicate_names_in_a_features_file_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    _feats(tmp_path / "db.h5", ["a.jpg", "b.jpg", "a.jpg"], _unit(rng.normal(size=(3, 8))))
    _feats(tmp_path / "q.h5", ["q.jpg"], _unit(rng.normal(size=(1, 8))))
    before = snapshot(tmp_path)
    p = rkit("index", "search", tmp_path / "db.h5", tmp_path / "q.h5", "-o", tmp_path / "r.h5")
    assert_clean_refusal(p, 3, str(tmp_path / "db.h5"), "'a.jpg'", "more than once")
    assert snapshot(tmp_path) == before


def test_repeated_names_in_a_list_are_taken_once_with_a_warning(tmp_path):
    root = tmp_path / "imgs"
    demo_images(root, 2)
    lst = tmp_path / "l.txt"
    lst.write_text("d0.jpg\nd1\nd0\n")
    p = rkit("extract", root, "--list", lst, "-o", tmp_path / "f.h5", "--model", "tiny-cnn", "--size", "32",
             "--workers", "0")
    assert p.returncode == 0, p.stderr
    warn = _warnings(p.stderr)
    assert len(warn) == 1 and str(lst) in warn[0] and "1 repeated" in warn[0], p.stderr
    with h5py.File(tmp_path / "f.h5") as f:
        assert [n.decode() for n in f["names"][()]] == ["d0.jpg", "d1.jpg"]


def test_vectors_that_are_not_unit_length_are_renormalised_with_one_warning(tmp_path):
    rng = np.random.default_rng(1)
    xb = _unit(rng.normal(size=(20, 16)))
    xq = _unit(rng.normal(size=(3, 16)))
    scale = rng.uniform(0.2, 5.0, size=(20, 1))
    _feats(tmp_path / "db.h5", [f"{i}.jpg" for i in range(20)], xb * scale)
    _feats(tmp_path / "q.h5", ["q0.jpg", "q1.jpg", "q2.jpg"], xq)
    before = snapshot(tmp_path)
    p = rkit("index", "search", tmp_path / "db.h5", tmp_path / "q.h5", "-o", tmp_path / "r.h5", "-k", "20")
    assert p.returncode == 0, p.stderr
    warn = _warnings(p.stderr)
    assert len(warn) == 1 and str(tmp_path / "db.h5") in warn[0] and "20 of 20" in warn[0], p.stderr
    with h5py.File(tmp_path / "r.h5") as f:
        ids = f["ids"][()] if "ids" in f else f["indices"][()]
    assert np.array_equal(ids, np.argsort(-(xq @ xb.T), axis=1, kind="stable"))  # cosine, not the raw product
    assert {k: v for k, v in snapshot(tmp_path).items() if k != "r.h5"} == before
    _feats(tmp_path / "z.h5", ["a.jpg", "b.jpg"], np.array([[1.0, 0.0], [0.0, 0.0]]))
    p = rkit("index", "search", tmp_path / "z.h5", tmp_path / "z.h5", "-o", tmp_path / "r2.h5")
    assert_clean_refusal(p, 3, str(tmp_path / "z.h5"), "all zeros")


def test_pca_whitening_from_fewer_vectors_than_dimensions(tmp_path):
    rng = np.random.default_rng(2)
    _feats(tmp_path / "f.h5", [f"{i}.jpg" for i in range(10)], _unit(rng.normal(size=(10, 32))))
    before = snapshot(tmp_path)
    p = rkit("whiten", tmp_path / "f.h5", "-o", tmp_path / "w.h5")
    assert_clean_refusal(p, 3, str(tmp_path / "f.h5"), "10 vectors", "--dim 9", "--shrinkage")
    assert snapshot(tmp_path) == before
    p = rkit("whiten", tmp_path / "f.h5", "-o", tmp_path / "w.h5", "--dim", "9")
    assert p.returncode == 0, p.stderr


def test_predicted_query_ids_unknown_to_the_ground_truth(tmp_path):
    gt = tmp_path / "gt.csv"
    gt.write_text("query_id,reference_id\nQ1,R1\nQ2,R2\nQ3,\n")
    pred = tmp_path / "m.csv"
    pred.write_text("query_id,reference_id,score\nQ1,R1,0.9\nQ2,R7,0.5\nQX,R2,0.8\nQY,R1,0.7\n")
    p = rkit("evaluate", pred, "--gt", gt)
    assert p.returncode == 0, p.stderr
    warn = _warnings(p.stderr)
    assert len(warn) == 1 and "2 of its 4 query ids" in warn[0] and "'QX'" in warn[0], p.stderr
    other = tmp_path / "other.csv"
    other.write_text("query_id,reference_id,score\nQX,R1,0.9\n")
    p = rkit("evaluate", other, "--gt", gt)
    assert_clean_refusal(p, 3, str(other), str(gt), "none of its 1 query ids")


def test_model_file_of_another_architecture_than_model_is_refused(tmp_path):
    from retrievalkit.models import save_model
    from retrievalkit.models.network import RetrievalNet
    from retrievalkit.models.registry import create_backbone

    model = save_model(RetrievalNet(create_backbone("tiny-cnn"), pooling="gem"), tmp_path / "tiny.pt")
    root = tmp_path / "imgs"
    demo_images(root, 1)
    before = snapshot(tmp_path)
    p = rkit("extract", root, "--model", "resnet18", "--weights", model, "-o", tmp_path / "f.h5", "--size", "32",
             "--workers", "0")
    assert_clean_refusal(p, 2, str(model), "tiny-cnn", "resnet18")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("what", ["features", "list"])
def test_empty_inputs_are_refused(tmp_path, what):
    if what == "features":
        _feats(tmp_path / "e.h5", [], np.zeros((0, 8)))
        p = rkit("whiten", tmp_path / "e.h5", "-o", tmp_path / "w.h5")
        assert_clean_refusal(p, 3, str(tmp_path / "e.h5"))
    else:
        root = tmp_path / "imgs"
        demo_images(root, 1)
        (tmp_path / "l.txt").write_text("# nothing\n\n")
        p = rkit("extract", root, "--list", tmp_path / "l.txt", "-o", tmp_path / "f.h5", "--model", "tiny-cnn")
        assert_clean_refusal(p, 3, str(tmp_path / "l.txt"), "empty")
