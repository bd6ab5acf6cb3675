"""MAE: masked autoencoders.

He, Chen, Xie, Li, Dollár, Girshick 2022, "Masked Autoencoders Are Scalable Vision
Learners" (CVPR).

Each image is cut into patches; a random ``mask_ratio`` of them (75 %) is hidden. The
encoder — the backbone's own timm Vision Transformer: patch embedding, its learned position
embeddings (interpolated for other crop sizes), class token, blocks and final norm — sees
only the visible patches. A light decoder maps them to ``decoder_dim``, puts a learned mask
token at every hidden position, restores the patch order, adds fixed 2-D sine-cosine
position embeddings (as in the paper), runs timm transformer blocks and predicts the
``patch_size² · C`` pixels of every patch. The loss is the mean squared error over the
hidden patches only, against targets normalised per patch (mean and variance of its pixels,
``norm_pix_loss``). There is no target network and no momentum.

One view per image: the first view of the protocol is the image to reconstruct (the paper
uses a random resized crop and a flip); further views are not used, so give MAE a protocol
with one view. Crops must be a whole number of patches (no padding).

After training, embeddings are the backbone's class token on the whole, unmasked image
(``layer="backbone"``) or its patch tokens (``feature_map``), and probe layers work as for
any ViT; MAE has no projection head.

CPU defaults. The paper's decoder is 512 wide with 8 blocks (16 heads); here it is 128 wide
with 2 blocks and 4 heads (``decoder_dim``, ``decoder_depth``, ``decoder_heads``), the
head width of 32 unchanged, so that short runs on small crops stay fast on a CPU.

Recipe (:mod:`bioaug.methods.recipe`): the paper's AdamW with β₂ 0.95, lr 1.5e-4 × B/256
with linear warm-up (40 epochs, capped at 10 % of the run) and cosine decay, weight decay
0.05 (not on biases and norms).
"""

from __future__ import annotations

import math
from functools import partial

import torch
from pydantic import Field, ValidationInfo, field_validator
from timm.layers.pos_embed_sincos import build_sincos2d_pos_embed
from timm.models.vision_transformer import Block
from torch import nn

from bioaug.errors import ConfigError
from bioaug.methods.base import Method, MethodConfig
from bioaug.methods.recipe import Recipe
from bioaug.methods.registry import register_method
from bioaug.models.vit import VIT_SIZES, ViTBackbone

__all__ = ["MAE", "MAEConfig", "MAEDecoder", "kept_count", "mae_loss", "patchify",
           "random_masking", "unpatchify", "unshuffle"]


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Images ``(B, C, H, W)`` → patches ``(B, N, p²·C)``, row by row, pixels channel-last.

    Examples
    --------
    >>> import torch
    >>> from bioaug.methods.mae import patchify
    >>> patchify(torch.arange(16.0).reshape(1, 1, 4, 4), 2)[0, 1]
    tensor([2., 3., 6., 7.])
    """
    b, c, h, w = images.shape
    _check_grid(h, w, patch_size)
    p = patch_size
    x = images.reshape(b, c, h // p, p, w // p, p)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(patches: torch.Tensor, patch_size: int, grid: tuple[int, int]) -> torch.Tensor:
    """Patches ``(B, h·w, p²·C)`` → images ``(B, C, h·p, w·p)`` for a ``grid`` of ``(h, w)``.

    Examples
    --------
    >>> import torch
    >>> from bioaug.methods.mae import patchify, unpatchify
    >>> x = torch.rand(2, 3, 8, 12)
    >>> torch.equal(unpatchify(patchify(x, 4), 4, (2, 3)), x)
    True
    """
    b, _, d = patches.shape
    (h, w), p = grid, patch_size
    x = patches.reshape(b, h, w, p, p, d // (p * p))
    return torch.einsum("nhwpqc->nchpwq", x).reshape(b, -1, h * p, w * p)


def _check_grid(height: int, width: int, patch_size: int, least: int = 1) -> None:
    """ConfigError unless a ``height × width`` crop is a whole number (≥ ``least``) of patches."""
    p = patch_size
    if height % p or width % p:
        sizes = sorted({p * max(1, height // p), p * (height // p + 1)})
        raise ConfigError(f"method 'mae': the views are {height}×{width} px, not a multiple "
                          f"of the backbone's patch_size {p}",
                          hint=f"use a crop size that is, e.g. {' or '.join(map(str, sizes))}")
    if (height // p) * (width // p) < least:
        raise ConfigError(f"method 'mae': a {height}×{width} px view is one patch of {p} px; "
                          f"masking needs at least {least} patches",
                          hint="use a larger crop size or a smaller patch_size")


def kept_count(n_patches: int, mask_ratio: float) -> int:
    """The visible patches of ``n_patches``: ``round(N·(1 − r))``, at least one kept and one hidden.

    Examples
    --------
    >>> from bioaug.methods.mae import kept_count
    >>> kept_count(196, 0.75), kept_count(16, 0.75), kept_count(4, 0.1)
    (49, 4, 3)
    """
    return min(max(math.floor(n_patches * (1.0 - mask_ratio) + 0.5), 1), n_patches - 1)


def random_masking(tokens: torch.Tensor, mask_ratio: float
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep a random subset of the tokens ``(B, N, D)`` of each image (argsort of uniform noise).

    Returns
    -------
    tuple[Tensor, Tensor, Tensor]
        The kept tokens ``(B, K, D)`` with ``K = kept_count(N, mask_ratio)``; the mask ``(B,
        N)`` in patch order, 1 where hidden; ``restore`` ``(B, N)``, the indices that put the
        kept tokens followed by the hidden ones back in patch order (:func:`unshuffle`).

    Examples
    --------
    >>> import torch
    >>> from bioaug.methods.mae import random_masking
    >>> _ = torch.manual_seed(0)
    >>> kept, mask, restore = random_masking(torch.rand(2, 16, 8), 0.75)
    >>> tuple(kept.shape), mask.sum(dim=1).tolist()
    ((2, 4, 8), [12.0, 12.0])
    """
    b, n, d = tokens.shape
    keep = kept_count(n, mask_ratio)
    shuffle = torch.rand(b, n, device=tokens.device).argsort(dim=1)
    restore = shuffle.argsort(dim=1)
    kept = torch.gather(tokens, 1, shuffle[:, :keep, None].expand(-1, -1, d))
    mask = torch.ones(b, n, device=tokens.device)
    mask[:, :keep] = 0
    return kept, torch.gather(mask, 1, restore), restore


