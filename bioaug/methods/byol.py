"""BYOL: Bootstrap Your Own Latent.

Grill, Strub, Altché, Tallec, Richemond, Buchatskaya, Doersch, Pires, Guo, Azar, Piot,
Kavukcuoglu, Munos, Valko 2020, "Bootstrap Your Own Latent: A New Approach to
Self-Supervised Learning" (NeurIPS).

An online network (backbone → projector → predictor) predicts the projection of the other
view made by a target network (backbone → projector), an exponential moving average of
the online one. The target momentum follows BYOL's cosine schedule
``τ = 1 − (1 − τ_base)(cos(π·progress) + 1)/2`` from ``momentum`` to ``momentum_end``
(1.0). The paper's ``τ_base = 0.996`` is for 300–1000 ImageNet epochs; the default here is
0.99, solo-learn's value for CIFAR, so that the target moves within a short run. The loss
is the normalised mean squared error ``2 − 2·cos(p, z)``, symmetrised over the two views
(eq. 2–3 of the paper: the sum of both directions). Defaults: projector and predictor
hidden 4096, output 256 (the paper's).

Two settings are for short runs and were chosen on real cells (imaging-flow cells of
``ifc-cellcycle``, VGG13 at width 0.25, 300 steps of 128, 3 seeds; docs/training.md): the
predictor learns at ``predictor_lr_scale`` (10) × the run's rate, and the recipe warms up
for 45 % of the run. In the analysis of Tian, Chen & Ganguli 2021 ("Understanding
self-supervised learning dynamics without contrastive pairs", ICML) BYOL escapes collapse
while its predictor aligns with the correlation of the online features; a faster predictor
and a gentler start give it that time. With 10 % warm-up and one rate, one seed in three
stalled on those cells (its features nearly one-dimensional; lightly's BYOL stalls on the
same seed) and BYOL lost to raw pixels. The longer warm-up alone lifted that seed but left
the mean k-means AMI below raw pixels' and the faster predictor alone changed nothing;
together they beat raw pixels on every score. ``predictor_lr_scale=1`` and
``--warmup-epochs`` give the paper's settings back.

Recipe (:mod:`bioaug.methods.recipe`): AdamW, base lr 1.5e-3 at batch 256 with √-scaling,
weight decay 1e-4 (not on biases and norms), warm-up 45 % of the run (at most 10 epochs).
The paper's recipe (LARS lr 0.2 × B/256, weight decay 1.5e-6) and solo-learn's CIFAR BYOL:
LARS lr 1.0, wd 1e-5 are tuned for hundreds of epochs; in runs of a few hundred steps they
learn less (see the recipe module).

``embed(x, "projection")`` returns the online projector output (not the predictor).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from pydantic import Field

from bioaug.methods.base import Method, MethodConfig, cosine_schedule, momentum_update
from bioaug.methods.heads import mlp
from bioaug.methods.recipe import Recipe
from bioaug.methods.registry import register_method

__all__ = ["BYOL", "BYOLConfig", "byol_loss"]


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``mean_i (2 − 2·cos(p_i, z_i))`` (Grill et al. 2020, eq. 2).

    ``p`` (N, D) online predictions, ``z`` (N, D) target projections; no gradient flows
    into ``z`` (it is detached here, the stop-gradient of the paper).
    """
    return (2.0 - 2.0 * F.cosine_similarity(p, z.detach(), dim=1)).mean()


class BYOLConfig(MethodConfig):
    """BYOL hyperparameters (defaults from Grill et al. 2020)."""

    proj_hidden_dim: int = Field(4096, ge=1, description="hidden width of the projector")
    proj_output_dim: int = Field(256, ge=1, description="output size of the projector")
    pred_hidden_dim: int = Field(4096, ge=1, description="hidden width of the predictor")
    momentum: float = Field(0.99, ge=0.0, le=1.0, description="target momentum τ at the start")
    momentum_end: float = Field(1.0, ge=0.0, le=1.0, description="target momentum τ at the end")
    predictor_lr_scale: float = Field(10.0, gt=0.0, description="the predictor's learning "
                                      "rate, as a multiple of the run's")


@register_method
class BYOL(Method):
    """BYOL (Grill et al. 2020)."""

    name = "byol"
    title = "BYOL"
    Config = BYOLConfig
    recipe = Recipe(optimizer="adamw", lr=1.5e-3, lr_scaling="sqrt", weight_decay=1e-4,
                    warmup_fraction=0.45,
                    reference="BYOL paper: LARS lr 0.2 × B/256, weight decay 1.5e-6; "
                    "solo-learn's CIFAR BYOL: LARS lr 1.0, wd 1e-5")
    _ema_what = "target"

    def __init__(self, backbone: torch.nn.Module, config: BYOLConfig) -> None:
        super().__init__(backbone, config)
        c = config
        self.projector = mlp(self.feature_dim, [c.proj_hidden_dim], c.proj_output_dim)
        self.predictor = mlp(c.proj_output_dim, [c.pred_hidden_dim], c.proj_output_dim)
        self.target_backbone = copy.deepcopy(self.backbone)
        self.target_projector = copy.deepcopy(self.projector)
        for p in [*self.target_backbone.parameters(), *self.target_projector.parameters()]:
            p.requires_grad_(False)
        self.current_momentum = c.momentum

    def lr_scales(self) -> dict[str, float]:
        """The predictor learns at ``predictor_lr_scale`` × the run's rate."""
        return {"predictor": self.config.predictor_lr_scale}

    @torch.no_grad()
    def _target(self, x: torch.Tensor) -> torch.Tensor:
        return self.target_projector(self.target_backbone(x))

    def training_loss(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        self._check_views(views)
        x1, x2 = views
        p1, p2 = (self.predictor(self.projector(self.backbone(x))) for x in (x1, x2))
        z1, z2 = self._target(x1), self._target(x2)
        loss = byol_loss(p1, z2) + byol_loss(p2, z1)
        return {"loss": loss, "momentum": torch.tensor(self.current_momentum)}

    @classmethod
    def target_momentum(cls, config: BYOLConfig, progress: float) -> float:
        """τ at ``progress``: the cosine ramp from ``momentum`` to ``momentum_end``."""
        return cosine_schedule(progress, config.momentum, config.momentum_end)

    def after_step(self, progress: float) -> None:
        """EMA update of the target with τ from the cosine schedule at ``progress``."""
        m = self.target_momentum(self.config, progress)
        self.current_momentum = m
        momentum_update(self.target_backbone, self.backbone, m)
        momentum_update(self.target_projector, self.projector, m)
