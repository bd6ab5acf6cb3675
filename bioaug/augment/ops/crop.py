"""Crops and resizing: ``random_resized_crop``, ``center_crop``, ``resize``.

These ops change the image size. A sample that is not picked (probability ``1 - p``) is
resized whole to the output size, so every sample of the batch leaves with the same shape.
The output size defaults to the view's ``crop_size``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from bioaug.augment.ops.base import Op, Params, Shape, rand, register_op
from bioaug.augment.ops.geometry import box_matrix, warp, warp_views
from bioaug.augment.ops.params import Bool, Choice, OpParams, OptionalInteger, Span

SIZE_DOC = "Output side in pixels; null = the view's crop_size."


def _out_size(op: Op, shape: Shape) -> int:
    size = op.params.size  # type: ignore[attr-defined]
    if size is not None:
        return int(size)
    if op.crop_size is not None:
        return int(op.crop_size)
    return int(min(shape[1], shape[2]))


def _full_boxes(n: int, h: int, w: int, device: torch.device) -> Tensor:
    return torch.tensor([0.0, 0.0, float(w), float(h)], device=device).expand(n, 4)


class RandomResizedCropParams(OpParams):
    scale: Span(0.0, 1.0, open_lo=True) = Field(
        (0.08, 1.0), description="Fraction of the image area the crop covers, [low, high].")
    ratio: Span(0.05, 20.0) = Field(
        (3 / 4, 4 / 3), description="Aspect ratio (width/height) of the crop, log-uniform.")
    size: OptionalInteger(1, 4096) = Field(None, description=SIZE_DOC)
    interpolation: Choice("bilinear", "nearest") = Field("bilinear", description="Resampling.")


@register_op
class RandomResizedCrop(Op):
    """Crop a random box (area fraction ``scale``, aspect ``ratio``) and resize it to ``size``.

    The box is drawn as in torchvision's ``RandomResizedCrop`` (Szegedy et al. 2015,
    "Going deeper with convolutions"; the SimCLR and MoCo v2 recipes): up to ten
    area/aspect proposals per sample, the first that fits wins, otherwise a central crop
    with the aspect clamped to ``ratio``. Boxes have sub-pixel corners; all samples are
    resampled in one ``grid_sample`` call.
    """

    name = "random_resized_crop"
    Params = RandomResizedCropParams
    changes_size = True
    summary = "random area/aspect crop resized to the output size (SimCLR/MoCo)"
    group = "geometry"
    example: ClassVar[dict[str, Any]] = {"scale": [0.3, 0.6], "size": 16}
    resamples = True
    TRIES: ClassVar[int] = 10

    def output_shape(self, shape: Shape) -> Shape:
        s = _out_size(self, shape)
        return (shape[0], s, s)

    def sample_params(self, batch_size, image_shape, generator, device) -> Params:
        _, h, w = image_shape
        area = float(h * w)
        s_lo, s_hi = self.params.scale
        r_lo, r_hi = math.log(self.params.ratio[0]), math.log(self.params.ratio[1])
        u = rand((batch_size, self.TRIES, 4), generator, device)
        target = area * (s_lo + (s_hi - s_lo) * u[..., 0])
        aspect = torch.exp(r_lo + (r_hi - r_lo) * u[..., 1])
        cw = torch.sqrt(target * aspect)
        ch = torch.sqrt(target / aspect)
        ok = (cw <= w) & (ch <= h) & (cw > 0) & (ch > 0)
        first = torch.where(ok.any(1), ok.float().argmax(1), torch.full_like(ok[:, 0], -1,
                                                                            dtype=torch.long))
        pick = first.clamp(min=0)
        rows = torch.arange(batch_size, device=device)
        bw, bh = cw[rows, pick], ch[rows, pick]
        ux, uy = u[rows, pick, 2], u[rows, pick, 3]
        # fallback: the largest central box with the aspect clamped to `ratio`
        in_ratio = w / h
        if in_ratio < self.params.ratio[0]:
            fw, fh = float(w), w / self.params.ratio[0]
        elif in_ratio > self.params.ratio[1]:
            fw, fh = h * self.params.ratio[1], float(h)
        else:
            fw, fh = float(w), float(h)
        failed = first < 0
        bw = torch.where(failed, torch.full_like(bw, fw), bw)
        bh = torch.where(failed, torch.full_like(bh, fh), bh)
        ux = torch.where(failed, torch.full_like(ux, 0.5), ux)
        uy = torch.where(failed, torch.full_like(uy, 0.5), uy)
        x0 = ux * (w - bw)
        y0 = uy * (h - bh)
        return {"boxes": torch.stack([x0, y0, bw, bh], dim=1)}

    fusable = True

    def matrix(self, params, shape) -> Tensor:
        s = _out_size(self, shape)
        boxes = params["boxes"]
        mask = params["apply"].to(boxes.device)
        full = _full_boxes(len(boxes), shape[1], shape[2], boxes.device).to(boxes.dtype)
        return box_matrix(torch.where(mask[:, None], boxes, full), (s, s))

    def native_apply(self, x: Tensor, out: Tensor, idx: Tensor,
                     params: dict[str, Tensor]) -> bool:
        if self.params.interpolation != "bilinear":
            return False
        size = (out.shape[2], out.shape[3])
        return warp_views(x, [self.matrix(params, tuple(x.shape[1:]))], size, out[None])

    def transform(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        s = _out_size(self, tuple(x.shape[1:]))
        matrix = self.matrix({k: v.to(x.device) for k, v in params.items()}, tuple(x.shape[1:]))
        return warp(x, matrix, (s, s), mode=self.params.interpolation, padding="border")


class CenterCropParams(OpParams):
    size: OptionalInteger(1, 4096) = Field(None, description=SIZE_DOC)


@register_op
class CenterCrop(Op):
    """Cut the central ``size``×``size`` window (zero padding if the image is smaller)."""

    name = "center_crop"
    Params = CenterCropParams
    changes_size = True
    summary = "central square window of the output size"
    group = "geometry"
    example: ClassVar[dict[str, Any]] = {"size": 16}

    def output_shape(self, shape: Shape) -> Shape:
        s = _out_size(self, shape)
        return (shape[0], s, s)

    def transform(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        s = _out_size(self, tuple(x.shape[1:]))
        cropped = center_crop(x, s)
        mask = params["apply"].to(x.device)
        if bool(mask.all()):
            return cropped
        whole = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False,
                              antialias=True)
        return torch.where(mask[:, None, None, None], cropped, whole)


def center_crop(x: Tensor, size: int) -> Tensor:
    """The central ``size``×``size`` window of ``x``; zero-padded where ``x`` is smaller."""
    h, w = x.shape[2], x.shape[3]
    if h < size or w < size:
        ph, pw = max(size - h, 0), max(size - w, 0)
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        h, w = x.shape[2], x.shape[3]
    top, left = (h - size) // 2, (w - size) // 2
    return x[:, :, top:top + size, left:left + size]


class ResizeParams(OpParams):
    size: OptionalInteger(1, 4096) = Field(None, description=SIZE_DOC)
    interpolation: Choice("bilinear", "bicubic", "nearest", "area") = Field(
        "bilinear", description="Resampling method.")
    antialias: Bool() = Field(True, description="Low-pass before downsampling (bilinear/bicubic).")


@register_op
class Resize(Op):
    """Resize the whole image to ``size``×``size`` (``p`` has no effect: unpicked samples are
    resized too, as for every size-changing op)."""

    name = "resize"
    Params = ResizeParams
    changes_size = True
    summary = "resize the whole image to the output size"
    group = "geometry"
    example: ClassVar[dict[str, Any]] = {"size": 16}
    resamples = True

    def output_shape(self, shape: Shape) -> Shape:
        s = _out_size(self, shape)
        return (shape[0], s, s)

    def transform(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        s = _out_size(self, tuple(x.shape[1:]))
        return resize(x, s, self.params.interpolation, self.params.antialias)


def resize(x: Tensor, size: int, interpolation: str = "bilinear", antialias: bool = True) -> Tensor:
    if tuple(x.shape[2:]) == (size, size):
        return x
    kwargs = {}
    if interpolation in ("bilinear", "bicubic"):
        kwargs = {"align_corners": False, "antialias": antialias}
    out = F.interpolate(x, size=(size, size), mode=interpolation, **kwargs)
    return out.clamp(0.0, 1.0) if interpolation == "bicubic" else out
