"""revisitop mAP / mP@k / recall@k on hand-checked rankings, and against a brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.evaluate.groundtruth import GroundTruth
from retrievalkit.evaluate.retrieval import compute_ap, compute_map, evaluate_retrieval

EMPTY = np.empty(0, dtype=np.int64)


def test_compute_ap_by_hand():
    # Positives at ranks 0 and 2 of 2:
    #   j=0, r=0: p0 = 1, p1 = 1/1 = 1        -> (1 + 1)/2 * 1/2   = 1/2
    #   j=1, r=2: p0 = 1/2, p1 = 2/3          -> (1/2 + 2/3)/2 * 1/2 = 7/24
    #   AP = 19/24 = 0.791666...
    assert compute_ap([0, 2], 2) == pytest.approx(19 / 24)
    # Single positive at rank 1: p0 = 0/1 = 0, p1 = 1/2 -> AP = 1/4.
    assert compute_ap([1], 1) == pytest.approx(0.25)
    # Nothing found: 0. One of two found at rank 0: 1/2.
    assert compute_ap([], 3) == 0.0
    assert compute_ap([0], 2) == pytest.approx(0.5)
    with pytest.raises(UsageError):
        compute_ap([0], 0)


def test_map_hand_cases():
    ranks = np.array([[10, 11, 12, 13], [10, 11, 12, 13]])
    r = compute_map(ranks, [[10, 12], [13]])
    # Query 0: ranks 0 and 2 -> 19/24. Query 1: rank 3 -> p0 = 0, p1 = 1/4 -> 1/8.
    assert r.aps.tolist() == pytest.approx([19 / 24, 1 / 8])
    assert r.map == pytest.approx((19 / 24 + 1 / 8) / 2)
    assert r.num_evaluated == 2


def test_junk_shifts_positives():
    ranks = np.array([[10, 13, 11, 12]])
    # Without junk, positives at ranks 0 and 3: 1/2 + (1/3 + 2/4)/4 = 17/24.
    assert compute_map(ranks, [[10, 12]]).map == pytest.approx(17 / 24)
    # Junk 13 removed: list [10, 11, 12], positives at 0 and 2 -> 19/24.
    assert compute_map(ranks, [[10, 12]], [[13]]).map == pytest.approx(19 / 24)
    # Junk first: [13, 10] -> positive moves from rank 1 to rank 0 -> AP 1.
    assert compute_map(np.array([[13, 10]]), [[10]], [[13]]).map == pytest.approx(1.0)
    # Junk after the positive does not matter.
    assert compute_map(np.array([[11, 10, 13]]), [[10]], [[13]]).map == pytest.approx(0.25)


def test_queries_without_positives_are_excluded():
    ranks = np.array([[0, 1, 2], [0, 1, 2]])
    r = compute_map(ranks, [[1], []])
    assert r.map == pytest.approx(0.25)  # query 0 only: rank 1 -> 1/4
    assert np.isnan(r.aps[1]) and np.isnan(r.prs[1]).all() and np.isnan(r.hits[1]).all()
    assert r.num_evaluated == 1

    none = compute_map(ranks, [[], []], [[0], []])
    assert none.map is None
    assert none.mp == {1: None, 5: None, 10: None} and none.recall == {1: None, 5: None, 10: None}
    assert none.num_evaluated == 0


def test_map_none_in_report():
    gnd = GroundTruth(["a", "b", "c"], ["q"], [np.array([1])], [EMPTY], [EMPTY], [None])
    report = evaluate_retrieval(np.array([[1, 0, 2]]), gnd).to_dict()
    assert report == {
        "map": {"easy": 100.0, "medium": 100.0, "hard": None},
        "mp": {
            "easy": {"1": 100.0, "5": 100.0, "10": 100.0},
            "medium": {"1": 100.0, "5": 100.0, "10": 100.0},
            "hard": {"1": None, "5": None, "10": None},
        },
        "recall": {
            "easy": {"1": 100.0, "5": 100.0, "10": 100.0},
            "medium": {"1": 100.0, "5": 100.0, "10": 100.0},
            "hard": {"1": None, "5": None, "10": None},
        },
        "queries": 1,
    }


def test_truncated_ranking_misses_a_positive():
    # Positives 10 and 20; only 10 is in the truncated list, at rank 0: (1 + 1)/2 * 1/2 = 0.5.
    r = compute_map(np.array([[10, 11, 12]]), [[10, 20]])
    assert r.map == pytest.approx(0.5)
    # No positive in the list at all: AP 0, mP@k 0, recall 0.
    r = compute_map(np.array([[11, 12]]), [[20]])
    assert r.map == 0.0 and r.mp[5] == 0.0 and r.recall[10] == 0.0


def test_mp_and_recall_at_k():
    ranks = np.array(
        [
            [11, 10, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21],
            [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21],
            [11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 10],
        ]
    )
    r = compute_map(ranks, [[10, 13], [10], [10]])
    # Query 0: 1-based positions [2, 4].
    #   k=1: kq = min(4, 1) = 1, #(pos <= 1) = 0 -> 0
    #   k=5: kq = min(4, 5) = 4, #(pos <= 4) = 2 -> 2/4 = 0.5;  k=10: same, 0.5
    # Query 1: positions [1]: kq = 1 for every k -> 1.
    # Query 2: positions [12]: k=1 -> 0/1, k=5 -> 0/5, k=10 -> 0/10.
    assert r.prs.tolist() == [[0.0, 0.5, 0.5], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
    assert r.mp[1] == pytest.approx(1 / 3)
    assert r.mp[5] == pytest.approx(0.5)
    # Recall@k: query 0 has a positive within 1? no; within 5 and 10: yes. Query 1 always. Query 2 never.
    assert r.hits.tolist() == [[0.0, 1.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
    assert r.recall == pytest.approx({1: 1 / 3, 5: 2 / 3, 10: 2 / 3})

    # Junk removal counts for recall@k: the positive at position 2 moves to position 1.
    r = compute_map(np.array([[11, 12, 10]]), [[10]], [[11, 12]], kappas=(1,))
    assert r.recall == {1: 1.0} and r.mp == {1: 1.0}


def test_full_precision_kept_and_report_rounded():
    gnd = GroundTruth(["a", "b", "c"], ["q"], [np.array([0, 2])], [EMPTY], [EMPTY], [None])
    m = evaluate_retrieval(np.array([[0, 1, 2]]), gnd)
    assert m.protocols["medium"].map == pytest.approx(19 / 24, abs=1e-15)
    assert m.to_dict()["map"]["medium"] == 79.17


def test_bad_ranks():
    gnd = GroundTruth(["a", "b"], ["q"], [np.array([0])], [EMPTY], [EMPTY], [None])
    with pytest.raises(BadInputError, match="shape"):
        evaluate_retrieval(np.array([[0, 1], [1, 0]]), gnd)
    with pytest.raises(BadInputError, match="outside"):
        evaluate_retrieval(np.array([[0, 2]]), gnd)
    with pytest.raises(BadInputError, match="integer"):
        evaluate_retrieval(np.array([[0.0, 1.0]]), gnd)
    with pytest.raises(UsageError):
        compute_map(np.array([[0, 1]]), [[0]], kappas=(0,))


def test_empty_ranking_rows():
    r = compute_map(np.zeros((2, 0), dtype=np.int64), [[1], [2]])
    assert r.map == 0.0 and r.mp[1] == 0.0 and r.recall[1] == 0.0


def test_blocks_match_single_pass(monkeypatch):
    rng = np.random.default_rng(0)
    ranks = np.stack([rng.permutation(50) for _ in range(7)])
    pos = [rng.choice(50, 4, replace=False) for _ in range(7)]
    junk = [np.setdiff1d(rng.choice(50, 3, replace=False), p) for p in pos]
    whole = compute_map(ranks, pos, junk)
    import retrievalkit.evaluate.retrieval as retrieval

    monkeypatch.setattr(retrieval, "_BLOCK_CELLS", 60)  # one query per block
    blocked = compute_map(ranks, pos, junk)
    np.testing.assert_array_equal(whole.aps, blocked.aps)
    np.testing.assert_array_equal(whole.prs, blocked.prs)


# --- brute-force reference, written as a walk over the junk-free list --------------------------------


def _reference(ranking: list[int], positives: set[int], junk: set[int], kappas: tuple[int, ...]):
    kept = [x for x in ranking if x not in junk]
    found = 0
    ap = 0.0
    last_hit = 0  # 1-based position of the last positive
    hit_positions = []
    for i, x in enumerate(kept):
        if x not in positives:
            continue
        before = 1.0 if i == 0 else found / i  # precision just before this positive
        after = (found + 1) / (i + 1)  # precision including it
        ap += (before + after) / 2 / len(positives)
        found += 1
        last_hit = i + 1
        hit_positions.append(i + 1)
    prs = []
    for k in kappas:
        if not hit_positions:
            prs.append(0.0)
            continue
        kq = min(last_hit, k)
        prs.append(sum(1 for p in hit_positions if p <= kq) / kq)
    hits = [1.0 if any(p <= k for p in hit_positions) else 0.0 for k in kappas]
    return ap, prs, hits


@st.composite
def _cases(draw):
    n = draw(st.integers(1, 30))
    nq = draw(st.integers(1, 4))
    k = draw(st.integers(0, n))
    rows, pos, junk = [], [], []
    for _ in range(nq):
        rows.append(draw(st.permutations(range(n)))[:k])
        labels = draw(st.lists(st.sampled_from("pjn"), min_size=n, max_size=n))
        pos.append([i for i, c in enumerate(labels) if c == "p"])
        junk.append([i for i, c in enumerate(labels) if c == "j"])
    return np.array(rows, dtype=np.int64).reshape(nq, k), pos, junk


@settings(max_examples=200, deadline=None)
@given(_cases())
def test_matches_brute_force(case):
    ranks, pos, junk = case
    kappas = (1, 3, 5, 10)
    r = compute_map(ranks, pos, junk, kappas=kappas)
    aps = []
    for q in range(len(pos)):
        if not pos[q]:
            assert np.isnan(r.aps[q])
            continue
        ap, prs, hits = _reference(ranks[q].tolist(), set(pos[q]), set(junk[q]), kappas)
        assert r.aps[q] == pytest.approx(ap, abs=1e-12)
        assert r.prs[q].tolist() == pytest.approx(prs, abs=1e-12)
        assert r.hits[q].tolist() == hits
        aps.append(ap)
        # The single-query entry point agrees with compute_map.
        kept = [x for x in ranks[q].tolist() if x not in set(junk[q])]
        found = [i for i, x in enumerate(kept) if x in set(pos[q])]
        assert compute_ap(found, len(pos[q])) == pytest.approx(ap, abs=1e-12)
    if aps:
        assert r.map == pytest.approx(float(np.mean(aps)), abs=1e-12)
    else:
        assert r.map is None
