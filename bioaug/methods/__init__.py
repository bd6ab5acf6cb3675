"""Self-supervised methods: a registry of :class:`~bioaug.methods.base.Method` classes.

=================  ================================================================
name               paper
=================  ================================================================
``moco_v2``        He et al. 2020 (MoCo); Chen et al. 2020 (MoCo v2)
``simclr``         Chen et al. 2020 (SimCLR)
``byol``           Grill et al. 2020 (BYOL)
``barlow_twins``   Zbontar et al. 2021 (Barlow Twins)
``vicreg``         Bardes, Ponce, LeCun 2022 (VICReg)
=================  ================================================================

``build_method(name, backbone, **hparams)`` validates ``hparams`` against the method's
pydantic ``Config`` (unknown names and out-of-range values are a ConfigError). A
hyperparameter given as ``None`` counts as not given (its default is used).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from bioaug.errors import ConfigError, unknown_choice
from bioaug.methods.barlow_twins import BarlowTwins
from bioaug.methods.base import Method, MethodConfig, validate_config
from bioaug.methods.byol import BYOL
from bioaug.methods.moco_v2 import MoCoV2
from bioaug.methods.simclr import SimCLR
from bioaug.methods.vicreg import VICReg

__all__ = [
    "METHODS",
    "Method",
    "MethodConfig",
    "build_method",
    "method_config",
    "method_names",
]

METHODS: dict[str, type[Method]] = {
    "moco_v2": MoCoV2,
    "simclr": SimCLR,
    "byol": BYOL,
    "barlow_twins": BarlowTwins,
    "vicreg": VICReg,
}


def method_names() -> list[str]:
    """The names :func:`build_method` accepts, sorted."""
    return sorted(METHODS)


def method_config(name: str, **hparams: Any) -> MethodConfig:
    """The validated hyperparameters of method ``name`` (defaults filled in)."""
    return validate_config(name, _lookup(name).Config, _given(hparams))


def build_method(name: str, backbone: nn.Module, **hparams: Any) -> Method:
    """Build method ``name`` around ``backbone`` with validated ``hparams``."""
    cls = _lookup(name)
    return cls(backbone, validate_config(name, cls.Config, _given(hparams)))


def _given(hparams: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in hparams.items() if value is not None}


def _lookup(name: str) -> type[Method]:
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise ConfigError(unknown_choice("method", str(name), METHODS)) from None
