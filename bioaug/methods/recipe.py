"""A method's recommended training recipe: optimiser, learning rate, warm-up, weight decay.

Each :class:`~bioaug.methods.base.Method` declares a :class:`Recipe` (``Method.recipe``).
``bioaug train`` applies it for every optimiser option the user leaves unset; the user's
values (command line, run file, Python) always win. The method's own hyperparameters
(temperature, momentum schedule, projector sizes) are the defaults of its ``Config``.

Learning rates follow the convention of Goyal et al. 2017 ("Accurate, large minibatch
SGD"): ``lr`` is given for a batch of 256 and scaled to the global batch ``B`` by
``lr_scaling``: ``linear`` → ``lr·B/256`` (MoCo, BYOL, Barlow Twins, VICReg), ``sqrt`` →
``lr·√(B/256)`` (SimCLR's rule for small batches, Chen et al. 2020, appendix B.1),
``none`` → ``lr``.

AdamW's β₁ is ``momentum`` and its β₂ ``adam_beta2`` (PyTorch's default 0.999 unless the
method's paper says otherwise: MAE uses 0.95).

Warm-up is a fraction of the run (``warmup_fraction`` of the optimiser steps), capped at
``warmup_max_epochs``: published recipes warm up for 10 epochs of 100–1000, which would be
the whole of a short run.

Why the shipped recipes use AdamW (Loshchilov & Hutter 2019) rather than the papers' LARS
or SGD: the papers' settings (kept in each recipe's ``reference``) are tuned for hundreds
of epochs at large batches. In the short runs bioaug is used for they learn much less;
measured on scikit-learn digits (28 px, ``mnist-all``, ``vgg_mnist`` width 0.25, batch
128, 150 steps, 20-NN test accuracy; random initialisation 0.886): SimCLR 0.961 with
AdamW (lr 1e-3) against 0.919–0.936 with LARS (η 0.02, clipped, lr 0.4–1.0) and 0.914
with SGD; Barlow Twins 0.925 against 0.644 with LARS; VICReg 0.936 against 0.811; BYOL
0.889 against 0.564; MoCo v2 0.831 against 0.778 with SGD (lr 0.3) (BYOL and MoCo pass
their initialisation later: 0.919 and 0.906 at 300 steps). AdamW's
rate is scaled with √B (Malladi et al. 2022, "On the SDEs and scaling rules for adaptive
gradient algorithms").
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LR_SCALINGS", "OPTIMIZER_NAMES", "Recipe", "scaled_lr"]

OPTIMIZER_NAMES = ("sgd", "lars", "adamw")
LR_SCALINGS = ("linear", "sqrt", "none")


class Recipe(BaseModel):
    """The optimiser settings a method recommends (see the module docstring).

    Examples
    --------
    >>> from bioaug.methods import METHODS, Recipe
    >>> recipe = METHODS["simclr"].recipe
    >>> recipe.optimizer, recipe.lr, recipe.lr_scaling
    ('adamw', 0.0015, 'sqrt')
    >>> Recipe(optimizer="sgd", lr=0.03, weight_decay=1e-4).warmup_fraction
    0.1
    >>> Recipe(optimizer="adamw", lr=1e-3, weight_decay=0.05).adam_beta2
    0.999
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    optimizer: Literal["sgd", "lars", "adamw"]
    lr: float = Field(gt=0, description="base learning rate for a batch of 256")
    lr_scaling: Literal["linear", "sqrt", "none"] = "linear"
    weight_decay: float = Field(ge=0)
    weight_decay_end: float | None = Field(
        None, ge=0, description="weight decay at the end of a cosine from weight_decay "
        "(None: constant)")
    grad_clip: float | None = Field(None, gt=0, description="clip the global gradient norm "
                                    "(None: no clipping)")
    exclude_bias_norm: bool = Field(
        True, description="no weight decay (and no LARS adaptation) for biases and norm layers")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD/LARS momentum, AdamW β₁")
    adam_beta2: float = Field(0.999, gt=0, lt=1, description="AdamW β₂")
    lars_eta: float = Field(0.02, gt=0, description="LARS trust coefficient η")
    lars_clip: bool = Field(True, description="cap LARS's layer-wise rate at the global one")
    warmup_fraction: float = Field(0.1, ge=0, lt=1, description="warm-up, fraction of the run")
    warmup_max_epochs: float = Field(10.0, ge=0, description="at most this many warm-up epochs")
    reference: str = Field("", description="where the recipe comes from")


def scaled_lr(lr: float, batch_size: int, scaling: str) -> float:
    """The learning rate for a global batch of ``batch_size`` from a base ``lr`` per 256."""
    if scaling == "linear":
        return lr * batch_size / 256.0
    if scaling == "sqrt":
        return lr * math.sqrt(batch_size / 256.0)
    if scaling == "none":
        return lr
    raise ValueError(f"unknown lr scaling {scaling!r}; known: {', '.join(LR_SCALINGS)}")