def unshuffle(tokens: torch.Tensor, restore: torch.Tensor) -> torch.Tensor:
    """Tokens ``(B, N, D)`` in shuffled order (kept first) back in patch order."""
    return torch.gather(tokens, 1, restore[..., None].expand(-1, -1, tokens.shape[-1]))


def mae_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, *,
             norm_pix: bool = True, eps: float = 1e-6) -> torch.Tensor:
    """Mean squared error over the hidden patches (He et al. 2022, section 3).

    ``pred`` and ``target`` are ``(B, N, p²·C)``, ``mask`` ``(B, N)`` with 1 where hidden.
    With ``norm_pix`` each target patch is normalised by the mean and (unbiased) variance of
    its pixels, ``(t − μ)/√(σ² + eps)``.

    Examples
    --------
    >>> import torch
    >>> from bioaug.methods.mae import mae_loss
    >>> pred, target = torch.zeros(1, 2, 4), torch.tensor([[[1.0] * 4, [2.0] * 4]])
    >>> float(mae_loss(pred, target, torch.tensor([[0.0, 1.0]]), norm_pix=False))
    4.0
    """
    pred, target, mask = pred.float(), target.float(), mask.float()
    if norm_pix:
        mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + eps).sqrt()
    per_patch = (pred - target).pow(2).mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum()


class MAEDecoder(nn.Module):
    """Linear to ``dim``, mask tokens, sine-cosine positions, timm blocks, norm, pixels."""

    def __init__(self, in_dim: int, dim: int, depth: int, heads: int, patch_pixels: int,
                 n_prefix: int = 1) -> None:
        super().__init__()
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.embed = nn.Linear(in_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio=4.0, qkv_bias=True,
                                            norm_layer=norm) for _ in range(depth)])
        self.norm = norm(dim)
        self.pred = nn.Linear(dim, patch_pixels)
        self.n_prefix = n_prefix
        nn.init.normal_(self.mask_token, std=0.02)
        self.apply(_xavier_init)

    def forward(self, latent: torch.Tensor, restore: torch.Tensor,
                grid: tuple[int, int]) -> torch.Tensor:
        """Pixels ``(B, N, p²·C)`` of every patch from the encoder's tokens (prefix first)."""
        x = self.embed(latent)
        prefix, visible = x[:, :self.n_prefix], x[:, self.n_prefix:]
        hidden = self.mask_token.expand(x.shape[0], restore.shape[1] - visible.shape[1], -1)
        patches = unshuffle(torch.cat([visible, hidden], dim=1), restore)
        patches = patches + build_sincos2d_pos_embed(list(grid), x.shape[-1], device=x.device,
                                                     dtype=x.dtype)
        x = self.norm(self.blocks(torch.cat([prefix, patches], dim=1)))
        return self.pred(x[:, self.n_prefix:])


