"""Resampling geometry: ``rotate`` (any angle) and ``affine`` (rotate, scale, shear, shift).

Both build one pixel-space matrix per sample and resample the batch with a single
``grid_sample`` (see :mod:`bioaug.augment.ops.geometry`). Positive angles turn the picture
counter-clockwise as displayed; ``rotate`` by 90° equals ``rotate90`` up to float rounding.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import Tensor

from bioaug.augment.ops.base import Op, Params, register_op, uniform
from bioaug.augment.ops.geometry import centred_inverse, rotation, warp
from bioaug.augment.ops.params import Choice, Number, OpParams, Span

MODE_DOC = ("What fills pixels that come from outside the image: constant (the value `fill`), "
            "reflect (mirror the image) or border (repeat the edge).")


class RotateParams(OpParams):
    degrees: Span(-360.0, 360.0, scalar="sym") = Field(
        (-180.0, 180.0), description="Angle range in degrees; a single number d means [-d, d].")
    mode: Choice("constant", "reflect", "border") = Field("reflect", description=MODE_DOC)
    fill: Number(0.0, 1.0) = Field(0.0, description="Value outside the image when mode=constant.")
    interpolation: Choice("bilinear", "nearest") = Field("bilinear", description="Resampling.")


@register_op
class Rotate(Op):
    """Rotate about the image centre by an angle drawn uniformly from ``degrees``."""

    name = "rotate"
    Params = RotateParams
    summary = "rotation by any angle (fill or reflect)"
    group = "geometry"
    blocked = True
    example: ClassVar[dict[str, Any]] = {"degrees": [20, 70]}
    resamples = True

    def sample_params(self, batch_size, image_shape, generator, device) -> Params:
        return {"angle": uniform(self.params.degrees, (batch_size,), generator, device)}

    def transform(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        size = (x.shape[2], x.shape[3])
        angle = params["angle"].to(x.device, x.dtype)
        matrix = centred_inverse(rotation(angle), torch.zeros(len(x), 2, dtype=x.dtype,
                                                              device=x.device), size)
        return warp(x, matrix, size, mode=self.params.interpolation, padding=self.params.mode,
                    fill=self.params.fill)


class AffineParams(OpParams):
    degrees: Span(-360.0, 360.0, scalar="sym") = Field(
        (0.0, 0.0), description="Rotation range in degrees; d means [-d, d].")
    translate: Span(0.0, 1.0, scalar="point") = Field(
        (0.0, 0.0), description="Largest shift as a fraction of width and height [fx, fy]; "
                                "a number f means [f, f]. Shifts are uniform in [-f, f].")
    scale: Span(0.05, 20.0, scalar="point") = Field(
        (1.0, 1.0), description="Zoom factor range; 1 keeps the size.")
    shear: Span(-80.0, 80.0, scalar="sym") = Field(
        (0.0, 0.0), description="Shear angle range in degrees along x then y; s means [-s, s].")
    mode: Choice("constant", "reflect", "border") = Field("constant", description=MODE_DOC)
    fill: Number(0.0, 1.0) = Field(0.0, description="Value outside the image when mode=constant.")
    interpolation: Choice("bilinear", "nearest") = Field("bilinear", description="Resampling.")


@register_op
class Affine(Op):
    """Random affine map (torchvision ``RandomAffine`` semantics): rotation, shift, zoom, shear.

    The forward map is ``T · R · S · Sh`` about the image centre; shear angles for x and y
    are drawn independently from ``shear``. Used by the MNIST transformation-set studies
    (small shifts and shears) of Bendidi et al. 2023.
    """

    name = "affine"
    Params = AffineParams
    summary = "rotation, shift, zoom and shear in one resampling"
    group = "geometry"
    blocked = True
    example: ClassVar[dict[str, Any]] = {"degrees": [10, 30], "shear": [5, 10]}
    resamples = True

    def sample_params(self, batch_size, image_shape, generator, device) -> Params:
        _, h, w = image_shape
        fx, fy = self.params.translate
        u = uniform((-1.0, 1.0), (batch_size, 2), generator, device)
        return {
            "angle": uniform(self.params.degrees, (batch_size,), generator, device),
            "translate": u * torch.tensor([fx * w, fy * h], device=device),
            "scale": uniform(self.params.scale, (batch_size,), generator, device),
            "shear": uniform(self.params.shear, (batch_size, 2), generator, device),
        }

    def transform(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        dt, dev = x.dtype, x.device
        size = (x.shape[2], x.shape[3])
        angle = params["angle"].to(dev, dt)
        scale = params["scale"].to(dev, dt)
        shear = params["shear"].to(dev, dt) * (math.pi / 180.0)
        one, zero = torch.ones_like(angle), torch.zeros_like(angle)
        sh = torch.stack([torch.stack([one, torch.tan(shear[:, 0])], 1),
                          torch.stack([torch.tan(shear[:, 1]), one], 1)], 1)
        zoom = torch.stack([torch.stack([scale, zero], 1), torch.stack([zero, scale], 1)], 1)
        forward = rotation(angle) @ zoom @ sh
        matrix = centred_inverse(forward, params["translate"].to(dev, dt), size)
        return warp(x, matrix, size, mode=self.params.interpolation, padding=self.params.mode,
                    fill=self.params.fill)
