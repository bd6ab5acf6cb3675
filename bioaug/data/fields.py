"""The one thing every image source becomes before preparation: a :class:`FieldSet`.

An adapter (BBBC021's two CSVs in :mod:`bioaug.data.bbbc021`, a CellProfiler LoadData CSV
in :mod:`bioaug.data.loaddata`) turns its tables into a FieldSet: one row per field (an
imaged site) with its plate, the image plane of every channel, the metadata each crop
carries into ``obs.csv``, and optionally the cell centres (a locations table), a label
mask per field, or the given illumination function of every channel of each field. :func:`bioaug.data.prepare.prepare_fields` then runs the single
preparation path (illumination, scaling, nuclei, crops) on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bioaug.data.images import FIELD_DTYPES, PlaneSource
from bioaug.errors import ConfigError, DataError

#: Illumination correction: functions given with the data (CellProfiler's, divided out),
#: computed per plate and channel (a smoothed mean image), or none.
ILLUM_MODES: tuple[str, ...] = ("given", "compute", "none")
#: Per-crop columns added by preparation (the rest come from the field's metadata).
CELL_COLUMNS: tuple[str, ...] = ("center_x", "center_y", "nucleus_area")


@dataclass
class FieldSet:
    """Fields to prepare, whatever their source (see the module docstring).

    ``fields`` and ``obs`` share one index (the field id); ``fields`` has at least a
    ``plate`` column. ``sources`` holds the planes of each field whose files all exist;
    ``missing`` a message for each field that lacks a file. ``centres`` (``(n, 2)`` as
    (y, x), with ``centre_lines``: the line of each in ``centres_file``) or ``masks`` (a
    label image per field) replace nucleus detection on ``nuclei_channel``.
    ``illum_mode`` is how fields are corrected for uneven illumination (see
    :data:`ILLUM_MODES`); with ``given``, ``illum`` holds the illumination function of
    every channel of each field in ``sources``.
    """

    dataset: str
    channels: list[str]
    fields: pd.DataFrame
    obs: pd.DataFrame
    sources: dict[Any, tuple[PlaneSource, ...]]
    missing: dict[Any, str]
    where: Path
    label_column: str | None = None
    columns: list[str] | None = None
    nuclei_channel: int = 0
    dtypes: tuple[str, ...] = FIELD_DTYPES
    centres: dict[Any, np.ndarray] | None = None
    centre_lines: dict[Any, np.ndarray] | None = None
    centres_file: Path | None = None
    masks: dict[Any, PlaneSource] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    missing_hint: str | None = None
    illum_mode: str = "compute"
    illum: dict[Any, tuple[PlaneSource, ...]] | None = None

    @property
    def obs_columns(self) -> list[str]:
        """The final column order of ``obs.csv``."""
        return list(self.columns) if self.columns else [*self.obs.columns, *CELL_COLUMNS]

    @property
    def detection(self) -> str:
        """How cells are found: ``nuclei`` (thresholding), ``locations`` or ``masks``."""
        if self.masks is not None:
            return "masks"
        return "locations" if self.centres is not None else "nuclei"


def plate_sort_key(name: str) -> tuple[int, str]:
    """Plates in a natural order: ``Week2`` before ``Week10``, then by name."""
    m = re.match(r"Week(\d+)", str(name))
    return (int(m.group(1)) if m else 10**6, str(name))


def parse_shard(text: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"I/N"`` → ``(I, N)`` with ``0 ≤ I < N`` (a clear error otherwise)."""
    if text is None:
        return None
    if isinstance(text, tuple):
        i, n = text
    else:
        m = re.fullmatch(r"\s*(-?\d+)\s*/\s*(-?\d+)\s*", str(text))
        if not m:
            raise ConfigError(f"--shard {text!r}: expected I/N, e.g. 0/4 (the first of 4)")
        i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard {i}/{n}: need 0 ≤ I < N (shards are numbered from 0)")
    return int(i), int(n)


def shard_plates(plates: list[str], shard: tuple[int, int] | None) -> list[str]:
    """The contiguous block of ``plates`` that shard ``I/N`` prepares (all without a shard).

    Blocks keep the plate order, so stores of shards 0 … N-1 merged in that order hold the
    items in the order of one full preparation.
    """
    if shard is None:
        return list(plates)
    i, n = shard
    if n > len(plates):
        raise ConfigError(f"--shard {i}/{n}: the screen has only {len(plates)} plate(s); "
                          f"use at most {len(plates)} shards")
    k = len(plates)
    return list(plates[i * k // n:(i + 1) * k // n])


def select_plates(fields: pd.DataFrame, plates: list[str] | None, where: Path) -> pd.DataFrame:
    """Keep the fields of ``plates`` (exact names; an unknown name is an error)."""
    if not plates:
        return fields
    from bioaug.errors import unknown_choice

    known = sorted(fields["plate"].astype(str).unique(), key=plate_sort_key)
    for name in plates:
        if str(name) not in known:
            raise DataError(unknown_choice("plate", str(name), known), where=where)
    return fields[fields["plate"].astype(str).isin([str(p) for p in plates])]
