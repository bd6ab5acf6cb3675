from __future__ import annotations

import pytest
import torch
from torch import nn

from bioaug.models.resnet import resnet18, resnet50


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_resnet18_channels_and_shape(channels):
    model = resnet18(in_channels=channels).eval()
    assert model.net.conv1.in_channels == channels
    assert isinstance(model.net.fc, nn.Identity)
    assert model(torch.rand(2, channels, 64, 64)).shape == (2, 512)


def test_cifar_stem():
    model = resnet18(in_channels=3, cifar_stem=True)
    conv = model.net.conv1
    assert conv.kernel_size == (3, 3) and conv.stride == (1, 1)
    assert isinstance(model.net.maxpool, nn.Identity)
    # The stride-1 stem keeps 4× the spatial resolution after the stem of a 32 px crop.
    assert _layer1_size(model) == (32, 32)
    assert _layer1_size(resnet18(in_channels=3)) == (8, 8)


def _layer1_size(model) -> tuple[int, int]:
    shapes = []

    def hook(module, inputs, output) -> None:
        shapes.append(tuple(output.shape[-2:]))

    model.net.layer1.register_forward_hook(hook)
    with torch.no_grad():
        model.eval()(torch.rand(1, 3, 32, 32))
    return shapes[0]


def test_resnet50_out_dim():
    model = resnet50(in_channels=2, cifar_stem=True).eval()
    assert model.out_dim == 2048
    with torch.no_grad():
        assert model(torch.rand(1, 2, 32, 32)).shape == (1, 2048)


def test_feature_map_pools_to_the_output():
    torch.manual_seed(0)
    net = resnet18(in_channels=3, cifar_stem=True).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        fmap = net.feature_map(x)
        out = net(x)
    assert fmap.shape == (2, 512, 4, 4)
    torch.testing.assert_close(fmap.mean(dim=(2, 3)), out)
