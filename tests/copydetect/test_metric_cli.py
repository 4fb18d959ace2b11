"""µAP hand-checked cases and bad input, end to end through `rkit evaluate RESULT --gt gt.csv`."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from retrievalkit.copydetect.submission import write_descriptors
from tests.copydetect.cd_helpers import rkit

GT = "query_id,reference_id\nq1,r1\nq2,r2\nq3,\n"


def _evaluate(tmp_path, rows: list[tuple[str, str, float]], gt: str = GT):
    (tmp_path / "gt.csv").write_text(gt)
    m = tmp_path / "matches.csv"
    m.write_text("query_id,reference_id,score\n" + "".join(f"{q},{r},{s}\n" for q, r, s in rows))
    return rkit("evaluate", m, "--gt", tmp_path / "gt.csv")


@pytest.mark.parametrize("rows, expected", [
    # correct + wrong tied at 0.5 (wrong counted first), correct at 0.4: (1/2 + 2/3) / 2
    ([("q1", "r1", 0.5), ("q3", "r9", 0.5), ("q2", "r2", 0.4)], 0.5833),
    # no tie: the wrong one just below: (1/1 + 2/3) / 2
    ([("q1", "r1", 0.5), ("q3", "r9", 0.45), ("q2", "r2", 0.4)], 0.8333),
    # only one of the two pairs predicted: (1 + 0) / 2
    ([("q1", "r1", 0.5)], 0.5),
])
def test_hand_checked_uap(tmp_path, rows, expected):
    p = _evaluate(tmp_path, rows)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["uap"] == pytest.approx(expected, abs=1e-4)
    assert out["queries"] == 3 and out["positives"] == 2


def test_recall_at_p90(tmp_path):
    # 9 right then 1 wrong then 1 right: precision stays >= 0.9 through 10 predictions (recall 9/10 there).
    gt = "query_id,reference_id\n" + "".join(f"q{i},r{i}\n" for i in range(10))
    rows = [(f"q{i}", f"r{i}", 1 - i / 100) for i in range(9)] + [("q9", "rx", 0.5), ("q9", "r9", 0.4)]
    out = json.loads(_evaluate(tmp_path, rows, gt).stdout)
    assert out["recall_at_p90"] == pytest.approx(1.0)  # 10/11 = 0.909 precision at full recall
    rows[-1] = ("q9", "r9", 0.3)
    rows.insert(9, ("q8", "ry", 0.45))
    out = json.loads(_evaluate(tmp_path, rows, gt).stdout)
    assert out["recall_at_p90"] == pytest.approx(0.9)  # 10/12 < 0.9 at full recall


def test_gt_without_header_is_exit_3(tmp_path):
    p = _evaluate(tmp_path, [("q1", "r1", 0.5)], gt="q1,r1\nq2,r2\n")
    assert p.returncode == 3
    assert "header" in p.stderr and "gt.csv" in p.stderr
    assert p.stdout == ""


def test_duplicate_prediction_is_exit_3(tmp_path):
    p = _evaluate(tmp_path, [("q1", "r1", 0.5), ("q1", "r1", 0.4)])
    assert p.returncode == 3 and "q1" in p.stderr


def test_descriptor_track_file(tmp_path):
    (tmp_path / "gt.csv").write_text(GT)
    rng = np.random.default_rng(0)
    xr = rng.normal(size=(5, 16)).astype(np.float32)
    xq = np.stack([xr[1] + 0.01, xr[2] + 0.01, rng.normal(size=16) * 10]).astype(np.float32)
    write_descriptors(tmp_path / "d.h5", ["q2", "q1", "q3"], xq[[1, 0, 2]], ["r0", "r1", "r2", "r3", "r4"], xr)
    with h5py.File(tmp_path / "d.h5") as f:
        assert [s.decode() for s in f["query_ids"][()]] == ["q1", "q2", "q3"]  # sorted
        assert f["query"].dtype == np.float32
    out = json.loads(rkit("evaluate", tmp_path / "d.h5", "--gt", tmp_path / "gt.csv", check=True).stdout)
    # both true pairs are the two closest of all 15 pairs (distance² 0.0016 each)
    assert out["uap"] == pytest.approx(1.0) and out["track"] == "descriptor"


def test_descriptor_file_over_256_dims_is_exit_3(tmp_path):
    (tmp_path / "gt.csv").write_text(GT)
    with h5py.File(tmp_path / "big.h5", "w") as f:
        f["query"] = np.zeros((2, 512), np.float32)
        f["reference"] = np.zeros((2, 512), np.float32)
        f["query_ids"] = np.array([b"q1", b"q2"])
        f["reference_ids"] = np.array([b"r1", b"r2"])
    p = rkit("evaluate", tmp_path / "big.h5", "--gt", tmp_path / "gt.csv")
    assert p.returncode == 3 and "512 dimensions" in p.stderr and "256" in p.stderr
