"""Barlow Twins: redundancy reduction between two views.

Zbontar, Jing, Misra, LeCun, Deny 2021, "Barlow Twins: Self-Supervised Learning via
Redundancy Reduction" (ICML).

Embeddings of the two views (3-layer projector) are standardised along the batch and their
cross-correlation matrix ``C`` (D × D) is pushed towards the identity:
``L = Σ_i (1 − C_ii)² + λ Σ_i Σ_{j≠i} C_ij²`` with ``λ = 0.0051`` (the official code's
value). Standardisation is batch norm without affine parameters (biased variance,
ε = 1e-5), as in the official implementation. The paper's projector is 8192-8192-8192 on
ResNet-50's 2048 features, solo-learn's CIFAR one 2048-2048-2048 on ResNet-18's 512: the
default here keeps that ratio, 4 × the backbone's feature size
(:func:`bioaug.methods.heads.projector_width`), so 2048 on a 512-feature backbone and 512
on VGG13 at width 0.25. It was chosen on real cells: there a 2048-wide projector on 128
features and batches of 128 cost most of what Barlow Twins learns (3 seeds: k-means AMI
0.258 against 0.432 at 512, balanced 20-NN 0.565 against 0.633). Set
``proj_hidden_dim``/``proj_output_dim`` to 8192 to match the paper.

Under DDP, embeddings are gathered with gradients and ``C`` is computed over the global
batch, as in the paper (which all-reduces ``C``).

Recipe (:mod:`bioaug.methods.recipe`): AdamW, base lr 1.5e-3 at batch 256 with √-scaling,
weight decay 1e-4 (not on biases and norms), warm-up 10 % of the run. The paper's recipe
(LARS lr 0.2 × B/256, weight decay 1.5e-6) and solo-learn's CIFAR Barlow Twins: LARS lr
0.3, wd 1e-4 are tuned for hundreds of epochs; in runs of a few hundred steps they learn
less (see the recipe module).
"""

from __future__ import annotations

import torch
from pydantic import Field

from bioaug.methods.base import Method, MethodConfig
from bioaug.methods.distributed import gather_with_grad
from bioaug.methods.heads import mlp, with_projector_widths
from bioaug.methods.recipe import Recipe
from bioaug.methods.registry import register_method

__all__ = ["BarlowTwins", "BarlowTwinsConfig", "barlow_twins_loss", "cross_correlation"]


def _standardise(z: torch.Tensor, eps: float) -> torch.Tensor:
    z = z.float()
    mean = z.mean(dim=0)
    var = z.var(dim=0, unbiased=False)
    return (z - mean) / torch.sqrt(var + eps)


def cross_correlation(z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``C = bn(z1)ᵀ bn(z2) / N`` with batch-standardised embeddings (D × D)."""
    n = z1.shape[0]
    return _standardise(z1, eps).T @ _standardise(z2, eps) / n


def barlow_twins_loss(
    z1: torch.Tensor, z2: torch.Tensor, lambd: float = 0.0051, eps: float = 1e-5
) -> torch.Tensor:
    """Barlow Twins loss (Zbontar et al. 2021, eq. 1) for embeddings (N, D) of two views."""
    c = cross_correlation(z1, z2, eps)
    diag = torch.diagonal(c)
    on_diag = (diag - 1.0).pow(2).sum()
    off_diag = c.pow(2).sum() - diag.pow(2).sum()
    return on_diag + lambd * off_diag


class BarlowTwinsConfig(MethodConfig):
    """Barlow Twins hyperparameters."""

    proj_hidden_dim: int | None = Field(
        None, ge=1, description="width of the two hidden projector layers (None: 4 × the "
        "backbone's feature size)")
    proj_output_dim: int | None = Field(
        None, ge=1, description="embedding size D (None: 4 × the backbone's feature size)")
    lambd: float = Field(0.0051, ge=0.0, description="weight λ of the off-diagonal term")


@register_method
class BarlowTwins(Method):
    """Barlow Twins (Zbontar et al. 2021)."""

    name = "barlow_twins"
    title = "Barlow Twins"
    recipe = Recipe(optimizer="adamw", lr=1.5e-3, lr_scaling="sqrt", weight_decay=1e-4,
                    reference="Barlow Twins paper: LARS lr 0.2 × B/256, weight decay 1.5e-6; "
                    "solo-learn's CIFAR Barlow Twins: LARS lr 0.3, wd 1e-4")
    Config = BarlowTwinsConfig

    def __init__(self, backbone: torch.nn.Module, config: BarlowTwinsConfig) -> None:
        super().__init__(backbone, config)
        self.config = c = with_projector_widths(config, self.feature_dim)
        self.projector = mlp(
            self.feature_dim, [c.proj_hidden_dim, c.proj_hidden_dim], c.proj_output_dim,
            last_bias=False,
        )

    def training_loss(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        self._check_views(views)
        z1, z2 = (gather_with_grad(self.projector(self.backbone(v))) for v in views)
        loss = barlow_twins_loss(z1, z2, self.config.lambd)
        with torch.no_grad():
            on_diag = torch.diagonal(cross_correlation(z1, z2)).mean()
        return {"loss": loss, "mean_diag_corr": on_diag}
