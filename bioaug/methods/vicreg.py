"""VICReg: variance-invariance-covariance regularisation.

Bardes, Ponce, LeCun 2022, "VICReg: Variance-Invariance-Covariance Regularization for
Self-Supervised Learning" (ICLR).

For embeddings ``z1``, ``z2`` (N × D) of two views (3-layer projector):

* invariance ``s = mean((z1 − z2)²)`` (mean squared error over all entries);
* variance ``v(z) = mean_j relu(γ − sqrt(Var(z_j) + ε))`` (unbiased variance per dimension),
  averaged over the two branches;
* covariance ``c(z) = Σ_{i≠j} Cov(z)_ij² / D``, summed over the two branches;

``L = λ s + μ v + ν c`` with λ = μ = 25, ν = 1, γ = 1, ε = 1e-4 (the paper's values;
the variance and covariance terms as in the official code). The paper's projector is
8192-8192-8192 on ResNet-50's 2048 features, solo-learn's CIFAR one 2048-2048-2048 on
ResNet-18's 512: the default keeps that ratio, 4 × the backbone's feature size
(:func:`bioaug.methods.heads.projector_width`), as for Barlow Twins; on real cells
(VGG13 at width 0.25, 128 features, batches of 128, 3 seeds) 512 rather than 2048 raised
k-means AMI from 0.412 to 0.471 and lowered balanced 20-NN accuracy from 0.659 to 0.639
(docs/training.md).
Under DDP the loss is computed over the global batch (embeddings gathered with gradients).

Recipe (:mod:`bioaug.methods.recipe`): AdamW, base lr 1.5e-3 at batch 256 with √-scaling,
weight decay 1e-4 (not on biases and norms), warm-up 10 % of the run. The paper's recipe
(LARS lr 0.2 × B/256, weight decay 1e-6) and solo-learn's CIFAR VICReg: LARS lr 0.3, wd
1e-4 are tuned for hundreds of epochs; in runs of a few hundred steps they learn less (see
the recipe module).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from bioaug.methods.base import Method, MethodConfig
from bioaug.methods.distributed import gather_with_grad
from bioaug.methods.heads import mlp, with_projector_widths
from bioaug.methods.recipe import Recipe
from bioaug.methods.registry import register_method

__all__ = ["VICReg", "VICRegConfig", "vicreg_loss", "vicreg_terms"]


def _variance(z: torch.Tensor, gamma: float, eps: float) -> torch.Tensor:
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(gamma - std).mean()


def _covariance(z: torch.Tensor) -> torch.Tensor:
    n, d = z.shape
    zc = z - z.mean(dim=0)
    cov = zc.T @ zc / (n - 1)
    return (cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()) / d


def vicreg_terms(
    z1: torch.Tensor, z2: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The invariance, variance and covariance terms (unweighted) of VICReg."""
    z1, z2 = z1.float(), z2.float()
    sim = F.mse_loss(z1, z2)
    std = 0.5 * (_variance(z1, gamma, eps) + _variance(z2, gamma, eps))
    cov = _covariance(z1) + _covariance(z2)
    return sim, std, cov


def vicreg_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    sim_coeff: float = 25.0,
    std_coeff: float = 25.0,
    cov_coeff: float = 1.0,
    gamma: float = 1.0,
    eps: float = 1e-4,
) -> torch.Tensor:
    """VICReg loss (Bardes et al. 2022, eq. 6) for embeddings (N, D), N ≥ 2."""
    sim, std, cov = vicreg_terms(z1, z2, gamma, eps)
    return sim_coeff * sim + std_coeff * std + cov_coeff * cov


class VICRegConfig(MethodConfig):
    """VICReg hyperparameters (defaults from Bardes et al. 2022)."""

    proj_hidden_dim: int | None = Field(
        None, ge=1, description="width of the two hidden projector layers (None: 4 × the "
        "backbone's feature size)")
    proj_output_dim: int | None = Field(
        None, ge=1, description="embedding size D (None: 4 × the backbone's feature size)")
    sim_coeff: float = Field(25.0, ge=0.0, description="weight λ of the invariance term")
    std_coeff: float = Field(25.0, ge=0.0, description="weight μ of the variance term")
    cov_coeff: float = Field(1.0, ge=0.0, description="weight ν of the covariance term")
    gamma: float = Field(1.0, gt=0.0, description="target standard deviation γ")
    eps: float = Field(1e-4, gt=0.0, le=1.0, description="ε inside the square root")


@register_method
class VICReg(Method):
    """VICReg (Bardes, Ponce, LeCun 2022)."""

    name = "vicreg"
    title = "VICReg"
    recipe = Recipe(optimizer="adamw", lr=1.5e-3, lr_scaling="sqrt", weight_decay=1e-4,
                    reference="VICReg paper: LARS lr 0.2 × B/256, weight decay 1e-6; "
                    "solo-learn's CIFAR VICReg: LARS lr 0.3, wd 1e-4")
    Config = VICRegConfig

    def __init__(self, backbone: torch.nn.Module, config: VICRegConfig) -> None:
        super().__init__(backbone, config)
        self.config = c = with_projector_widths(config, self.feature_dim)
        self.projector = mlp(self.feature_dim, [c.proj_hidden_dim, c.proj_hidden_dim], c.proj_output_dim)

    def training_loss(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        self._check_views(views)
        c = self.config
        z1, z2 = (gather_with_grad(self.projector(self.backbone(v))) for v in views)
        sim, std, cov = vicreg_terms(z1, z2, c.gamma, c.eps)
        loss = c.sim_coeff * sim + c.std_coeff * std + c.cov_coeff * cov
        return {
            "loss": loss,
            "invariance": sim.detach(),
            "variance": std.detach(),
            "covariance": cov.detach(),
        }
