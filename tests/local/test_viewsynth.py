"""View synthesis (ASIFT-style tilts): view geometry and recovery of a strongly tilted copy."""

from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from retrievalkit.extract.sift import sift_features  # noqa: E402
from retrievalkit.verify.geometry import match_descriptors, verify_pair  # noqa: E402
from retrievalkit.verify.viewsynth import match_views, simulate_view, view_features, view_params  # noqa: E402


def test_view_params_counts():
    v = view_params((2.0, 4.0))
    assert v[0] == (1.0, 0.0)
    # rotation step 72/t degrees over [0, 180): 5 views at t=2, 10 at t=4
    assert len(v) == 1 + 5 + 10
    assert all(0 <= a < 180 for _, a in v)
    with pytest.raises(ValueError):
        view_params((1.0,))


@pytest.mark.parametrize("tilt,angle", [(1.0, 30.0), (2.0, 0.0), (4.0, 60.0), (2.0, 150.0)])
def test_simulate_view_maps_points(tilt, angle):
    img = np.zeros((120, 160), np.uint8)
    x, y = 100, 40
    img[y - 2:y + 3, x - 2:x + 3] = 255
    view, m = simulate_view(img, tilt, angle)
    vx, vy = m @ np.array([x + 0.0, y + 0.0, 1.0])
    peak = np.unravel_index(np.argmax(cv2.GaussianBlur(view.astype(np.float32), (0, 0), 2)), view.shape)
    assert abs(peak[1] - vx) <= 2.0 and abs(peak[0] - vy) <= 2.0


def _texture(seed: int = 0, h: int = 400, w: int = 400) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((h, w), 128, np.uint8)
    for _ in range(250):
        c = (int(rng.integers(10, w - 10)), int(rng.integers(10, h - 10)))
        cv2.circle(img, c, int(rng.integers(2, 9)), int(rng.integers(0, 256)), -1)
        p = rng.integers(0, w, size=(3, 2)).astype(np.int32)
        if rng.random() < 0.3:
            cv2.fillConvexPoly(img, p, int(rng.integers(0, 256)))
    return cv2.GaussianBlur(img, (0, 0), 1.0)


def test_view_synthesis_recovers_extreme_tilt():
    plane = _texture()
    # the "database" photo: the plane compressed 4x along a direction at 45 degrees (an extreme viewpoint)
    a = np.deg2rad(45)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    affine = r.T @ np.diag([1 / 4.0, 1.0]) @ r
    t = np.array([300.0, 300.0]) - affine @ np.array([200.0, 200.0])
    db = cv2.warpAffine(plane, np.hstack([affine, t[:, None]]), (600, 600), flags=cv2.INTER_AREA,
                        borderValue=128)
    kd, dd = sift_features(db, 2000)
    kq, dq = sift_features(plane, 2000)
    plain, _ = verify_pair(kq, kd, match_descriptors(dq, dd, ratio=0.8), ransac_threshold=4.0)
    vf = view_features(plane, tilts=(2.0, 4.0, 6.0))
    assert vf.n_views == len(view_params((2.0, 4.0, 6.0)))
    # keypoints come back in the plane's own pixels
    assert vf.keypoints[:, 0].min() >= 0 and vf.keypoints[:, 0].max() < 400
    m = match_views(vf, dd)
    assert len(np.unique(m[:, 1])) == len(m)  # a database feature is matched once
    n, model = verify_pair(vf.keypoints, kd, m, method="affine", ransac_threshold=4.0)
    assert n >= 15 and n > 3 * plain
    # the fitted model is the true affine map
    np.testing.assert_allclose(model[:, :2], affine, atol=0.05)
