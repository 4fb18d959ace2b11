"""Scene discovery and flat-folder clustering."""

import numpy as np

from retrievalkit.mining.collections import cluster_by_descriptors, discover_collections


def _blobs(sizes, dim=16, spread=0.05, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.linalg.qr(rng.normal(size=(dim, dim)))[0][: len(sizes)]  # orthogonal: similarity 0
    x = np.concatenate([c + spread * rng.normal(size=(n, dim)) for c, n in zip(centres, sizes)])
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_clusters_are_the_blobs_largest_first():
    x = _blobs([4, 7, 5])
    truth = np.repeat([0, 1, 2], [4, 7, 5])
    labels = cluster_by_descriptors(x, k=5, threshold=0.5, min_size=3)
    # same partition as the truth, numbered by decreasing size
    assert labels[truth == 1].tolist() == [0] * 7
    assert labels[truth == 2].tolist() == [1] * 5
    assert labels[truth == 0].tolist() == [2] * 4


def test_small_components_are_unclustered():
    x = _blobs([6, 2, 1])
    labels = cluster_by_descriptors(x, k=5, threshold=0.5, min_size=3)
    assert (labels[:6] == 0).all() and (labels[6:] == -1).all()


def test_threshold_splits_weak_links():
    x = _blobs([5, 5], spread=0.05)
    mixed = np.concatenate([x, (x[:1] + x[5:6]) / np.linalg.norm(x[:1] + x[5:6])])  # a bridge, sim ~0.7 to both
    assert len(set(cluster_by_descriptors(mixed, k=6, threshold=0.9, mutual=False).tolist()) - {-1}) == 2
    assert len(set(cluster_by_descriptors(mixed, k=6, threshold=0.5, mutual=False).tolist()) - {-1}) == 1


def test_discover_collections(tmp_path):
    for rel in ("a/images/1.jpg", "a/images/2.jpg", "b/x.png", "loose1.jpg", "loose2.JPG", "empty/readme.txt",
                ".hidden/3.jpg"):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
    cols, loose = discover_collections(tmp_path)
    assert [c.name for c in cols] == ["a", "b"]
    assert cols[0].names == ["images/1.jpg", "images/2.jpg"]
    assert cols[0].global_names() == ["a/images/1.jpg", "a/images/2.jpg"]
    assert loose == ["loose1.jpg", "loose2.JPG"]
