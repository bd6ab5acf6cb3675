"""``intensity_normalize``: per-image rescaling of intensities."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError
from torch import Tensor

from bioaug.augment.ops.base import Op, register_op
from bioaug.augment.ops.params import Bool, Choice, Number, OpParams


class IntensityNormalizeParams(OpParams):
    method: Choice("percentile", "meanstd", "minmax") = Field(
        "percentile", description="percentile: map [q_low, q_high] to [0, 1]; meanstd: "
                                  "0.5 + target_std · z-score; minmax: map [min, max] to [0, 1].")
    low: Number(0.0, 100.0) = Field(0.1, description="Lower percentile (method=percentile).")
    high: Number(0.0, 100.0) = Field(99.9, description="Upper percentile (method=percentile).")
    target_std: Number(0.0, 1.0, open_lo=True) = Field(
        1 / 6, description="Output standard deviation for method=meanstd (±3σ fills [0, 1]).")
    per_channel: Bool() = Field(True, description="Statistics per channel (else over the "
                                                  "whole image).")

    @model_validator(mode="after")
    def _order(self) -> IntensityNormalizeParams:
        if self.low >= self.high:
            raise PydanticCustomError(
                "backwards_range", f"low ({self.low:g}) must be below high ({self.high:g})")
        return self


@register_op
class IntensityNormalize(Op):
    """Rescale each image (or each channel) from its own statistics, then clip to [0, 1].

    ``percentile``: ``y = (x − q_low) / (q_high − q_low)`` (the per-image percentile scaling
    common in cell painting pipelines); ``meanstd``: ``y = 0.5 + target_std · (x − μ) / σ``;
    ``minmax``: ``y = (x − min) / (max − min)``. Constant images map to 0.5 (meanstd) or
    stay unchanged.
    """

    name = "intensity_normalize"
    Params = IntensityNormalizeParams
    summary = "per-image percentile / mean-std / min-max rescaling"
    group = "microscopy intensity and optics"
    example: ClassVar[dict[str, Any]] = {"method": "minmax"}

    def transform(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        b, c = x.shape[:2]
        flat = x.reshape(b, c, -1) if self.params.per_channel else x.reshape(b, 1, -1)
        pr = self.params
        if pr.method == "meanstd":
            mean = flat.mean(-1, keepdim=True)
            std = flat.std(-1, keepdim=True)
            y = 0.5 + pr.target_std * (flat - mean) / std.clamp_min(1e-8)
            y = torch.where(std > 1e-8, y, torch.full_like(y, 0.5))
        else:
            if pr.method == "percentile":
                q = torch.tensor([pr.low / 100, pr.high / 100], device=x.device,
                                 dtype=torch.float32)
                lo_hi = torch.quantile(flat.float(), q, dim=-1, keepdim=True).to(x.dtype)
                lo, hi = lo_hi[0], lo_hi[1]
            else:
                lo, hi = flat.amin(-1, keepdim=True), flat.amax(-1, keepdim=True)
            span = hi - lo
            y = torch.where(span > 1e-8, (flat - lo) / span.clamp_min(1e-8), flat)
        return y.clamp(0.0, 1.0).reshape(x.shape)
