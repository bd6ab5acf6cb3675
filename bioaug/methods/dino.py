"""DINO: self-distillation with no labels.

Caron, Touvron, Misra, Jégou, Mairal, Bojanowski, Joulin 2021, "Emerging Properties in
Self-Supervised Vision Transformers" (ICCV).

A student (backbone → projection head) is trained to match the output distribution of a
teacher of the same architecture whose weights are an exponential moving average of the
student's. The teacher sees only the global views (the largest crop size of the protocol),
the student every view (global and local crops: multi-crop); each teacher view is matched
against every student view but itself (Algorithm 1 of the paper). Collapse is avoided by

* **centring**: the teacher's outputs minus a centre ``c``, an EMA (``center_momentum``
  0.9) of the teacher's batch means (eq. 4), and
* **sharpening**: a low teacher temperature (0.04 → 0.07, linear warm-up over the first
  epochs) against the student's 0.1.

Projection head (section 3.1 and appendix): a 3-layer MLP (hidden 2048, GELU, no batch
norm for ViTs), a 256-d bottleneck, L2 normalisation and a weight-normalised linear layer
to ``out_dim`` whose norm is fixed to 1; the last layer is frozen during the first
epoch (its gradients are dropped, :meth:`DINO.before_optimizer_step`). The teacher
momentum follows a cosine schedule from 0.996 to 1.

Recipe (:mod:`bioaug.methods.recipe`): the paper's AdamW, lr 0.0005 × B/256 with linear
warm-up and cosine decay, weight decay on a cosine from 0.04 to 0.4 (not on biases and
norms), gradient norm clipped at 3.0.

Output size. The paper uses K = 65536 for ImageNet and reports that 4096 is nearly as
good (its table 9); the default here is 4096, which keeps the head (and its teacher copy)
small enough for CPU runs on small data sets. Set ``out_dim=65536`` for the paper's.

Collapse monitor. The cross-entropy splits as ``H(P_t, P_s) = h(P_t) + KL(P_t ‖ P_s)``
(the paper's section 5.3 and figure 7): a KL of zero means the student has nothing left to
learn from the teacher, and the teacher's entropy ``h(P_t)`` says which way the outputs
collapsed, to the uniform distribution (``log K``: centring won) or to one dimension (0:
sharpening won). Both are logged every step (``teacher_entropy``, ``kl`` in
``metrics.csv``), and a run that ends collapsed says so (:meth:`DINO.health_warnings`).

Short runs. The paper warms the teacher temperature up over 30 epochs of 100–800 and
freezes the last layer for one epoch; a run of a few hundred steps may be a single epoch.
Both are therefore capped at a fraction of the run (``teacher_temp_warmup_fraction``,
``freeze_last_layer_fraction``), as the learning-rate warm-up is.
"""

from __future__ import annotations

import copy
import math
from collections import deque

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from bioaug.errors import ConfigError
from bioaug.methods.base import Method, MethodConfig, cosine_schedule, momentum_update
from bioaug.methods.distributed import is_distributed
from bioaug.methods.recipe import Recipe
from bioaug.methods.registry import register_method

__all__ = ["DINO", "DINOConfig", "DINOHead", "collapse_warning", "dino_loss",
           "split_global_local", "teacher_entropy", "teacher_temperature", "updated_center"]

#: teacher entropy at or above this fraction of ``log K``: the outputs are uniform
UNIFORM_FRACTION = 0.98
#: KL below this (nats) with the entropy at or below ``ONE_HOT_FRACTION · log K``: one
#: dimension dominates every output
COLLAPSED_KL = 0.01
ONE_HOT_FRACTION = 0.1
#: the last steps whose mean entropy and KL the end-of-run check reads
HEALTH_STEPS = 10


