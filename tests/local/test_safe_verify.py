"""A-contrario significance, Hough Pyramid Matching and the safe re-ranking rule on synthetic correspondences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from retrievalkit.configs.verify import VerifyParams
from retrievalkit.verify.geometry import fit_pair
from retrievalkit.verify.hpm import hough_pyramid
from retrievalkit.verify.rerank import check_matches, promoted_mask, promotion_key, rerank_shortlist
from retrievalkit.verify.significance import log10_binomial_tail, pair_log10_nfa, ransac_log10_nfa

W, H = 800, 600


def _similar(rng, n_in: int, n_out: int, angle=30.0, scale=1.5, shift=(100.0, 50.0), noise=1.0, rotation=True):
    """Keypoints (x, y, scale, angle) of two images: the first n_in correspondences follow one similarity
    transformation (image 2 is half-size), the rest pair random features."""
    n = n_in + n_out
    kp1 = np.c_[rng.uniform(0, W, n), rng.uniform(0, H, n), rng.uniform(2, 20, n), rng.uniform(0, 360, n)]
    a = np.deg2rad(angle if rotation else 0.0)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    kp2 = np.empty_like(kp1)
    kp2[:, :2] = (scale * kp1[:, :2] @ rot.T + np.array(shift)) * 0.5
    kp2[:, 2] = kp1[:, 2] * scale * 0.5
    kp2[:, 3] = (kp1[:, 3] + (angle if rotation else 0.0)) % 360
    kp2[:n_in, :2] += rng.normal(0, noise, (n_in, 2))
    kp2[n_in:] = np.c_[rng.uniform(0, W / 2, n_out), rng.uniform(0, H / 2, n_out), rng.uniform(2, 20, n_out),
                       rng.uniform(0, 360, n_out)]
    return kp1, kp2, np.c_[np.arange(n), np.arange(n)]


# --------------------------------------------------------------------------------------------- significance
def test_binomial_tail_matches_the_direct_sum():
    for n, k, p in [(20, 5, 0.1), (50, 1, 0.3), (12, 12, 0.5), (30, 0, 0.2)]:
        direct = sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k, n + 1))
        assert log10_binomial_tail(n, k, p) == pytest.approx(math.log10(direct), abs=1e-9)
    assert log10_binomial_tail(5, 6, 0.5) == -math.inf
    # far beyond double precision: still finite and monotone in k
    assert log10_binomial_tail(2000, 900, 1e-3) < log10_binomial_tail(2000, 800, 1e-3) < -1000


def test_more_inliers_or_a_tighter_tolerance_is_stronger_evidence():
    a = ransac_log10_nfa(100, 20, 1e-3, "homography")
    assert ransac_log10_nfa(100, 30, 1e-3, "homography") < a
    assert ransac_log10_nfa(100, 20, 1e-2, "homography") > a
    assert ransac_log10_nfa(100, 20, 1e-3, "homography", tests=100) == pytest.approx(a + 2)
    assert ransac_log10_nfa(100, 4, 1e-3, "homography") == math.inf  # the minimal sample is no evidence


def test_nfa_by_hand_with_a_one_correspondence_sample():
    # DSM: one hypothesis per correspondence -> NFA = S * 1 * (n - 1) * C(n, 1) * P[Bin(n - 1, p) >= k - 1]
    n, k, p, tests = 40, 9, 0.02, 8
    tail = sum(math.comb(n - 1, i) * p ** i * (1 - p) ** (n - 1 - i) for i in range(k - 1, n))
    hand = math.log10(tests * (n - 1) * n * tail)
    assert ransac_log10_nfa(n, k, p, "affine", tests, sample=(1, 1)) == pytest.approx(hand, abs=1e-9)
    assert ransac_log10_nfa(n, 1, p, "affine", tests, sample=(1, 1)) == math.inf


@pytest.mark.parametrize("method", ["homography", "affine", "fundamental"])
def test_random_matches_are_not_conclusive(method):
    """Pure random matches: RANSAC finds a few chance inliers, never conclusive evidence (NFA ≥ 1)."""
    rng = np.random.default_rng(3)
    worst = math.inf
    for _ in range(5):
        kp1, kp2, m = _similar(rng, 0, 400)
        _, mask = fit_pair(kp1, kp2, m, method, 8.0)
        worst = min(worst, pair_log10_nfa(kp1, kp2, m, mask, method, 8.0, (W / 2, H / 2), tests=1))
    assert worst > 0


def test_a_true_model_with_enough_inliers_is_conclusive_and_few_are_not():
    rng = np.random.default_rng(4)
    kp1, kp2, m = _similar(rng, 30, 200)
    _, mask = fit_pair(kp1, kp2, m, "homography", 8.0)
    assert mask[:30].mean() > 0.9
    assert pair_log10_nfa(kp1, kp2, m, mask, "homography", 8.0, (W / 2, H / 2), tests=100) < -5
    # the same inliers piled onto one location are one piece of evidence
    kp1b, kp2b = kp1.copy(), kp2.copy()
    kp1b[:30, :2] = kp1[0, :2]
    kp2b[:30, :2] = kp2[0, :2]
    assert pair_log10_nfa(kp1b, kp2b, m, mask, "homography", 8.0, (W / 2, H / 2)) == math.inf


# ---------------------------------------------------------------------------------------------------- HPM
@pytest.mark.parametrize("rotation", [True, False])
def test_hpm_recovers_a_similarity_among_outliers(rotation):
    rng = np.random.default_rng(5)
    kp1, kp2, m = _similar(rng, 40, 200, rotation=rotation)
    r = hough_pyramid(kp1, kp2, m, size2=(W / 2, H / 2), rotation=rotation, tests=100)
    assert r.grouped[:40].mean() > 0.9 and r.grouped[40:].mean() < 0.1
    assert r.strength[:40].mean() > 5 * r.strength[40:].mean()
    assert r.log10_nfa < -5
    # the transformation of the grouped correspondences is the true one
    g = np.flatnonzero(r.grouped)
    assert np.median(kp2[g, 2] / kp1[g, 2]) == pytest.approx(0.75, rel=0.05)
    if rotation:
        assert np.median((kp2[g, 3] - kp1[g, 3]) % 360) == pytest.approx(30, abs=1)


def test_hpm_gives_pure_outliers_no_conclusive_score():
    rng = np.random.default_rng(6)
    true = hough_pyramid(*_similar(rng, 40, 200), size2=(W / 2, H / 2))
    for seed in range(4):
        kp1, kp2, m = _similar(np.random.default_rng(10 + seed), 0, 240)
        r = hough_pyramid(kp1, kp2, m, size2=(W / 2, H / 2))
        assert r.log10_nfa > 0
        assert r.score < 0.25 * true.score
        assert r.grouped.sum() < 10


def test_hpm_keeps_one_correspondence_per_feature():
    rng = np.random.default_rng(7)
    kp1, kp2, m = _similar(rng, 30, 50)
    # every inlier's query feature is also matched to a random database feature (a conflicting correspondence)
    extra = np.c_[np.arange(30), rng.integers(30, 80, 30)]
    r = hough_pyramid(kp1, kp2, np.concatenate([m, extra]), size2=(W / 2, H / 2))
    kept = np.concatenate([m, extra])[r.strength > 0]
    assert len(np.unique(kept[:, 0])) == len(kept) and len(np.unique(kept[:, 1])) == len(kept)
    assert r.grouped[:30].mean() > 0.9  # the consistent ones win


def test_hpm_is_linear_enough():
    """Thousands of correspondences in one pair: well under a second (no pairwise affinity matrix)."""
    import time

    kp1, kp2, m = _similar(np.random.default_rng(8), 500, 4500)
    hough_pyramid(kp1[:50], kp2[:50], m[:50])  # imports
    t = time.perf_counter()
    hough_pyramid(kp1, kp2, m, size2=(W / 2, H / 2))
    assert time.perf_counter() - t < 2.0


# ---------------------------------------------------------------------------------------------- safe rule
def _shortlist_case(seed: int = 9):
    """A fused list of 12: correct images (a true model, 25 inliers among 80 matches) at fused ranks 1, 4, 7, 10
    and wrong ones with many random matches at a loose (deep-locals-like) 30 px threshold, where a fixed count
    of inliers is reached by chance."""
    rng = np.random.default_rng(seed)
    correct = {1, 4, 7, 10}
    ev = []
    for j in range(12):
        kp1, kp2, m = _similar(rng, 25, 55) if j in correct else _similar(rng, 0, 1500)
        ev.append((kp1, kp2, m))
    return ev, correct


@pytest.mark.parametrize("method", ["homography", "hpm"])
def test_safe_rule_never_moves_a_correct_image_below_its_fused_rank(method):
    cases, correct = _shortlist_case()
    k = len(cases)
    scores = np.linspace(1.0, 0.5, k)
    ids = np.arange(k)
    res = {}
    for promote in ("significant", "min-inliers"):
        p = VerifyParams(method=method, promote=promote, min_inliers=10, threshold=30.0)
        out = [check_matches(kp1, kp2, m, p, "sift", 30.0, size2=(W / 2, H / 2), tests=k)[1]
               for kp1, kp2, m in cases]
        inl = np.array([e.inliers for e in out])
        lnfa = np.array([e.log10_nfa for e in out])
        strength = np.array([e.strength for e in out])
        up = promoted_mask(inl, lnfa, p)
        _, new = rerank_shortlist(scores, ids, promotion_key(strength, lnfa, p), promoted=up)
        res[promote] = (list(new), up, inl)

    def wrong_above(order, c):  # wrong images ranked above the correct image c
        return sum(1 for j in order[:order.index(c)] if j not in correct)

    fused = list(ids)
    new, up, _ = res["significant"]
    assert set(np.flatnonzero(up)) == correct  # every correct image conclusive, no wrong one
    for c in correct:
        assert wrong_above(new, c) <= wrong_above(fused, c)  # no correct image loses rank to a wrong one
        assert new.index(c) < len(correct)  # the promoted come first
    wrong = [j for j in new if j not in correct]
    assert wrong == sorted(wrong)  # the unverified keep the fused order
    if method == "hpm":
        return  # HPM's finest bins rarely group random matches: its fixed count is not fooled by this case
    # RANSAC reaches the fixed count (10 inliers) by chance here: it promotes wrong images above correct ones
    new_old, up_old, inl = res["min-inliers"]
    assert up_old[[j for j in range(k) if j not in correct]].any()
    assert any(wrong_above(new_old, c) > wrong_above(fused, c) for c in correct)


def test_rerank_shortlist_promoted_mask_keeps_order_of_the_rest():
    sc = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    idx = np.array([10, 11, 12, 13, -1, -1])
    s, i = rerank_shortlist(sc, idx, np.array([0.0, 0.0, 7.0, 3.0]), promoted=np.array([False, False, True, True]))
    assert list(i) == [12, 13, 10, 11, -1, -1]
    assert np.all(np.diff(s[:4]) <= 0)
    with pytest.raises(ValueError):
        rerank_shortlist(sc, idx, np.zeros(4))
