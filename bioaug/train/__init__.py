"""Self-supervised training: ``train(TrainConfig) -> run directory``.

* :mod:`bioaug.train.config` — :class:`TrainConfig`, the run configuration (CLI + YAML).
* :mod:`bioaug.train.resolve` — the method's recipe under the user's options, with the
  source of every value and warnings for settings that cannot work.
* :mod:`bioaug.train.loop` — :func:`train`, the loop (single process or under torchrun).
* :mod:`bioaug.train.checkpoint` — checkpoints and :func:`load_trained`.
* :mod:`bioaug.train.checks` — every input check made before training starts.
* :mod:`bioaug.train.data` — whole-batch reads from the memory-mapped store.
* :mod:`bioaug.train.optim` — SGD/LARS/AdamW and the warm-up + cosine schedule.
* :mod:`bioaug.train.distributed` — joining the process group, DDP wrapping.
* :mod:`bioaug.train.knn` — the kNN monitor; :mod:`bioaug.train.metrics` — CSV/TensorBoard.

Names are imported lazily, so ``from bioaug.train.checkpoint import load_trained`` does
not import the augmentation engine.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "bioaug.train.config",
    "load_config": "bioaug.train.config",
    "train": "bioaug.train.loop",
    "resolve_run": "bioaug.train.loop",
    "resolve": "bioaug.train.resolve",
    "ResolvedConfig": "bioaug.train.resolve",
    "TrainingDiverged": "bioaug.train.loop",
    "load_trained": "bioaug.train.checkpoint",
    "Trained": "bioaug.train.checkpoint",
    "read_checkpoint": "bioaug.train.checkpoint",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bioaug.train' has no attribute {name!r}")
