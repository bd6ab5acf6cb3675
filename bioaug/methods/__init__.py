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
``mae``            He et al. 2022 (MAE; one view, Vision Transformer backbones only)
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
    :func:`lookup_method` returned), defaults filled in.

    Parameters
    ----------
    method
        A registered method name, or its class.
    **hparams
        Hyperparameters of the method's ``Config``; None counts as not given.

    Returns
    -------
    MethodConfig
        The method's ``Config`` (a frozen pydantic model). An unknown name or a value out of
        range is a ConfigError naming the field.

    Examples
    --------
    >>> from bioaug.methods import method_config
    >>> config = method_config("moco_v2", temperature=0.1, queue_size=None)
    >>> config.temperature, config.queue_size
    (0.1, 65536)
    >>> method_config("moco_v2", temperature=0)
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: method 'moco_v2': temperature: must be more than 0.0 (got 0)
    """
    cls = _method_class(method)
    return validate_config(cls.name, cls.Config, _given(hparams))


def build_method(method: str | type[Method], backbone: nn.Module, **hparams: Any) -> Method:
    """Build ``method`` (a name or its class) around ``backbone`` with validated ``hparams``.

    Parameters
    ----------
    method
        A registered method name, or its class.
    backbone
        An encoder with an integer ``out_dim`` (see :func:`bioaug.models.build_backbone`).
    **hparams
        Hyperparameters of the method's ``Config`` (:func:`method_config`).

    Returns
    -------
    Method
        The method, its projector (and momentum encoder, queue …) built around ``backbone``.

    Examples
    --------
    >>> import torch
    >>> from bioaug.methods import build_method
    >>> from bioaug.models import build_backbone
    >>> _ = torch.manual_seed(0)
    >>> backbone = build_backbone("vgg_mnist", in_channels=1, width=0.25)
    >>> method = build_method("simclr", backbone, proj_hidden_dim=64, proj_output_dim=16)
    >>> views = [torch.rand(4, 1, 28, 28), torch.rand(4, 1, 28, 28)]
    >>> out = method.training_loss(views)
    >>> sorted(out), bool(out["loss"] > 0)
    (['loss', 'pos_cosine'], True)
    >>> tuple(method.embed(views[0], layer="projection").shape)
    (4, 16)
    """
    cls = _method_class(method)
    return cls(backbone, method_config(cls, **hparams))


def _method_class(method: str | type[Method]) -> type[Method]:
    """The class of ``method``: looked up by name once, or given already."""
    return method if isinstance(method, type) else lookup_method(method)


def _given(hparams: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in hparams.items() if value is not None}
