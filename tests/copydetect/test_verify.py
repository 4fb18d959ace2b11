"""Local verification: an edited copy of a photo verifies, an unrelated photo does not."""
# ruff: noqa: E741  (faiss naming from STYLE.md: D scores, I ids)

from __future__ import annotations

import cv2
import numpy as np

from retrievalkit.copydetect.verify import (
    LocalMatcher,
    VerifyConfig,
    has_evidence,
    verification_bonus,
    verify_candidates,
)


def _edited_copy(img: np.ndarray, flip: bool) -> np.ndarray:
    h, w = img.shape[:2]
    crop = img[int(0.1 * h):int(0.85 * h), int(0.15 * w):int(0.9 * w)]
    m = cv2.getRotationMatrix2D((crop.shape[1] / 2, crop.shape[0] / 2), 8, 0.8)
    out = cv2.warpAffine(crop, m, (crop.shape[1], crop.shape[0]), borderValue=(255, 255, 255))
    cv2.putText(out, "COPY", (10, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 255), 3)
    return out[:, ::-1] if flip else out


def test_copy_verifies_unrelated_does_not(copydetect_dev, tmp_path):
    ref = copydetect_dev / "references" / "R000000.jpg"
    other = copydetect_dev / "references" / "R000150.jpg"
    img = cv2.imread(str(ref))
    for flip in (False, True):
        cv2.imwrite(str(tmp_path / f"copy{int(flip)}.jpg"), _edited_copy(img, flip))
    cfg = VerifyConfig()
    m = LocalMatcher(cfg)
    n_copy = m.inliers(tmp_path / "copy0.jpg", ref)
    n_flip = m.inliers(tmp_path / "copy1.jpg", ref)
    n_other = m.inliers(tmp_path / "copy0.jpg", other)
    assert n_copy >= 4 * cfg.min_inliers, n_copy
    assert n_flip >= 4 * cfg.min_inliers, n_flip  # found through the mirrored query
    assert n_other < cfg.min_inliers, n_other
    assert LocalMatcher(VerifyConfig(flip=False)).inliers(tmp_path / "copy1.jpg", ref) < n_flip / 2

    # re-scoring lifts the verified pair above a better-scored unverified one
    I = np.array([[1, 0]])
    D = np.array([[0.6, 0.5]])
    D2, inl, ok = verify_candidates([tmp_path / "copy0.jpg"], [ref, other], D, I, cfg)
    assert D2[0, 1] > D2[0, 0] and inl[0, 1] == n_copy and D2[0, 0] == 0.6
    assert cfg.promote == "significant" and ok.tolist() == [[False, True]]
    # the copy's evidence is far beyond chance, the unrelated photo's is not evidence at all
    n, lnfa = m.evidence(tmp_path / "copy0.jpg", ref)
    assert n == n_copy and lnfa < -10, lnfa
    assert m.evidence(tmp_path / "copy0.jpg", other)[1] > -1


def test_bonus_is_bounded_and_thresholded():
    cfg = VerifyConfig(min_inliers=12, half=20, bonus=1.0)
    b = verification_bonus(np.array([0, 11, 12, 20, 10_000]), cfg)
    assert b[0] == b[1] == 0 and 0 < b[2] < b[3] < b[4] < 1
    assert b[3] == 0.5


def test_significance_counts_every_pair_of_the_run():
    # one pair's log10 NFA for one test is -3: evidence when 100 pairs are verified (x2 with the mirrored query:
    # NFA 0.2), no evidence when 10 000 are (NFA 20): the bound is on chance verifications over the whole run
    cfg = VerifyConfig()
    assert cfg.promote == "significant" and cfg.flip
    inl = np.array([5, -1])
    lnfa = np.array([-3.0, -50.0])
    assert has_evidence(inl, lnfa, cfg, tests=100).tolist() == [True, False]  # unverified (-1) never
    assert has_evidence(inl, lnfa, cfg, tests=10_000).tolist() == [False, False]
    assert has_evidence(inl, lnfa, VerifyConfig(flip=False), tests=400).tolist() == [True, False]  # 10^-3·400
    assert has_evidence(inl, lnfa, VerifyConfig(flip=True), tests=600).tolist() == [False, False]  # 10^-3·1200
    assert has_evidence(inl, lnfa, VerifyConfig(nfa=100.0), tests=10_000).tolist() == [True, False]
    # tests default to the verified pairs given (one here: NFA 0.002)
    assert has_evidence(inl, lnfa, cfg).tolist() == [True, False]
    # the fixed-count rule ignores the NFA
    old = VerifyConfig(promote="min-inliers", min_inliers=5)
    assert has_evidence(np.array([5, 4]), np.array([9.0, -99.0]), old).tolist() == [True, False]


def test_bonus_goes_to_evidence_only_and_never_lowers_a_score():
    cfg = VerifyConfig()
    inl = np.array([[40, 4, -1, 0]])
    ok = np.array([[True, True, False, False]])
    b = verification_bonus(inl, cfg, ok)
    assert b[0, 0] == 40 / 60 and b[0, 1] == 4 / 24 and b[0, 2] == b[0, 3] == 0
    assert (b >= 0).all()
