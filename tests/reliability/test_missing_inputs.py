"""One rule for a path that is not there: exit 2, whether the parser or the library notices it.

Parser-checked arguments (``exists=True``) always exited 2; files the library opens itself (ground truths,
models, weights, whitening files, DISC21 CSVs) used to exit 3 for the same mistake.
"""

from __future__ import annotations

import pytest

from tests.reliability.rkit_batch import run_batch
from tests.reliability.world import EXTRACT, assert_refused, world  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def missing(world):  # noqa: F811
    w = world
    gone = w.root / "no-such-folder"
    cases = {
        "positional features (parser)": ["index", "knn", gone / "feats.h5", "-o", gone / "knn.h5"],
        "ground truth (library)": ["evaluate", w.ranks, "--gnd", gone / "gnd.json"],
        "ground-truth pickle (library)": ["evaluate", w.ranks, "--gnd", gone / "gnd.pkl"],
        "DISC21 ground truth (library)": ["evaluate", gone / "matches.csv", "--gt", gone / "gt.csv"],
        "model file (library)": ["extract", w.images, "-o", w.root / "m.h5", "--model", gone / "model.pt",
                                 "--size", "64"],
        "weights file (library)": ["extract", w.images, "-o", w.root / "m.h5", "--model", "tiny-cnn",
                                   "--weights", gone / "w.pth", "--size", "64"],
        "named features (library)": ["diffuse", "--database", w.feats, "--queries", gone / "q.h5",
                                     "-o", w.root / "d.h5"],
    }
    results = run_batch(list(cases.values()), w.root)
    return dict(zip(cases, results))


@pytest.mark.parametrize("case", [
    "positional features (parser)", "ground truth (library)", "ground-truth pickle (library)",
    "DISC21 ground truth (library)", "model file (library)", "weights file (library)", "named features (library)",
])
def test_a_missing_input_is_exit_2_everywhere(missing, case):
    line = assert_refused(missing[case], 2)
    assert "no-such-folder" in line  # the message names the path that is not there
