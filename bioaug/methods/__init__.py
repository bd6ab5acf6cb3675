"""Self-supervised methods: a registry of :class:`~bioaug.methods.base.Method` classes.

=================  ================================================================
name               paper
=================  ================================================================
``moco_v2``        He et al. 2020 (MoCo); Chen et al. 2020 (MoCo v2)
``simclr``         Chen et al. 2020 (SimCLR)
``byol``           Grill et al. 2020 (BYOL)
``barlow_twins``   Zbontar et al. 2021 (Barlow Twins)
``vicreg``         Bardes, Ponce, LeCun 2022 (VICReg)
``dino``           Caron et al. 2021 (DINO; any number of views: multi-crop)
=================  ================================================================

Every module of this package is imported here, and a method module registers its class
with :func:`~bioaug.methods.registry.register_method`: a new method is one new file (plus
its test), and every list of names comes from :data:`METHODS`.

``build_method(name, backbone, **hparams)`` validates ``hparams`` against the method's
pydantic ``Config`` (unknown names and out-of-range values are a ConfigError). A
hyperparameter given as ``None`` counts as not given (its default is used). Each method
also carries its training recipe (``METHODS[name].recipe``, see
:mod:`bioaug.methods.recipe`).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from torch import nn

from bioaug.methods.base import Method, MethodConfig, validate_config
from bioaug.methods.recipe import Recipe
from bioaug.methods.registry import METHODS, lookup_method, method_names, register_method

__all__ = [
    "METHODS",
    "Method",
    "MethodConfig",
    "Recipe",
    "build_method",
    "lookup_method",
    "method_config",
    "method_names",
    "register_method",
]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def method_config(method: str | type[Method], **hparams: Any) -> MethodConfig:
    """The validated hyperparameters of ``method`` (a name or the class
    :func:`lookup_method` returned), defaults filled in."""
    cls = _method_class(method)
    return validate_config(cls.name, cls.Config, _given(hparams))


def build_method(method: str | type[Method], backbone: nn.Module, **hparams: Any) -> Method:
    """Build ``method`` (a name or its class) around ``backbone`` with validated ``hparams``."""
    cls = _method_class(method)
    return cls(backbone, method_config(cls, **hparams))


def _method_class(method: str | type[Method]) -> type[Method]:
    """The class of ``method``: looked up by name once, or given already."""
    return method if isinstance(method, type) else lookup_method(method)


def _given(hparams: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in hparams.items() if value is not None}
