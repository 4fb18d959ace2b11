"""The rkit/locals file: round trip, partial reads, validation."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from retrievalkit.errors import BadInputError
from retrievalkit.io.locals import count_locals, pack_locals, read_locals, write_locals


def _sample():
    rng = np.random.default_rng(0)
    per = [(rng.uniform(0, 100, (n, 4)).astype(np.float32), rng.standard_normal((n, 8)).astype(np.float32))
           for n in (3, 0, 5)]
    return pack_locals(["a.jpg", "blank.jpg", "c/d.jpg"], per, 8, np.array([[10, 20], [5, 5], [30, 40]]),
                       {"method": "sift"}, failed=[("bad.jpg", "cannot decode")]), per


def test_round_trip_and_slices(tmp_path):
    loc, per = _sample()
    path = write_locals(tmp_path / "x.loc.h5", loc)
    back = read_locals(path)
    assert back.names == loc.names and back.failed == ["bad.jpg"] and back.config["method"] == "sift"
    np.testing.assert_array_equal(back.offsets, [0, 3, 3, 8])
    np.testing.assert_array_equal(back.counts(), [3, 0, 5])
    for i, (kp, d) in enumerate(per):
        k2, d2 = back.image(i)
        np.testing.assert_array_equal(k2, kp)
        np.testing.assert_array_equal(d2, d)
    part = read_locals(path, rows=slice(1, 3))
    assert part.names == ["blank.jpg", "c/d.jpg"]
    np.testing.assert_array_equal(part.offsets, [0, 0, 5])
    np.testing.assert_array_equal(part.descriptors, per[2][1])
    np.testing.assert_array_equal(back.image_ids(), [0, 0, 0, 2, 2, 2, 2, 2])
    assert count_locals(path) == (3, 8, 8)


def test_corrupt_offsets_are_rejected(tmp_path):
    loc, _ = _sample()
    path = write_locals(tmp_path / "x.loc.h5", loc)
    with h5py.File(path, "a") as f:
        f["offsets"][2] = 9
    with pytest.raises(BadInputError, match="offsets"):
        read_locals(path)


def test_wrong_kind_is_rejected(tmp_path):
    from retrievalkit.io.features import Features, write_features

    p = write_features(tmp_path / "f.h5", Features(["a"], np.ones((1, 4), np.float32)))
    with pytest.raises(BadInputError, match="rkit/locals"):
        read_locals(p)
