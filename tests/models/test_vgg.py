from __future__ import annotations

import pytest
import torch
from torch import nn

from bioaug.errors import ConfigError
from bioaug.models.vgg import VGG13_CONFIG, vgg13_bn, vgg_mnist


def _n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_vgg13_structure_follows_torchvision():
    model = vgg13_bn(in_channels=3)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [c for c in VGG13_CONFIG if c != "M"]
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 5
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 10
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert model.out_dim == 512 and model.min_input_size == 32
    # Same conv/BN parameter count as torchvision's vgg13_bn feature extractor.
    from torchvision.models.vgg import cfgs, make_layers

    assert list(VGG13_CONFIG) == cfgs["B"]
    assert _n_params(model) == _n_params(make_layers(cfgs["B"], batch_norm=True))


def test_width_scales_channels_and_parameters():
    quarter = vgg13_bn(in_channels=3, width=0.25)
    convs = [m.out_channels for m in quarter.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [16, 16, 32, 32, 64, 64, 128, 128, 128, 128]
    assert quarter.out_dim == 128
    counts = [_n_params(vgg13_bn(in_channels=3, width=w)) for w in (1.0, 0.5, 0.25)]
    assert counts[0] > counts[1] > counts[2]
    # Conv weights dominate and scale ~ width²: halving width roughly quarters them.
    assert 3.5 < counts[0] / counts[1] < 4.5


@pytest.mark.parametrize("channels", [1, 3, 5])
@pytest.mark.parametrize("size", [32, 48, 64, 96])
def test_vgg13_any_crop_and_channel_count(channels, size):
    model = vgg13_bn(in_channels=channels, width=0.0625).eval()
    out = model(torch.rand(2, channels, size, size))
    assert out.shape == (2, model.out_dim) == (2, 32)
    assert torch.isfinite(out).all()


def test_vgg13_too_small_crop_is_a_clear_error():
    model = vgg13_bn(in_channels=3, width=0.0625)
    with pytest.raises(ConfigError, match=r"at least 32 px.*got 28×28"):
        model(torch.rand(2, 3, 28, 28))


def test_wrong_channel_count_is_a_clear_error():
    model = vgg_mnist(in_channels=1, width=0.25)
    with pytest.raises(ConfigError, match=r"expects \(B, 1, H, W\).*\(2, 3, 28, 28\)"):
        model(torch.rand(2, 3, 28, 28))


@pytest.mark.parametrize("width", [0, -0.5, "wide"])
def test_bad_width(width):
    with pytest.raises(ConfigError, match="width must be a number > 0"):
        vgg13_bn(in_channels=3, width=width)


def test_vgg_mnist_28px():
    model = vgg_mnist(in_channels=1)
    assert model.out_dim == 128
    assert model(torch.rand(4, 1, 28, 28)).shape == (4, 128)
    small = vgg_mnist(in_channels=1, width=0.25)
    assert small.out_dim == 32 and _n_params(small) < _n_params(model)


def test_gradients_flow():
    model = vgg_mnist(in_channels=1, width=0.25)
    model(torch.rand(3, 1, 28, 28)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
