"""timm Vision Transformers as backbones: any channel count, any crop size, no downloads."""

from __future__ import annotations

import pytest
import torch

from bioaug.errors import ConfigError
from bioaug.models import backbone_options, build_backbone, default_embed_layer
from bioaug.models.vit import VIT_SIZES


@pytest.mark.parametrize("channels", [1, 3, 5])
def test_any_channel_count(channels):
    torch.manual_seed(0)
    model = build_backbone("vit_tiny", channels, patch_size=8, img_size=32)
    out = model(torch.rand(2, channels, 32, 32))
    assert out.shape == (2, 192) and model.out_dim == 192
    assert model.vit.patch_embed.proj.in_channels == channels


@pytest.mark.parametrize(("name", "patch", "dim"), [("vit_tiny", 16, 192), ("vit_tiny", 8, 192),
                                                   ("vit_small", 16, 384), ("vit_small", 8, 384)])
def test_sizes_and_patches(name, patch, dim):
    model = build_backbone(name, 3, patch_size=patch, img_size=48)
    assert model.out_dim == dim == VIT_SIZES[name][0]
    assert len(model.vit.blocks) == 12
    assert model.vit.patch_embed.proj.kernel_size == (patch, patch)
    # position embeddings made for the build size: (48 / patch)² patches + the class token
    assert model.vit.pos_embed.shape[1] == (48 // patch) ** 2 + 1


def test_other_crop_sizes_interpolate_the_position_embeddings():
    model = build_backbone("vit_tiny", 2, patch_size=8, img_size=48).eval()
    with torch.no_grad():
        for size in (24, 48, 64, 28):  # 28 is not a multiple of 8: padded to whole patches
            x = torch.rand(3, 2, size, size)
            assert model(x).shape == (3, 192)
            fmap = model.feature_map(x)
            assert fmap.shape == (3, 192, -(-size // 8), -(-size // 8))
    # the default build size (224) also takes small crops
    small = build_backbone("vit_small", 1)
    assert small.img_size == 224 and small(torch.rand(1, 1, 32, 32)).shape == (1, 384)


def test_forward_is_the_normed_class_token():
    model = build_backbone("vit_tiny", 1, patch_size=16, img_size=32).eval()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        tokens = model.vit.norm(model.vit.blocks(model.vit._pos_embed(model.vit.patch_embed(x))))
        assert torch.allclose(model(x), tokens[:, 0], atol=1e-5)


def test_options_and_defaults():
    assert backbone_options("vit_tiny") == {"patch_size": 16, "img_size": 224,
                                            "drop_path_rate": 0.0}
    assert default_embed_layer("vit_tiny") == default_embed_layer("vit_small") == "backbone"


@pytest.mark.parametrize(("kw", "match"), [({"patch_size": 0}, "patch_size must be"),
                                           ({"img_size": 4, "patch_size": 8}, "img_size must be"),
                                           ({"drop_path_rate": 1.5}, "drop_path_rate"),
                                           ({"width": 0.5}, "has no option 'width'")])
def test_bad_options(kw, match):
    with pytest.raises(ConfigError, match=match):
        build_backbone("vit_tiny", 3, **kw)


def test_wrong_channel_count_is_a_clear_error():
    model = build_backbone("vit_tiny", 3, img_size=32)
    with pytest.raises(ConfigError, match=r"expects \(B, 3, H, W\)"):
        model(torch.rand(1, 2, 32, 32))


def test_last_attention_is_the_class_tokens_softmax_row():
    torch.manual_seed(0)
    model = build_backbone("vit_tiny", 2, patch_size=8, img_size=32).eval()
    x = torch.rand(3, 2, 28, 28)  # padded to a 4×4 grid
    maps = model.last_attention(x)
    assert maps.shape == (3, 3, 4, 4)  # 3 heads
    sums = maps.sum(dim=(-2, -1))
    assert torch.all(maps >= 0) and torch.all(sums <= 1 + 1e-5) and torch.all(sums > 0)
    assert model.vit.blocks[-1].attn.fused_attn == model.vit.blocks[0].attn.fused_attn
    assert model(x).shape == (3, 192)  # the probe leaves the model as it was
