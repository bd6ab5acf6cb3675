"""``random_erasing``: blank a random rectangle (Zhong et al. 2020, "Random Erasing Data
Augmentation"; one of the BBBC021 transformation sets of Bendidi et al. 2023)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import Tensor

from bioaug.augment.ops.base import Op, Params, rand, register_op
from bioaug.augment.ops.params import Number, OpParams, Span


class RandomErasingParams(OpParams):
    scale: Span(0.0, 1.0, open_lo=True) = Field(
        (0.02, 0.33), description="Area of the rectangle as a fraction of the image.")
    ratio: Span(0.05, 20.0) = Field((0.3, 3.3), description="Aspect ratio range, log-uniform.")
    value: Number(0.0, 1.0) = Field(0.0, description="Value written into the rectangle.")


@register_op
class RandomErasing(Op):
    """Fill one rectangle per sample (area ``scale``, aspect ``ratio``, clipped to the image)
    with ``value``; the rectangles of the whole batch are one broadcast mask."""

    name = "random_erasing"
    subset_apply = False
    Params = RandomErasingParams
    summary = "blank a random rectangle"
    group = "microscopy intensity and optics"
    example: ClassVar[dict[str, Any]] = {"scale": [0.2, 0.3], "value": 0.5}

    def sample_params(self, batch_size, image_shape, generator, device) -> Params:
        _, h, w = image_shape
        u = rand((batch_size, 4), generator, device)
        area = h * w * (self.params.scale[0] + (self.params.scale[1] - self.params.scale[0]) * u[:, 0])
        lr = (math.log(self.params.ratio[0]), math.log(self.params.ratio[1]))
        aspect = torch.exp(lr[0] + (lr[1] - lr[0]) * u[:, 1])
        ew = torch.sqrt(area * aspect).clamp(1.0, w)
        eh = torch.sqrt(area / aspect).clamp(1.0, h)
        x0 = u[:, 2] * (w - ew)
        y0 = u[:, 3] * (h - eh)
        return {"boxes": torch.stack([x0, y0, ew, eh], dim=1)}

    def transform(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        h, w = x.shape[2:]
        x0, y0, ew, eh = params["boxes"].to(x.device, torch.float32).unbind(1)
        xs = torch.arange(w, device=x.device, dtype=torch.float32) + 0.5
        ys = torch.arange(h, device=x.device, dtype=torch.float32) + 0.5
        inx = (xs[None] >= x0[:, None]) & (xs[None] < (x0 + ew)[:, None])
        iny = (ys[None] >= y0[:, None]) & (ys[None] < (y0 + eh)[:, None])
        mask = (iny[:, :, None] & inx[:, None, :]).unsqueeze(1)
        return torch.where(mask, torch.full_like(x, self.params.value), x)
