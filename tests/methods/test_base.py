from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bioaug.errors import ConfigError
from bioaug.methods import build_method
from bioaug.methods.base import cosine_schedule, momentum_update


def test_cosine_schedule_endpoints_and_midpoint():
    assert cosine_schedule(0.0, 0.996, 1.0) == pytest.approx(0.996)
    assert cosine_schedule(1.0, 0.996, 1.0) == pytest.approx(1.0)
    assert cosine_schedule(0.5, 0.99, 1.0) == pytest.approx(0.995)
    # BYOL's formula τ = 1 − (1 − τ_base)(cos(πk/K) + 1)/2 at k/K = 0.25
    assert cosine_schedule(0.25, 0.99, 1.0) == pytest.approx(
        1 - 0.01 * (math.cos(math.pi / 4) + 1) / 2
    )
    assert cosine_schedule(-1.0, 0.9, 1.0) == pytest.approx(0.9)  # clamped


def _pair() -> tuple[nn.Module, nn.Module]:
    online, target = nn.Linear(3, 2), nn.Linear(3, 2)
    with torch.no_grad():
        for i, (o, t) in enumerate(zip(online.parameters(), target.parameters(), strict=True)):
            o.copy_(torch.arange(o.numel(), dtype=torch.float32).view_as(o) + i)
            t.fill_(10.0)
    return online, target


@pytest.mark.parametrize("m", [0.0, 0.25, 0.9, 1.0])
def test_momentum_update_is_exact_ema(m):
    online, target = _pair()
    before = [t.clone() for t in target.parameters()]
    momentum_update(target, online, m)
    for t, b, o in zip(target.parameters(), before, online.parameters(), strict=True):
        torch.testing.assert_close(t, m * b + (1 - m) * o, rtol=0, atol=1e-6)
    if m == 0.0:
        assert all(torch.equal(t, o) for t, o in zip(target.parameters(), online.parameters(), strict=True))
    if m == 1.0:
        assert all(torch.equal(t, b) for t, b in zip(target.parameters(), before, strict=True))


def test_embed_unknown_layer(tiny_backbone):
    method = build_method("simclr", tiny_backbone, proj_hidden_dim=4, proj_output_dim=4)
    with pytest.raises(ConfigError, match=r"unknown embedding layer 'proj'.*backbone, feature_map, projection"):
        method.embed(torch.rand(2, 2, 8, 8), layer="proj")


def test_feature_map_layer_is_the_unpooled_map_flattened():
    from bioaug.models.vgg import vgg_mnist

    torch.manual_seed(0)
    method = build_method("simclr", vgg_mnist(in_channels=1, width=0.25), proj_hidden_dim=4,
                          proj_output_dim=4).eval()
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        fmap = method.backbone.feature_map(x)
        flat = method.embed(x, layer="feature_map")
        pooled = method.embed(x, layer="backbone")
    assert fmap.shape == (3, 32, 7, 7) and flat.shape == (3, 32 * 7 * 7)
    torch.testing.assert_close(flat, fmap.flatten(1))
    torch.testing.assert_close(pooled, fmap.mean(dim=(2, 3)))  # the pooled layer averages it


def test_feature_map_of_a_backbone_without_one_is_a_clear_error(tiny_backbone):
    method = build_method("simclr", tiny_backbone, proj_hidden_dim=4, proj_output_dim=4)
    if hasattr(tiny_backbone, "feature_map"):
        pytest.skip("this test backbone has a feature map")
    with pytest.raises(ConfigError, match="has no feature map"):
        method.embed(torch.rand(2, 2, 8, 8), layer="feature_map")


def test_wrong_number_of_views(tiny_backbone):
    method = build_method("vicreg", tiny_backbone, proj_hidden_dim=4, proj_output_dim=4)
    with pytest.raises(ConfigError, match="needs 2 views per image, the protocol gives 1"):
        method.training_loss([torch.rand(4, 2, 8, 8)])


@pytest.mark.parametrize(
    ("n_items", "batch", "match"),
    [(100, 1, "at least 2"), (10, 16, "larger than the dataset"), (0, 2, "n_items must be")],
)
def test_configure_for_dataset_checks_batch(tiny_backbone, n_items, batch, match):
    method = build_method("byol", tiny_backbone, proj_hidden_dim=4, proj_output_dim=4, pred_hidden_dim=4)
    with pytest.raises(ConfigError, match=match):
        method.configure_for_dataset(n_items, batch)


def test_embed_takes_the_backbones_probe_layers_and_lists_them_when_unknown():
    from bioaug.models.vgg import vgg_mnist

    torch.manual_seed(0)
    method = build_method("simclr", vgg_mnist(in_channels=1, width=0.25), proj_hidden_dim=4,
                          proj_output_dim=4).eval()
    assert method.layers() == ["backbone", "feature_map", "projection", "stage1", "stage2",
                               "stage3"]
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        many = method.embed_many(x, ["stage2", "projection", "backbone"])
        assert many["stage2"].shape == (3, 16)
        torch.testing.assert_close(many["projection"], method.embed(x, "projection"))
        torch.testing.assert_close(many["stage3"] if "stage3" in many else
                                   method.embed(x, "stage3"), method.embed(x, "backbone"))
    with pytest.raises(ConfigError, match=r"'stage4'.*backbone 'vgg_mnist'; its layers: "
                                          r"backbone, feature_map, projection, stage1, stage2, "
                                          r"stage3, or 'all'"):
        method.embed(x, "stage4")


def test_momentum_update_refuses_modules_of_different_shape():
    with pytest.raises(ValueError, match="target has 2 parameters, online 4"):
        momentum_update(torch.nn.Linear(2, 2), torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)), 0.5)
