"""Poolings against direct numpy computations, and the R-MAC grid against hand-derived regions."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.models.pooling import (
    MAC,
    RMAC,
    GeM,
    SPoC,
    create_pooling,
    gem,
    l2n,
    mac,
    rmac,
    rmac_grid,
    rmac_regions,
    spoc,
)


@pytest.fixture
def fmap():
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 6, 5, 7, generator=g, dtype=torch.float64) - 0.1  # a few negatives: GeM's clamp matters


def np_gem(x, p, eps=1e-6):
    return np.mean(np.maximum(x, eps) ** p, axis=(2, 3)) ** (1.0 / p)


def test_mac_spoc_gem_match_numpy(fmap):
    x = fmap.numpy()
    np.testing.assert_allclose(mac(fmap).numpy(), x.max(axis=(2, 3)), rtol=1e-12)
    np.testing.assert_allclose(spoc(fmap).numpy(), x.mean(axis=(2, 3)), rtol=1e-12)
    np.testing.assert_allclose(gem(fmap, 3.0).numpy(), np_gem(x, 3.0), rtol=1e-10)
    np.testing.assert_allclose(gem(fmap, torch.tensor([3.0], dtype=torch.float64)).numpy(), np_gem(x, 3.0), rtol=1e-10)
    # p = 1 is SPoC (on a non-negative map)
    pos = fmap.clamp(min=0.01)
    np.testing.assert_allclose(gem(pos, 1.0).numpy(), spoc(pos).numpy(), rtol=1e-12)
    # one power per channel (cirtorch gemmp)
    ps = torch.linspace(1.0, 4.0, 6, dtype=torch.float64)
    want = np.stack([np_gem(x[:, c : c + 1], float(ps[c]))[:, 0] for c in range(6)], axis=1)
    np.testing.assert_allclose(gem(fmap, ps).numpy(), want, rtol=1e-10)


def test_modules_match_functions(fmap):
    assert torch.equal(MAC()(fmap), mac(fmap))
    assert torch.equal(SPoC()(fmap), spoc(fmap))
    pool = GeM(p=2.5).double()
    assert torch.allclose(pool(fmap), gem(fmap, 2.5))
    assert list(pool.state_dict()) == ["p"]  # cirtorch's `pool.p` loads into it
    pool.load_state_dict({"p": torch.tensor([4.0])})
    assert torch.allclose(pool(fmap), gem(fmap, 4.0))
    assert torch.equal(RMAC()(fmap), rmac(fmap))
    assert isinstance(create_pooling("GeM"), GeM)


def test_l2n():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    assert torch.allclose(l2n(x), torch.tensor([[0.6, 0.8], [0.0, 0.0]]), atol=1e-6)


# R-MAC regions (top, left, side) of cirtorch's grid, derived by hand:
#   5 x 7 map: w = 5; long side gets 1 extra region (overlap 1 - 2/5 = 0.6 is the closest to 0.4 of the candidates)
#   level 1: side 5, 1 x 2 grid, lefts 0, 2;  level 2: side 3, 2 x 3 grid, tops 0, 2, lefts 0, 2, 4;
#   level 3: side 2, 3 x 4 grid, tops floor(0, 1.5, 3) = 0, 1, 3, lefts floor(0, 5/3, 10/3, 5) = 0, 1, 3, 5.
GRID_5x7 = (
    [(0, 0, 5), (0, 2, 5)]
    + [(t, c, 3) for t in (0, 2) for c in (0, 2, 4)]
    + [(t, c, 2) for t in (0, 1, 3) for c in (0, 1, 3, 5)]
)
#   4 x 4 map: no extra regions; level 1: side 4 at 0; level 2: side 2 at 0, 2; level 3: side 2 at 0, 1, 2.
GRID_4x4 = [(0, 0, 4)] + [(t, c, 2) for t in (0, 2) for c in (0, 2)] + [(t, c, 2) for t in (0, 1, 2) for c in (0, 1, 2)]


#   7 x 5 map: the transpose, still listed row-major (tops outer, lefts inner).
GRID_7x5 = (
    [(0, 0, 5), (2, 0, 5)]
    + [(t, c, 3) for t in (0, 2, 4) for c in (0, 2)]
    + [(t, c, 2) for t in (0, 1, 3, 5) for c in (0, 1, 3)]
)


def test_rmac_grid_hand_derived():
    assert rmac_grid(5, 7) == [(0, 0, 0)] + GRID_5x7
    assert rmac_grid(7, 5) == [(0, 0, 0)] + GRID_7x5
    assert rmac_grid(4, 4) == [(0, 0, 0)] + GRID_4x4
    assert len(rmac_grid(30, 40)) == 21
    assert rmac_grid(1, 1) == [(0, 0, 0), (0, 0, 1)]  # levels whose regions would be empty are skipped


@pytest.mark.parametrize("hw, grid", [((5, 7), GRID_5x7), ((7, 5), GRID_7x5), ((4, 4), GRID_4x4)])
def test_rmac_matches_numpy(hw, grid):
    x = torch.rand(2, 6, *hw, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    xn = x.numpy()
    vecs = [xn.max(axis=(2, 3))] + [xn[:, :, t : t + s, c : c + s].max(axis=(2, 3)) for t, c, s in grid]
    vecs = [v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-6) for v in vecs]
    regions = rmac_regions(x)
    assert regions.shape == (2, len(grid) + 1, 6)
    np.testing.assert_allclose(regions.numpy(), np.stack(vecs, axis=1), rtol=1e-12)
    np.testing.assert_allclose(rmac(x).numpy(), np.sum(vecs, axis=0), rtol=1e-12)
    raw = rmac_regions(x, normalize=False)
    assert torch.equal(raw[:, 0], mac(x))


def test_shape_errors_say_expected_and_got():
    with pytest.raises(BadInputError, match=r"expected shape \(B, C, H, W\), got \(6, 5, 7\)"):
        gem(torch.rand(6, 5, 7))
    with pytest.raises(BadInputError, match="floating-point"):
        mac(torch.ones(1, 2, 3, 3, dtype=torch.int64))
    with pytest.raises(ValueError):  # ShapeError is also a ValueError
        spoc(np.zeros((1, 2, 3, 3)))
    with pytest.raises(BadInputError, match="1 or 6 entries"):
        gem(torch.rand(1, 6, 3, 3), torch.ones(4))


def test_unknown_pooling_lists_close_matches():
    with pytest.raises(UsageError, match="'gem'"):
        create_pooling("gme")


def test_half_precision_maps_pool_in_float32():
    x = torch.full((1, 2, 3, 3), 60.0, dtype=torch.float16)  # 60**3 overflows float16
    assert torch.allclose(gem(x, 3.0), torch.full((1, 2), 60.0), rtol=1e-3)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.floats(1.0, 8.0), st.floats(0.0, 4.0))
def test_gem_increases_with_p_between_spoc_and_mac(h, w, p, dp):
    x = torch.rand(1, 3, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(h * 7 + w)) + 1e-3
    lo, hi = gem(x, p), gem(x, p + dp)
    assert torch.all(lo <= hi + 1e-12)  # power-mean inequality
    assert torch.all(spoc(x) <= lo + 1e-12) and torch.all(hi <= mac(x) + 1e-12)
