"""Which cells form a positive pair: a sampler the training loop is given.

A self-supervised method compares two views. By default both come from the same crop
(``same_cell``). With metadata, the second view can come from *another* cell that shares
what the screen says should not matter to a profile: the same well, or the same treatment
(compound and concentration), optionally on another plate. Cells of one treatment then
act as a weak label, as in WS-DINO (Cross et al. 2022, "Weakly supervised DINO for
profiling cell images", which takes the compound as the label), and pairing across plates
asks the encoder to ignore each plate's stain and illumination. Control cells (DMSO) are
one pooled group and always pair with controls of another plate.

The registry :data:`POSITIVES` (name → :class:`Positives`) is the one list of the
``--positives`` choices. :func:`build_pair_index` checks the obs columns a rule needs and
returns a :class:`PairIndex`, which draws one partner per anchor from a seeded generator;
:func:`paired_views` makes the views of a batch whose second (every odd) view comes from
the partners, so a method receives its views as always and never knows about pairing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from bioaug.errors import ConfigError, DataError, did_you_mean

#: Default columns of the store's obs (the BBBC021 layout).
TREATMENT_COLUMNS: tuple[str, ...] = ("compound", "concentration")
PLATE_COLUMN, WELL_COLUMN, CONTROL = "plate", "well", "compound=DMSO"


@dataclass(frozen=True)
class ObsColumns:
    """The obs columns that name a cell's treatment, plate and well, and the control query."""

    treatment: tuple[str, ...] = TREATMENT_COLUMNS
    plate: str = PLATE_COLUMN
    well: str = WELL_COLUMN
    control: tuple[str, str] | None = ("compound", "DMSO")

    @classmethod
    def from_config(cls, config: Any) -> ObsColumns:
        """From a :class:`~bioaug.train.config.TrainConfig` or its plain dict."""
        get = config.get if isinstance(config, Mapping) else lambda k, d=None: getattr(
            config, k, d)
        return cls(treatment=tuple(get("treatment_columns") or TREATMENT_COLUMNS),
                   plate=str(get("plate_column") or PLATE_COLUMN),
                   well=str(get("well_column") or WELL_COLUMN),
                   control=parse_control(get("control", CONTROL)))


def parse_control(text: str | None) -> tuple[str, str] | None:
    """``"compound=DMSO"`` → ``("compound", "DMSO")``; ``None``/``"none"``/``""`` → None."""
    if text is None or str(text).strip().lower() in ("", "none"):
        return None
    column, sep, value = str(text).partition("=")
    if not sep or not column.strip() or not value.strip():
        raise ConfigError(f"control must be COLUMN=VALUE (e.g. compound=DMSO) or none, not "
                          f"{text!r}")
    return column.strip(), value.strip()


@dataclass(frozen=True)
class Positives:
    """A rule for the second cell of a pair.

    ``group_by`` gives the columns whose values a pair shares (empty: the cell itself);
    ``other_plate``: the partner comes from another plate whenever the group has cells on
    more than one; ``controls_other_plate``: the same for control cells, which form one
    pooled group (``pool_controls``).
    """

    name: str
    description: str
    group_by: Callable[[ObsColumns], tuple[str, ...]]
    other_plate: bool = False
    controls_other_plate: bool = False
    pool_controls: bool = False

    def columns(self, cols: ObsColumns) -> tuple[str, ...]:
        """Every obs column the rule reads."""
        out = list(self.group_by(cols))
        if out and (self.other_plate or self.controls_other_plate) and cols.plate not in out:
            out.append(cols.plate)
        if self.pool_controls and cols.control is not None and cols.control[0] not in out:
            out.append(cols.control[0])
        return tuple(out)


def _treatment(cols: ObsColumns) -> tuple[str, ...]:
    return cols.treatment


