"""Backbones: encoders mapping image crops ``(B, C, H, W)`` to feature vectors ``(B, D)``.

Every backbone is built by name through :func:`build_backbone` and exposes ``out_dim``
(the feature width ``D``). The registry :data:`BACKBONES` maps a name to a builder
function whose keyword arguments are the backbone's options:

========================  ==================================================  ==========
name                      options                                             out_dim
========================  ==================================================  ==========
``vgg13_bn``              ``width`` (channel multiplier, default 1.0)          512·width
``vgg_mnist``             ``width`` (channel multiplier, default 1.0)          128·width
``resnet18``              ``cifar_stem`` (3×3 stride-1 stem, no max-pool)      512
``resnet50``              ``cifar_stem``                                        2048
``resnet101_supervised``  ``weights`` (file), ``channel_map``, ``input_size``  2048 (×C)
========================  ==================================================  ==========

Options passed as ``None`` count as "not given" (so a command line can forward every
option it knows without checking which backbone uses it); any other option a backbone
does not take is a :class:`~bioaug.errors.ConfigError`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from bioaug.errors import ConfigError, did_you_mean, unknown_choice
from bioaug.models.resnet import resnet18, resnet50
from bioaug.models.supervised import resnet101_supervised
from bioaug.models.vgg import vgg13_bn, vgg_mnist

__all__ = [
    "BACKBONES",
    "backbone_names",
    "backbone_options",
    "build_backbone",
]

BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "vgg13_bn": vgg13_bn,
    "vgg_mnist": vgg_mnist,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "resnet101_supervised": resnet101_supervised,
}


def backbone_names() -> list[str]:
    """The names :func:`build_backbone` accepts, sorted."""
    return sorted(BACKBONES)


def backbone_options(name: str) -> dict[str, Any]:
    """The options of backbone ``name`` and their defaults (``in_channels`` excluded)."""
    builder = _lookup(name)
    params = inspect.signature(builder).parameters
    return {
        key: p.default
        for key, p in params.items()
        if key != "in_channels" and p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def build_backbone(name: str, in_channels: int, **kwargs: Any) -> nn.Module:
    """Build backbone ``name`` for images with ``in_channels`` channels.

    The returned module maps ``(B, in_channels, H, W)`` float tensors to ``(B, out_dim)``
    features and has an ``out_dim`` attribute. Raises :class:`ConfigError` for an unknown
    name, an option the backbone does not take, or an invalid value.
    """
    builder = _lookup(name)
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ConfigError(
            f"backbone '{name}': in_channels must be a positive integer, got {in_channels!r}"
        )
    allowed = backbone_options(name)
    given = {k: v for k, v in kwargs.items() if v is not None}
    for key in given:
        if key not in allowed:
            valid = ", ".join(sorted(allowed)) or "none"
            raise ConfigError(
                f"backbone '{name}' has no option '{key}'{did_you_mean(key, allowed)}; "
                f"its options: {valid}"
            )
    model = builder(in_channels=in_channels, **given)
    if not isinstance(getattr(model, "out_dim", None), int):  # pragma: no cover - invariant
        raise TypeError(f"backbone '{name}' does not define an integer out_dim")
    return model


def _lookup(name: str) -> Callable[..., nn.Module]:
    try:
        return BACKBONES[name]
    except (KeyError, TypeError):
        raise ConfigError(unknown_choice("backbone", str(name), BACKBONES)) from None
