"""Tone curves: ``solarize`` and ``equalize`` (the BYOL recipe; Grill et al. 2020)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import Tensor

from bioaug.augment.ops.base import Op, Params, bcast, register_op, uniform
from bioaug.augment.ops.params import Integer, OpParams, Span


class SolarizeParams(OpParams):
    threshold: Span(0.0, 1.0, scalar="point") = Field(
        (0.5, 0.5), description="Pixels at or above the threshold are inverted (1 - x).")


@register_op
class Solarize(Op):
    """Invert every pixel at or above a per-sample threshold: ``y = 1 - x if x >= t else x``."""

    name = "solarize"
    subset_apply = False
    Params = SolarizeParams
    summary = "invert pixels above a threshold"
    group = "natural images (RGB)"
    example: ClassVar[dict[str, Any]] = {"threshold": [0.3, 0.3]}

    def sample_params(self, batch_size, image_shape, generator, device) -> Params:
        return {"threshold": uniform(self.params.threshold, (batch_size,), generator, device)}

    def transform(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        t = bcast(params["threshold"].to(x.device, x.dtype))
        return torch.where(x >= t, 1.0 - x, x)


class EqualizeParams(OpParams):
    bins: Integer(2, 65536) = Field(256, description="Histogram bins.")


@register_op
class Equalize(Op):
    """Histogram equalisation of each channel of each image: pixels are mapped through the
    channel's cumulative histogram (``bins`` levels), batched with ``scatter_add``."""

    name = "equalize"
    Params = EqualizeParams
    summary = "per-channel histogram equalisation"
    group = "natural images (RGB)"
    example: ClassVar[dict[str, Any]] = {}

    def transform(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        return equalize(x, self.params.bins)


def equalize(x: Tensor, bins: int = 256) -> Tensor:
    b, c, h, w = x.shape
    levels = (x.clamp(0, 1) * (bins - 1)).round().long().view(b * c, h * w)
    hist = torch.zeros(b * c, bins, device=x.device, dtype=torch.float32)
    hist.scatter_add_(1, levels, torch.ones_like(levels, dtype=torch.float32))
    cdf = hist.cumsum(1)
    first = torch.where(hist > 0, cdf, torch.full_like(cdf, float("inf"))).min(1, keepdim=True)[0]
    denom = (h * w - first).clamp_min(1.0)
    lut = ((cdf - first) / denom).clamp(0.0, 1.0)
    flat_constant = (h * w - first) <= 0  # a single level: leave the channel alone
    out = lut.gather(1, levels)
    out = torch.where(flat_constant, x.reshape(b * c, h * w).float(), out)
    return out.view(b, c, h, w).to(x.dtype)
