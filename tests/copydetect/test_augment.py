"""Copy augmentations: deterministic under a seed, always a valid uint8 RGB image, strength 0 near the identity
for the photometric edits, strength grows the edit."""

from __future__ import annotations

import numpy as np
import pytest

from retrievalkit.copydetect.augment import AUGMENTATIONS, MIN_SIDE, USES_OTHERS, apply, copy_view, random_resized_crop


def _photo(h=60, w=80, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 256], axis=2).astype(np.uint8)
    return np.clip(img.astype(int) + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)


SHAPES = [(60, 80), (9, 200), (200, 9), (8, 8)]


def _valid(out):
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    assert out.shape[0] >= MIN_SIDE and out.shape[1] >= MIN_SIDE and out.flags.c_contiguous


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_each_augmentation_is_seeded_and_valid(name):
    other = _photo(30, 50, seed=9)
    for h, w in SHAPES:
        img = _photo(h, w)
        before = img.copy()
        for strength in (0.0, 0.3, 1.0):
            outs = [apply(name, img, np.random.default_rng(seed), strength, others=[other]) for seed in (5, 5, 6)]
            for out in outs:
                _valid(out)
            np.testing.assert_array_equal(outs[0], outs[1])
            np.testing.assert_array_equal(img, before)  # the input is never changed in place
    # other seeds give other results (a random edit, not a fixed one); flips of a symmetric draw may repeat,
    # so compare over a few seeds
    img = _photo()
    results = {apply(name, img, np.random.default_rng(s), 1.0, others=[other]).tobytes() for s in range(6)}
    assert len(results) > 1


@pytest.mark.parametrize("name", USES_OTHERS)
def test_overlays_work_without_other_images(name):
    out = apply(name, _photo(), np.random.default_rng(0), 1.0, others=None)
    _valid(out)


@pytest.mark.parametrize("name", ["colour", "noise", "blur", "pixelate", "fade"])
def test_photometric_strength_zero_is_near_identity(name):
    img = _photo()
    out = apply(name, img, np.random.default_rng(1), 0.0)
    assert out.shape == img.shape
    assert np.abs(out.astype(int) - img.astype(int)).mean() < 3.0


@pytest.mark.parametrize("name", ["colour", "noise", "blur", "jpeg", "text", "emoji", "overlay_image", "pixelate",
                                  "fade"])
def test_stronger_edits_change_more(name):
    img = _photo(96, 128)

    def change(s):
        d = [np.abs(apply(name, img, np.random.default_rng(k), s).astype(float) - img).mean() for k in range(8)]
        return float(np.mean(d))

    assert change(1.0) > change(0.1)


def test_crop_keeps_area_within_bounds():
    img = _photo(100, 100)
    for k in range(20):
        out = apply("crop", img, np.random.default_rng(k), 0.5)
        assert out.shape[0] * out.shape[1] >= 0.5 * 100 * 100 * 0.9  # area ≥ 1 − 0.9·0.5, up to rounding
        assert out.shape[0] <= 100 and out.shape[1] <= 100


def test_copy_view_square_and_seeded():
    img, other = _photo(70, 90), _photo(40, 40, seed=3)
    a = copy_view(img, np.random.default_rng(7), 48, others=[other])
    b = copy_view(img, np.random.default_rng(7), 48, others=[other])
    assert a.shape == (48, 48, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert random_resized_crop(_photo(10, 12), np.random.default_rng(0), 32).shape == (32, 32, 3)


def _find(big, small):
    """(y, x) where ``small`` sits unchanged inside ``big``, or None."""
    h, w = small.shape[:2]
    for y in range(big.shape[0] - h + 1):
        for x in range(big.shape[1] - w + 1):
            if np.array_equal(big[y:y + h, x:x + w], small):
                return y, x
    return None


def test_screenshot_keeps_the_picture_whole_on_a_larger_page():
    img = _photo(30, 40)
    widths = []
    for k in range(12):
        out = apply("screenshot", img, np.random.default_rng(k), 1.0, others=[_photo(20, 20, seed=4)])
        assert _find(out, img) is not None  # the picture is pasted last, never covered or cropped
        assert out.shape[0] > img.shape[0]  # at least a top bar
        widths.append(img.shape[1] / out.shape[1])
    assert min(widths) >= 0.15 - 1e-6 and max(widths) <= 1.0
    assert min(widths) < 0.6  # strength 1 reaches small pictures
    small = [img.shape[1] / apply("screenshot", img, np.random.default_rng(k), 0.0).shape[1] for k in range(6)]
    assert min(small) > 0.99  # strength 0: the page is as wide as the picture


def test_pixelate_makes_blocks():
    img = _photo(64, 64)
    out = apply("pixelate", img, np.random.default_rng(3), 1.0)
    # blocks: most horizontally adjacent pixels are equal, unlike the noisy input
    assert np.mean(np.all(out[:, 1:] == out[:, :-1], axis=2)) > 0.5 > np.mean(np.all(img[:, 1:] == img[:, :-1], axis=2))


def test_fade_moves_towards_a_plain_page():
    img = _photo(40, 40)
    for k in range(6):
        out = apply("fade", img, np.random.default_rng(k), 1.0).astype(float)
        # a blend with one plain value: the output lies between the input and that value, pixel by pixel, and
        # the spread of the picture shrinks by the opacity
        assert out.std() <= img.astype(float).std() + 1.0


def test_copy_view_sets_the_crop_in_the_canvas_not_the_other_way_round(monkeypatch):
    """A canvas edit (screenshot, image in image) comes after the random resized crop, so the crop can never cut
    the picture out of its page; the page is then shrunk back to the view's size."""
    from retrievalkit.copydetect import augment

    probs = {k: 0.0 for k in augment.VIEW_PROBS}
    probs["screenshot"] = 1.0
    monkeypatch.setattr(augment, "VIEW_PROBS", probs)
    seen = []
    real_apply = augment.apply

    def spy(name, x, rng, strength=0.5, others=None):
        out = real_apply(name, x, rng, strength, others)
        seen.append((name, x.shape, out.copy()))
        return out

    monkeypatch.setattr(augment, "apply", spy)
    img = _photo(90, 120)
    for k in range(6):
        v = augment.copy_view(img, np.random.default_rng(k), 64, others=[_photo(20, 20, seed=2)])
        assert v.shape == (64, 64, 3)
        name, shape, page = seen[-1]
        assert name == "screenshot" and shape == (64, 64, 3)  # the crop, already at the view's size
        np.testing.assert_array_equal(v, augment._resize(page, 64, 64))  # the whole page, shrunk
