"""Augmentation protocols and the batched engine that applies them.

A protocol (YAML, see ``docs/protocols.md``) lists the views a self-supervised method
sees and, for each view, the ordered transformations with their probabilities and
amplitudes. ``load_protocol`` validates it; ``build_pipeline`` turns it into a
:class:`Pipeline` that augments whole batches on the training device with per-sample
random parameters drawn from a ``torch.Generator``.

Two views of 64 px from a batch of four 3-channel 96 px crops; the same seed gives the
same views:

    >>> import torch
    >>> from bioaug.augment import build_pipeline, load_protocol
    >>> protocol = load_protocol("bbbc021-expert")
    >>> pipeline = build_pipeline(protocol, n_channels=3)
    >>> batch = torch.rand(4, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    >>> views = pipeline(batch, generator=torch.Generator().manual_seed(0))
    >>> [tuple(v.shape) for v in views]
    [(4, 3, 64, 64), (4, 3, 64, 64)]
    >>> again = pipeline(batch, generator=torch.Generator().manual_seed(0))
    >>> all(torch.equal(a, b) for a, b in zip(views, again))
    True
"""

from __future__ import annotations

from bioaug.augment.ops import OPS, ChannelSupport, Op, OpParams, register_op
from bioaug.augment.pipeline import (
    Pipeline,
    PipelineParams,
    build_pipeline,
    fit_to_crop,
    same_channels,
)
from bioaug.augment.protocols import (
    load_protocol,
    protocols_dir,
    resolve_protocol,
    shipped_protocols,
)
from bioaug.augment.schema import (
    Protocol,
    Step,
    View,
    make_op,
    parse_protocol,
    parse_step,
    protocol_from_dict,
)

__all__ = [
    "OPS",
    "ChannelSupport",
    "Op",
    "OpParams",
    "Pipeline",
    "PipelineParams",
    "Protocol",
    "Step",
    "View",
    "build_pipeline",
    "fit_to_crop",
    "load_protocol",
    "make_op",
    "parse_protocol",
    "parse_step",
    "protocol_from_dict",
    "protocols_dir",
    "register_op",
    "resolve_protocol",
    "same_channels",
    "shipped_protocols",
]
