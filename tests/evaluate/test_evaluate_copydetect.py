"""DISC21 µAP, recall at 90 % precision, CSV readers and the descriptor-track search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrievalkit.errors import BadInputError
from retrievalkit.evaluate.copydetect import (
    CopyGroundTruth,
    Predictions,
    descriptor_track_predictions,
    evaluate_copy_detection,
    read_ground_truth_csv,
    read_predictions_csv,
)

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
GT2 = CopyGroundTruth.from_pairs([("q1", "r1"), ("q2", "r2"), ("q3", None)])


def _uap(rows):
    return evaluate_copy_detection(Predictions.from_triples(rows), GT2)


def test_tie_is_pessimistic():
    # Correct (q1, r1) and wrong (q2, r9) tied at 0.5, correct (q2, r2) at 0.4.
    # Order: wrong, correct, correct -> precisions 0, 1/2, 2/3 at recalls 0, 1/2, 1.
    # µAP = 1/2 * 1/2 + 1/2 * 2/3 = 7/12 = 0.5833.
    m = _uap([("q1", "r1", 0.5), ("q2", "r9", 0.5), ("q2", "r2", 0.4)])
    assert m.micro_ap == pytest.approx(7 / 12)
    assert m.to_dict()["uap"] == 0.5833
    # No point reaches 90 % precision.
    assert m.recall_at_p90 == 0.0 and m.threshold_at_p90 is None
    # Tie order must not depend on input order.
    m2 = _uap([("q2", "r9", 0.5), ("q1", "r1", 0.5), ("q2", "r2", 0.4)])
    assert m2.micro_ap == pytest.approx(7 / 12)


def test_no_tie():
    # Correct 0.5 above wrong: precisions 1, 1/2, 2/3 at recalls 1/2, 1/2, 1.
    # µAP = 1/2 * 1 + 1/2 * 2/3 = 5/6 = 0.8333.
    m = _uap([("q1", "r1", 0.5), ("q2", "r9", 0.45), ("q2", "r2", 0.4)])
    assert m.micro_ap == pytest.approx(5 / 6)
    assert m.to_dict()["uap"] == 0.8333
    assert m.recall_at_p90 == 0.5 and m.threshold_at_p90 == 0.5


def test_one_pair_predicted():
    # One correct prediction for two ground-truth pairs: 1 * 1/2 = 0.5.
    m = _uap([("q1", "r1", 0.9)])
    assert m.micro_ap == pytest.approx(0.5)
    assert m.recall_at_p90 == 0.5


def test_perfect_and_empty():
    m = _uap([("q1", "r1", 2.0), ("q2", "r2", 1.0), ("q3", "r5", 0.1)])
    assert m.micro_ap == pytest.approx(1.0)
    # After 3 predictions precision is 2/3; the best point with precision >= 0.9 is recall 1 at score 1.0.
    assert m.recall_at_p90 == 1.0 and m.threshold_at_p90 == 1.0
    m = _uap([])
    assert m.micro_ap == 0.0 and m.recall_at_p90 == 0.0
    none = evaluate_copy_detection(Predictions.from_triples([("q", "r", 1.0)]), CopyGroundTruth.from_pairs([("q", "")]))
    assert none.micro_ap is None and none.to_dict()["uap"] is None


def test_duplicate_pairs_rejected(tmp_path):
    with pytest.raises(BadInputError, match="twice"):
        _uap([("q1", "r1", 0.5), ("q1", "r1", 0.4)])
    with pytest.raises(BadInputError, match="twice"):
        CopyGroundTruth.from_pairs([("q1", "r1"), ("q1", "r1")])
    path = tmp_path / "pred.csv"
    path.write_text("query_id,reference_id,score\nq1,r1,0.5\nq1,r2,0.4\nq1,r1,0.3\n")
    with pytest.raises(BadInputError) as err:
        read_predictions_csv(path)
    assert str(path) in str(err.value) and "line 4" in str(err.value) and "line 2" in str(err.value)
    gt = tmp_path / "gt.csv"
    gt.write_text("query_id,reference_id\nq1,r1\nq1,r1\n")
    with pytest.raises(BadInputError, match="gt.csv"):
        read_ground_truth_csv(gt)


def test_missing_header(tmp_path):
    gt = tmp_path / "gt.csv"
    gt.write_text("Q00000,\nQ00001,R000101\n")
    with pytest.raises(BadInputError) as err:
        read_ground_truth_csv(gt)
    assert str(gt) in str(err.value) and "query_id,reference_id" in str(err.value)
    pred = tmp_path / "pred.csv"
    pred.write_text("query_id,reference_id\nq1,r1\n")
    with pytest.raises(BadInputError, match="score"):
        read_predictions_csv(pred)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(BadInputError, match="empty"):
        read_ground_truth_csv(empty)
    with pytest.raises(BadInputError, match="not found"):
        read_ground_truth_csv(tmp_path / "missing.csv")


def test_read_csvs(tmp_path):
    gt = tmp_path / "gt.csv"
    gt.write_text("query_id,reference_id\nq1,r1\nq2,\n\nq3,r3\n")
    truth = read_ground_truth_csv(gt)
    assert truth.query_ids == ("q1", "q2", "q3")
    assert truth.pairs == {("q1", "r1"), ("q3", "r3")}
    pred = tmp_path / "pred.csv"
    pred.write_text("query_id,reference_id,score\nq1,r1,0.9\nq2,r1,-1e-3\nq3,r3,0.5\n")
    p = read_predictions_csv(pred)
    assert p.query_ids.tolist() == ["q1", "q2", "q3"] and p.scores.tolist() == [0.9, -1e-3, 0.5]
    m = evaluate_copy_detection(p, truth)
    assert m.micro_ap == pytest.approx(1.0)
    bad = tmp_path / "bad.csv"
    bad.write_text("query_id,reference_id,score\nq1,r1,high\n")
    with pytest.raises(BadInputError, match="line 2"):
        read_predictions_csv(bad)
    bad.write_text("query_id,reference_id,score\nq1,r1,nan\n")
    with pytest.raises(BadInputError, match="finite"):
        read_predictions_csv(bad)
    bad.write_text("query_id,reference_id,score\nq1,,0.5\n")
    with pytest.raises(BadInputError, match="reference_id"):
        read_predictions_csv(bad)


@pytest.mark.skipif(
    not (DATA / "copydetect-dev" / "ground_truth.csv").exists(), reason="shared data copydetect-dev not found"
)
def test_copydetect_dev_ground_truth():
    truth = read_ground_truth_csv(DATA / "copydetect-dev" / "ground_truth.csv")
    assert len(truth.query_ids) == 300 and truth.num_positives == 150
    perfect = Predictions.from_triples([(q, r, 1.0) for q, r in sorted(truth.pairs)])
    assert evaluate_copy_detection(perfect, truth).micro_ap == pytest.approx(1.0)


def _brute_force(xq, xr, budget):
    d2 = ((xq[:, None, :].astype(np.float64) - xr[None, :, :].astype(np.float64)) ** 2).sum(-1)
    flat = -d2.ravel()
    keep = np.argsort(-flat, kind="stable")[:budget]
    return {(int(i // xr.shape[0]), int(i % xr.shape[0])): flat[i] for i in keep}


@pytest.mark.parametrize(("budget", "bq", "br"), [(None, 1024, 8192), (7, 3, 5), (500, 4, 7), (0, 2, 2)])
def test_descriptor_track_equals_brute_force(budget, bq, br):
    rng = np.random.default_rng(1)
    xq = rng.standard_normal((13, 8)).astype(np.float32)
    xr = rng.standard_normal((29, 8)).astype(np.float32)
    qids = [f"Q{i:02d}" for i in range(13)]
    rids = [f"R{i:02d}" for i in range(29)]
    pred = descriptor_track_predictions(qids, xq, rids, xr, budget=budget, block_queries=bq, block_refs=br)
    want = _brute_force(xq, xr, min(13 * 29, 130 if budget is None else budget))
    got = {(qids.index(q), rids.index(r)): s for q, r, s in zip(pred.query_ids, pred.reference_ids, pred.scores)}
    assert got.keys() == want.keys()
    for key, score in want.items():
        assert got[key] == pytest.approx(score, rel=1e-5, abs=1e-5)
    assert np.all(np.diff(pred.scores) <= 0)  # sorted, best first


def test_descriptor_track_shape_errors():
    with pytest.raises(BadInputError, match="descriptors"):
        descriptor_track_predictions(["q"], np.zeros((1, 3)), ["r"], np.zeros((1, 4)))
    with pytest.raises(BadInputError, match="ids"):
        descriptor_track_predictions(["q", "q2"], np.zeros((1, 3)), ["r"], np.zeros((1, 3)))
