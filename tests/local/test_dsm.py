"""Deep Spatial Matching: blob detection on synthetic activation maps, same-channel matching and fast spatial
verification on synthetic features with a known transformation and outliers."""

from __future__ import annotations

import numpy as np
import pytest

from retrievalkit.configs.verify import DEFAULT_MIN_INLIERS, VerifyParams
from retrievalkit.errors import UsageError
from retrievalkit.extract.local_dsm import detect_channel, dsm_detect, strongest_channels, to_pixels
from retrievalkit.verify.dsm import correspondences, fit_dsm, match_dsm, match_dsm_params, upright_frames
from retrievalkit.verify.rerank import match_pair

H, W = 24, 32


def _blob(cx, cy, sx, sy=None, amp=1.0, theta=0.0):
    """A Gaussian blob on an (H, W) map, centre (cx, cy) in cells (cell centres at j + 0.5)."""
    sy = sx if sy is None else sy
    yy, xx = np.mgrid[:H, :W] + 0.5
    c, s = np.cos(theta), np.sin(theta)
    u = c * (xx - cx) + s * (yy - cy)
    v = -s * (xx - cx) + c * (yy - cy)
    return (amp * np.exp(-(u * u / (2 * sx * sx) + v * v / (2 * sy * sy)))).astype(np.float32)


def _half_max_var(s):
    """Per-axis variance of the half-maximum disc of a Gaussian of std s: radius² / 4 = s² ln 2 / 2."""
    return s * s * np.log(2) / 2


def test_detects_blobs_at_their_positions_and_scales():
    fmap = np.zeros((6, H, W), np.float32)
    truth = [(0, 8.0, 6.0, 1.5), (0, 22.3, 15.6, 3.0), (2, 10.0, 17.2, 2.0), (4, 25.5, 5.5, 1.8)]
    for c, x, y, s in truth:
        fmap[c] += _blob(x, y, s, amp=1.0 + c)
    kp = dsm_detect(fmap, channels=6, max_features=100)
    assert kp.shape == (4, 8)
    for c, x, y, s in truth:
        k = np.flatnonzero((kp[:, 4] == c) & (np.hypot(kp[:, 0] - x, kp[:, 1] - y) < 0.15))
        assert k.size == 1, (c, x, y, kp)
        sxx, sxy, syy = kp[k[0], 5:8]
        assert abs(sxy) < 0.05 * sxx
        assert sxx == pytest.approx(_half_max_var(s), rel=0.2) and syy == pytest.approx(_half_max_var(s), rel=0.2)
    # strongest first: the response is the blob's peak
    assert np.all(np.diff(kp[:, 3]) <= 0)
    assert kp[0, 4] == 4 and kp[0, 3] == pytest.approx(5.0, rel=0.05)


def test_elongated_blob_gives_its_ellipse_and_shoulders_are_not_features():
    a = _blob(16, 12, 4.0, 1.5, theta=np.pi / 6)
    a += _blob(17.5, 13.0, 1.0, amp=0.4)  # a weak bump on the big blob's flank: part of it, not a feature
    a += _blob(4, 20, 1.5, amp=0.6)  # a separate, weaker blob: a feature
    feats = detect_channel(a)
    assert len(feats) == 2
    (x, y, cov, resp), (x2, y2, _, resp2) = feats
    assert resp > resp2 and np.hypot(x2 - 4, y2 - 20) < 0.2
    evals, evecs = np.linalg.eigh(cov)
    assert np.sqrt(evals[1] / evals[0]) == pytest.approx(4.0 / 1.5, rel=0.25)
    major = evecs[:, 1] * np.sign(evecs[0, 1])
    assert np.degrees(np.arccos(abs(major @ [np.cos(np.pi / 6), np.sin(np.pi / 6)]))) < 5


def test_channel_selection_and_empty_maps():
    fmap = np.zeros((5, H, W), np.float32)
    fmap[1] = _blob(5, 5, 2, amp=3)
    fmap[3] = _blob(20, 10, 2, amp=1)
    fmap[4] = -_blob(10, 10, 2)  # negative activations count as zero
    assert list(strongest_channels(fmap, 10)) == [1, 3]
    assert list(strongest_channels(fmap, 1)) == [1]
    assert dsm_detect(np.zeros((3, H, W), np.float32), 3, 10).shape == (0, 8)
    kp = dsm_detect(fmap, 10, max_features=1)
    assert kp.shape == (1, 8) and kp[0, 4] == 1


def test_to_pixels_scales_positions_and_moments():
    kp = np.array([[2.0, 3.0, 1.0, 5.0, 7.0, 1.0, 0.5, 2.0]], np.float32)
    out = to_pixels(kp, 16.0, 8.0)
    assert out[0, :5].tolist() == [32.0, 24.0, 12.0, 5.0, 7.0]
    assert out[0, 5:].tolist() == [256.0, 64.0, 128.0]


