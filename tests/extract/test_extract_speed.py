"""Extraction's speed settings (channels-last on CPU, the retained heap) leave the descriptors unchanged."""

from __future__ import annotations

import numpy as np
import torch

from retrievalkit.configs.extract import GlobalExtractConfig
from retrievalkit.extract import extract_global
from retrievalkit.extract.global_desc import build_network
from retrievalkit.images.discover import find_images
from retrievalkit.images.loader import ImageDataset
from retrievalkit.io import read_features


def test_extract_equals_plain_forward_passes(tmp_path, demo_dir):
    """rkit extract (channels-last, batches of 4, retained heap) against the network run image by image on
    contiguous tensors with glibc's defaults."""
    root = demo_dir / "images"
    names = find_images(root)[:8]
    (tmp_path / "list.txt").write_text("\n".join(names) + "\n")
    got = read_features(extract_global(root, tmp_path / "f.h5", GlobalExtractConfig(
        model="efficientnet-lite0", size=128, workers=0, batch_size=4), list_file=tmp_path / "list.txt"))
    net = build_network("efficientnet-lite0")
    ds = ImageDataset(root, names, 128, net.mean, net.std)
    with torch.inference_mode():
        want = np.concatenate([net.describe(ds[i].tensor[None]).numpy() for i in range(len(names))])
    assert got.names == names
    assert np.abs(want).max() > 0.05  # real descriptors, not zeros
    np.testing.assert_allclose(got.vectors, want, rtol=0, atol=1e-5)