def dino_loss(teacher_out: torch.Tensor, student_out: torch.Tensor, center: torch.Tensor,
              teacher_temp: float, student_temp: float) -> torch.Tensor:
    """DINO's cross-entropy between teacher and student (Caron et al. 2021, eq. 1, Alg. 1).

    ``teacher_out`` ``(T, B, K)`` head outputs of the T global views, ``student_out``
    ``(S, B, K)`` of every view, the global ones first in the same order; ``center``
    ``(K,)`` or ``(1, K)``. The teacher's distribution is ``softmax((t − c)/τ_t)`` (no
    gradient), the student's ``log_softmax(s/τ_s)``; the loss is the mean over the batch
    and over every pair ``(t, s)`` with ``t ≠ s``.

    Parameters
    ----------
    teacher_out
        ``(T, B, K)``: the teacher head's outputs for the T global views.
    student_out
        ``(S, B, K)``: the student head's outputs for every view, global ones first.
    center
        ``(K,)`` or ``(1, K)``: the running centre subtracted from the teacher's outputs.
    teacher_temp
        τ_t, the teacher's (sharpening) temperature.
    student_temp
        τ_s, the student's temperature.

    Returns
    -------
    Tensor
        The scalar loss; gradients reach ``student_out`` only.

    Examples
    --------
    Flat outputs give uniform distributions, so the loss is ``log K``:

    >>> import torch
    >>> from bioaug.methods.dino import dino_loss
    >>> loss = dino_loss(torch.zeros(2, 3, 4), torch.zeros(4, 3, 4), torch.zeros(4),
    ...                  teacher_temp=0.04, student_temp=0.1)
    >>> round(float(loss), 4), round(float(torch.log(torch.tensor(4.0))), 4)
    (1.3863, 1.3863)

    A student that agrees with the teacher scores lower than a random one:

    >>> g = torch.Generator().manual_seed(0)
    >>> teacher = torch.randn(2, 3, 4, generator=g)
    >>> agreeing = torch.cat([teacher.flip(0), teacher])
    >>> random = torch.randn(4, 3, 4, generator=g)
    >>> [round(float(dino_loss(teacher, s, torch.zeros(4), 0.04, 0.1)), 4)
    ...  for s in (agreeing, random)]
    [3.7207, 8.8079]
    """
    n_t, n_s = teacher_out.shape[0], student_out.shape[0]
    pairs = n_t * n_s - min(n_t, n_s)
    if pairs < 1:
        raise ConfigError(f"DINO needs at least two views, got {n_t} teacher and {n_s} "
                          "student view(s)")
    t = F.softmax((teacher_out.detach() - center.reshape(1, 1, -1)) / teacher_temp, dim=-1)
    s = F.log_softmax(student_out / student_temp, dim=-1)
    cross = -torch.einsum("tbk,sbk->ts", t, s)
    other = ~torch.eye(n_t, n_s, dtype=torch.bool, device=cross.device)
    return cross[other].sum() / (pairs * teacher_out.shape[1])


@torch.no_grad()
def teacher_entropy(teacher_out: torch.Tensor, center: torch.Tensor,
                    teacher_temp: float) -> torch.Tensor:
    """The mean entropy ``h(P_t)`` (nats) of the teacher's distributions over ``K``.

    ``P_t = softmax((t − c)/τ_t)`` as in :func:`dino_loss`; the mean is over views and
    batch. ``log K`` for uniform outputs, 0 for one-hot ones. Since every teacher view is
    paired with the same number of student views, ``dino_loss − teacher_entropy`` is the
    mean ``KL(P_t ‖ P_s)`` (Caron et al. 2021, section 5.3).

    Examples
    --------
    >>> import math, torch
    >>> from bioaug.methods.dino import teacher_entropy
    >>> round(float(teacher_entropy(torch.zeros(2, 3, 8), torch.zeros(8), 0.04)), 4)
    2.0794
    >>> round(math.log(8), 4)
    2.0794
    >>> one_hot = torch.tensor([[[10.0, 0.0, 0.0, 0.0]]])
    >>> round(abs(float(teacher_entropy(one_hot, torch.zeros(4), 0.04))), 4)
    0.0
    """
    logits = (teacher_out.float() - center.reshape(1, 1, -1)) / teacher_temp
    return -(F.softmax(logits, dim=-1) * F.log_softmax(logits, dim=-1)).sum(-1).mean()


