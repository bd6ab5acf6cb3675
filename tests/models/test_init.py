from __future__ import annotations

import pytest
import torch

from bioaug.errors import ConfigError
from bioaug.models import BACKBONES, backbone_names, backbone_options, build_backbone


def test_registry_names():
    assert backbone_names() == sorted(
        ["vgg13_bn", "vgg_mnist", "resnet18", "resnet50", "resnet101_supervised",
         "vit_tiny", "vit_small"]
    )
    assert set(BACKBONES) == set(backbone_names())


def test_unknown_backbone_lists_known_ones():
    with pytest.raises(ConfigError) as err:
        build_backbone("vgg13bn", 3)
    msg = str(err.value)
    assert "unknown backbone 'vgg13bn'" in msg
    assert "did you mean 'vgg13_bn'" in msg
    for name in backbone_names():
        assert name in msg


def test_unknown_option_names_the_valid_ones():
    with pytest.raises(ConfigError, match=r"backbone 'resnet18' has no option 'width'.*cifar_stem"):
        build_backbone("resnet18", 3, width=0.5)
    with pytest.raises(ConfigError, match="did you mean 'width'"):
        build_backbone("vgg13_bn", 3, widht=0.5)


def test_none_options_count_as_not_given():
    model = build_backbone("resnet18", 1, width=None, cifar_stem=None)
    assert model.out_dim == 512


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_bad_in_channels(bad):
    with pytest.raises(ConfigError, match="in_channels must be a positive integer"):
        build_backbone("vgg_mnist", bad)


def test_backbone_options():
    assert backbone_options("vgg13_bn") == {"width": 1.0}
    assert backbone_options("resnet50") == {"cifar_stem": False}
    assert set(backbone_options("resnet101_supervised")) == {"weights", "channel_map", "input_size"}


def test_out_dim_matches_forward():
    for name, kw in [("vgg13_bn", {"width": 0.125}), ("vgg_mnist", {"width": 0.25})]:
        model = build_backbone(name, 2, **kw)
        assert model(torch.rand(2, 2, 32, 32)).shape == (2, model.out_dim)


def test_every_backbone_declares_a_known_default_embedding_layer():
    from bioaug.methods.base import EMBED_LAYERS
    from bioaug.models import default_embed_layer

    for name in backbone_names():
        assert default_embed_layer(name) in EMBED_LAYERS, name
        assert default_embed_layer(name) == BACKBONES[name].embed_layer


def test_default_embedding_layers():
    from bioaug.models import default_embed_layer

    assert default_embed_layer("vgg_mnist") == "feature_map"  # measured on real digits
    for name in ("vgg13_bn", "resnet18", "resnet50", "resnet101_supervised"):
        assert default_embed_layer(name) == "backbone", name
    with pytest.raises(ConfigError, match="unknown backbone 'vgg_mnst'"):
        default_embed_layer("vgg_mnst")


def test_a_feature_map_default_needs_a_feature_map():
    for name, entry in BACKBONES.items():
        if entry.embed_layer == "feature_map" and name != "resnet101_supervised":
            model = build_backbone(name, 1, **({"width": 0.125} if "width" in
                                                backbone_options(name) else {}))
            assert hasattr(model, "feature_map"), name


def test_the_docs_table_of_default_layers_is_generated_from_the_registry(readme_updater, repo_root):
    doc = (repo_root / "docs" / "evaluation.md").read_text(encoding="utf-8")
    assert readme_updater.render_evaluation_doc(doc) == doc, \
        "docs/evaluation.md is stale: run `python tools/update_readme.py`"