# ----------------------------------------------------------------------------------------- matching
def _features(rng, n, channels=64, width=640, height=480):
    kp = np.zeros((n, 8), np.float32)
    kp[:, 0] = rng.uniform(0, width, n)
    kp[:, 1] = rng.uniform(0, height, n)
    kp[:, 2] = 32.0
    kp[:, 3] = rng.uniform(0.5, 6, n)
    kp[:, 4] = rng.integers(0, channels, n)
    r = rng.uniform(10, 40, n)
    e = rng.uniform(0.6, 1.6, n)
    t = rng.uniform(0, np.pi, n)
    c, s = np.cos(t), np.sin(t)
    kp[:, 5] = r * r / 4 * (e * c * c + s * s / e)
    kp[:, 6] = r * r / 4 * (e - 1 / e) * c * s
    kp[:, 7] = r * r / 4 * (e * s * s + c * c / e)
    return kp


def _pair(seed, n=150, inliers=40, a=((1.3, 0.0), (0.25, 0.9)), t=(40.0, -30.0), noise=2.0):
    """Two images' features: the first ``inliers`` of image 2 are image 1's moved by x ↦ A x + t (ellipses
    too, positions with noise), the rest of both are unrelated."""
    rng = np.random.default_rng(seed)
    a, t = np.asarray(a), np.asarray(t)
    kp1, kp2 = _features(rng, n), _features(rng, n)
    kp2[:inliers, :2] = kp1[:inliers, :2] @ a.T + t + rng.normal(0, noise, (inliers, 2))
    kp2[:inliers, 3:5] = kp1[:inliers, 3:5]
    for k in range(inliers):
        s = np.array([[kp1[k, 5], kp1[k, 6]], [kp1[k, 6], kp1[k, 7]]])
        s2 = a @ s @ a.T
        kp2[k, 5:8] = s2[0, 0], s2[0, 1], s2[1, 1]
    return kp1, kp2, a, t


def test_correspondences_are_same_channel_pairs():
    kp1 = np.zeros((3, 8), np.float32)
    kp2 = np.zeros((4, 8), np.float32)
    kp1[:, 4] = [5, 7, 5]
    kp2[:, 4] = [7, 5, 9, 5]
    kp1[:, 3] = [1, 2, 3]
    kp2[:, 3] = [1, 1, 1, 2]
    m = correspondences(kp1, kp2)
    assert sorted(map(tuple, m.tolist())) == [(0, 1), (0, 3), (1, 0), (2, 1), (2, 3)]
    assert tuple(m[0]) == (2, 3)  # strongest response product first
    assert correspondences(kp1, kp2, max_matches=2).shape == (2, 2)
    assert correspondences(kp1[:0], kp2).shape == (0, 2)


def test_upright_frames_are_square_roots_keeping_the_vertical():
    rng = np.random.default_rng(1)
    kp = _features(rng, 20)
    frames = upright_frames(kp)
    assert np.allclose(frames[:, 0, 1], 0)
    s = frames @ frames.transpose(0, 2, 1)
    assert np.allclose(s[:, 0, 0], kp[:, 5], rtol=1e-4) and np.allclose(s[:, 0, 1], kp[:, 6], rtol=1e-4, atol=1e-3)
    assert np.allclose(s[:, 1, 1], kp[:, 7], rtol=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("method", ["affine", "homography"])
def test_recovers_the_transformation_among_outliers(seed, method):
    kp1, kp2, a, t = _pair(seed)
    m = correspondences(kp1, kp2)
    model, mask = fit_dsm(kp1, kp2, m, threshold=16.0, method=method)
    true = (m[:, 0] == m[:, 1]) & (m[:, 0] < 40)
    assert mask[true].sum() >= 36  # nearly all true correspondences found
    assert (mask & ~true).sum() <= 3  # and few chance ones
    assert model is not None
    grid = np.array([[50.0, 60.0], [600.0, 40.0], [320.0, 450.0]])
    q = (np.c_[grid, np.ones(3)] @ model.T)
    q = q[:, :2] / q[:, 2:]
    assert np.abs(q - (grid @ a.T + t)).max() < 8.0
    # one-to-one: no feature counted twice
    assert len(set(m[mask, 0])) == mask.sum() and len(set(m[mask, 1])) == mask.sum()


@pytest.mark.parametrize("seed", range(5))
def test_pure_outliers_stay_below_the_verification_rule(seed):
    kp1, kp2, _, _ = _pair(seed, inliers=0)
    m, mask = match_dsm(kp1, kp2)
    assert m.shape[0] > 100  # plenty of same-channel (chance) correspondences
    assert mask.sum() < DEFAULT_MIN_INLIERS


def test_match_pair_dispatches_dsm_and_refuses_what_does_not_apply():
    kp1, kp2, _, _ = _pair(0)
    m, mask = match_pair(kp1, np.ones((len(kp1), 1)), kp2, np.ones((len(kp2), 1)), VerifyParams(), "dsm")
    assert m.shape[1] == 2 and mask.shape == (m.shape[0],) and mask.sum() >= 36
    for params, option in ((VerifyParams(ratio=0.8), "--ratio"), (VerifyParams(mutual=False), "--no-mutual"),
                           (VerifyParams(method="fundamental"), "--method")):
        with pytest.raises(UsageError, match=option):
            match_dsm_params(kp1, kp2, params)
