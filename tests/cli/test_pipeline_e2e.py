"""The real `rkit` command on the bundled demo photos: extract → index → evaluate, and error exits."""

import json

import pytest

from retrievalkit.evaluate.groundtruth import load_gnd
from tests.conftest import run_rkit


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, demo_dir):
    out = tmp_path_factory.mktemp("demo")
    gnd = demo_dir / "gnd.json"
    for split, name in (("database", "db.h5"), ("queries", "q.h5")):
        p = run_rkit("-q", "extract", demo_dir / "images", "--gnd", gnd, "--split", split, "-o", out / name)
        assert p.stdout.strip() == str(out / name)  # stdout carries only the output path
    run_rkit("index", "search", out / "db.h5", out / "q.h5", "-o", out / "ranks.h5", "-k", "100")
    p = run_rkit("evaluate", out / "ranks.h5", "--gnd", gnd)
    return out, gnd, json.loads(p.stdout), p.stderr


def test_demo_metrics_json_shape_and_quality(demo_run):
    _, gnd, m, stderr = demo_run
    assert set(m) == {"map", "mp", "recall", "queries"}
    assert m["queries"] == len(load_gnd(gnd).qimlist)
    assert set(m["map"]) == {"easy", "medium", "hard"}
    assert set(m["mp"]["medium"]) == {"1", "5", "10"}
    # ImageNet EfficientNet-Lite0 + GeM separates 6 distinct scenes well; a broken pipeline scores near chance.
    assert m["map"]["medium"] > 70
    assert "mAP" in stderr  # the readable table goes to stderr


def test_knn_graph_cli(demo_run):
    out, _, _, _ = demo_run
    run_rkit("index", "knn", out / "db.h5", "-o", out / "knn.h5", "-k", "5")
    from retrievalkit.io import read_features, read_knn

    g, f = read_knn(out / "knn.h5"), read_features(out / "db.h5")
    assert g.names == f.names and g.indices.shape == (len(f.names), 5)


def test_wrong_file_kind_exit_3(demo_run):
    out, gnd, _, _ = demo_run
    p = run_rkit("index", "search", out / "ranks.h5", out / "q.h5", "-o", out / "x.h5", check=False)
    assert p.returncode == 3 and "ranks.h5" in p.stderr and "Traceback" not in p.stderr
    assert not (out / "x.h5").exists()


def test_unknown_model_lists_close_matches(tmp_path, demo_dir):
    p = run_rkit("extract", demo_dir / "images", "-o", tmp_path / "f.h5", "--model", "resnet5", check=False)
    assert p.returncode == 2 and "resnet50" in p.stderr
    assert not (tmp_path / "f.h5").exists()


def test_cuda_request_without_gpu_exit_4(tmp_path, demo_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    p = run_rkit("extract", demo_dir / "images", "-o", tmp_path / "f.h5", "--device", "cuda", check=False)
    assert p.returncode == 4 and "CUDA" in p.stderr


def test_empty_folder_and_bad_options(tmp_path):
    (tmp_path / "empty").mkdir()
    p = run_rkit("extract", tmp_path / "empty", "-o", tmp_path / "f.h5", check=False)
    assert p.returncode == 3 and "no images found" in p.stderr
    p = run_rkit("extract", tmp_path / "empty", "-o", tmp_path / "f.h5", "--shard", "3/2", check=False)
    assert p.returncode == 2


def test_every_command_has_help_with_example():
    for cmd in (["extract"], ["merge"], ["index", "search"], ["index", "knn"], ["evaluate"]):
        p = run_rkit(*cmd, "--help")
        assert "Example" in p.stdout, cmd
