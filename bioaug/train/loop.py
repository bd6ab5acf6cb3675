"""The training loop: ``train(config) -> run directory``.

Before any work the configuration is resolved (:mod:`bioaug.train.resolve`): options left
unset take the method's recipe, and settings that cannot work for the run's length are
printed once as warnings. The loop applies the resolved values and never looks at the
method's name: the optimiser, learning rate and warm-up come from the resolved config,
momentum schedules from ``method.after_step``, and under several processes the method
chooses which batch norms see the global batch (``Method.use_global_batchnorm``: MoCo's
shuffle-BN keeps its key encoder's batch norm per process).

One step: read a global batch from the store (one sorted read, stored dtype) → float in
[0, 1] on the device → the protocol's views (augmentation parameters drawn for the global
batch from a seeded generator on the device; each process applies its shard) → the
method's loss (bf16 autocast and channels-last on CUDA) → backward → optional gradient
clipping → ``method.before_optimizer_step()`` → optimiser step with the warm-up + cosine
learning rate (and the weight decay of ``weight_decay → weight_decay_end``) of that step →
``method.after_step(progress)`` (momentum encoders). ``method.before_step(progress,
epoch)`` comes before the loss (schedules counted in epochs).

Run directory::

    RUN/config.yaml     the resolved TrainConfig (every recipe value filled in)
    RUN/protocol.yaml   the protocol as used (its text; the effective YAML with --crop)
    RUN/checkpoint.pt   latest checkpoint (every epoch and every save_every_steps; atomic);
                        its ``sampling`` records --positives, --batches, the obs columns read
    RUN/metrics.csv     one row per step: step, epoch, loss, lr, images/s, method scalars
    RUN/rankme.csv      RankMe of the backbone's features before the first step, at each
                        epoch's end and at the last step (a label-free collapse monitor)
    RUN/views.png       the first images of step 1 and their views, as the model got them
    RUN/attention.png   (ViT backbones) the last block's class-token attention on stored cells
    RUN/tb/             TensorBoard events (when tensorboard is installed)

``train(config, resume=True)`` continues a killed run from its checkpoint exactly: the
model (queue and momentum encoder included), optimiser, step, position in the epoch and
the RNG states are restored, and the data order is a function of (seed, epoch), so the
final weights equal those of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bioaug.errors import BioaugError
from bioaug.io import (
    atomic_write_text,
    atomic_write_yaml,
    provenance,
    sha256_text,
)
from bioaug.progress import progress
from bioaug.train import checks
from bioaug.train.checkpoint import (
    CHECKPOINT_NAME,
    save_checkpoint,
)
from bioaug.train.config import TrainConfig
from bioaug.train.data import (
    StoreBatches,
    make_loader,
    to_unit_float,
)
from bioaug.train.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    cleanup_distributed,
    env_world_size,
    init_distributed,
    wrap_ddp,
)
from bioaug.train.metrics import MetricsLogger, truncate_metrics
from bioaug.train.optim import lr_at, set_lr, set_weight_decay, weight_decay_at
from bioaug.train.pairs import PairedViews, split_pair
from bioaug.train.rankme import RankMeMonitor, start_rankme
from bioaug.train.resolve import ResolvedConfig


class TrainingDiverged(BioaugError):
    """The loss (or the gradients) became NaN/inf; the last good checkpoint is kept."""


def train(config: TrainConfig, *, resume: bool = False, force: bool = False) -> Path:
    """Train ``config`` and return the run directory.

    Parameters
    ----------
    config
        The run configuration; optimiser options left ``None`` take the method's recipe
        (see :func:`resolve_run`).
    resume
        Continue the run in ``config.out`` from its checkpoint (a fresh start when there is
        none). A checkpoint written with another resolved configuration is a ConfigError
        that lists the differences, unless ``force``.
    force
        With ``resume``: continue even when the configuration differs.

    Under ``torchrun`` every process calls this.
    """
    plan = checks.prepare_run(config, world_size=env_world_size(), resume=resume, force=force)
    already = torch.distributed.is_available() and torch.distributed.is_initialized()
    info = init_distributed(config.device)
    try:
        return _Run(plan, info).run()
    finally:
        if info.distributed and not already:
            cleanup_distributed()


def resolve_run(config: TrainConfig, *, resume: bool = False,
                force: bool = False) -> ResolvedConfig:
    """The resolved configuration of a run, after every check the run makes before its
    first step (:func:`bioaug.train.checks.prepare_run`: the output folder, names, store,
    protocol, crops, pixels, model, the run to resume …), without training or writing.

    Options left unset take the method's recipe (:func:`bioaug.train.resolve.resolve`).
    What ``bioaug train --print-config`` (``--dry-run``) shows.

    Parameters
    ----------
    config
        The run's options (:func:`~bioaug.train.load_config`).
    resume
        Check the run as a continuation of the one in ``config.out``.
    force
        Allow ``config.out`` to hold another run (it would be replaced).

    Returns
    -------
    ResolvedConfig
        Every option's value and where it came from, the store's size, the step counts
        and the warnings of settings that cannot work.

    Examples
    --------
    A 2-step SimCLR run on 16 two-channel crops of 16 px, in batches of 8:

    >>> import tempfile
    >>> import numpy as np
    >>> import pandas as pd
    >>> from bioaug.data.store import write_store
    >>> from bioaug.train import load_config, resolve_run
    >>> folder = tempfile.mkdtemp()
    >>> images = np.random.default_rng(0).integers(0, 65535, (16, 2, 16, 16), dtype=np.uint16)
    >>> _ = write_store(f"{folder}/crops", images, pd.DataFrame({"label": ["a", "b"] * 8}),
    ...                 channels=["DAPI", "Actin"])
    >>> config = load_config(data=f"{folder}/crops", protocol="none", out=f"{folder}/run",
    ...                      method="simclr", backbone="vgg_mnist", width=0.25, crop=12,
    ...                      batch_size=8, epochs=1, max_steps=2, device="cpu", num_workers=0,
    ...                      tensorboard=False, preview_views=0,
    ...                      method_kwargs={"proj_hidden_dim": 16, "proj_output_dim": 8})
    >>> resolved = resolve_run(config)
    >>> resolved.n_items, resolved.steps_per_epoch, resolved.total_steps
    (16, 2, 2)
    >>> resolved.config.optimizer, resolved.sources["optimizer"]
    ('adamw', 'recipe')
    >>> config.out.exists()
    False
    """
    return checks.prepare_run(config, world_size=env_world_size(), resume=resume,
                              force=force).resolved


def _rng_state(generator: torch.Generator, device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "augment": generator.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], generator: torch.Generator,
                   device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["augment"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def _plain(obj: Any) -> Any:
    """Only JSON types (str subclasses such as torch's version string become str), so the
    checkpoint loads with ``torch.load(weights_only=True)``."""
    return json.loads(json.dumps(obj, default=str))


@dataclass
class _StepTools:
    """What every optimiser step of a run uses (see :meth:`_Run._step_tools`)."""

    loss_fn: nn.Module
    dataset: StoreBatches
    params: list[nn.Parameter]
    autocast: Any
    shard: slice
    image_shape: tuple[int, int, int]


@dataclass
class _StepResult:
    """What one optimiser step reports."""

    lr: float
    loss: float
    grad_norm: float
    extras: dict[str, float]


class _Throughput:
    """Images per second: of the last step, smoothed (exponential average), and the time
    since the start."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.start = self.last = time.perf_counter()
        self.rate: float | None = None

    def restart(self) -> None:
        """Count the next step from now (a new epoch's loader has just started)."""
        self.last = time.perf_counter()

    def tick(self) -> tuple[float, float, float]:
        """(images/s of the step just done, smoothed images/s, seconds since the start)."""
        now = time.perf_counter()
        inst = self.batch_size / max(now - self.last, 1e-9)
        self.rate = inst if self.rate is None else 0.9 * self.rate + 0.1 * inst
        self.last = now
        return inst, self.rate, now - self.start


class _Run:
    def __init__(self, plan: checks.RunPlan, info: DistInfo) -> None:
        self.plan, self.info = plan, info
        self.cfg = plan.config
        self.out = Path(self.cfg.out)
        self.ckpt_path = self.out / CHECKPOINT_NAME
        self.device = info.device
        self.cuda = self.device.type == "cuda"

    # -- setup ----------------------------------------------------------------------------
    def _prepare(self) -> None:
        """The checked inputs of the plan on this process's device, the optimiser, and the
        state of the run resumed (if any)."""
        from bioaug.augment.cpu import tune_cpu_allocator

        plan, cfg = self.plan, self.cfg
        if self.device.type == "cpu":
            # Batched views reallocate large buffers every step; keep them in the process.
            tune_cpu_allocator()
        self.resolved, self.store = plan.resolved, plan.store
        self.protocol, self.protocol_text = plan.protocol, plan.protocol_text
        self.pipeline, self.sampling = plan.pipeline, plan.sampling
        self.crop_sizes, self.header_sha256 = plan.crop_sizes, plan.header_sha256
        self.previous, self.method = plan.previous, plan.method
        self.make_views = PairedViews(self.pipeline)
        self.knn = plan.knn if self.info.is_main else None
        self.rankme = (RankMeMonitor(self.store, max_items=cfg.rankme_items, seed=cfg.seed)
                       if cfg.rankme_items and self.info.is_main else None)
        if self.info.is_main:
            for warning in self.resolved.warnings:
                print(f"warning: {warning}", file=sys.stderr)
        self.method.to(self.device)
        if self.cuda and cfg.channels_last:
            self.method.to(memory_format=torch.channels_last)
        if self.info.distributed:  # the method's policy (MoCo: key encoder stays local)
            self.method.use_global_batchnorm(self.device)
        self.method.train()
        self.optimizer = checks.build_run_optimizer(self.method, cfg)
        # the groups under weight decay (biases and norms may be out): their decay follows
        # the schedule from weight_decay to weight_decay_end
        self.decayed = [g for g in self.optimizer.param_groups if g["weight_decay"] > 0]
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(cfg.seed + 1)
        self.step = 0
        self.last_loss: float | None = None
        if self.previous is not None:
            checks.load_optimizer_state(self.optimizer, self.previous, cfg)
            self.step = int(self.previous["step"])
            self.last_loss = self.previous.get("last_loss")
            _set_rng_state(self.previous["rng"], self.generator, self.device)
        self.spe = self.resolved.steps_per_epoch
        self.total = self.resolved.total_steps
        self.warmup = self.resolved.warmup_steps
        self.base_lr = self.resolved.effective_lr

    # -- records --------------------------------------------------------------------------
    def _write_run_files(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_yaml(self.out / "config.yaml", self.cfg.to_plain())
        text = self.protocol_text
        if self.cfg.crop is not None:
            text = (f"# effective protocol: {self.cfg.protocol} with crop_size overridden to "
                    f"{self.cfg.crop}\n" + self.protocol.to_yaml())
        atomic_write_text(self.out / "protocol.yaml", text)

    def _payload(self) -> dict[str, Any]:
        cfg, store = self.cfg, self.store
        bb = self.method.backbone
        return {
            "config": cfg.to_plain(),
            "protocol_text": self.protocol_text,
            "protocol_effective": self.protocol.to_yaml(),
            "protocol_sha256": sha256_text(self.protocol_text),
            "crop_size": self.crop_sizes[0][0],
            "store": {"path": str(store.path), "channels": store.channels,
                      "n_items": len(store), "image_size": list(store.image_size),
                      "dtype": str(store.dtype), "header_sha256": self.header_sha256},
            "config_sources": dict(self.resolved.sources),
            "config_warnings": list(self.resolved.warnings),
            "health_warnings": self._health_warnings(),
            "method": {"name": cfg.method, "hparams": dict(cfg.method_kwargs),
                       "effective_hparams": _plain(checks.method_hparams(self.method)),
                       "n_items": len(store), "batch_size": cfg.batch_size},
            "backbone": {"name": cfg.backbone, "kwargs": cfg.backbone_options(),
                         "in_channels": store.n_channels,
                         "out_dim": int(getattr(bb, "out_dim", 0))},
            "model": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": {"step": self.step, "total_steps": self.total,
                         "warmup_steps": self.warmup, "steps_per_epoch": self.spe,
                         "base_lr": self.base_lr},
            "epoch": self.step // self.spe,
            "step": self.step,
            "batch_in_epoch": self.step % self.spe,
            "finished": self.step >= self.total,
            "rng": _rng_state(self.generator, self.device),
            "last_loss": self.last_loss,
            "sampling": dict(self.sampling.record),
            "provenance": _plain(provenance(seed=cfg.seed, world_size=self.info.world_size,
                                     device=str(self.device), store=str(store.path),
                                     store_header_sha256=self.header_sha256,
                                     protocol_sha256=sha256_text(self.protocol_text))),
        }

    def _save(self) -> None:
        bad = [n for n, p in self.method.state_dict().items()
               if p.is_floating_point() and not torch.isfinite(p).all()]
        if bad:
            self._diverged(f"weights became non-finite ({', '.join(bad[:3])})")
        if self.info.is_main:
            save_checkpoint(self.ckpt_path, self._payload())
            self.saved_step = self.step
        barrier(self.info)

    def _diverged(self, what: str) -> None:
        epoch, batch = self.step // self.spe, self.step % self.spe
        recent = ", ".join(f"{v:.4g}" for v in self.recent) or "none"
        if self.ckpt_path.exists():
            kept = (f"the last good checkpoint (step {self.saved_step}) is kept at "
                    f"{self.ckpt_path}") if self.saved_step is not None else \
                f"the previous checkpoint is kept at {self.ckpt_path}"
        else:
            kept = "no checkpoint had been written yet"
        raise TrainingDiverged(
            f"training stopped: {what} at step {self.step + 1} (epoch {epoch + 1}, batch "
            f"{batch + 1}/{self.spe}); last losses: {recent}; {kept}",
            hint=f"lower --lr (now {self.cfg.lr:g} per 256 images), set --grad-clip, use --warmup-epochs, "
            "or check the data for NaN or constant images")

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> Path:
        self._prepare()
        self.saved_step: int | None = self.step if self.previous is not None else None
        self.recent: deque[float] = deque(maxlen=5)
        if self.previous is not None and self.step >= self.total:
            return self.out  # finished already
        if self.info.is_main:
            self._write_run_files()
            truncate_metrics(self.out / "metrics.csv", self.step)
            truncate_metrics(self.out / "knn.csv", self.step)
            # a fresh start writes its step-0 row again
            truncate_metrics(self.out / "rankme.csv", self.step if self.step else -1)
            self.logger: MetricsLogger | None = MetricsLogger(
                self.out, start_step=self.step, tensorboard=self.cfg.tensorboard)
            if self.rankme is not None:  # the untrained network's, for the end-of-run check
                if self.step == 0:
                    self._monitor_rankme(-1)
                self.rankme.start = start_rankme(self.out / "rankme.csv")
        else:
            self.logger = None
        barrier(self.info)
        try:
            self._loop()
            if self.info.is_main:
                for warning in self._health_warnings():
                    print(f"warning: {warning}", file=sys.stderr)
            if self.info.is_main and self.cfg.preview_views:  # ViTs: RUN/attention.png
                from bioaug.train.attention import write_attention

                write_attention(self.out / "attention.png", self.method.backbone, self.store,
                                self.cfg.preview_views, self.device)
        finally:
            if self.logger is not None:
                self.logger.close()
        return self.out

    def _loop(self) -> None:
        """Optimiser steps until the last, epoch by epoch (each epoch its own sampler)."""
        tools = self._step_tools()
        bar = progress(total=self.total, initial=self.step, desc="train", unit="step") \
            if self.info.is_main else None
        meter = _Throughput(self.cfg.batch_size)
        while self.step < self.total:
            epoch = self.step // self.spe
            meter.restart()
            for raw in self._epoch_loader(epoch, tools.dataset):
                done = self._step(raw, tools)
                self._record(epoch, done, meter, bar)
                if self._after_step(epoch):
                    break
        if bar is not None:
            bar.close()

    def _step_tools(self) -> _StepTools:
        """What every step uses: the (DDP-wrapped) loss, the trained parameters, autocast,
        this process's shard of the global batch."""
        cfg, info = self.cfg, self.info
        local_b = cfg.batch_size // info.world_size
        return _StepTools(
            loss_fn=wrap_ddp(self.method, info),
            dataset=StoreBatches(self.store.path),
            params=[p for p in self.method.parameters() if p.requires_grad],
            autocast=(torch.autocast("cuda", dtype=torch.bfloat16) if self.cuda and cfg.amp
                      else contextlib.nullcontext()),
            shard=slice(info.rank * local_b, (info.rank + 1) * local_b),
            image_shape=(self.store.n_channels, *self.store.image_size))

    def _epoch_loader(self, epoch: int, dataset: StoreBatches) -> Any:
        """The batches of ``epoch`` from the current step on (for this process)."""
        cfg, info = self.cfg, self.info
        sampler = self.sampling.sampler(seed=cfg.seed, epoch=epoch,
                                        start_batch=self.step % self.spe, rank=info.rank,
                                        world_size=info.world_size)
        workers = cfg.num_workers
        if workers is None:  # a batch is one memmap read: workers only pay on a GPU
            workers = 4 if self.cuda else 0
        return make_loader(dataset, sampler, num_workers=workers, pin_memory=self.cuda)

    def _step(self, raw: torch.Tensor, tools: _StepTools) -> _StepResult:
        """One optimiser step on the batch ``raw``: schedules, views, loss, backward,
        clipping, update. The step's views are let go of on return, so the pipeline writes
        the next step's into the same buffers instead of allocating new ones."""
        cfg, info = self.cfg, self.info
        lr = lr_at(self.step, self.base_lr, self.warmup, self.total)
        set_lr(self.optimizer, lr)
        set_weight_decay(self.decayed, weight_decay_at(
            self.step, self.total, cfg.weight_decay, cfg.weight_decay_end))
        self.method.before_step(self.step / self.total, self.step / self.spe)
        x = to_unit_float(raw.to(self.device, non_blocking=True), self.store.dtype)
        x, partner = split_pair(x, self.sampling.paired)
        aug = self.pipeline.sample(cfg.batch_size, tools.image_shape, self.generator,
                                   self.device)
        if info.distributed:
            aug = aug.select(tools.shard)
        views = self.make_views(x, partner, aug)
        if self.step == 0 and info.is_main and cfg.preview_views:
            self._write_views(x, views)
        if self.cuda and cfg.channels_last:
            views = [v.contiguous(memory_format=torch.channels_last) for v in views]
        with tools.autocast:
            out = tools.loss_fn(views)
        loss = out["loss"]
        loss_value = float(all_reduce_mean(loss.detach().float(), info))
        if not math.isfinite(loss_value):
            self._diverged(f"the loss became {loss_value}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = float(nn.utils.clip_grad_norm_(
            tools.params, cfg.grad_clip if cfg.grad_clip is not None else math.inf))
        if not math.isfinite(grad_norm):
            self._diverged(f"the gradient norm became {grad_norm}")
        self.method.before_optimizer_step()
        self.optimizer.step()
        self.step += 1
        self.method.after_step(self.step / self.total)
        extras = {k: float(v.detach().float()) for k, v in out.items()
                  if k != "loss" and torch.is_tensor(v) and v.numel() == 1}
        return _StepResult(lr, loss_value, grad_norm, extras)

    def _record(self, epoch: int, done: _StepResult, meter: _Throughput,
                bar: Any | None) -> None:
        """The step's loss in the recent history, metrics.csv / TensorBoard, the bar."""
        self.recent.append(done.loss)
        self.last_loss = done.loss
        inst, rate, elapsed = meter.tick()
        if self.logger is not None:
            self.logger.log({"step": self.step, "epoch": epoch, "loss": done.loss,
                             "lr": done.lr, "images_per_s": inst, "elapsed_s": elapsed,
                             "grad_norm": done.grad_norm, **done.extras})
        if bar is not None:
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{done.loss:.4f}", lr=f"{done.lr:.3g}",
                            img_s=f"{rate:.0f}")

    def _after_step(self, epoch: int) -> bool:
        """Checkpoint and monitor where due; whether the run is over."""
        cfg = self.cfg
        end_of_epoch = self.step % self.spe == 0
        last = self.step >= self.total
        if end_of_epoch or last:  # before the save, whose health warnings it may add to
            self._monitor_rankme(epoch)
        if end_of_epoch or last or (cfg.save_every_steps and self.step % cfg.save_every_steps == 0):
            self._save()
        if end_of_epoch:
            self._monitor(epoch)
        return self.step >= self.total

    def _write_views(self, x: torch.Tensor, views: list[torch.Tensor]) -> None:
        """``RUN/views.png``: the first images of step 1 and their views, as trained on."""
        from bioaug.augment.mosaic import write_mosaic
        from bioaug.augment.preview import view_columns

        n = min(self.cfg.preview_views, x.shape[0])
        write_mosaic(self.out / "views.png", [("original", x), *view_columns(views)],
                     self.store.channels, rows=n,
                     title=f"{self.protocol.name}: step 1, {n} of {x.shape[0]} images "
                     f"(seed {self.cfg.seed})")

    def _health_warnings(self) -> list[str]:
        """What the last steps say went wrong: the method's (DINO's collapse), then RankMe's."""
        return [*self.method.health_warnings(),
                *(self.rankme.health_warnings() if self.rankme is not None else [])]

    def _monitor_rankme(self, epoch: int) -> None:
        """RankMe of the backbone's features now: RUN/rankme.csv and TensorBoard."""
        if self.rankme is None:
            return
        self._log_monitor("rankme.csv", "rankme", self.rankme(self.method.backbone, self.device),
                          epoch)

    def _monitor(self, epoch: int) -> None:
        if self.knn is not None and (epoch + 1) % self.cfg.knn_every == 0:
            self._log_monitor("knn.csv", "knn_top1", self.knn(self.method.backbone, self.device),
                              epoch)
        barrier(self.info)

    def _log_monitor(self, file: str, column: str, value: float, epoch: int) -> None:
        """A monitor's value: TensorBoard (``monitor/COLUMN``) and a row of ``RUN/FILE``
        (step, epoch, COLUMN); the main process only."""
        if self.logger is None:
            return
        self.logger.log_scalar(f"monitor/{column}", value, self.step)
        with open(self.out / file, "a", encoding="utf-8") as fh:
            if fh.tell() == 0:
                fh.write(f"step,epoch,{column}\n")
            fh.write(f"{self.step},{epoch + 1},{value:.6g}\n")
