from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.models import resnet101

from bioaug.errors import CheckpointError, ConfigError
from bioaug.models import build_backbone
from bioaug.models.supervised import IMAGENET_MEAN, IMAGENET_STD, SupervisedResNet101


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[torch.nn.Module, Path]:
    """A randomly initialised torchvision ResNet-101 saved as a stand-in weights file."""
    torch.manual_seed(0)
    net = resnet101(weights=None).eval()
    path = tmp_path_factory.mktemp("weights") / "resnet101-test.pth"
    torch.save(net.state_dict(), path)
    return net, path


def _normalised(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def _features(net, x):
    fc, net.fc = net.fc, torch.nn.Identity()
    try:
        with torch.no_grad():
            return net(x)
    finally:
        net.fc = fc


@pytest.fixture(scope="module")
def rgb_model(reference):
    return build_backbone("resnet101_supervised", 3, weights=str(reference[1]))


def test_loads_file_and_matches_torchvision(reference, rgb_model):
    net, _ = reference
    model = rgb_model
    assert model.out_dim == 2048 and model.channel_map == "rgb"
    x = torch.rand(2, 3, 40, 40)
    torch.testing.assert_close(model(x), _features(net, _normalised(x)), rtol=1e-4, atol=1e-4)


def test_is_frozen(rgb_model):
    model = rgb_model
    model.train()
    assert not model.training and not any(m.training for m in model.modules())
    assert not any(p.requires_grad for p in model.parameters())
    assert not model(torch.rand(1, 3, 32, 32)).requires_grad


def test_channel_maps(reference):
    net, _ = reference
    state = net.state_dict()

    def build(channels, **kw):  # from the state dict in memory: no file reads needed here
        return SupervisedResNet101(channels, state, **kw)

    x1 = torch.rand(2, 1, 32, 32)
    gray = build(1)
    assert gray.channel_map == "replicate"
    torch.testing.assert_close(
        gray(x1), _features(net, _normalised(x1.expand(-1, 3, -1, -1))), rtol=1e-4, atol=1e-4
    )
    x2 = torch.rand(2, 2, 32, 32)
    per = build(2)
    assert per.channel_map == "per_channel" and per.out_dim == 4096
    out = per(x2)
    assert out.shape == (2, 4096)
    torch.testing.assert_close(
        out[:, 2048:], _features(net, _normalised(x2[:, 1:2].expand(-1, 3, -1, -1))),
        rtol=1e-4, atol=1e-4,
    )
    picked = build(4, channel_map=[3, 1, 0])
    x4 = torch.rand(1, 4, 32, 32)
    torch.testing.assert_close(
        picked(x4), _features(net, _normalised(x4[:, [3, 1, 0]])), rtol=1e-4, atol=1e-4
    )
    resized = build(3, input_size=64)
    assert resized(torch.rand(1, 3, 32, 32)).shape == (1, 2048)


@pytest.mark.parametrize(
    ("channels", "cmap", "match"),
    [
        (3, "bgr", "unknown channel_map 'bgr'"),
        (2, "rgb", "needs 3 channel"),
        (3, [0, 1], "3 channel indices in \\[0, 2\\]"),
        (3, [0, 1, 5], "3 channel indices"),
    ],
)
def test_bad_channel_map(channels, cmap, match):
    # Checked before any weights are looked for.
    with pytest.raises(ConfigError, match=match):
        build_backbone("resnet101_supervised", channels, channel_map=cmap)


def test_hub_cache_is_used(reference, tmp_path, monkeypatch):
    _, path = reference
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / "resnet101-63fe2227.pth").write_bytes(path.read_bytes())
    model = build_backbone("resnet101_supervised", 3)
    assert model.source == str(cache / "resnet101-63fe2227.pth")


def test_missing_weights_fail_clearly_without_downloading(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_download(*a, **k):  # pragma: no cover - the test fails if called
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    with pytest.raises(CheckpointError) as err:
        build_backbone("resnet101_supervised", 3)
    msg = str(err.value)
    assert str(tmp_path / "hub" / "checkpoints" / "resnet101-*.pth") in msg
    assert "resnet101-63fe2227.pth" in msg
    assert "https://download.pytorch.org/models/resnet101-63fe2227.pth" in msg
    assert "never downloads" in msg
    assert list(tmp_path.rglob("*")) == []  # nothing written


def test_missing_or_bad_weights_file(tmp_path):
    with pytest.raises(CheckpointError, match="weights file not found"):
        build_backbone("resnet101_supervised", 3, weights=tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read ResNet-101 weights"):
        build_backbone("resnet101_supervised", 3, weights=junk)
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, wrong)
    with pytest.raises(CheckpointError, match="do not fit torchvision's ResNet-101"):
        build_backbone("resnet101_supervised", 3, weights=wrong)
