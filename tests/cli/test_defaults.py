"""One source of defaults: for every stage, `rkit CMD` with no options hands the library exactly the defaults of the
stage's config dataclass, the values a library call with ``config=None`` uses (tests/test_stages.py checks that
every stage takes its config so)."""

from __future__ import annotations

import inspect
import types
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from retrievalkit.cli.app import app
from retrievalkit.configs.copydetect import CopyDetectConfig
from retrievalkit.configs.diffusion import DiffusionConfig, PropagationConfig
from retrievalkit.configs.extract import GlobalExtractConfig, LocalExtractConfig
from retrievalkit.configs.mining import ManifoldMineConfig, SfmMineConfig
from retrievalkit.configs.search import AsmkConfig, AsmkSearchConfig, FuseConfig, KnnConfig, SearchConfig
from retrievalkit.configs.train import TrainConfig
from retrievalkit.configs.verify import VerifyParams
from retrievalkit.configs.whiten import ApplyWhiteningConfig, WhitenConfig

runner = CliRunner()


class _Called(Exception):
    pass


def _capture(monkeypatch, module: str, name: str) -> dict:
    """Replace ``module.name`` by a stub that records its arguments and stops the command there."""
    import importlib

    seen: dict = {}

    def stub(*args, **kwargs):
        seen["args"], seen["kwargs"] = args, kwargs
        raise _Called

    monkeypatch.setattr(importlib.import_module(module), name, stub)
    return seen


def _run(*argv) -> None:
    res = runner.invoke(app, ["-q", *map(str, argv)])
    assert isinstance(res.exception, _Called), res.output


def _config(seen: dict, cls):
    """The one argument of the captured call that is a ``cls`` (the stage's config)."""
    found = [a for a in (*seen["args"], *seen["kwargs"].values()) if isinstance(a, cls)]
    assert len(found) == 1, (cls.__name__, seen)
    return found[0]


def _defaults(cls, fields) -> dict:
    d = cls()
    return {f: getattr(d, f) for f in fields}


@pytest.fixture()
def tmp(tmp_path):
    (tmp_path / "dir").mkdir()
    for name in ("a.h5", "b.h5", "t.pkl"):
        (tmp_path / name).write_bytes(b"")
    return tmp_path


def test_extract_global_defaults(monkeypatch, demo_dir, tmp):
    seen = _capture(monkeypatch, "retrievalkit.extract.global_desc", "extract_global")
    _run("extract", demo_dir / "images", "-o", tmp / "o.h5")
    assert _config(seen, GlobalExtractConfig) == GlobalExtractConfig()
    assert seen["kwargs"]["resume"] is False and seen["kwargs"]["shard"] is None


def test_extract_local_defaults(monkeypatch, demo_dir, tmp):
    seen = _capture(monkeypatch, "retrievalkit.extract.local_desc", "extract_local")
    _run("extract", demo_dir / "images", "--local", "-o", tmp / "o.h5")
    assert _config(seen, LocalExtractConfig) == LocalExtractConfig()


@pytest.mark.parametrize("argv,module,fn,cls,mapping", [
    (["index", "search", "--database", "{a}", "--queries", "{b}"], "retrievalkit.search.stages", "search",
     SearchConfig, None),
    (["index", "knn", "{a}"], "retrievalkit.search.stages", "knn", KnnConfig, None),
    (["index", "fuse", "{a}", "{b}"], "retrievalkit.search.fusion", "fuse_ranks_files", FuseConfig, None),
    (["whiten", "{a}"], "retrievalkit.whiten.stage", "learn_whitening", WhitenConfig, None),
    (["whiten", "apply", "{a}", "--whitening", "{b}"], "retrievalkit.whiten.stage", "apply_whitening_file",
     ApplyWhiteningConfig, None),
    (["diffuse-prepare", "--database", "{a}"], "retrievalkit.diffusion.stage", "prepare_spectral", DiffusionConfig,
     ("rank", "graph_k", "mutual", "gamma")),
    (["propagate", "{a}", "--labels", "{b}"], "retrievalkit.diffusion.propagation_stage", "propagate",
     PropagationConfig, None),
    (["manifold-mine", "{a}", "--graph", "{b}"], "retrievalkit.mining.manifold", "manifold_mine",
     ManifoldMineConfig, None),
])
def test_stage_defaults(monkeypatch, tmp, argv, module, fn, cls, mapping):
    seen = _capture(monkeypatch, module, fn)
    _run(*[a.format(a=tmp / "a.h5", b=tmp / "b.h5") for a in argv], "-o", tmp / "o.h5")
    if mapping is None:  # the stage takes the config itself
        assert _config(seen, cls) == cls()
    else:  # the config's fields that the stage uses
        assert _defaults(cls, mapping) == {f: getattr(_config(seen, cls), f) for f in mapping}


