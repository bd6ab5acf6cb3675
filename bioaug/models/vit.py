"""Vision Transformers from timm (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words").

The transformer is timm's ``VisionTransformer`` (Wightman, "PyTorch Image Models"), never
with pretrained weights: the sizes are DeiT's (Touvron et al. 2021, "Training data-efficient
image transformers"), as used by DINO (Caron et al. 2021):

===============  ==========  ======  =====  ========
name             embed dim   depth   heads  out_dim
===============  ==========  ======  =====  ========
``vit_tiny``     192         12      3      192
``vit_small``    384         12      6      384
===============  ==========  ======  =====  ========

Options: ``patch_size`` (16 by default; 8 gives four times as many tokens, DINO's
"ViT-S/8"), ``img_size`` (the crop side the position embeddings are made for, 224 by
default: set it to the protocol's crop size) and ``drop_path_rate`` (stochastic depth).
The input convolution takes the data's channel count. Position embeddings are
interpolated for any other crop size (timm's ``dynamic_img_size``), and crops whose side
is not a multiple of the patch are padded (``dynamic_img_pad``), so one backbone takes a
protocol's 48 px global and 24 px local views alike.

``forward`` returns the class token after the final layer norm (``(B, out_dim)``), DINO's
embedding; ``feature_map`` the patch tokens after the final norm as a ``(B, out_dim, h, w)``
grid.

Blocks, for probing (:mod:`bioaug.models.probe`): ``block1`` … ``block12``, each the class
token after that block with the final layer norm applied (as DINO's
``get_intermediate_layers`` normalises; Kraus et al. 2024, "ViTally Consistent", find an
intermediate block often embeds cells best). The class token, not the mean of the patch
tokens, so ``block12`` is the ``backbone`` output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from bioaug.errors import ConfigError
from bioaug.models.probe import check_probe_layers, numbered_layers

__all__ = ["VIT_SIZES", "ViTBackbone", "vit_small", "vit_tiny"]

#: name → (embedding width, depth, attention heads)
VIT_SIZES: dict[str, tuple[int, int, int]] = {
    "vit_tiny": (192, 12, 3),
    "vit_small": (384, 12, 6),
}


class ViTBackbone(nn.Module):
    """A timm Vision Transformer without classifier; ``forward`` returns the CLS token."""

    def __init__(self, name: str, in_channels: int, *, patch_size: int = 16,
                 img_size: int = 224, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        _check_int(name, "patch_size", patch_size, 1)
        _check_int(name, "img_size", img_size, patch_size)
        if not isinstance(drop_path_rate, int | float) or not 0.0 <= drop_path_rate < 1.0:
            raise ConfigError(f"backbone '{name}': drop_path_rate must be in [0, 1), "
                              f"got {drop_path_rate!r}")
        dim, depth, heads = VIT_SIZES[name]
        self.vit = VisionTransformer(
            img_size=img_size, patch_size=patch_size, in_chans=in_channels, num_classes=0,
            global_pool="token", embed_dim=dim, depth=depth, num_heads=heads,
            dynamic_img_size=True, dynamic_img_pad=True, drop_path_rate=float(drop_path_rate))
        self.name = name
        self.in_channels = in_channels
        self.patch_size = patch_size
        self.img_size = img_size
        self.out_dim: int = dim

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(f"backbone '{self.name}' expects (B, {self.in_channels}, H, W) "
                              f"input, got shape {tuple(x.shape)}")

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Every token after the final norm, ``(B, 1 + h·w, out_dim)`` (the class token first)."""
        self._check(x)
        return self.vit.forward_features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tokens(x)[:, 0]

    def probe_layers(self) -> list[str]:
        """The transformer blocks this encoder can be probed at, in depth order."""
        return numbered_layers("block", len(self.vit.blocks))

    def probe(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        """The class token after block ``layer``, final norm applied: ``(B, out_dim)``."""
        return self.probe_many(x, [layer])[layer]

    def probe_many(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Several blocks' class tokens from one forward pass (stops after the deepest)."""
        names = self.probe_layers()
        check_probe_layers(self.name, layers, names)
        self._check(x)
        v = self.vit
        x = v.norm_pre(v.patch_drop(v._pos_embed(v.patch_embed(x))))
        out: dict[str, torch.Tensor] = {}
        for name, block in zip(names, v.blocks, strict=True):
            x = block(x)
            if name in layers:
                out[name] = v.norm(x)[:, 0]
            if len(out) == len(set(layers)):
                break
        return out

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        """Patches per side for a ``height × width`` crop (padded up to whole patches)."""
        p = self.patch_size
        return math.ceil(height / p), math.ceil(width / p)

    @torch.no_grad()
    def last_attention(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's attention from the class token to every patch, ``(B, heads, h,
        w)`` (the maps of Caron et al. 2021, figure 1), as timm's attention computes it."""
        attn = self.vit.blocks[-1].attn
        seen: list[torch.Tensor] = []
        hook = attn.attn_drop.register_forward_hook(lambda _m, _i, out: seen.append(out))
        fused, attn.fused_attn = attn.fused_attn, False  # the probabilities are then formed
        try:
            self.tokens(x)
        finally:
            attn.fused_attn = fused
            hook.remove()
        cls = seen[0][:, :, 0, self.vit.num_prefix_tokens:]
        h, w = self.grid_size(x.shape[-2], x.shape[-1])
        return cls.reshape(x.shape[0], cls.shape[1], h, w)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The patch tokens after the final norm as a grid, ``(B, out_dim, h, w)``."""
        tokens = self.tokens(x)[:, self.vit.num_prefix_tokens:]
        h, w = self.grid_size(x.shape[-2], x.shape[-1])
        return tokens.transpose(1, 2).reshape(x.shape[0], self.out_dim, h, w)


def _check_int(name: str, key: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"backbone '{name}': {key} must be an integer ≥ {minimum}, "
                          f"got {value!r}")


def vit_tiny(*, in_channels: int, patch_size: int = 16, img_size: int = 224,
             drop_path_rate: float = 0.0) -> ViTBackbone:
    """ViT-Tiny (DeiT-Ti: 192 wide, 12 blocks, 3 heads), ``out_dim = 192``.

    Parameters
    ----------
    in_channels
        Channels of the input images (any number: the patch embedding is sized to it).
    patch_size
        Side of the square patches, in pixels.
    img_size
        The crop side the position embeddings are made for; other sizes are interpolated,
        and sides that are not a multiple of ``patch_size`` are padded.
    drop_path_rate
        Stochastic depth rate, in ``[0, 1)``.

    Returns
    -------
    ViTBackbone
        The encoder: ``(B, in_channels, H, W)`` → the class token ``(B, 192)``.

    Examples
    --------
    >>> import torch
    >>> from bioaug.models.vit import vit_tiny
    >>> _ = torch.manual_seed(0)
    >>> encoder = vit_tiny(in_channels=5, patch_size=8, img_size=16).eval()
    >>> encoder.out_dim, len(encoder.probe_layers())
    (192, 12)
    >>> with torch.no_grad():
    ...     features = encoder(torch.rand(2, 5, 16, 16))
    >>> tuple(features.shape), encoder.grid_size(20, 20)
    ((2, 192), (3, 3))
    """
    return ViTBackbone("vit_tiny", in_channels, patch_size=patch_size, img_size=img_size,
                       drop_path_rate=drop_path_rate)


def vit_small(*, in_channels: int, patch_size: int = 16, img_size: int = 224,
              drop_path_rate: float = 0.0) -> ViTBackbone:
    """ViT-Small (DeiT-S: 384 wide, 12 blocks, 6 heads), ``out_dim = 384``."""
    return ViTBackbone("vit_small", in_channels, patch_size=patch_size, img_size=img_size,
                       drop_path_rate=drop_path_rate)
