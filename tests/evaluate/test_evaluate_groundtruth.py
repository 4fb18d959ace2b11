"""Ground-truth loading (JSON / pickle), validation and the Easy / Medium / Hard protocols."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.evaluate.groundtruth import load_gnd
from retrievalkit.evaluate.retrieval import evaluate_retrieval

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
LANDMARKS = DATA / "landmarks-dev"


def _write_json(tmp_path: Path, raw: dict, name: str = "gnd.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(raw))
    return path


def _small() -> dict:
    return {
        "imlist": ["d0", "d1", "d2", "d3"],
        "qimlist": ["q0"],
        "gnd": [{"easy": [0], "hard": [1], "junk": [2], "bbx": [1, 2, 30, 40]}],
    }


def test_protocol_assembly(tmp_path):
    gnd = load_gnd(_write_json(tmp_path, _small()))
    assert gnd.num_queries == 1 and gnd.num_database == 4
    # Easy: positives = easy, junk = junk + hard.
    assert gnd.positives("easy")[0].tolist() == [0]
    assert gnd.junk("easy")[0].tolist() == [1, 2]
    # Medium: positives = easy + hard, junk = junk.
    assert gnd.positives("medium")[0].tolist() == [0, 1]
    assert gnd.junk("medium")[0].tolist() == [2]
    # Hard: positives = hard, junk = junk + easy.
    assert gnd.positives("hard")[0].tolist() == [1]
    assert gnd.junk("hard")[0].tolist() == [0, 2]
    assert gnd.boxes() == [(1.0, 2.0, 30.0, 40.0)]
    with pytest.raises(UsageError):
        gnd.positives("extreme")


def test_protocols_in_evaluation(tmp_path):
    gnd = load_gnd(_write_json(tmp_path, _small()))
    # Ranking d2 d1 d3 d0.
    # easy: junk {1, 2} removed -> [d3, d0]; d0 at rank 1: p0 = 0/1, p1 = 1/2 -> AP = 0.25.
    # medium: junk {2} removed -> [d1, d3, d0]; positives at 0 and 2 -> AP = 1/2 + (1/2 + 2/3)/4 = 19/24.
    # hard: junk {0, 2} removed -> [d1, d3]; d1 at rank 0 -> AP = 1.
    m = evaluate_retrieval(np.array([[2, 1, 3, 0]]), gnd)
    assert m.protocols["easy"].map == pytest.approx(0.25)
    assert m.protocols["medium"].map == pytest.approx(19 / 24)
    assert m.protocols["hard"].map == pytest.approx(1.0)
    assert m.to_dict()["map"] == {"easy": 25.0, "medium": 79.17, "hard": 100.0}


def test_missing_optional_fields(tmp_path):
    raw = {"imlist": ["a", "b"], "qimlist": ["q"], "gnd": [{"easy": [1], "hard": []}]}
    gnd = load_gnd(_write_json(tmp_path, raw))
    assert gnd.junk("medium")[0].size == 0
    assert gnd.boxes() == [None]
    assert gnd.db_instance is None and gnd.query_instance is None


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda r: r.pop("imlist"), "imlist"),
        (lambda r: r.pop("gnd"), "gnd"),
        (lambda r: r["gnd"][0].pop("hard"), "hard"),
        (lambda r: r["gnd"][0].update(easy=[4]), "outside"),
        (lambda r: r["gnd"][0].update(junk=[-1]), "outside"),
        (lambda r: r["gnd"][0].update(easy=["x"]), "integer"),
        (lambda r: r["gnd"].append({"easy": [], "hard": []}), "qimlist"),
        (lambda r: r["gnd"][0].update(bbx=[1, 2, 3]), "bbx"),
        (lambda r: r.update(db_instance=["a"]), "db_instance"),
    ],
)
def test_invalid_ground_truth(tmp_path, mutate, needle):
    raw = _small()
    mutate(raw)
    path = _write_json(tmp_path, raw)
    with pytest.raises(BadInputError) as err:
        load_gnd(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_unreadable_files(tmp_path):
    with pytest.raises(BadInputError, match="not found"):
        load_gnd(tmp_path / "nope.json")
    bad = tmp_path / "gnd.json"
    bad.write_text("{not json")
    with pytest.raises(BadInputError, match="gnd.json"):
        load_gnd(bad)
    with pytest.raises(BadInputError, match="format"):
        load_gnd(tmp_path / "gnd.txt")


def test_pickle_revisitop_and_classic(tmp_path):
    revisitop = {
        "imlist": ["d0", "d1", "d2"],
        "qimlist": ["q0", "q1"],
        "gnd": [
            {"easy": np.array([0]), "hard": np.array([2]), "junk": np.array([], dtype=np.int64), "bbx": [0.5, 1, 9, 9]},
            {"easy": np.array([1]), "hard": np.array([], dtype=np.int64), "junk": np.array([0])},
        ],
    }
    path = tmp_path / "gnd_r.pkl"
    path.write_bytes(pickle.dumps(revisitop))
    gnd = load_gnd(path)
    assert [p.tolist() for p in gnd.positives("medium")] == [[0, 2], [1]]
    assert gnd.boxes()[0] == (0.5, 1.0, 9.0, 9.0)

    # Classic Oxford/Paris: 'ok' means easy positives; no hard ones.
    classic = {"imlist": ["d0", "d1"], "qimlist": ["q0"], "gnd": [{"ok": [1], "junk": [0]}]}
    path = tmp_path / "gnd_c.pkl"
    path.write_bytes(pickle.dumps(classic))
    gnd = load_gnd(path)
    assert gnd.positives("easy")[0].tolist() == [1]
    assert gnd.positives("hard")[0].size == 0


class _Evil:
    def __reduce__(self):
        return (os.getcwd, ())


def test_pickle_refuses_code(tmp_path):
    path = tmp_path / "gnd.pkl"
    path.write_bytes(pickle.dumps({"imlist": _Evil()}))
    with pytest.raises(BadInputError, match="gnd.pkl"):
        load_gnd(path)


@pytest.mark.skipif(not (LANDMARKS / "gnd.json").exists(), reason="shared data landmarks-dev/gnd.json not found")
def test_landmarks_dev():
    gnd = load_gnd(LANDMARKS / "gnd.json")
    assert gnd.num_queries == 25 and gnd.num_database == 150
    assert gnd.db_instance is not None and len(gnd.db_instance) == 150
    assert all(b is None for b in gnd.boxes())
    # A ranking that lists each query's positives first scores 100 under every protocol that has positives.
    ranks = []
    for pos in gnd.positives("medium"):
        rest = np.setdiff1d(np.arange(gnd.num_database), pos)
        ranks.append(np.concatenate([pos, rest]))
    metrics = evaluate_retrieval(np.stack(ranks), gnd).to_dict()
    assert metrics["map"]["medium"] == 100.0
    assert metrics["recall"]["medium"] == {"1": 100.0, "5": 100.0, "10": 100.0}
    assert metrics["queries"] == 25


@pytest.mark.skipif(
    not (LANDMARKS / "gnd-hard.json").exists(), reason="shared data landmarks-dev/gnd-hard.json not found"
)
def test_landmarks_dev_boxes():
    gnd = load_gnd(LANDMARKS / "gnd-hard.json")
    boxes = gnd.boxes()
    assert len(boxes) == 25 and all(b is not None and b[0] < b[2] and b[1] < b[3] for b in boxes)
