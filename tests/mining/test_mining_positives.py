"""Positive selection from 3D models and negative sampling, on synthetic observations with known answers."""

import numpy as np
import pytest

from retrievalkit.errors import UsageError
from retrievalkit.mining.positives import (
    ModelObservations,
    candidate_positives,
    mine_model_pairs,
    pair_statistics,
    sample_negatives,
)


def _model():
    """4 images, focal 100 each. Points 0..99 seen by image 0 at depth 10.

    image 1: points 0..59 at depth 10 (same scale, 60% overlap)
    image 2: points 0..79 at depth 20 (80% overlap but the points look half as large: scale 0.5)
    image 3: points 90..99 at depth 10 plus 200..299 (10% overlap)
    """
    obs = []
    obs += [(0, p, 10.0) for p in range(100)]
    obs += [(1, p, 10.0) for p in range(60)]
    obs += [(2, p, 20.0) for p in range(80)]
    obs += [(3, p, 10.0) for p in list(range(90, 100)) + list(range(200, 300))]
    img, pts, dep = (np.array(c) for c in zip(*obs))
    return ModelObservations(["a", "b", "c", "d"], np.full(4, 100.0), img, pts, dep)


def test_pair_statistics_counts_and_scales():
    shared, scale, npoints = pair_statistics(_model())
    assert npoints.tolist() == [100, 60, 80, 110]
    assert shared[0].tolist() == [100, 60, 80, 10]
    assert (shared == shared.T).all()
    assert scale[0, 1] == pytest.approx(1.0)
    assert scale[0, 2] == pytest.approx(0.5)  # in image 2 the shared points are drawn at half the size
    assert scale[2, 0] == pytest.approx(2.0)
    assert np.isnan(scale[1, 3])  # nothing shared


def test_scale_uses_focal_length():
    m = _model()
    m.focal = np.array([100.0, 100.0, 200.0, 100.0])  # twice the focal length cancels twice the depth
    _, scale, _ = pair_statistics(m)
    assert scale[0, 2] == pytest.approx(1.0)


def test_candidates_respect_overlap_and_scale():
    shared, scale, npoints = pair_statistics(_model())
    assert candidate_positives(shared, scale, npoints, 0).tolist() == [1]  # 2: scale 2x, 3: 10% overlap
    assert candidate_positives(shared, scale, npoints, 0, max_scale=2.5).tolist() == [1, 2]
    assert candidate_positives(shared, scale, npoints, 0, min_overlap=0.05, max_scale=2.5).tolist() == [1, 2, 3]
    assert candidate_positives(shared, scale, npoints, 0, min_shared=70, max_scale=2.5).tolist() == [2]


def test_strategies_pick_the_right_positive():
    m = _model()
    q, p = mine_model_pairs(m, "most-shared", max_scale=2.5, min_overlap=0.05)
    pos = dict(zip(q.tolist(), p.tolist()))
    assert pos[0] == 2  # 80 shared points beat 60
    desc = np.eye(4, dtype=np.float32)
    desc[0] = desc[3] = np.array([0.6, 0, 0, 0.8])  # image 3 is the descriptor twin of image 0
    q, p = mine_model_pairs(m, "closest", max_scale=2.5, min_overlap=0.05, descriptors=desc)
    assert dict(zip(q.tolist(), p.tolist()))[0] == 3
    shared, scale, npoints = pair_statistics(m)
    for seed in range(5):
        q, p = mine_model_pairs(m, "random", per_query=2, max_scale=2.5, rng=np.random.default_rng(seed))
        for qq, pp in zip(q, p):
            assert pp in candidate_positives(shared, scale, npoints, qq, max_scale=2.5)
            assert pp != qq


def test_closest_needs_descriptors():
    with pytest.raises(UsageError):
        mine_model_pairs(_model(), "closest")
    with pytest.raises(UsageError):
        mine_model_pairs(_model(), "nearest")


def test_negatives_come_from_other_groups():
    group = np.array([0, 0, 0, 1, 1, 2, -1, -1])
    qidx = np.array([0, 3, 5])
    neg = sample_negatives(qidx, group, 4, np.random.default_rng(0))
    assert neg.shape == (3, 4)
    for q, row in zip(qidx, neg):
        row = row[row >= 0]
        assert len(set(row.tolist())) == len(row)
        assert (group[row] != group[q]).all() and (group[row] >= 0).all()
    assert (neg[1] >= 0).sum() == 4  # pool of query 3: images 0, 1, 2, 5
    assert (neg[2] >= 0).sum() == 4  # pool of query 5: 0..4 minus nothing → 5 candidates, 4 drawn