def _xavier_init(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class MAEConfig(MethodConfig):
    """MAE hyperparameters (He et al. 2022; the decoder made small for CPU runs)."""

    mask_ratio: float = Field(0.75, gt=0.0, lt=1.0, description="fraction of patches hidden")
    decoder_dim: int = Field(128, ge=4, description="decoder width (the paper: 512); a "
                             "multiple of 4 for the sine-cosine position embedding")
    decoder_depth: int = Field(2, ge=1, description="decoder blocks (the paper: 8)")
    decoder_heads: int = Field(4, ge=1, description="decoder attention heads (the paper: 16)")
    norm_pix_loss: bool = Field(True, description="normalise each target patch")

    @field_validator("decoder_dim")
    @classmethod
    def _multiple_of_four(cls, value: int) -> int:
        if value % 4:
            raise ValueError(f"must be a multiple of 4 (got {value})")
        return value

    @field_validator("decoder_heads")
    @classmethod
    def _divides_width(cls, value: int, info: ValidationInfo) -> int:
        dim = info.data.get("decoder_dim")
        if dim is not None and dim % value:
            raise ValueError(f"must divide decoder_dim {dim} (got {value})")
        return value


@register_method
class MAE(Method):
    """MAE (He et al. 2022): reconstruct the hidden patches of a ViT's input."""

    name = "mae"
    title = "MAE"
    Config = MAEConfig
    recipe = Recipe(optimizer="adamw", lr=1.5e-4, lr_scaling="linear", weight_decay=0.05,
                    adam_beta2=0.95, warmup_max_epochs=40.0,
                    reference="MAE paper: AdamW lr 1.5e-4 × B/256, betas (0.9, 0.95), weight "
                    "decay 0.05, 40 warm-up epochs, cosine decay")
    n_views = None
    min_views = 1
    embed_layers = ("backbone", "feature_map")
    backbones = tuple(VIT_SIZES)

    def __init__(self, backbone: nn.Module, config: MAEConfig) -> None:
        super().__init__(backbone, config)
        if not isinstance(backbone, ViTBackbone):
            name = getattr(backbone, "name", type(backbone).__name__)
            raise ConfigError(f"method 'mae' works only on the Vision Transformer backbones "
                              f"({', '.join(self.backbones)}), got '{name}'", where="backbone",
                              hint="e.g. --backbone vit_tiny, with patch_size and img_size set")
        pixels = backbone.patch_size ** 2 * backbone.in_channels
        if config.norm_pix_loss and pixels < 2:
            raise ConfigError("method 'mae': norm_pix_loss needs patches of at least 2 values, "
                              "got 1-px patches of 1 channel", where="method_kwargs.norm_pix_loss",
                              hint="use norm_pix_loss=false or a larger patch_size")
        self.decoder = MAEDecoder(self.feature_dim, config.decoder_dim, config.decoder_depth,
                                  config.decoder_heads, pixels, backbone.vit.num_prefix_tokens)

    def check_view_sizes(self, sizes: list[tuple[int, int]]) -> None:
        """The reconstructed (first) view must be a whole number of patches, at least two."""
        if sizes:
            _check_grid(*sizes[0], self.backbone.patch_size, least=2)

    def _check_views(self, views: list[torch.Tensor]) -> None:
        if len(views) < self.min_views:
            raise ConfigError("method 'mae' needs one view per image, got none")

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The encoder on the visible patches: tokens ``(B, 1 + K, D)`` (class token first)
        after the final norm, the mask ``(B, N)`` and ``restore`` (:func:`random_masking`)."""
        vit = self.backbone.vit
        tokens = vit._pos_embed(vit.patch_embed(images))
        n_prefix = vit.num_prefix_tokens
        kept, mask, restore = random_masking(tokens[:, n_prefix:], self.config.mask_ratio)
        x = vit.norm_pre(torch.cat([tokens[:, :n_prefix], kept], dim=1))
        return vit.norm(vit.blocks(x)), mask, restore

    def training_loss(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The reconstruction loss of the first view's hidden patches."""
        self._check_views(views)
        images, p = views[0], self.backbone.patch_size
        _check_grid(images.shape[-2], images.shape[-1], p, least=2)
        target = patchify(images, p)
        latent, mask, restore = self.encode(images)
        pred = self.decoder(latent, restore, (images.shape[-2] // p, images.shape[-1] // p))
        return {"loss": mae_loss(pred, target, mask, norm_pix=self.config.norm_pix_loss)}
