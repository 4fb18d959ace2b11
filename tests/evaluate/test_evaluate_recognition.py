"""Recognition metrics (accuracy, GAP) against hand computations."""

from __future__ import annotations

import math

import pytest

from retrievalkit.errors import UsageError
from retrievalkit.evaluate.recognition import accuracy, global_average_precision, recognition_metrics


def test_gap_by_hand():
    # sorted by confidence: d (0.95, distractor: wrong), a (0.9, right), b (0.8, wrong), c (0.5, right)
    truth = ["A", "B", "C", None]
    pred = ["A", "X", "C", "A"]
    conf = [0.9, 0.8, 0.5, 0.95]
    # precision at the right ones: 1/2 (rank 2) and 2/4 (rank 4); M = 3 images with a class
    assert global_average_precision(pred, conf, truth) == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert accuracy(pred, truth) == pytest.approx(2 / 3)
    # the distractor's prediction at the bottom instead: ranks 1 and 3 are right -> (1 + 2/3) / 3
    conf2 = [0.9, 0.8, 0.5, 0.1]
    assert global_average_precision(pred, conf2, truth) == pytest.approx((1 + 2 / 3) / 3)
    m = recognition_metrics(pred, conf2, truth)
    assert m["gap"] == pytest.approx(100 * (1 + 2 / 3) / 3, abs=0.01) and m["accuracy"] == pytest.approx(66.67)
    assert m["images"] == 4 and m["with_class"] == 3


def test_gap_perfect_missing_and_ties():
    assert global_average_precision(["a", "b"], [0.3, 0.2], ["a", "b"]) == 1.0
    # no prediction for the second image: it still counts in M
    assert global_average_precision(["a", ""], [0.3, 0.9], ["a", "b"]) == pytest.approx(0.5)
    # ties keep the input order: the wrong one first gives precision 1/2 at the right one
    assert global_average_precision(["x", "a"], [0.5, 0.5], ["a", "a"]) == pytest.approx(0.5 / 2)
    assert math.isnan(global_average_precision(["a"], [1.0], [None]))
    with pytest.raises(UsageError):
        global_average_precision(["a"], [1.0, 2.0], ["a"])


def test_cli_scores_a_predictions_csv(tmp_path):
    import json

    import numpy as np
    from typer.testing import CliRunner

    from retrievalkit.cli.app import app
    from retrievalkit.io.labels import Predictions, write_predictions

    write_predictions(tmp_path / "p.csv", Predictions(["a.jpg", "b.jpg", "c.jpg", "d.jpg", "seed.jpg"],
                                                      ["A", "X", "C", "A", "A"],
                                                      np.array([0.9, 0.8, 0.5, 0.95, 1.0]), np.ones(5)))
    # the labelled image (seed) is left out of the truth file; d is a distractor (empty label)
    (tmp_path / "truth.csv").write_text("name,label\na,A\nb,B\nc.jpg,C\nd,\n")
    res = CliRunner().invoke(app, ["-q", "evaluate", str(tmp_path / "p.csv"), "--labels", str(tmp_path / "truth.csv")])
    assert res.exit_code == 0, res.output
    m = json.loads(res.output.strip().splitlines()[-1])
    assert m["gap"] == pytest.approx(100 / 3, abs=0.01) and m["accuracy"] == pytest.approx(66.67)
    assert m["images"] == 4 and m["with_class"] == 3
    (tmp_path / "other.csv").write_text("name,label\nzzz,A\n")
    res = CliRunner().invoke(app, ["evaluate", str(tmp_path / "p.csv"), "--labels", str(tmp_path / "other.csv")])
    assert res.exit_code == 3 and "zzz" in res.output
    res = CliRunner().invoke(app, ["evaluate", str(tmp_path / "p.csv"), "--labels", str(tmp_path / "truth.csv"),
                                   "--gt", str(tmp_path / "truth.csv")])
    assert res.exit_code == 2
