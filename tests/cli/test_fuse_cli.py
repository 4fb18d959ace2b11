"""`rkit index fuse` on two ranks files: the fused order follows the summed per-query z-scores."""

import numpy as np

from retrievalkit.io import Ranks, read_ranks, write_ranks
from tests.conftest import run_rkit


def test_fuse_cli_combines_two_rankings(tmp_path):
    db = ["a", "b", "c", "d"]
    # method 1 prefers a > b > c > d; method 2 prefers b strongly, then d
    r1 = Ranks(["q"], db, np.array([[0, 1, 2, 3]]), np.array([[0.9, 0.8, 0.2, 0.1]]))
    r2 = Ranks(["q"], db, np.array([[1, 3, 0, 2]]), np.array([[0.9, 0.5, 0.45, 0.4]]))
    write_ranks(tmp_path / "1.h5", r1)
    write_ranks(tmp_path / "2.h5", r2)
    p = run_rkit("index", "fuse", tmp_path / "1.h5", tmp_path / "2.h5", "-o", tmp_path / "f.h5", "-k", "4")
    assert p.stdout.strip() == str(tmp_path / "f.h5")
    f = read_ranks(tmp_path / "f.h5")

    def z(order, scores):
        s = np.empty(4)
        s[order] = scores
        return (s - s.mean()) / s.std()

    expected = np.argsort(-(z(r1.indices[0], r1.scores[0]) + z(r2.indices[0], r2.scores[0])), kind="stable")
    assert f.indices[0].tolist() == expected.tolist()
    assert f.indices[0, 0] == 1  # b: high in both
