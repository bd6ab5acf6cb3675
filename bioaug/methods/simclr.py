"""SimCLR: contrastive learning with the NT-Xent loss.

Chen, Kornblith, Norouzi, Hinton 2020, "A Simple Framework for Contrastive Learning of
Visual Representations" (ICML).

Both views go through the same backbone and a 2-layer projection head
(``Linear → BN → ReLU → Linear``, hidden 2048, output 128). For 2N embeddings, each one's
positive is the other view of the same image and the other 2N − 2 are negatives
(NT-Xent, eq. 1 of the paper, cosine similarity with temperature τ).

Temperature: default 0.5, the value SimCLR uses for CIFAR-10 (appendix B.9; lightly's
default too). solo-learn's CIFAR recipes use 0.2; set ``temperature`` to match them.

Under DDP the embeddings of all ranks are gathered with gradients, so negatives come from
the whole global batch and the loss equals the single-process loss on that batch.
``embed(x, "projection")`` returns the L2-normalised head output.

Recipe (:mod:`bioaug.methods.recipe`): AdamW, base lr 1.5e-3 at batch 256 with √-scaling,
weight decay 1e-4 (not on biases and norms), warm-up 10 % of the run. The paper's recipe
(LARS lr 0.3 × B/256 (or 0.075·√B), weight decay 1e-6) and solo-learn's CIFAR SimCLR: LARS
lr 0.4, wd 1e-5 are tuned for hundreds of epochs; in runs of a few hundred steps they
learn less (see the recipe module).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from bioaug.methods.base import Method, MethodConfig
from bioaug.methods.distributed import gather_with_grad
from bioaug.methods.heads import mlp
from bioaug.methods.recipe import Recipe
from bioaug.methods.registry import register_method

__all__ = ["SimCLR", "SimCLRConfig", "nt_xent_loss"]


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent (Chen et al. 2020, eq. 1), averaged over all 2N embeddings.

    ``z1``, ``z2``: (N, D), row i of each being two views of image i (normalised here).
    For anchor a with positive p: ``−log( exp(s_ap/τ) / Σ_{j≠a} exp(s_aj/τ) )`` where
    ``s`` is cosine similarity over the 2N embeddings.
    """
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2], dim=0).float(), dim=1)
    sim = z @ z.T / temperature
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


class SimCLRConfig(MethodConfig):
    """SimCLR hyperparameters."""

    proj_hidden_dim: int = Field(2048, ge=1, description="hidden width of the projection head")
    proj_output_dim: int = Field(128, ge=1, description="output size of the projection head")
    temperature: float = Field(0.5, gt=0.0, le=10.0, description="softmax temperature τ")


@register_method
class SimCLR(Method):
    """SimCLR (Chen et al. 2020)."""

    name = "simclr"
    title = "SimCLR"
    recipe = Recipe(optimizer="adamw", lr=1.5e-3, lr_scaling="sqrt", weight_decay=1e-4,
                    reference="SimCLR paper: LARS lr 0.3 × B/256 (or 0.075·√B), weight decay 1e-6; "
                    "solo-learn's CIFAR SimCLR: LARS lr 0.4, wd 1e-5")
    Config = SimCLRConfig

    def __init__(self, backbone: torch.nn.Module, config: SimCLRConfig) -> None:
        super().__init__(backbone, config)
        self.projector = mlp(self.feature_dim, [config.proj_hidden_dim], config.proj_output_dim)

    def training_loss(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        self._check_views(views)
        z1, z2 = (self.projector(self.backbone(v)) for v in views)
        z1, z2 = gather_with_grad(z1), gather_with_grad(z2)
        loss = nt_xent_loss(z1, z2, self.config.temperature)
        with torch.no_grad():
            pos = F.cosine_similarity(z1, z2, dim=1).mean()
        return {"loss": loss, "pos_cosine": pos}

    def project(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projector(features), dim=1)