#: name → rule: the ``--positives`` choices.
POSITIVES: dict[str, Positives] = {p.name: p for p in (
    Positives("same_cell", "two views of one crop (the usual self-supervised pair)",
              lambda cols: ()),
    Positives("same_well", "two cells of one well", lambda cols: (cols.plate, cols.well)),
    Positives("same_treatment", "two cells of one treatment (any plate; controls from "
              "another plate)", _treatment, controls_other_plate=True, pool_controls=True),
    Positives("same_treatment_other_plate", "two cells of one treatment, from different "
              "plates whenever the treatment is on several", _treatment, other_plate=True,
              controls_other_plate=True, pool_controls=True),
)}


def positive_names() -> list[str]:
    """The ``--positives`` choices, in registry order."""
    return list(POSITIVES)


def require_columns(obs: pd.DataFrame, columns: Sequence[str], why: str,
                    where: Any = None) -> None:
    """DataError naming each missing column, a close match and the columns there are."""
    have = [str(c) for c in obs.columns]
    missing = [c for c in columns if c not in obs.columns]
    if missing:
        close = "".join(did_you_mean(c, have) for c in missing)
        raise DataError(f"{why} needs obs column(s) {', '.join(repr(c) for c in missing)}"
                        f"{close}; the store's obs has: {', '.join(have) or '(no columns)'}",
                        where=where, hint="name the columns with --treatment-columns, "
                        "--plate-column, --well-column or --control")


