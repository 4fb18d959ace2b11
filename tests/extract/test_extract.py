"""Extraction on real photos with a small random network (weights don't matter for these properties)."""

import shutil

import numpy as np
import pytest

from retrievalkit.configs.extract import GlobalExtractConfig
from retrievalkit.errors import BadInputError
from retrievalkit.extract import extract_global, merge_features
from retrievalkit.io import partial_path, read_features

KW = dict(model="tiny-cnn", size=96, workers=0)


def _cfg(**settings) -> GlobalExtractConfig:
    return GlobalExtractConfig(**{**KW, **settings})


@pytest.fixture()
def photos(tmp_path, demo_dir):
    """12 real photos in two sub-folders."""
    root = tmp_path / "photos"
    srcs = sorted((demo_dir / "images").rglob("*.jpg"))[:12]
    for i, src in enumerate(srcs):
        dst = root / ("a" if i % 2 else "b") / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
    return root


def test_folder_names_sorted_relative(photos, tmp_path):
    f = read_features(extract_global(photos, tmp_path / "f.h5", _cfg()))
    assert f.names == sorted(f.names) and all(n.startswith(("a/", "b/")) for n in f.names)
    assert f.vectors.shape == (12, f.dim)
    assert np.allclose(np.linalg.norm(f.vectors, axis=1), 1, atol=1e-5)


def test_resume_after_interruption_gives_same_vectors(photos, tmp_path):
    ref = read_features(extract_global(photos, tmp_path / "ref.h5", _cfg()))
    out = tmp_path / "f.h5"
    seen = []

    def interrupt(n):
        seen.append(n)
        if len(seen) == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_global(photos, out, _cfg(), flush_every=3, progress=interrupt)
    assert not out.exists() and partial_path(out).exists()
    calls = []
    got = read_features(extract_global(photos, out, _cfg(), resume=True, flush_every=3, progress=calls.append))
    assert calls[0] == 6  # the two flushed batches of 3 were kept, the rest redone
    assert got.names == ref.names
    assert np.allclose(got.vectors, ref.vectors, atol=1e-6)
    assert not partial_path(out).exists()


def test_shards_merge_equal_one_run(photos, tmp_path):
    ref = read_features(extract_global(photos, tmp_path / "ref.h5", _cfg()))
    parts = [extract_global(photos, tmp_path / f"s{i}.h5", _cfg(), shard=(i, 3)) for i in (3, 1, 2)]
    merged = read_features(merge_features(parts, tmp_path / "m.h5"))
    assert merged.names == ref.names
    assert np.allclose(merged.vectors, ref.vectors, atol=1e-6)
    with pytest.raises(BadInputError, match="missing"):
        merge_features(parts[:2], tmp_path / "bad.h5")


def test_corrupt_image_reported_and_skipped(photos, tmp_path):
    (photos / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    failures = []
    f = read_features(extract_global(photos, tmp_path / "f.h5", _cfg(), on_failure=lambda n, r: failures.append(n)))
    assert failures == ["a/broken.jpg"]
    assert f.failed == ["a/broken.jpg"] and "a/broken.jpg" not in f.names and len(f.names) == 12


def test_batched_equals_single(photos, tmp_path):
    one = read_features(extract_global(photos, tmp_path / "1.h5", _cfg()))
    many = read_features(extract_global(photos, tmp_path / "8.h5", _cfg(batch_size=8)))
    assert many.names == one.names and np.allclose(many.vectors, one.vectors, atol=1e-5)


def test_multiscale_and_regions(photos, tmp_path):
    ms = read_features(extract_global(photos, tmp_path / "ms.h5", _cfg(scales=(1, 0.7071, 0.5))))
    ss = read_features(extract_global(photos, tmp_path / "ss.h5", _cfg()))
    assert ms.vectors.shape == ss.vectors.shape and not np.allclose(ms.vectors, ss.vectors)
    rg = read_features(extract_global(photos, tmp_path / "r.h5", _cfg(regions=True)))
    assert rg.image_index is not None and rg.vectors.shape[0] > len(rg.names)
    assert sorted(set(rg.image_index.tolist())) == list(range(len(rg.names)))


def test_presets_fill_only_unset_options():
    from retrievalkit.errors import UsageError
    from retrievalkit.extract.presets import resolve_settings

    s = resolve_settings("gem-r101-1024", size=512)
    assert s["model"] == "resnet101" and s["size"] == 512 and len(s["scales"]) == 3
    assert resolve_settings(None)["model"] == "efficientnet-lite0"
    with pytest.raises(UsageError, match="gem-r101-1024"):
        resolve_settings("gem-r101-102")


def test_torchrun_two_processes_equal_one_run(photos, tmp_path):
    """`torchrun -m retrievalkit extract`: each process a shard, rank 0 merges (gloo on CPU)."""
    import os
    import subprocess
    import sys

    ref = read_features(extract_global(photos, tmp_path / "ref.h5", _cfg()))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "retrievalkit", "-q", "extract", str(photos), "-o", str(tmp_path / "dist.h5"), "--model", "tiny-cnn",
           "--size", "96", "--workers", "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = read_features(tmp_path / "dist.h5")
    assert got.names == ref.names and np.allclose(got.vectors, ref.vectors, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dist.h5", "photos", "ref.h5"]  # parts removed
    assert (tmp_path / "dist.h5").stat().st_mode & 0o044  # readable by others like any new file
