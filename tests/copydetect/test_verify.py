"""Local verification: an edited copy of a photo verifies, an unrelated photo does not."""
# ruff: noqa: E741  (faiss naming from STYLE.md: D scores, I ids)

from __future__ import annotations

import cv2
import numpy as np

from retrievalkit.copydetect.verify import LocalMatcher, VerifyConfig, verification_bonus, verify_candidates


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
    D2, inl = verify_candidates([tmp_path / "copy0.jpg"], [ref, other], D, I, cfg)
    assert D2[0, 1] > D2[0, 0] and inl[0, 1] == n_copy and D2[0, 0] == 0.6


def test_bonus_is_bounded_and_thresholded():
    cfg = VerifyConfig(min_inliers=12, half=20, bonus=1.0)
    b = verification_bonus(np.array([0, 11, 12, 20, 10_000]), cfg)
    assert b[0] == b[1] == 0 and 0 < b[2] < b[3] < b[4] < 1
    assert b[3] == 0.5
