"""Late fusion of rankings (global search + ASMK): standardised score sum, missing entries, file checks."""

from __future__ import annotations

import numpy as np
import pytest

from retrievalkit.configs.search import FuseConfig
from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.io.ranks import Ranks, read_ranks, write_ranks
from retrievalkit.search.fusion import fuse_ranks, fuse_ranks_files, fuse_scores


def test_fuse_scores_agreement_wins_and_scale_free():
    # image 0 is second for both methods, 1 and 2 are each first for one method only
    a = np.array([0.8, 0.9, 0.1, 0.0])
    b = np.array([5.0, 0.0, 6.0, 1.0])
    f = fuse_scores([a, b])
    assert int(np.argmax(f)) == 0
    # an affine change of one method's scores (another scale) does not change the fusion
    np.testing.assert_allclose(fuse_scores([a * 10 - 3, b]), f, atol=1e-9)


def test_fuse_scores_missing_and_empty_rows():
    a = np.array([0.9, 0.5, 0.1])
    unlisted = np.array([np.nan, 2.0, 1.0])  # image 0 not listed: scores as the last listed entry (1.0)
    f = fuse_scores([a, unlisted])
    np.testing.assert_allclose(f, fuse_scores([a, np.array([1.0, 2.0, 1.0])]))
    # a method without any listed image (query without locals) contributes nothing
    np.testing.assert_allclose(fuse_scores([a, np.full(3, np.nan)]), fuse_scores([a]))
    with pytest.raises(ValueError):
        fuse_scores([])


def _ranks(scores: np.ndarray, db: list[str], k: int) -> Ranks:
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return Ranks(["q0", "q1"], db, order.astype(np.int64), np.take_along_axis(scores, order, 1).astype(np.float32))


def test_fuse_ranks_aligns_database_names_and_pads():
    db = ["a", "b", "c", "d"]
    s1 = np.array([[0.9, 0.8, 0.1, 0.0], [0.0, 0.1, 0.2, 0.9]])
    s2 = np.array([[1.0, 3.0, 0.0, 0.5], [0.0, 0.0, 3.0, 2.0]])
    r1 = _ranks(s1, db, 4)
    # the second ranking lists its database in another order: fusion must match by name
    perm = [2, 0, 3, 1]
    r2 = _ranks(s2[:, perm], [db[i] for i in perm], 4)
    out = fuse_ranks([r1, r2], k=3)
    assert out.indices.shape == (2, 3) and out.db_names == db
    assert [db[i] for i in out.indices[0]][:2] == ["b", "a"]
    assert db[out.indices[1, 0]] == "d"
    assert np.all(np.diff(out.scores, axis=1) <= 0)


def test_fuse_ranks_files_round_trip_and_mismatch(tmp_path):
    db = ["a", "b", "c"]
    s = np.array([[0.9, 0.2, 0.1], [0.1, 0.2, 0.9]])
    p1 = write_ranks(tmp_path / "r1.h5", _ranks(s, db, 3))
    p2 = write_ranks(tmp_path / "r2.h5", _ranks(s[:, ::-1].copy(), db, 3))
    out = fuse_ranks_files([p1, p2, p1], tmp_path / "f.h5", FuseConfig(top_k=2))
    r = read_ranks(out)
    assert r.indices.shape == (2, 2) and r.config["method"] == "fusion"
    assert r.indices[0, 0] == 0 and r.indices[1, 0] == 2  # two votes of r1 beat one of r2
    other = write_ranks(tmp_path / "r3.h5", _ranks(s, ["a", "b", "x"], 3))
    with pytest.raises(BadInputError, match="differs"):
        fuse_ranks_files([p1, other], tmp_path / "g.h5")
    with pytest.raises(UsageError):
        fuse_ranks_files([p1], tmp_path / "g.h5")
