"""Tentative matches, RANSAC on a warped real photo, RootSIFT, shortlist re-ranking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrievalkit.extract.sift import root_sift, sift_features
from retrievalkit.verify.geometry import match_descriptors, verify_pair
from retrievalkit.verify.rerank import rerank_shortlist

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
PHOTO = DATA / "demo" / "images" / "berliner_dom" / "01.jpg"


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_match_descriptors_recovers_a_permutation():
    rng = np.random.default_rng(0)
    d1 = _unit(rng.standard_normal((200, 32)))
    perm = rng.permutation(200)
    d2 = _unit(d1[perm] + 0.01 * rng.standard_normal((200, 32)))
    m = match_descriptors(d1, d2, ratio=0.8, mutual=True)
    assert m.shape == (200, 2)
    np.testing.assert_array_equal(perm[m[:, 1]], m[:, 0])


def test_ratio_test_and_mutual_reject_ambiguous_matches():
    rng = np.random.default_rng(1)
    a = _unit(rng.standard_normal((1, 16)))
    e = 0.05 * rng.standard_normal((1, 16))
    d2 = np.concatenate([a + e, a - e])  # two candidates at the same distance
    assert match_descriptors(a, d2, ratio=0.8, mutual=False).shape[0] == 0
    assert match_descriptors(a, d2, ratio=None, mutual=False).shape[0] == 1
    d2[1] += 0.5 * rng.standard_normal(16)  # now the second is far: the ratio test passes
    assert match_descriptors(a, d2, ratio=0.8, mutual=False).shape[0] == 1
    # mutual: two queries want the same neighbour, only the closer one keeps it
    d1 = np.concatenate([a, _unit(a + 0.3 * rng.standard_normal((1, 16)))])
    m = match_descriptors(d1, a, ratio=None, mutual=True)
    np.testing.assert_array_equal(m, [[0, 0]])
    assert match_descriptors(d1, a, ratio=None, mutual=False).shape[0] == 2


def test_empty_inputs():
    assert match_descriptors(np.zeros((0, 8)), np.ones((3, 8))).shape == (0, 2)
    assert verify_pair(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros((0, 2), int)) == (0, None)
    kp, desc = sift_features(np.full((120, 160), 128, np.uint8), 500)
    assert kp.shape == (0, 4) and desc.shape == (0, 128)


def test_root_sift_is_unit_norm_and_hellinger():
    rng = np.random.default_rng(2)
    s = rng.uniform(0, 50, (5, 128)).astype(np.float32)
    r = root_sift(s)
    np.testing.assert_allclose(np.linalg.norm(r, axis=1), 1, rtol=1e-5)
    # inner product of RootSIFT = Hellinger kernel of L1-normalised SIFT
    p = s / s.sum(1, keepdims=True)
    np.testing.assert_allclose(r @ r.T, np.sqrt(p[:, None] * p[None]).sum(-1), rtol=1e-4)


@pytest.fixture(scope="module")
def photo_sift():
    import cv2

    if not PHOTO.exists():
        pytest.skip(f"real photos not found at {PHOTO} (the shared data folder is absent)")
    from retrievalkit.images import load_image

    gray = cv2.cvtColor(load_image(PHOTO), cv2.COLOR_RGB2GRAY)
    return gray, *sift_features(gray, 1000)


@pytest.mark.parametrize("method", ["homography", "affine"])
def test_ransac_recovers_known_homography_on_warped_photo(photo_sift, method):
    import cv2

    gray, k1, d1 = photo_sift
    h, w = gray.shape
    if method == "homography":
        H = np.array([[0.9, 0.12, 25.0], [-0.06, 1.05, 12.0], [1.2e-4, -5e-5, 1.0]])
    else:
        H = np.array([[0.8, 0.2, 30.0], [-0.1, 0.9, 20.0], [0.0, 0.0, 1.0]])
    warped = cv2.warpPerspective(gray, H, (w, h))
    k2, d2 = sift_features(warped, 1000)
    m = match_descriptors(d1, d2)
    n, model = verify_pair(k1, k2, m, method=method, ransac_threshold=3.0)
    assert model is not None and n >= 100 and n >= 0.5 * len(m)
    if method == "affine":
        model = np.vstack([model, [0, 0, 1]])
    # the recovered model maps image points where the true one does (within 1.5 px over the image)
    grid = np.array([[x, y, 1.0] for x in np.linspace(50, w - 50, 5) for y in np.linspace(50, h - 50, 5)])
    a, b = grid @ H.T, grid @ model.T
    err = np.linalg.norm(a[:, :2] / a[:, 2:] - b[:, :2] / b[:, 2:], axis=1)
    assert err.max() < 1.5


def test_unrelated_views_give_few_inliers(photo_sift):
    from retrievalkit.images import load_image

    gray, k1, d1 = photo_sift
    other = load_image(DATA / "demo" / "images" / "et_toy" / "et000.jpg", gray=True)  # another scene
    k3, d3 = sift_features(other, 1000)
    n_bad, _ = verify_pair(k1, k3, match_descriptors(d1, d3), ransac_threshold=3.0)
    assert n_bad < 15


def test_rerank_shortlist_moves_verified_first_and_stays_monotone():
    idx = np.array([5, 3, 9, 1, 7, -1])
    sc = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.0], np.float32)
    inl = np.array([0, 40, 12, 3])  # verified: 3 (40), 9 (12); not: 5, 1; 7 is beyond the shortlist
    s2, i2 = rerank_shortlist(sc, idx, inl, min_inliers=10)
    np.testing.assert_array_equal(i2, [3, 9, 5, 1, 7, -1])
    assert np.all(np.diff(s2[:5]) < 0)
    assert s2[0] == pytest.approx(40.8)
