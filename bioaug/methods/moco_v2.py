"""MoCo v2: momentum contrast with an MLP head.

He, Fan, Wu, Xie, Girshick 2020, "Momentum Contrast for Unsupervised Visual Representation
Learning" (CVPR), and Chen, Fan, Girshick, He 2020, "Improved Baselines with Momentum
Contrastive Learning" (arXiv 2003.04297).

A query encoder (backbone + 2-layer MLP head, 128-d, L2-normalised) is trained with the
InfoNCE loss: each query must pick its own key (the other view through a momentum key
encoder) among the keys of earlier batches kept in a queue. The key encoder is an
exponential moving average of the query encoder, updated in :meth:`MoCoV2.after_step`.
Defaults follow MoCo v2 (queue ``K = 65536``, temperature 0.2, head hidden width 2048)
except the momentum: the paper's fixed ``m = 0.999`` suits ImageNet-length runs (after
300 steps the key encoder would still be 0.999³⁰⁰ ≈ 74 % its random initialisation), so
the default is the cosine ramp ``m = 0.99 → 1.0`` of solo-learn's small-data "MoCo v2+"
recipe (``momentum_end`` equal to ``momentum`` keeps ``m`` fixed). ``symmetric=True``
adds the swapped loss (v2+ style).

Recipe (:mod:`bioaug.methods.recipe`): AdamW, base lr 1.5e-3 at batch 256 with √-scaling,
weight decay 1e-4 (not on biases and norms), warm-up 10 % of the run. The paper's recipe
(SGD lr 0.03 × B/256, weight decay 1e-4, 200 ImageNet epochs) and solo-learn's CIFAR MoCo
v2+: SGD lr 0.3 are tuned for hundreds of epochs; in runs of a few hundred steps they
learn less (see the recipe module).

Queue size: :meth:`MoCoV2.configure_for_dataset` caps ``K`` at ``queue_fraction`` of the
items of one epoch (so a queue never holds stale keys of the very image being queried,
default 0.5) and then rounds the capped value down to a multiple of the keys enqueued per
step (the global batch, twice that when symmetric). A ``queue_size`` that is not capped
must itself be such a multiple, else a :class:`~bioaug.errors.ConfigError` suggests valid
values.

Under DDP, keys are gathered from all ranks before they are enqueued (every rank keeps the
same queue) and, with ``shuffle_bn`` (default), the key encoder sees a batch shuffled across
ranks (shuffle-BN) so that batch norm cannot leak which key belongs to which query. In one
process both are no-ops. With ``shuffle_bn=False`` and :meth:`Method.use_global_batchnorm`
a multi-process run computes exactly what one process does with the same global batch.

``embed(x, "projection")`` returns the normalised head output (the 128-d ``q``).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from pydantic import Field

from bioaug.errors import ConfigError
from bioaug.methods.base import Method, MethodConfig, cosine_schedule, momentum_update
from bioaug.methods.distributed import batch_shuffle, batch_unshuffle, gather_no_grad
from bioaug.methods.heads import mlp
from bioaug.methods.recipe import Recipe
from bioaug.methods.registry import register_method

__all__ = ["MoCoV2", "MoCoV2Config", "infonce_loss", "positive_top1", "tie_tolerance"]


def infonce_loss(
    q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float
) -> torch.Tensor:
    """MoCo's InfoNCE loss (He et al. 2020, eq. 1), averaged over the batch.

    ``q`` (N, D) queries, ``k`` (N, D) their positive keys, ``queue`` (K, D) negative keys;
    all expected L2-normalised (no normalisation here). Logits are
    ``[q·k, q·queue_1 … q·queue_K] / temperature`` and the target is index 0:
    ``−mean_i log( exp(q_i·k_i/τ) / (exp(q_i·k_i/τ) + Σ_j exp(q_i·queue_j/τ)) )``.
    """
    logits = _logits(q, k, queue, temperature)
    target = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, target)


def _logits(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float):
    pos = (q * k).sum(dim=1, keepdim=True)
    neg = q @ queue.to(q.dtype).T
    return torch.cat([pos, neg], dim=1) / temperature


def positive_top1(logits: torch.Tensor, tolerance: float = 0.0) -> torch.Tensor:
    """The fraction of rows whose positive (column 0) beats every negative (columns 1 …).

    A positive counts only when its logit exceeds the largest negative one by more than
    ``tolerance``: a tie is a miss. Collapsed (constant) features, whose logits are all
    equal, score 0 — not 1, as ``argmax(logits) == 0`` would (it picks the first of equal
    values, the positive).

    Parameters
    ----------
    logits
        ``(N, 1 + K)``: each query's positive logit, then its ``K`` negative ones.
    tolerance
        Logits closer than this are equal (see :func:`tie_tolerance`).

    Returns
    -------
    torch.Tensor
        A scalar in [0, 1].

    Examples
    --------
    >>> import torch
    >>> from bioaug.methods.moco_v2 import positive_top1
    >>> positive_top1(torch.tensor([[2.0, 1.0, 0.5], [1.0, 1.0, 1.0]])).item()
    0.5
    >>> positive_top1(torch.tensor([[1.0 + 1e-7, 1.0]]), tolerance=1e-6).item()
    0.0
    """
    return (logits[:, 0] > logits[:, 1:].amax(dim=1) + tolerance).float().mean()


def tie_tolerance(dim: int, temperature: float) -> float:
    """How far apart two logits may be and still come from equal similarities.

    A cosine of ``dim``-d unit vectors computed in float32 is rounded by up to a few
    ``√dim`` machine epsilons (the order of the sum changes the last bits, so ``q·k`` and
    ``q·queue_j`` of the same vectors can differ); a logit is the cosine over the
    temperature.

    Parameters
    ----------
    dim
        The width of the (L2-normalised) vectors.
    temperature
        The softmax temperature τ the logits are divided by.

    Returns
    -------
    float
        ``8 · eps(float32) · √dim / τ``.

    Examples
    --------
    >>> from bioaug.methods.moco_v2 import tie_tolerance
    >>> f"{tie_tolerance(128, 0.2):.1e}"
    '5.4e-05'
    """
    return 8.0 * torch.finfo(torch.float32).eps * math.sqrt(dim) / temperature


class MoCoV2Config(MethodConfig):
    """MoCo v2 hyperparameters (defaults from Chen et al. 2020)."""

    proj_hidden_dim: int = Field(2048, ge=1, description="hidden width of the 2-layer MLP head")
    proj_output_dim: int = Field(128, ge=1, description="embedding size of the head")
    temperature: float = Field(0.2, gt=0.0, le=10.0, description="softmax temperature τ")
    momentum: float = Field(0.99, ge=0.0, le=1.0, description="key-encoder momentum m (start)")
    momentum_end: float = Field(
        1.0, ge=0.0, le=1.0, description="cosine ramp of m to this value at the end "
        "(equal to momentum: m stays fixed)"
    )
    queue_size: int = Field(65536, ge=1, description="number of negative keys K (before capping)")
    queue_fraction: float = Field(
        0.5, gt=0.0, le=1.0, description="cap K at this fraction of the items of one epoch"
    )
    symmetric: bool = Field(False, description="also swap the views (MoCo v2+ style)")
    shuffle_bn: bool = Field(
        True, description="under DDP, shuffle the key encoder's batch across ranks (shuffle-BN)"
    )


@register_method
class MoCoV2(Method):
    """MoCo v2 (He et al. 2020; Chen et al. 2020): query/key encoders and a key queue."""

    name = "moco_v2"
    title = "MoCo v2"
    Config = MoCoV2Config
    recipe = Recipe(optimizer="adamw", lr=1.5e-3, lr_scaling="sqrt", weight_decay=1e-4,
                    reference="MoCo v2 paper: SGD lr 0.03 × B/256, weight decay 1e-4, 200 ImageNet epochs; "
                    "solo-learn's CIFAR MoCo v2+: SGD lr 0.3")
    _ema_what = "key"

    def __init__(self, backbone: torch.nn.Module, config: MoCoV2Config) -> None:
        super().__init__(backbone, config)
        c = config
        self.projector = mlp(
            self.feature_dim, [c.proj_hidden_dim], c.proj_output_dim, batch_norm=False
        )
        self.key_backbone = copy.deepcopy(self.backbone)
        self.key_projector = copy.deepcopy(self.projector)
        for p in [*self.key_backbone.parameters(), *self.key_projector.parameters()]:
            p.requires_grad_(False)
        self.current_momentum = c.momentum
        self._init_queue(c.queue_size)

    # -- queue -----------------------------------------------------------------------
    def _init_queue(self, size: int) -> None:
        queue = F.normalize(torch.randn(size, self.config.proj_output_dim), dim=1)
        self.register_buffer("queue", queue)
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @property
    def queue_size(self) -> int:
        """The number of negative keys K in use (after :meth:`configure_for_dataset`)."""
        return int(self.queue.shape[0])

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write ``keys`` (N, D; stored L2-normalised, detached) at the pointer, oldest first out.

        The pointer advances by N modulo K. With N > K only the last K keys are kept.
        """
        keys = F.normalize(keys.detach().to(self.queue.dtype), dim=1)
        size = self.queue_size
        if keys.shape[0] > size:
            keys = keys[-size:]
        n = keys.shape[0]
        ptr = int(self.queue_ptr.item())
        idx = (torch.arange(n, device=self.queue.device) + ptr) % size
        self.queue[idx] = keys
        self.queue_ptr[0] = (ptr + n) % size

    def keys_per_step(self, batch_size: int) -> int:
        return batch_size * (2 if self.config.symmetric else 1)

    def configure_for_dataset(self, n_items: int, batch_size: int) -> None:
        """Cap and round K for ``n_items`` per epoch and a global batch of ``batch_size``.

        Rebuilds the queue (random unit vectors, pointer 0) when its size changes.
        """
        super().configure_for_dataset(n_items, batch_size)
        size = self.queue_size_for(self.config, n_items, batch_size)
        if size != self.queue_size:
            device = self.queue.device
            self._init_queue(size)
            self.queue = self.queue.to(device)
            self.queue_ptr = self.queue_ptr.to(device)

    @staticmethod
    def queue_size_for(c: MoCoV2Config, n_items: int, batch_size: int) -> int:
        """The number of keys K used for ``n_items`` per epoch and a global ``batch_size``."""
        step = batch_size * (2 if c.symmetric else 1)
        cap = int(c.queue_fraction * n_items)
        if c.queue_size <= cap:
            size = c.queue_size
            if size % step:
                lower, upper = (size // step) * step, (size // step + 1) * step
                options = " or ".join(str(v) for v in (lower, upper) if 0 < v <= cap)
                raise ConfigError(
                    f"method 'moco_v2': queue_size {size} is not a multiple of the {step} keys "
                    f"enqueued per step (global batch {batch_size}"
                    + (", ×2 symmetric" if c.symmetric else "")
                    + f"); use queue_size {options or '(none fits)'}, or a batch size that "
                    f"divides {size}"
                )
        else:
            size = (cap // step) * step
            if size < step:
                raise ConfigError(
                    f"method 'moco_v2': with {n_items} items per epoch the queue may hold at most "
                    f"{cap} keys (queue_fraction {c.queue_fraction}), fewer than the {step} keys "
                    f"enqueued per step (global batch {batch_size}); use a batch size ≤ "
                    f"{max(cap // (step // batch_size), 1)} or a larger queue_fraction"
                )
        return size

    @classmethod
    def run_warnings(cls, config: MoCoV2Config, *, n_items: int, batch_size: int,
                     total_steps: int) -> list[str]:
        """The momentum check, plus a queue that would not fill with real keys in the run."""
        out = super().run_warnings(config, n_items=n_items, batch_size=batch_size,
                                   total_steps=total_steps)
        size = cls.queue_size_for(config, n_items, batch_size)
        per_step = batch_size * (2 if config.symmetric else 1)
        fill = math.ceil(size / per_step)
        if fill > total_steps // 4:
            fits = max(per_step * max(total_steps // 4, 1), per_step)
            out.append(f"moco_v2: the queue of {size} keys needs {fill} steps to fill with real "
                       f"keys, more than a quarter of the {total_steps}-step run (until then "
                       f"most negatives are random vectors); use queue_size ≤ {fits} or a "
                       "longer run")
        return out

    @classmethod
    def target_momentum(cls, config: MoCoV2Config, progress: float) -> float:
        """m at ``progress``: the cosine ramp to ``momentum_end`` (fixed when they are equal)."""
        return cosine_schedule(progress, config.momentum, config.momentum_end)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        # A checkpoint carries its own queue: adopt its size, so loading does not depend
        # on configure_for_dataset having been called with the same numbers.
        queue = state_dict.get(prefix + "queue")
        if isinstance(queue, torch.Tensor) and queue.ndim == 2 and queue.shape != self.queue.shape:
            if queue.shape[1] != self.config.proj_output_dim:
                raise ConfigError(
                    f"method 'moco_v2': the checkpoint's queue holds {queue.shape[1]}-d keys, "
                    f"this model makes {self.config.proj_output_dim}-d keys (proj_output_dim)"
                )
            self.queue = torch.empty_like(queue, device=self.queue.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- training --------------------------------------------------------------------
    def _query(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projector(self.backbone(x)), dim=1)

    @torch.no_grad()
    def _key(self, x: torch.Tensor) -> torch.Tensor:
        if not self.config.shuffle_bn:
            return F.normalize(self.key_projector(self.key_backbone(x)), dim=1)
        shuffled, unshuffle = batch_shuffle(x)
        k = F.normalize(self.key_projector(self.key_backbone(shuffled)), dim=1)
        return batch_unshuffle(k, unshuffle)

    def _local_batchnorm_children(self) -> tuple[str, ...]:
        return ("key_backbone", "key_projector") if self.config.shuffle_bn else ()

    def training_loss(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        self._check_views(views)
        x1, x2 = views
        t = self.config.temperature
        queue = self.queue.clone().detach()
        q1 = self._query(x1)
        k2 = self._key(x2)
        loss = infonce_loss(q1, k2, queue, t)
        with torch.no_grad():
            logits = _logits(q1.float(), k2.float(), queue.float(), t)
            top1 = positive_top1(logits, tie_tolerance(q1.shape[1], t))
        keys = [k2]
        if self.config.symmetric:
            q2 = self._query(x2)
            k1 = self._key(x1)
            loss = 0.5 * (loss + infonce_loss(q2, k1, queue, t))
            keys.insert(0, k1)
        self.enqueue(gather_no_grad(torch.cat(keys, dim=0)))
        return {"loss": loss, "top1": top1, "momentum": torch.tensor(self.current_momentum)}

    def after_step(self, progress: float) -> None:
        """Momentum update of the key encoder with m at this point of training."""
        m = self.target_momentum(self.config, progress)
        self.current_momentum = m
        momentum_update(self.key_backbone, self.backbone, m)
        momentum_update(self.key_projector, self.projector, m)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projector(features), dim=1)
