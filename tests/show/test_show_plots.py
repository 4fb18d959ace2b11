"""The retrieval precision-recall curve against a loop written from its definition."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from retrievalkit.show.plots import RECALL_LEVELS, interpolated_pr

POS = {"easy": "e", "medium": "eh", "hard": "h"}
IGN = {"easy": "hj", "medium": "j", "hard": "ej"}


def _loop(cats: str, npos: int, protocol: str) -> np.ndarray:
    kept = [c for c in cats if c not in IGN[protocol]]
    points, tp = [], 0
    for r, c in enumerate(kept, 1):
        tp += c in POS[protocol]
        points.append((tp / npos, tp / r))
    return np.array([max([p for rec, p in points if rec >= lvl - 1e-12], default=0.0) for lvl in RECALL_LEVELS])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="ehjw", min_size=12, max_size=12), min_size=1, max_size=5),
       st.sampled_from(["easy", "medium", "hard"]), st.integers(0, 4))
def test_interpolated_pr_matches_loop(rows, protocol, extra):
    cats = np.array([[ord(c) for c in r] for r in rows], np.uint8)
    npos = np.array([sum(c in POS[protocol] for c in r) + extra for r in rows])
    got = interpolated_pr(cats, npos, protocol)
    for r, n, g in zip(rows, npos, got):
        if n == 0:
            assert np.isnan(g).all()
        else:
            assert np.allclose(g, _loop(r, n, protocol))
