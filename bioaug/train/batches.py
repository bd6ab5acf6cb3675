"""What a global batch is made of: ``--batches random | plate_balanced | per_treatment K``.

- ``random``: a permutation of the store per epoch, cut into batches (the default).
- ``plate_balanced``: every batch draws evenly from the plates (counts differ by at most
  one; the plates that get one more rotate), interleaved so that each process's share of
  the batch is balanced too. Each plate is read in its own shuffled order and starts a new
  one when it runs out, so a small plate is seen more often than once per epoch and a
  large one less.
- ``per_treatment K``: every batch holds ``batch_size / K`` distinct treatments with K
  cells each (a treatment with fewer than K cells repeats them). Treatments are chosen
  in proportion to the groups of K they have left, so an epoch covers the store about once.
  The K cells of a treatment sit together, so a per-process batch that is a multiple of K
  keeps them on one process.

An epoch is a ``(steps, batch_size)`` array of item indices and a function of ``(seed,
epoch)`` only: every process computes the same global batches and reads its slice
(:class:`bioaug.train.data.EpochBatchSampler`), and a resumed run continues exactly.
Every composition gives ``len(store) // batch_size`` batches per epoch, the number the
learning-rate schedule is fitted to.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bioaug.errors import ConfigError, did_you_mean
from bioaug.train.pairs import (
    POSITIVES,
    ObsColumns,
    group_codes,
    positive_columns,
    require_columns,
)


@dataclass(frozen=True)
class EpochInputs:
    """What a composition draws from: sizes, the seed's generator and the items' groups."""

    n_items: int
    batch_size: int
    n_batches: int
    rng: np.random.Generator
    groups: np.ndarray | None
    k: int | None


@dataclass(frozen=True)
class Composition:
    """A batch composition: what it needs from obs and how it draws an epoch."""

    name: str
    description: str
    needs: Callable[[ObsColumns], tuple[str, ...]]
    draw: Callable[[EpochInputs], np.ndarray]
    takes_k: bool = False


def _random(inp: EpochInputs) -> np.ndarray:
    perm = inp.rng.permutation(inp.n_items)
    return perm[:inp.n_batches * inp.batch_size].reshape(inp.n_batches, inp.batch_size)


class _Streams:
    """Per group, its items in a shuffled order that restarts (reshuffled) when used up."""

    def __init__(self, groups: np.ndarray, rng: np.random.Generator) -> None:
        self.rng = rng
        self.members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
        self.queues = [rng.permutation(m) for m in self.members]
        self.at = [0] * len(self.members)

    def take(self, g: int, n: int) -> np.ndarray:
        out: list[np.ndarray] = []
        while n > 0:
            if self.at[g] >= len(self.queues[g]):
                self.queues[g], self.at[g] = self.rng.permutation(self.members[g]), 0
            part = self.queues[g][self.at[g]:self.at[g] + n]
            self.at[g] += len(part)
            n -= len(part)
            out.append(part)
        return np.concatenate(out)


def _plate_balanced(inp: EpochInputs) -> np.ndarray:
    assert inp.groups is not None
    streams = _Streams(inp.groups, inp.rng)
    n_plates = len(streams.members)
    order = inp.rng.permutation(n_plates)  # which plate gets one more rotates from here
    base, extra = divmod(inp.batch_size, n_plates)
    batches = np.empty((inp.n_batches, inp.batch_size), np.int64)
    for b in range(inp.n_batches):
        more = {int(order[(b * extra + j) % n_plates]) for j in range(extra)}
        parts = [streams.take(p, base + (p in more)) for p in range(n_plates)]
        # round robin over the plates, so every slice of the batch is balanced
        key = np.concatenate([np.arange(len(part)) * n_plates + np.flatnonzero(order == p)[0]
                              for p, part in enumerate(parts)])
        batches[b] = np.concatenate(parts)[np.argsort(key, kind="stable")]
    return batches


def _per_treatment(inp: EpochInputs) -> np.ndarray:
    assert inp.groups is not None and inp.k is not None
    k, per_batch = inp.k, inp.batch_size // inp.k
    streams = _Streams(inp.groups, inp.rng)
    n_groups = len(streams.members)
    left = np.array([-(-len(m) // k) for m in streams.members], np.float64)
    batches = np.empty((inp.n_batches, inp.batch_size), np.int64)
    for b in range(inp.n_batches):
        if (left > 0).sum() < per_batch:  # a new pass over the treatments that ran out
            left = np.where(left > 0, left, [-(-len(m) // k) for m in streams.members])
        chosen = inp.rng.choice(n_groups, size=per_batch, replace=False, p=left / left.sum())
        left[chosen] -= 1
        batches[b] = np.concatenate([streams.take(int(g), k) for g in chosen])
    return batches


#: name → composition: the ``--batches`` choices.
BATCHES: dict[str, Composition] = {c.name: c for c in (
    Composition("random", "a shuffled store cut into batches", lambda cols: (), _random),
    Composition("plate_balanced", "every batch draws evenly from the plates",
                lambda cols: (cols.plate,), _plate_balanced),
    Composition("per_treatment", "K cells of each of batch_size / K treatments",
                lambda cols: cols.treatment, _per_treatment, takes_k=True),
)}


def batches_help() -> str:
    """``random | plate_balanced | per_treatment K`` from the registry."""
    return " | ".join(f"{c.name} K" if c.takes_k else c.name for c in BATCHES.values())


@dataclass(frozen=True)
class BatchSpec:
    """A parsed ``--batches`` value."""

    name: str
    k: int | None = None

    def __str__(self) -> str:
        return f"{self.name} {self.k}" if self.k is not None else self.name


def parse_batches(value: Any) -> BatchSpec:
    """``"per_treatment 4"`` / ``"per_treatment:4"`` / ``"random"`` → :class:`BatchSpec`."""
    words = [w for w in re.split(r"[\s:=]+", str(value).strip()) if w]
    name = words[0] if words else ""
    comp = BATCHES.get(name)
    if comp is None:
        raise ConfigError(f"unknown batch composition '{value}'{did_you_mean(name, BATCHES)}"
                          f"; use {batches_help()}")
    if not comp.takes_k:
        if len(words) > 1:
            raise ConfigError(f"--batches {name} takes no number (got {value!r})")
        return BatchSpec(name)
    if len(words) != 2 or not words[1].isdigit() or int(words[1]) < 1:
        raise ConfigError(f"--batches {name} needs a count of cells per treatment, e.g. "
                          f"'{name} 4' (got {value!r})")
    return BatchSpec(name, int(words[1]))


class BatchPlan:
    """The global batches of every epoch for one store, composition and batch size."""

    def __init__(self, spec: BatchSpec, n_items: int, batch_size: int,
                 groups: np.ndarray | None = None) -> None:
        if spec.k is not None and batch_size % spec.k:
            raise ConfigError(f"--batches {spec}: the batch size {batch_size} is not a "
                              f"multiple of {spec.k}")
        n_groups = len(np.unique(groups)) if groups is not None else 0
        if spec.k is not None and n_groups < batch_size // spec.k:
            raise ConfigError(f"--batches {spec} with batch size {batch_size} needs "
                              f"{batch_size // spec.k} treatments per batch; the store has "
                              f"{n_groups}", hint="use a larger K or a smaller batch (at most "
                              f"{n_groups * spec.k})")
        self.spec, self.n_items, self.batch_size = spec, n_items, batch_size
        self.groups = groups
        self.n_batches = n_items // batch_size
        self._cache: tuple[tuple[int, int], np.ndarray] | None = None

    def epoch(self, seed: int, epoch: int) -> np.ndarray:
        """``(n_batches, batch_size)`` item indices of ``epoch`` (cached for the last one)."""
        if self._cache is not None and self._cache[0] == (seed, epoch):
            return self._cache[1]
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), 0xB10A]))
        inp = EpochInputs(self.n_items, self.batch_size, self.n_batches, rng, self.groups,
                          self.spec.k)
        out = BATCHES[self.spec.name].draw(inp)
        self._cache = ((seed, epoch), out)
        return out


def build_batch_plan(obs: pd.DataFrame, batches: Any, cols: ObsColumns, batch_size: int,
                     where: Any = None) -> BatchPlan:
    """The plan of ``--batches`` on a store's obs (its columns checked)."""
    spec = batches if isinstance(batches, BatchSpec) else parse_batches(batches)
    needs = BATCHES[spec.name].needs(cols)
    groups = None
    if needs:
        require_columns(obs, needs, f"--batches {spec}", where)
        groups = group_codes(obs, needs)
    return BatchPlan(spec, len(obs), batch_size, groups)


def sampling_record(config: Any) -> dict[str, Any]:
    """What a run's pairs and batches read, from its config (a TrainConfig or plain dict).

    ``obs_columns``: every obs column read; ``positive_columns``: those whose values a
    positive pair shares — a weak label that an evaluation must leave out (WS-DINO, Cross
    et al. 2022, is scored by NSC / NSCB for that reason).
    """
    get = config.get if isinstance(config, dict) else lambda k, d=None: getattr(config, k, d)
    cols = ObsColumns.from_config(config)
    positives = str(get("positives") or "same_cell")
    spec = parse_batches(get("batches") or "random")
    rule = POSITIVES.get(positives)
    pair_cols = list(rule.columns(cols)) if rule is not None else []
    return {"positives": positives, "batches": str(spec),
            "obs_columns": list(dict.fromkeys([*pair_cols, *BATCHES[spec.name].needs(cols)])),
            "positive_columns": positive_columns(config)}
