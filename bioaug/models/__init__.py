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
``vit_tiny``              ``patch_size`` (16), ``img_size`` (224),             192
                          ``drop_path_rate`` (timm ViT, :mod:`~bioaug.models.vit`)
``vit_small``             same as ``vit_tiny``                                 384
========================  ==================================================  ==========

Each registry entry is a :class:`Backbone`: the builder and ``embed_layer``, the layer
``bioaug embed`` uses for this backbone's checkpoints when no layer is given (a key of
:data:`bioaug.methods.base.EMBED_LAYERS`; :func:`default_embed_layer`,
:func:`embed_layers_markdown` for the table in the docs).

Options passed as ``None`` count as "not given" (so a command line can forward every
option it knows without checking which backbone uses it); any other option a backbone
does not take is a :class:`~bioaug.errors.ConfigError`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from bioaug.errors import ConfigError, did_you_mean, unknown_choice
from bioaug.models.resnet import resnet18, resnet50
from bioaug.models.supervised import resnet101_supervised
from bioaug.models.vgg import vgg13_bn, vgg_mnist
from bioaug.models.vit import vit_small, vit_tiny

__all__ = [
    "BACKBONES",
    "Backbone",
    "backbone_names",
    "backbone_options",
    "build_backbone",
    "default_embed_layer",
    "embed_layers_markdown",
]


@dataclass(frozen=True)
class Backbone:
    """A registered backbone: its builder and its default embedding layer.

    ``embed_layer`` is what ``bioaug embed`` reads when no ``--layer`` is given:
    ``"backbone"`` (the pooled output) suits deep encoders whose last map is a few pixels
    and cells at random positions; ``"feature_map"`` (the last map, flattened) keeps where
    things are, which wins for small encoders of centred objects.

    Examples
    --------
    >>> from bioaug.models import BACKBONES
    >>> entry = BACKBONES["vgg_mnist"]
    >>> entry.embed_layer, entry.build(in_channels=1, width=0.5).out_dim
    ('feature_map', 64)
    """

    build: Callable[..., nn.Module]
    embed_layer: str = "backbone"
    why: str = ""


#: name → :class:`Backbone`. One line per backbone; ``embed_layer`` is its embed default.
BACKBONES: dict[str, Backbone] = {
    "vgg13_bn": Backbone(vgg13_bn, embed_layer="backbone"),
    "vgg_mnist": Backbone(vgg_mnist, embed_layer="feature_map",
                          why="measured on real MNIST digits: its pooled 7×7 map loses to raw "
                          "pixels, the map itself beats them"),
    "resnet18": Backbone(resnet18, embed_layer="backbone"),
    "resnet50": Backbone(resnet50, embed_layer="backbone"),
    "resnet101_supervised": Backbone(resnet101_supervised, embed_layer="backbone"),
    "vit_tiny": Backbone(vit_tiny, embed_layer="backbone",
                         why="the class token after the final norm, as DINO embeds"),
    "vit_small": Backbone(vit_small, embed_layer="backbone",
                          why="the class token after the final norm, as DINO embeds"),
}


def backbone_names() -> list[str]:
    """The names :func:`build_backbone` accepts, sorted.

    Returns
    -------
    list of str
        The keys of :data:`BACKBONES`, sorted.

    Examples
    --------
    >>> from bioaug.models import backbone_names
    >>> names = backbone_names()
    >>> "resnet18" in names, "vit_small" in names, names == sorted(names)
    (True, True, True)
    """
    return sorted(BACKBONES)


def backbone_options(name: str) -> dict[str, Any]:
    """The options of backbone ``name`` and their defaults (``in_channels`` excluded).

    Parameters
    ----------
    name
        A registered backbone (:func:`backbone_names`); another name is a ConfigError.

    Returns
    -------
    dict
        Option → default: the keyword arguments :func:`build_backbone` takes for ``name``.

    Examples
    --------
    >>> from bioaug.models import backbone_options
    >>> backbone_options("resnet18")
    {'cifar_stem': False}
    >>> backbone_options("vit_tiny")
    {'patch_size': 16, 'img_size': 224, 'drop_path_rate': 0.0}
    """
    builder = _lookup(name)
    params = inspect.signature(builder).parameters
    return {
        key: p.default
        for key, p in params.items()
        if key != "in_channels" and p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def default_embed_layer(name: str) -> str:
    """The layer ``bioaug embed`` uses for backbone ``name`` when none is given.

    Parameters
    ----------
    name
        A registered backbone.

    Returns
    -------
    str
        A key of :data:`bioaug.methods.base.EMBED_LAYERS` (``"backbone"``,
        ``"feature_map"``).

    Examples
    --------
    >>> from bioaug.models import default_embed_layer
    >>> default_embed_layer("resnet50"), default_embed_layer("vgg_mnist")
    ('backbone', 'feature_map')
    >>> default_embed_layer("resnet34")
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: unknown backbone 'resnet34' (did you mean 'resnet50'?); known: ...
    """
    return _entry(name).embed_layer


def embed_layers_markdown() -> str:
    """A Markdown table: each backbone and its default embedding layer (for the docs).

    Returns
    -------
    str
        A header, then one row per backbone (sorted): its name, default layer and why.

    Examples
    --------
    >>> from bioaug.models import embed_layers_markdown
    >>> lines = embed_layers_markdown().splitlines()
    >>> for line in lines[:2]:
    ...     print(line)
    | backbone | default `--layer` | why |
    |---|---|---|
    >>> print(next(line for line in lines if "`resnet18`" in line))
    | `resnet18` | `backbone` | — |
    """
    rows = ["| backbone | default `--layer` | why |", "|---|---|---|"]
    for name in backbone_names():
        entry = BACKBONES[name]
        rows.append(f"| `{name}` | `{entry.embed_layer}` | {entry.why or '—'} |")
    return "\n".join(rows) + "\n"


def build_backbone(name: str, in_channels: int, **kwargs: Any) -> nn.Module:
    """Build backbone ``name`` for images with ``in_channels`` channels.

    Parameters
    ----------
    name
        A registered backbone (:func:`backbone_names`).
    in_channels
        The image channels (a positive integer).
    **kwargs
        The backbone's options (:func:`backbone_options`); None counts as not given.

    Returns
    -------
    torch.nn.Module
        Maps ``(B, in_channels, H, W)`` float tensors to ``(B, out_dim)`` features and has
        an ``out_dim`` attribute. Raises :class:`ConfigError` for an unknown name, an option
        the backbone does not take, or an invalid value.

    Examples
    --------
    >>> import torch
    >>> from bioaug.models import build_backbone
    >>> model = build_backbone("vgg_mnist", in_channels=1, width=0.25, cifar_stem=None)
    >>> model.out_dim, tuple(model(torch.zeros(2, 1, 28, 28)).shape)
    (32, (2, 32))
    >>> build_backbone("resnet18", in_channels=3, widht=2)
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: backbone 'resnet18' has no option 'widht'; its options: cifar_stem
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
    return _entry(name).build


def _entry(name: str) -> Backbone:
    try:
        return BACKBONES[name]
    except (KeyError, TypeError):
        raise ConfigError(unknown_choice("backbone", str(name), BACKBONES)) from None
