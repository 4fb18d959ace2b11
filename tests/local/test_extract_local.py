"""Local extraction: HOW selection on synthetic maps, PCA-whitening, deep (tiny-cnn) and SIFT on real photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from retrievalkit.configs.extract import LocalExtractConfig
from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.extract.local_deep import how_select
from retrievalkit.extract.local_desc import PCA_RIDGE, extract_local, read_pca
from retrievalkit.io.locals import read_locals
from retrievalkit.whiten.core import apply_whitening, pca_whitening

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
DEMO = DATA / "demo" / "images"


def _need_demo():
    if not DEMO.is_dir():
        pytest.skip(f"real photos not found at {DEMO} (the shared data folder is absent)")


def test_how_select_keeps_strongest_positions_over_scales():
    a = torch.zeros(4, 6, 8)
    a[:, 2, 5] = torch.tensor([3.0, 0, 0, 0])  # norm 3 at (x=5, y=2), scale-1 map (cell 16 px)
    a[:, 0, 0] = torch.tensor([0, 1.0, 0, 0])  # norm 1
    b = torch.zeros(4, 3, 4)
    b[:, 1, 1] = torch.tensor([0, 0, 2.0, 0])  # norm 2 at (1, 1), half-scale map (cell 32 px)
    kp, desc = how_select([a, b], [16.0, 32.0], max_features=2, smooth=False)
    assert kp.shape == (2, 4) and desc.shape == (2, 4)
    np.testing.assert_allclose(kp[0], [5.5 * 16, 2.5 * 16, 16, 3])
    np.testing.assert_allclose(kp[1], [1.5 * 32, 1.5 * 32, 32, 2])
    np.testing.assert_allclose(desc, [[1, 0, 0, 0], [0, 0, 1, 0]])
    # zero activations are never features: a blank map gives none
    kp0, _ = how_select([torch.zeros(4, 3, 3)], [16.0], 10, smooth=True)
    assert kp0.shape[0] == 0


def test_pca_whitening_gives_identity_covariance():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5000, 20)) @ rng.standard_normal((20, 20)) + 3
    mean, proj = pca_whitening(x, dim=8, ridge=PCA_RIDGE)  # the deep locals' PCA-whitening
    y = (x - mean) @ proj.T
    np.testing.assert_allclose(np.cov(y.T), np.eye(8), atol=1e-3)
    z = apply_whitening(x[:10], mean, proj)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1, rtol=1e-5)


def _folder(tmp_path, scenes=("berliner_dom", "et_toy"), per=2, blank=False):
    root = tmp_path / "imgs"
    for sc in scenes:
        for p in sorted((DEMO / sc).glob("*.jpg"))[:per]:
            (root / sc).mkdir(parents=True, exist_ok=True)
            (root / sc / p.name).write_bytes(p.read_bytes())
    if blank:
        cv2.imwrite(str(root / "blank.jpg"), np.full((200, 300, 3), 200, np.uint8))
    return root


def test_deep_locals_tiny_cnn_positions_and_shared_pca(tmp_path):
    _need_demo()
    root = _folder(tmp_path)
    db = extract_local(root, tmp_path / "db.h5", LocalExtractConfig(method="deep", model="tiny-cnn", size=160,
                                                                    scales=(1.0, 0.5), max_features=50, dim=16))
    loc = read_locals(db)
    assert len(loc) == 4 and loc.dim == 16 and loc.keypoints.shape[1] == 4
    assert (loc.counts() > 0).all() and (loc.counts() <= 50).all()
    np.testing.assert_allclose(np.linalg.norm(loc.descriptors, axis=1), 1, rtol=1e-4)
    for i in range(len(loc)):  # keypoints lie inside the original (not resized) image
        kp, _ = loc.image(i)
        w, h = loc.image_sizes[i]
        assert max(w, h) > 160
        assert (kp[:, 0] >= 0).all() and (kp[:, 0] <= w).all() and (kp[:, 1] >= 0).all() and (kp[:, 1] <= h).all()
        assert kp[:, 0].max() > 0.6 * w  # not squeezed into the resized frame
    q = extract_local(root, tmp_path / "q.h5", LocalExtractConfig(method="deep", model="tiny-cnn", size=160,
                                                                  scales=(1.0,), max_features=20),
                      pca=db, list_file=None)
    assert read_locals(q).config["pca"] == loc.config["pca"]
    m, p = read_pca(db)
    assert m.shape == (64,) and p.shape == (16, 64)  # (mean, proj): proj is (D_out, D_in)
    with pytest.raises(BadInputError, match="PCA"):
        read_pca(extract_local(root, tmp_path / "s.h5", LocalExtractConfig(method="sift", size=160, max_features=10)))
    with pytest.raises(UsageError, match="s16"):
        extract_local(root, tmp_path / "x.h5", LocalExtractConfig(model="tiny-cnn", layer="s16", size=160))


def test_sift_locals_and_blank_image(tmp_path):
    _need_demo()
    root = _folder(tmp_path, per=1, blank=True)
    out = extract_local(root, tmp_path / "s.h5", LocalExtractConfig(method="sift", size=320, max_features=300))
    loc = read_locals(out)
    assert loc.names[-1] == "blank.jpg" or "blank.jpg" in loc.names
    counts = dict(zip(loc.names, loc.counts()))
    assert counts["blank.jpg"] == 0
    assert all(0 < c <= 300 for n, c in counts.items() if n != "blank.jpg")
    assert loc.dim == 128 and loc.config["method"] == "sift"


def test_tiny_image_is_enlarged_not_crashing():
    from retrievalkit.extract.local_deep import MIN_SIDE, LocalBackbone, deep_locals
    from retrievalkit.models import create_backbone

    net = LocalBackbone(create_backbone("efficientnet-lite0", weights="random")).eval()
    kp, desc = deep_locals(net, torch.randn(1, 3, 40, 60), scales=(1.0, 0.5), max_features=30)
    assert 0 < kp.shape[0] <= 30 and desc.shape == (kp.shape[0], net.out_channels) and net.layer == "s16"
    assert kp[:, 0].max() <= 60 and kp[:, 1].max() <= 40  # positions in the input's pixels
    assert MIN_SIDE > 40


def test_random_backbone_is_the_same_network_in_every_run(tmp_path):
    """Database and queries are often extracted by separate runs: an unweighted network must not depend on
    the global random state, or the two sides would be described by different networks."""
    _need_demo()
    root = _folder(tmp_path, scenes=("et_toy",), per=1)
    torch.manual_seed(1)
    cfg = LocalExtractConfig(method="deep", model="tiny-cnn", size=128, scales=(1.0,), max_features=20, dim=8)
    a = read_locals(extract_local(root, tmp_path / "a.h5", cfg))
    torch.manual_seed(2)
    b = read_locals(extract_local(root, tmp_path / "b.h5", cfg))
    np.testing.assert_array_equal(a.descriptors, b.descriptors)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
