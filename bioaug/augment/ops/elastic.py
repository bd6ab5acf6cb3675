"""``elastic``: smooth random deformations (Simard et al. 2003, "Best practices for
convolutional neural networks applied to visual document analysis")."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from bioaug.augment.ops.base import (
    Op,
    Params,
    bcast,
    bernoulli,
    draw_seeds,
    register_op,
    seeded_rows,
    uniform,
)
from bioaug.augment.ops.blur import gaussian_kernels, separable_blur
from bioaug.augment.ops.geometry import PADDING
from bioaug.augment.ops.params import Choice, Number, OpParams, Span


class ElasticParams(OpParams):
    alpha: Span(0.0, 1000.0, scalar="point") = Field(
        (2.0, 6.0), description="Root-mean-square displacement in pixels, per sample.")
    sigma: Number(0.5, 100.0) = Field(
        6.0, description="Smoothness of the displacement field (Gaussian sigma, pixels).")
    mode: Choice("constant", "reflect", "border") = Field(
        "reflect", description="What fills pixels pulled from outside the image.")


@register_op
class Elastic(Op):
    """Displace every pixel by a random field: uniform noise in [-1, 1] per pixel and axis,
    smoothed with a Gaussian of ``sigma`` and scaled to a root-mean-square displacement of
    ``alpha`` pixels; bilinear resampling."""

    name = "elastic"
    Params = ElasticParams
    summary = "smooth random deformation (Simard 2003)"
    group = "geometry"
    blocked = True
    example: ClassVar[dict[str, Any]] = {"alpha": [2, 4], "sigma": 3}
    resamples = True

    def sample(self, batch_size, image_shape, generator=None, device="cpu") -> Params:
        mask = bernoulli(self.p, batch_size, generator, device)
        alpha = uniform(self.params.alpha, (batch_size,), generator, device)
        return {"apply": mask, "alpha": alpha, "seed": draw_seeds(batch_size, generator, device)}

    def transform(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        b, _, h, w = x.shape
        # uniform in [-1, 1] per pixel and axis, generated from each sample's seed
        field = seeded_rows(params["seed"], (2, h, w), "uniform", x.device)
        field = field.mul_(2.0).sub_(1.0).to(x.dtype)
        radius = max(1, min(math.ceil(3 * self.params.sigma), max(h, w) - 1))
        sigma = torch.full((b,), float(self.params.sigma), device=x.device)
        field = separable_blur(field, gaussian_kernels(sigma, radius))
        # rescale so the smoothed field has unit RMS, then to pixels, then to grid units
        rms = field.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-8)
        disp = field / rms * bcast(params["alpha"].to(x.device, x.dtype))
        scale = torch.tensor([2.0 / w, 2.0 / h], device=x.device, dtype=x.dtype).view(1, 2, 1, 1)
        ys = torch.linspace(-1 + 1 / h, 1 - 1 / h, h, device=x.device, dtype=x.dtype)
        xs = torch.linspace(-1 + 1 / w, 1 - 1 / w, w, device=x.device, dtype=x.dtype)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        base = torch.stack([gx, gy], dim=0).unsqueeze(0)
        grid = (base + disp * scale).permute(0, 2, 3, 1)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode=PADDING[self.params.mode],
                             align_corners=False)
