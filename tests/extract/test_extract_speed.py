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


class _RecordingNet:
    """Stands in for the network: remembers each batch's image ids; the descriptor of an image is its id."""

    dim = 1

    def __init__(self):
        self.batches = []

    def describe(self, x, scales=(1.0,)):
        ids = x[:, 0, 0, 0]
        self.batches.append(ids.long().tolist())
        return ids[:, None].float()


class _RecordingWriter:
    def __init__(self):
        self.calls = []

    def append(self, names, arr, failed, consumed=None, owners=None):
        self.calls.append((list(names), arr[:, 0].tolist(), list(failed), consumed))


def test_batches_run_when_full_with_the_batches_of_a_flush():
    """A same-shape batch is described as soon as it is full (while the loader decodes on); the batches are
    those group_same_shape makes of the flush's images, and the writer gets them in input order."""
    from retrievalkit.extract.global_desc import _Batches
    from retrievalkit.images.loader import LoadedImage, group_same_shape

    rng = np.random.default_rng(0)
    shapes = [(3, 4, 5), (3, 5, 4), (3, 2, 2)]
    items = []
    for i in range(23):
        if i in (6, 15):
            items.append(LoadedImage(i, f"im{i}", None, "unreadable"))
            continue
        items.append(LoadedImage(i, f"im{i}", torch.full(shapes[rng.choice(3, p=[0.6, 0.3, 0.1])], float(i))))
    net, writer = _RecordingNet(), _RecordingWriter()
    batches = _Batches(net, writer, (1.0,), False, 4, "cpu")
    seen_at = {}
    for it in items[:12]:  # a first flush of 12 images, then one of 11
        batches.add(it, None)
        for b in net.batches:
            seen_at.setdefault(tuple(b), it.index)
    batches.flush()
    for it in items[12:]:
        batches.add(it, None)
        for b in net.batches:
            seen_at.setdefault(tuple(b), it.index)
    batches.flush()
    want = []
    for part in (items[:12], items[12:]):
        want += [[g.index for g in group] for group in group_same_shape([i for i in part if i.tensor is not None], 4)]
    assert sorted(map(sorted, net.batches)) == sorted(map(sorted, want))
    full = [b for b in net.batches if len(b) == 4]
    assert full and all(seen_at[tuple(b)] == b[-1] for b in full)  # run on arrival of their last image
    assert [c[0] for c in writer.calls] == [[f"im{i}" for i in range(a, b) if i not in (6, 15)]
                                            for a, b in ((0, 12), (12, 23))]
    assert [c[1] for c in writer.calls] == [[float(i) for i in range(a, b) if i not in (6, 15)]
                                            for a, b in ((0, 12), (12, 23))]
    assert [c[3] for c in writer.calls] == [12, 11] and writer.calls[0][2] == [("im6", "unreadable")]


def test_prefetch_covers_a_batch_within_the_byte_budget():
    from retrievalkit.extract.global_desc import PREFETCH_BYTES, _prefetch

    assert _prefetch(32, 2, 512) * 2 >= 32  # the next batch decodes while one runs
    assert _prefetch(1, 2, 512) == 4 and _prefetch(32, 0, 512) == 4 and _prefetch(32, 2, None) == 4
    huge = 8192
    assert _prefetch(256, 2, huge) * 2 * 3 * 4 * huge * huge <= max(PREFETCH_BYTES, 8 * 3 * 4 * huge * huge)