def collapse_warning(entropy: float, kl: float, out_dim: int) -> str | None:
    """What a collapsed DINO run should be told, or None (the paper's section 5.3).

    Parameters
    ----------
    entropy
        The teacher's mean entropy ``h(P_t)`` over the last steps (nats).
    kl
        The mean ``KL(P_t ‖ P_s)`` over the same steps (nats).
    out_dim
        K, the head's output size.

    Returns
    -------
    str or None
        The warning: uniform outputs (entropy ≥ 98 % of ``log K``) or one dimension
        dominating (KL < 0.01 and entropy ≤ 10 % of ``log K``); None otherwise.

    Examples
    --------
    >>> import math
    >>> from bioaug.methods.dino import collapse_warning
    >>> collapse_warning(2.0, 0.8, 4096) is None
    True
    >>> print(collapse_warning(math.log(4096) - 0.003, 0.0004, 4096))
    dino: the teacher's outputs are uniform at the end of the run (entropy 8.315 of at most log K = 8.318 nats, KL to the student 0.0004): the head says the same of every image, so the backbone learned little (Caron et al. 2021, section 5.3); train for more steps (DINO needs many epochs), or lower teacher_temp
    """
    log_k = math.log(out_dim)
    what = (f"(entropy {entropy:.3f} of at most log K = {log_k:.3f} nats, KL to the student "
            f"{kl:.2g})")
    if entropy >= UNIFORM_FRACTION * log_k:
        return (f"dino: the teacher's outputs are uniform at the end of the run {what}: the "
                "head says the same of every image, so the backbone learned little (Caron "
                "et al. 2021, section 5.3); train for more steps (DINO needs many epochs), "
                "or lower teacher_temp")
    if kl < COLLAPSED_KL and entropy <= ONE_HOT_FRACTION * log_k:
        return (f"dino: one output dimension dominates at the end of the run {what}: every "
                "image gets the same sharp distribution (Caron et al. 2021, section 5.3); "
                "lower center_momentum (the centre then follows the teacher sooner) or raise "
                "teacher_temp")
    return None


@torch.no_grad()
def updated_center(center: torch.Tensor, teacher_out: torch.Tensor,
                   momentum: float) -> torch.Tensor:
    """``c ← m·c + (1 − m)·mean(teacher outputs)`` (eq. 4), the mean over views and batch
    (over every process under DDP).

    Parameters
    ----------
    center
        The current centre, ``(K,)`` or ``(1, K)``.
    teacher_out
        ``(T, B, K)``: the teacher head's outputs of this step.
    momentum
        m, the weight of the current centre.

    Returns
    -------
    Tensor
        The new centre, shaped like ``center``.

    Examples
    --------
    >>> import torch
    >>> from bioaug.methods.dino import updated_center
    >>> teacher_out = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]])
    >>> updated_center(torch.zeros(1, 2), teacher_out, momentum=0.9)
    tensor([[0.4000, 0.5000]])
    """
    batch_center = teacher_out.detach().float().flatten(0, -2).mean(dim=0)
    if is_distributed():
        torch.distributed.all_reduce(batch_center)
        batch_center /= torch.distributed.get_world_size()
    return center * momentum + batch_center.reshape(center.shape) * (1.0 - momentum)


