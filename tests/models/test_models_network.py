"""RetrievalNet: descriptors, regions, configuration and cirtorch-style multi-scale description."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.models import RetrievalNet, create_backbone, describe
from retrievalkit.models.pooling import gem, rmac_regions


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return create_backbone("tiny-cnn").eval()


@pytest.fixture
def x():
    return torch.randn(3, 3, 48, 64, generator=torch.Generator().manual_seed(0))


def test_forward_is_pool_l2n_whiten_l2n(tiny, x):
    torch.manual_seed(1)
    net = RetrievalNet(tiny, pooling="gem", p=2.5, whitening=16).eval()
    with torch.no_grad():
        fmap = tiny(x)
        v = gem(fmap, 2.5)
        v = v / (v.norm(dim=1, keepdim=True) + 1e-6)
        v = net.whiten(v)
        want = v / (v.norm(dim=1, keepdim=True) + 1e-6)
        got = net(x)
    assert got.shape == (3, 16) and net.dim == 16
    assert torch.allclose(got, want, atol=1e-6)
    assert torch.allclose(got.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.equal(net.features(x), fmap)


def test_config(tiny):
    net = RetrievalNet(tiny, pooling="gem", p=3.0, whitening=(32, 64))
    cfg = net.config
    assert cfg["backbone"] == "tiny-cnn" and cfg["pooling"] == "gem" and cfg["p"] == 3.0
    assert cfg["whitening"] == [32, 64] and cfg["dim"] == 32 and cfg["out_channels"] == 64
    assert cfg["mean"] == [0.485, 0.456, 0.406] and cfg["std"] == [0.229, 0.224, 0.225]
    assert RetrievalNet.from_config(cfg).config == cfg
    with pytest.raises(UsageError, match="64 channels"):
        RetrievalNet(tiny, whitening=torch.nn.Linear(32, 8))


def test_regions_and_rmac(tiny, x):
    net = RetrievalNet(tiny, pooling="rmac").eval()
    with torch.no_grad():
        regions = net.regions(x)  # map 12 x 16 -> 1 + 2 + 6 + 12 regions
        assert regions.shape == (3, 21, 64)
        assert torch.allclose(regions, rmac_regions(tiny(x)))
        v = regions.sum(dim=1)
        assert torch.allclose(net(x), v / (v.norm(dim=1, keepdim=True) + 1e-6), atol=1e-6)


def test_input_checks(tiny):
    net = RetrievalNet(tiny)
    with pytest.raises(BadInputError, match=r"expected 3 channels"):
        net(torch.rand(1, 1, 32, 32))
    with pytest.raises(BadInputError, match=r"\(B, C, H, W\)"):
        net(torch.rand(3, 32, 32))
    with pytest.raises(UsageError, match="'spoc'"):
        RetrievalNet(tiny, pooling="spco")


def test_standardize(tiny):
    net = RetrievalNet(tiny)
    x = torch.rand(1, 3, 4, 4)
    want = (x.numpy() - np.array(net.mean).reshape(1, 3, 1, 1)) / np.array(net.std).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(net.standardize(x).numpy(), want, rtol=1e-5)


def np_combine(vs, p):
    v = np.mean(np.stack(vs) ** p, axis=0) ** (1.0 / p)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_describe_multiscale_matches_numpy(tiny, x):
    net = RetrievalNet(tiny, pooling="gem", p=2.5).eval()
    scales = (1.0, 0.75, 0.5)
    with torch.no_grad():
        per_scale = [net(x if s == 1 else F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False))
                     .numpy().astype(np.float64) for s in scales]
    got = describe(net, x, scales=scales).numpy()
    np.testing.assert_allclose(got, np_combine(per_scale, 2.5), atol=1e-5)  # GeM p with several scales
    assert net.multiscale_power(3) == pytest.approx(2.5) and net.multiscale_power(1) == 1.0
    # one scale: the plain (normalised) descriptor, no resize
    np.testing.assert_allclose(describe(net, x).numpy(), per_scale[0], atol=1e-6)
    # explicit p
    np.testing.assert_allclose(net.describe(x, scales, p=1.0).numpy(), np_combine(per_scale, 1.0), atol=1e-5)


def test_describe_whitened_and_mac_average_scales(tiny, x):
    torch.manual_seed(2)
    for net in (RetrievalNet(tiny, pooling="gem", whitening=8).eval(), RetrievalNet(tiny, pooling="mac").eval()):
        assert net.multiscale_power(2) == 1.0  # whitened entries can be negative: cirtorch averages
        with torch.no_grad():
            vs = [net(x).numpy(), net(F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)).numpy()]
        np.testing.assert_allclose(describe(net, x, (1, 0.5)).numpy(), np_combine(vs, 1.0), atol=1e-5)


def test_describe_list_of_images_of_different_sizes(tiny):
    net = RetrievalNet(tiny).eval()
    g = torch.Generator().manual_seed(3)
    images = [torch.randn(3, 40, 56, generator=g), torch.randn(1, 3, 64, 33, generator=g)]
    got = describe(net, images, scales=(1.0, 0.7071))
    for i, im in enumerate(images):
        assert torch.allclose(got[i], describe(net, im.reshape(1, 3, *im.shape[-2:]), scales=(1.0, 0.7071))[0])
    with pytest.raises(UsageError, match="positive"):
        describe(net, images, scales=(1.0, 0.0))
    with pytest.raises(BadInputError, match="image 0"):
        describe(net, [torch.rand(40, 56)])