def test_asmk_defaults(monkeypatch, tmp):
    import retrievalkit.io.locals as locals_io

    monkeypatch.setattr(locals_io, "count_locals", lambda path: (3, 0, 0))
    seen = _capture(monkeypatch, "retrievalkit.search.asmk", "build_asmk")
    _run("index", "asmk", tmp / "a.h5", "-o", tmp / "o.h5")
    assert _config(seen, AsmkConfig) == AsmkConfig()
    monkeypatch.setattr(locals_io, "read_locals", lambda path: types.SimpleNamespace(counts=lambda: np.ones(3)))
    seen = _capture(monkeypatch, "retrievalkit.search.asmk", "search_asmk_files")
    _run("index", "search-asmk", "--database", tmp / "a.h5", "--queries", tmp / "b.h5", "-o", tmp / "o.h5")
    assert _config(seen, AsmkSearchConfig) == AsmkSearchConfig()


def test_diffuse_defaults(monkeypatch, tmp):
    seen = _capture(monkeypatch, "retrievalkit.diffusion.stage", "diffuse")
    _run("diffuse", "--database", tmp / "a.h5", "--queries", tmp / "b.h5", "-o", tmp / "o.h5")
    assert _config(seen, DiffusionConfig) == DiffusionConfig()


def test_verify_defaults(monkeypatch, tmp):
    import retrievalkit.io.ranks as ranks_io

    monkeypatch.setattr(ranks_io, "read_ranks", lambda path: types.SimpleNamespace(query_names=["q"]))
    seen = _capture(monkeypatch, "retrievalkit.verify.rerank", "verify_ranks")
    _run("verify", tmp / "a.h5", "--queries", tmp / "a.h5", "--database", tmp / "b.h5", "-o", tmp / "o.h5")
    assert _config(seen, VerifyParams) == VerifyParams()


def test_train_defaults(monkeypatch, tmp):
    seen = _capture(monkeypatch, "retrievalkit.train.loop", "train")
    _run("train", tmp / "a.h5", "-o", tmp / "m.pt")
    cfg = seen["args"][2]
    assert cfg == TrainConfig(device=cfg.device) and cfg.device == "cpu"
    assert seen["kwargs"]["resume"] is False


def test_sfm_mine_defaults(monkeypatch, tmp):
    from retrievalkit.mining.colmap import SfmOptions
    from retrievalkit.mining.sfm import sfm_options

    seen = _capture(monkeypatch, "retrievalkit.mining.sfm", "sfm_mine")
    _run("sfm-mine", tmp / "dir", "-o", tmp / "t.h5")
    d = SfmMineConfig()
    assert _config(seen, SfmMineConfig) == d
    assert sfm_options(d) == SfmOptions(max_image_size=d.sift_size, max_features=d.max_features, matcher=d.matcher,
                                        overlap=d.overlap, min_model_size=d.min_model_size,
                                        relaxed_init=d.relaxed_init, mapper_trials=d.mapper_trials,
                                        timeout=d.timeout, seed=d.seed)
    assert sfm_options(d) == SfmOptions()  # and the reconstruction's own defaults are the same


def test_copy_detect_defaults(monkeypatch, tmp):
    seen = _capture(monkeypatch, "retrievalkit.copydetect.stage", "copy_detect")
    _run("copy-detect", "--queries", tmp / "dir", "--database", tmp / "dir", "--training", tmp / "dir",
         "-o", tmp / "m.csv")
    assert _config(seen, CopyDetectConfig) == CopyDetectConfig().resolved(has_training=True)
    d = CopyDetectConfig()
    assert d.query_views == "full,center,grid" and d.verify is not None and d.verify.top == 10
    _run("copy-detect", "--queries", tmp / "dir", "--database", tmp / "dir", "-o", tmp / "m.csv")
    cfg = _config(seen, CopyDetectConfig)
    assert cfg == CopyDetectConfig().resolved(has_training=False)
    assert cfg.dim == 0 and cfg.norm_beta == 0


def test_import_cirtorch_defaults(monkeypatch, tmp):
    from retrievalkit.configs.train import CirtorchImportConfig
    from retrievalkit.train.cirtorch_import import import_cirtorch

    sig = inspect.signature(import_cirtorch).parameters
    seen = _capture(monkeypatch, "retrievalkit.train.cirtorch_import", "import_cirtorch")
    _run("train", "import-cirtorch", tmp / "t.pkl", "-o", tmp / "t.h5")
    assert seen["kwargs"]["image_root"] == sig["image_root"].default
    assert _config(seen, CirtorchImportConfig) == CirtorchImportConfig()


def test_help_shows_the_configs_defaults():
    res = runner.invoke(app, ["index", "search", "--help"], terminal_width=200)
    assert f"(default {SearchConfig().top_k})" in res.output
    res = runner.invoke(app, ["diffuse", "--help"], terminal_width=200)
    assert f"(default {DiffusionConfig().top_k})" in res.output


def test_no_torch_needed_to_read_the_configs():
    import subprocess
    import sys

    code = ("import sys, retrievalkit.configs.extract, retrievalkit.configs.search, retrievalkit.configs.diffusion, "
            "retrievalkit.configs.copydetect, retrievalkit.configs.train, retrievalkit.configs.mining, "
            "retrievalkit.configs.verify, retrievalkit.configs.whiten; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False", out.stderr
