"""Resolve a run configuration: the method's recipe under the user's choices.

:func:`resolve` turns a :class:`~bioaug.train.config.TrainConfig` whose optimiser options
may be ``None`` ("use the method's recipe") into a :class:`ResolvedConfig`: every option
filled in, the method's hyperparameters complete, the run length in steps, and for every
value where it came from:

=================================  =========================================================
source                             meaning
=================================  =========================================================
``recipe``                         the method's recipe (``Method.recipe``, its Config defaults)
``run file``                       the YAML given with ``--config``
``command line``                   a ``bioaug train`` option
``python``                         given to ``TrainConfig(...)`` by a script
``default``                        the TrainConfig default (options that are not the recipe's)
=================================  =========================================================

It also lists the settings that cannot work for the run's length (a momentum encoder that
would stay mostly random, a warm-up as long as the run, a queue that never fills): the
training loop prints them once at the start and ``bioaug train --print-config`` shows them.
The loop applies whatever is resolved; nothing here or there depends on a method's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from bioaug.methods import Method, method_config
from bioaug.methods.recipe import Recipe
from bioaug.methods.registry import lookup_method
from bioaug.train.config import RECIPE_FIELDS, SOURCE_RECIPE, TrainConfig
from bioaug.train.data import steps_per_epoch

__all__ = ["ResolvedConfig", "resolve"]


@dataclass(frozen=True)
class ResolvedConfig:
    """A run configuration with every value known, and where each came from."""

    config: TrainConfig
    """Every recipe option set; ``method_kwargs`` holds every method hyperparameter."""
    sources: dict[str, str]
    """Option (or ``method_kwargs.KEY``) → its source (see the module docstring)."""
    n_items: int
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    effective_lr: float
    """The peak learning rate the optimiser uses (``lr`` scaled to the global batch)."""
    warnings: list[str] = field(default_factory=list)

    def to_plain(self) -> dict[str, Any]:
        """The resolved options as plain YAML/JSON types (what ``RUN/config.yaml`` holds)."""
        return self.config.to_plain()

    def describe(self) -> str:
        """The resolved config as YAML (a valid run file), each value's source as a comment,
        then the derived schedule and the warnings."""
        plain = self.to_plain()
        rows: list[tuple[str, str]] = []
        for key, value in plain.items():
            if isinstance(value, dict) and value:
                rows.append((f"{key}:", ""))
                for sub, v in value.items():
                    rows.append((f"  {_yaml_line(sub, v)}", self.sources.get(f"{key}.{sub}", "")))
            else:
                rows.append((_yaml_line(key, value), self.sources.get(key, "")))
        width = max(len(text) for text, _ in rows) + 2
        lines = ["# resolved run configuration (value  # where it came from)"]
        lines += [f"{text:<{width}}# {src}" if src else text for text, src in rows]
        cfg = self.config
        lines.append(
            f"# schedule: {self.n_items} items, {self.steps_per_epoch} steps/epoch, "
            f"{self.total_steps} steps, warm-up {self.warmup_steps} steps, peak lr "
            f"{self.effective_lr:.4g} ({cfg.lr:g} × batch {cfg.batch_size}, "
            f"{cfg.lr_scaling} scaling)")
        lines += [f"# warning: {w}" for w in self.warnings]
        return "\n".join(lines) + "\n"


def _yaml_line(key: str, value: Any) -> str:
    return yaml.safe_dump({key: value}, default_flow_style=True, width=10**6).strip()[1:-1]


def resolve(config: TrainConfig, n_items: int, *,
            method_cls: type[Method] | None = None) -> ResolvedConfig:
    """Fill ``config``'s unset options from the method's recipe, for ``n_items`` per epoch.

    Parameters
    ----------
    config
        The run configuration (optimiser options ``None`` = the method's recipe).
    n_items
        Items in the training store (one epoch); at least one global batch.
    method_cls
        The method's class when the caller looked it up already
        (:func:`bioaug.train.checks.check_names`); otherwise looked up from ``config``.

    Returns
    -------
    ResolvedConfig
        The filled-in config, the source of each value, the schedule and the warnings.
        Unknown methods, invalid hyperparameters and impossible sizes (MoCo's queue) are a
        :class:`~bioaug.errors.ConfigError`.
    """
    cls = method_cls or lookup_method(config.method)
    recipe: Recipe = cls.recipe
    sources = config.sources()
    update: dict[str, Any] = {}
    for name in RECIPE_FIELDS:
        if name != "warmup_epochs" and getattr(config, name) is None:
            update[name] = getattr(recipe, name)
            sources[name] = SOURCE_RECIPE
    spe = steps_per_epoch(n_items, config.batch_size)
    total = config.epochs * spe
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    if config.warmup_epochs is None:
        warm = min(recipe.warmup_fraction * total / max(spe, 1), recipe.warmup_max_epochs)
        update["warmup_epochs"] = round(warm, 6)
        sources["warmup_epochs"] = (f"{SOURCE_RECIPE} ({recipe.warmup_fraction:.0%} of the "
                                    f"run, at most {recipe.warmup_max_epochs:g} epochs)")
    hparams = method_config(cls, **config.method_kwargs)
    update["method_kwargs"] = hparams.model_dump(mode="json")
    for key in update["method_kwargs"]:
        if config.method_kwargs.get(key) is None:  # None counts as not given
            sources[f"method_kwargs.{key}"] = SOURCE_RECIPE
    resolved = config.model_copy(update=update)
    warmup_steps = round(float(resolved.warmup_epochs) * spe)
    warnings = cls.run_warnings(hparams, n_items=n_items, batch_size=config.batch_size,
                                total_steps=total)
    warnings += _schedule_warnings(resolved, warmup_steps, total, spe)
    return ResolvedConfig(config=resolved, sources=sources, n_items=n_items,
                          steps_per_epoch=spe, total_steps=total, warmup_steps=warmup_steps,
                          effective_lr=resolved.effective_lr(), warnings=warnings)


def _schedule_warnings(cfg: TrainConfig, warmup_steps: int, total: int, spe: int) -> list[str]:
    if warmup_steps <= total // 2:
        return []
    fix = f"use --warmup-epochs {0.1 * total / spe:.3g} (10% of the run) or train longer"
    if warmup_steps >= total:
        return [f"the warm-up ({warmup_steps} steps, {cfg.warmup_epochs:g} epochs) is as long as "
                f"the run ({total} steps): the learning rate never reaches its peak; {fix}"]
    return [f"the warm-up ({warmup_steps} steps, {cfg.warmup_epochs:g} epochs) is more than "
            f"half of the run ({total} steps): little training happens at the peak learning "
            f"rate; {fix}"]
