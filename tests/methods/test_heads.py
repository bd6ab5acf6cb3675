from __future__ import annotations

import torch
from torch import nn

from bioaug.methods.heads import mlp


def test_two_layer_head_without_batchnorm():
    head = mlp(8, [16], 4, batch_norm=False)
    assert [type(m) for m in head] == [nn.Linear, nn.ReLU, nn.Linear]
    assert (head[0].in_features, head[0].out_features, head[2].out_features) == (8, 16, 4)
    assert head[0].bias is not None


def test_three_layer_head_with_batchnorm():
    head = mlp(8, [16, 12], 4, last_bias=False)
    assert [type(m) for m in head] == [
        nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear,
    ]
    assert head[0].bias is None and head[-1].bias is None  # BN follows / no final bias
    assert head(torch.randn(5, 8)).shape == (5, 4)


def test_projector_width_is_four_times_the_features_unless_given():
    from bioaug.methods.heads import PROJECTOR_WIDTH_PER_FEATURE, projector_width

    assert PROJECTOR_WIDTH_PER_FEATURE == 4
    assert projector_width(None, 2048) == 8192  # Barlow Twins / VICReg on ResNet-50
    assert projector_width(None, 512) == 2048  # solo-learn's CIFAR ResNet-18
    assert projector_width(None, 128) == 512  # VGG13 at width 0.25
    assert projector_width(96, 128) == 96