def teacher_temperature(epoch: float, start: float, end: float, warmup_epochs: float) -> float:
    """The teacher temperature at ``epoch`` (fractional): linear from ``start`` to ``end``
    over ``warmup_epochs``, then ``end`` (the paper's warm-up, section 3.1).

    Parameters
    ----------
    epoch
        Epochs done so far (fractional).
    start, end
        The temperature at epoch 0 and from ``warmup_epochs`` on.
    warmup_epochs
        Length of the linear warm-up; 0 or less means ``end`` throughout.

    Returns
    -------
    float
        τ_t at ``epoch``.

    Examples
    --------
    >>> from bioaug.methods.dino import teacher_temperature
    >>> [round(teacher_temperature(e, 0.04, 0.07, 30), 4) for e in (0, 15, 30, 100)]
    [0.04, 0.055, 0.07, 0.07]
    """
    if warmup_epochs <= 0 or epoch >= warmup_epochs:
        return end
    return start + (end - start) * max(epoch, 0.0) / warmup_epochs


class DINOHead(nn.Module):
    """DINO's projection head: MLP → L2 normalisation → weight-normalised linear layer.

    ``Linear(in, h) [BN] GELU … Linear(h, bottleneck)`` with ``n_layers`` linear layers
    (truncated-normal init, std 0.02), then ``F.normalize`` and ``last_layer``, a bias-free
    linear layer to ``out_dim`` under weight normalisation (Salimans & Kingma 2016) whose
    norm ``g`` starts at 1 and stays there with ``norm_last_layer``.
    """

    def __init__(self, in_dim: int, out_dim: int, *, hidden_dim: int = 2048,
                 bottleneck_dim: int = 256, n_layers: int = 3, batch_norm: bool = False,
                 norm_last_layer: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        dim = in_dim
        for _ in range(n_layers - 1):
            layers.append(nn.Linear(dim, hidden_dim))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(nn.GELU())
            dim = hidden_dim
        layers.append(nn.Linear(dim, bottleneck_dim))
        self.mlp = nn.Sequential(*layers)
        self.mlp.apply(_trunc_normal_init)
        last = nn.Linear(bottleneck_dim, out_dim, bias=False)
        self.last_layer = nn.utils.parametrizations.weight_norm(last)
        with torch.no_grad():
            self.last_layer.parametrizations.weight.original0.fill_(1.0)
        self.last_layer.parametrizations.weight.original0.requires_grad_(not norm_last_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_layer(F.normalize(self.mlp(x), dim=-1))


def _trunc_normal_init(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02, a=-2.0, b=2.0)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class DINOConfig(MethodConfig):
    """DINO hyperparameters (defaults from Caron et al. 2021)."""

    out_dim: int = Field(4096, ge=1, description="dimension K of the head's output (the "
                         "paper's ImageNet runs: 65536)")
    hidden_dim: int = Field(2048, ge=1, description="hidden width of the head's MLP")
    bottleneck_dim: int = Field(256, ge=1, description="bottleneck before the last layer")
    head_batch_norm: bool = Field(False, description="batch norm in the head (off for ViTs)")
    norm_last_layer: bool = Field(True, description="fix the last layer's weight norm to 1")
    student_temp: float = Field(0.1, gt=0.0, description="student temperature τ_s")
    teacher_temp_start: float = Field(0.04, gt=0.0, description="teacher temperature at start")
    teacher_temp: float = Field(0.07, gt=0.0, description="teacher temperature after warm-up")
    teacher_temp_warmup_epochs: float = Field(30.0, ge=0.0, description="epochs of warm-up")
    teacher_temp_warmup_fraction: float = Field(
        0.3, ge=0.0, le=1.0, description="cap the warm-up at this fraction of the run")
    center_momentum: float = Field(0.9, ge=0.0, lt=1.0, description="EMA momentum of the centre")
    momentum: float = Field(0.996, ge=0.0, le=1.0, description="teacher momentum at the start")
    momentum_end: float = Field(1.0, ge=0.0, le=1.0, description="teacher momentum at the end")
    freeze_last_layer_epochs: float = Field(
        1.0, ge=0.0, description="epochs during which the head's last layer does not learn")
    freeze_last_layer_fraction: float = Field(
        0.1, ge=0.0, le=1.0, description="cap the freezing at this fraction of the run")


@register_method
class DINO(Method):
    """DINO (Caron et al. 2021): student, EMA teacher, centring, sharpening, multi-crop."""

    name = "dino"
    title = "DINO"
    Config = DINOConfig
    recipe = Recipe(optimizer="adamw", lr=5e-4, lr_scaling="linear", weight_decay=0.04,
                    weight_decay_end=0.4, grad_clip=3.0,
                    reference="DINO paper: AdamW lr 0.0005 × B/256, 10 warm-up epochs, "
                    "weight decay 0.04 → 0.4 (cosine), gradient clipping 3.0")
    #: any number of views ≥ 2: the global ones (largest crop) go to the teacher too
    n_views = None
    min_views = 2
    _ema_what = "teacher"

    def __init__(self, backbone: nn.Module, config: DINOConfig) -> None:
        super().__init__(backbone, config)
        c = config
        self.projector = DINOHead(self.feature_dim, c.out_dim, hidden_dim=c.hidden_dim,
                                  bottleneck_dim=c.bottleneck_dim, batch_norm=c.head_batch_norm,
                                  norm_last_layer=c.norm_last_layer)
        self.teacher_backbone = copy.deepcopy(self.backbone)
        self.teacher_projector = copy.deepcopy(self.projector)
        for p in [*self.teacher_backbone.parameters(), *self.teacher_projector.parameters()]:
            p.requires_grad_(False)
        self.register_buffer("center", torch.zeros(1, c.out_dim))
        self.current_momentum = c.momentum
        self.progress, self.epoch = 0.0, 0.0
        #: (teacher entropy, KL) of the last steps, for :meth:`health_warnings`
        self.recent_collapse: deque[tuple[float, float]] = deque(maxlen=HEALTH_STEPS)

    # -- schedules ------------------------------------------------------------------------
    @classmethod
    def target_momentum(cls, config: DINOConfig, progress: float) -> float:
        """The teacher momentum at ``progress``: cosine from ``momentum`` to ``momentum_end``."""
        return cosine_schedule(progress, config.momentum, config.momentum_end)

    def current_teacher_temp(self) -> float:
        """The teacher temperature now (warm-up capped at a fraction of the run)."""
        c = self.config
        return teacher_temperature(self.epoch, c.teacher_temp_start, c.teacher_temp,
                                   _capped(c.teacher_temp_warmup_epochs,
                                           c.teacher_temp_warmup_fraction, self._run_epochs()))

    def last_layer_frozen(self) -> bool:
        """Whether the head's last layer is still frozen (first epoch, capped)."""
        c = self.config
        return self.epoch < _capped(c.freeze_last_layer_epochs, c.freeze_last_layer_fraction,
                                    self._run_epochs())

    def _run_epochs(self) -> float:
        return self.epoch / self.progress if self.progress > 0 else float("inf")

    def before_step(self, progress: float, epoch: float) -> None:
        """Remember where training is (temperature warm-up, freezing the last layer)."""
        self.progress, self.epoch = float(progress), float(epoch)

    def before_optimizer_step(self) -> None:
        """Drop the last layer's gradients while it is frozen."""
        if self.last_layer_frozen():
            for p in self.projector.last_layer.parameters():
                p.grad = None

    def after_step(self, progress: float) -> None:
        """EMA update of the teacher with the momentum of the cosine schedule."""
        m = self.target_momentum(self.config, progress)
        self.current_momentum = m
        momentum_update(self.teacher_backbone, self.backbone, m)
        momentum_update(self.teacher_projector, self.projector, m)

    # -- training -------------------------------------------------------------------------
    def _check_views(self, views: list[torch.Tensor]) -> None:
        if len(views) < self.min_views:
            raise ConfigError(f"method 'dino' needs at least {self.min_views} views per image, "
                              f"the protocol gives {len(views)}", hint="e.g. `count: 2` on a "
                              "global view, plus local views")
        if len({tuple(v.shape[:2]) for v in views}) != 1:
            raise ConfigError(f"method 'dino': views disagree in batch size or channels: "
                              f"{[tuple(v.shape) for v in views]}")

    def training_loss(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The DINO loss of one batch of views; the centre moves to the teacher's outputs.

        The backbones run once per crop size (the global views, then each size of local
        views, in one batch each); the student's head runs once over the features of every
        view, as DINO's multi-crop wrapper does, so a head with batch norm normalises over
        all views together and the head's weights are formed once per step.
        """
        self._check_views(views)
        glob, local = split_global_local(views)
        batch = views[0].shape[0]
        with torch.no_grad():
            teacher = self.teacher_projector(self.teacher_backbone(torch.cat(glob)))
        student = self.projector(self.student_features([*glob, *local]))
        temp = self.current_teacher_temp()
        teacher = teacher.float().reshape(len(glob), batch, -1)
        loss = dino_loss(teacher, student.float().reshape(len(views), batch, -1), self.center,
                         temp, self.config.student_temp)
        entropy = teacher_entropy(teacher, self.center, temp)
        kl = loss.detach() - entropy
        self.recent_collapse.append((float(entropy), float(kl)))
        self.center.copy_(updated_center(self.center, teacher, self.config.center_momentum))
        return {"loss": loss, "momentum": torch.tensor(self.current_momentum),
                "teacher_temp": torch.tensor(temp), "teacher_entropy": entropy, "kl": kl}

    def health_warnings(self) -> list[str]:
        """Whether the last steps' teacher was collapsed (:func:`collapse_warning`)."""
        if not self.recent_collapse:
            return []
        n = len(self.recent_collapse)
        entropy = sum(e for e, _ in self.recent_collapse) / n
        kl = sum(k for _, k in self.recent_collapse) / n
        warning = collapse_warning(entropy, kl, self.config.out_dim)
        return [warning] if warning else []

    def student_features(self, views: list[torch.Tensor]) -> torch.Tensor:
        """The student backbone's features of ``views`` in order, ``(len(views)·B, D)``:
        one backbone pass per run of consecutive views of one size."""
        return torch.cat([self.backbone(torch.cat(group)) for group in _by_size(views)])


def _capped(epochs: float, fraction: float, run_epochs: float) -> float:
    return min(epochs, fraction * run_epochs)


def split_global_local(views: list[torch.Tensor]) -> tuple[list[torch.Tensor],
                                                           list[torch.Tensor]]:
    """The global views (the largest crop side) and the local ones, in protocol order.

    Parameters
    ----------
    views
        Batches ``(B, C, H, W)``, one per view, as a pipeline returns them.

    Returns
    -------
    tuple[list[Tensor], list[Tensor]]
        The views of the largest crop area, then every other view.

    Examples
    --------
    >>> import torch
    >>> from bioaug.methods.dino import split_global_local
    >>> views = [torch.zeros(2, 1, s, s) for s in (32, 16, 32, 16, 16)]
    >>> glob, local = split_global_local(views)
    >>> [v.shape[-1] for v in glob], [v.shape[-1] for v in local]
    ([32, 32], [16, 16, 16])
    """
    top = max(v.shape[-1] * v.shape[-2] for v in views)
    glob = [v for v in views if v.shape[-1] * v.shape[-2] == top]
    return glob, [v for v in views if v.shape[-1] * v.shape[-2] != top]


def _by_size(views: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """Consecutive views of one size, grouped (one backbone pass per group)."""
    groups: list[list[torch.Tensor]] = []
    for v in views:
        if groups and groups[-1][0].shape[-2:] == v.shape[-2:]:
            groups[-1].append(v)
        else:
            groups.append([v])
    return groups