def group_codes(obs: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """An integer per row, equal for rows with equal values in ``columns`` (NaN is a value).

    Codes follow the sorted values, so they do not depend on the row order."""
    if not columns:
        return np.arange(len(obs), dtype=np.int64)
    keys = obs[list(columns)].astype(str)
    return keys.groupby(list(columns), sort=True, dropna=False).ngroup().to_numpy(np.int64)


def control_mask(obs: pd.DataFrame, control: tuple[str, str] | None) -> np.ndarray:
    """Rows of the control (case-insensitive match of ``COLUMN=VALUE``)."""
    if control is None:
        return np.zeros(len(obs), dtype=bool)
    column, value = control
    return obs[column].astype(str).str.strip().str.lower().eq(value.lower()).to_numpy()


class PairIndex:
    """Draws one partner per anchor within its group, from another plate where asked.

    ``groups``: the group code of every item; ``plates``: its plate code; ``cross``: the
    items whose partner must come from another plate of their group when there is one.
    A group of one item pairs the item with itself.
    """

    def __init__(self, groups: np.ndarray, plates: np.ndarray, cross: np.ndarray) -> None:
        groups, plates = np.asarray(groups, np.int64), np.asarray(plates, np.int64)
        n = len(groups)
        self.order = np.lexsort((np.arange(n), plates, groups))  # by group, then plate
        rank = np.empty(n, np.int64)
        rank[self.order] = np.arange(n)
        self.pos = rank
        g_sorted, p_sorted = groups[self.order], plates[self.order]
        self.group_start = _run_start(g_sorted)[rank]
        self.group_size = _run_length(g_sorted)[rank]
        block = _run_start(g_sorted, p_sorted)
        self.block_start = block[rank]
        self.block_size = _run_length(g_sorted, p_sorted)[rank]
        self.cross = np.asarray(cross, bool) & (self.group_size > self.block_size)

    def __len__(self) -> int:
        return len(self.pos)

    def partners(self, anchors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One partner per anchor (the anchor itself only when its group has one item)."""
        a = np.asarray(anchors, np.int64)
        gs, gn = self.group_start[a], self.group_size[a]
        bs, bn = self.block_start[a], self.block_size[a]
        cross = self.cross[a]
        u = rng.random(len(a))
        # another plate: skip the anchor's own plate block; else: skip the anchor itself
        n_choice = np.where(cross, gn - bn, np.maximum(gn - 1, 1))
        r = np.minimum((u * n_choice).astype(np.int64), n_choice - 1)
        skip_at = np.where(cross, bs - gs, self.pos[a] - gs)
        skip_len = np.where(cross, bn, np.where(gn > 1, 1, 0))
        offset = r + np.where(r >= skip_at, skip_len, 0)
        return self.order[gs + np.minimum(offset, gn - 1)]


def _run_start(*keys: np.ndarray) -> np.ndarray:
    """For sorted keys: the index where each element's run of equal keys starts."""
    n = len(keys[0])
    new = np.ones(n, bool)
    if n > 1:
        new[1:] = np.any([k[1:] != k[:-1] for k in keys], axis=0)
    return np.maximum.accumulate(np.where(new, np.arange(n), 0))


def _run_length(*keys: np.ndarray) -> np.ndarray:
    """For sorted keys: the length of each element's run of equal keys."""
    start = _run_start(*keys)
    n = len(start)
    ends = np.append(np.flatnonzero(np.diff(start)) + 1, n)
    lengths = np.diff(np.append(0, ends))
    return np.repeat(lengths, lengths)


def build_pair_index(obs: pd.DataFrame, positives: str, cols: ObsColumns,
                     where: Any = None) -> PairIndex | None:
    """The pair index of rule ``positives`` on ``obs`` (None for ``same_cell``)."""
    rule = POSITIVES.get(positives)
    if rule is None:
        raise ConfigError(f"unknown positives '{positives}'"
                          f"{did_you_mean(positives, POSITIVES)}; known: "
                          f"{', '.join(POSITIVES)}")
    group_cols = rule.group_by(cols)
    if not group_cols:
        return None
    require_columns(obs, rule.columns(cols), f"--positives {positives}", where)
    groups = group_codes(obs, group_cols)
    controls = control_mask(obs, cols.control) if rule.pool_controls else \
        np.zeros(len(obs), bool)
    if controls.any():
        groups = np.where(controls, groups.max() + 1, groups)
    needs_plate = rule.other_plate or rule.controls_other_plate
    plates = group_codes(obs, [cols.plate]) if needs_plate else np.zeros(len(obs), np.int64)
    cross = np.full(len(obs), rule.other_plate) | (controls & rule.controls_other_plate)
    return PairIndex(groups, plates, cross)


def pair_rng(seed: int, epoch: int, batch: int) -> np.random.Generator:
    """The generator of the partners of one global batch: a function of its position only,
    so every rank, and a resumed run, draws the same partners."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), int(batch),
                                                         0x9A125]))


def positive_columns(config: Any) -> list[str]:
    """The obs columns whose values the run's positives share (its weak labels)."""
    name = (config.get("positives") if isinstance(config, Mapping)
            else getattr(config, "positives", None)) or "same_cell"
    rule = POSITIVES.get(str(name))
    if rule is None:
        return []
    cols = ObsColumns.from_config(config)
    return list(rule.group_by(cols))


# -- views -------------------------------------------------------------------------------
class PairedViews:
    """Views of a batch of pairs: even views from the anchors, odd views from the partners.

    Each half of the protocol's views runs as its own pipeline on its own cells, with the
    parameters drawn for the whole protocol, so the draws (and a run's reproducibility)
    do not change with pairing and no view is computed twice.
    """

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self._halves: list[Any] | None = None

    @property
    def halves(self) -> list[Any]:
        """The even and the odd views as two pipelines (built on first use)."""
        if self._halves is None:
            build, views = type(self.pipeline), list(self.pipeline.views)
            self._halves = [build(self.pipeline.protocol, views[k::2], self.pipeline.n_channels)
                            for k in (0, 1)]
        return self._halves

    def __call__(self, x: torch.Tensor, partner: torch.Tensor | None,
                 params: Any) -> list[torch.Tensor]:
        if partner is None:
            return self.pipeline.apply(x, params)
        outs = [half.apply(src, _params_of(params, k)) if half.views else []
                for k, (half, src) in enumerate(zip(self.halves, (x, partner), strict=True))]
        merged: list[torch.Tensor] = []
        for v in range(len(params.views)):
            merged.append(outs[v % 2][v // 2])
        return merged


def _params_of(params: Any, half: int) -> Any:
    """The drawn parameters of every other view, starting at view ``half``."""
    return type(params)(batch_size=params.batch_size, image_shape=params.image_shape,
                        views=list(params.views[half::2]))


def split_pair(x: torch.Tensor, paired: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A loader batch → (anchors, partners); a batch of pairs holds anchors then partners."""
    if not paired:
        return x, None
    anchors, partners = x.chunk(2)
    return anchors, partners
