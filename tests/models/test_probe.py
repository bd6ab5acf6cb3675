"""Probe layers of every registered backbone: names, shapes, one pass, clear errors."""

from __future__ import annotations

import pytest
import torch

from bioaug.errors import ConfigError
from bioaug.methods.base import backbone_features, probe_layers
from bioaug.models import BACKBONES, build_backbone
from bioaug.models.probe import global_average_pool, numbered_layers

#: Small builds of each probe-able backbone, the input side, and its expected layers.
CASES = {
    "vgg13_bn": ({"width": 0.125}, 32, numbered_layers("stage", 5)),
    "vgg_mnist": ({"width": 0.25}, 28, numbered_layers("stage", 3)),
    "resnet18": ({"cifar_stem": True}, 32, numbered_layers("stage", 4)),
    "resnet50": ({"cifar_stem": True}, 32, numbered_layers("stage", 4)),
    "vit_tiny": ({"img_size": 32, "patch_size": 8}, 32, numbered_layers("block", 12)),
    "vit_small": ({"img_size": 32, "patch_size": 8}, 32, numbered_layers("block", 12)),
}


def _build(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    kwargs, side, _ = CASES[name]
    torch.manual_seed(0)
    return build_backbone(name, 3, **kwargs).eval(), torch.rand(2, 3, side, side)


def test_every_trainable_backbone_is_covered():
    assert set(CASES) == set(BACKBONES) - {"resnet101_supervised"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_layer_lists_in_depth_order(name):
    model, _ = _build(name)
    assert model.probe_layers() == CASES[name][2] == probe_layers(model)


@pytest.mark.parametrize("name", ["vgg13_bn", "vgg_mnist", "resnet18", "vit_tiny"])
def test_last_layer_is_the_backbone_output_and_one_pass_matches_single(name):
    model, x = _build(name)
    layers = model.probe_layers()
    with torch.no_grad():
        every = model.probe_many(x, layers)
        torch.testing.assert_close(every[layers[-1]], model(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(every[layers[1]], model.probe(x, layers[1]))
    assert list(every) == layers


def test_vgg13_stage_shapes_are_pooled_channels():
    model, x = _build("vgg13_bn")
    with torch.no_grad():
        shapes = {k: tuple(v.shape) for k, v in model.probe_many(x, model.probe_layers()).items()}
    assert shapes == {"stage1": (2, 8), "stage2": (2, 16), "stage3": (2, 32),
                      "stage4": (2, 64), "stage5": (2, 64)}
    with torch.no_grad():  # stage 2 is the map after the second max-pool, averaged
        fmap = model.features[:model.stage_ends[1]](x)
    torch.testing.assert_close(model.probe(x, "stage2"), global_average_pool(fmap))


def test_vit_block_is_the_normed_class_token_after_that_block():
    model, x = _build("vit_tiny")
    v = model.vit
    with torch.no_grad():
        tokens = v.norm_pre(v.patch_drop(v._pos_embed(v.patch_embed(x))))
        for block in v.blocks[:3]:
            tokens = block(tokens)
        expected = v.norm(tokens)[:, 0]
        got = model.probe(x, "block3")
    assert got.shape == (2, 192)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize(("name", "layer", "listed"), [
    ("vgg13_bn", "stage6", "stage1, stage2, stage3, stage4, stage5"),
    ("vit_tiny", "stage2", "block1, block2"),
    ("resnet18", "block1", "stage1, stage2, stage3, stage4"),
])
def test_unknown_layer_lists_the_valid_ones(name, layer, listed):
    model, x = _build(name)
    with pytest.raises(ConfigError, match=rf"backbone '{name}' has no layer '{layer}'.*{listed}"):
        model.probe(x, layer)


def test_backbone_features_mixes_named_and_probe_layers():
    model, x = _build("vgg_mnist")
    with torch.no_grad():
        out = backbone_features(model, x, ["stage1", "backbone", "feature_map"])
    assert list(out) == ["stage1", "backbone", "feature_map"]
    assert out["feature_map"].shape == (2, 32 * 7 * 7)
