"""Colour ops for RGB images: ``color_jitter`` and ``grayscale``.

They mix channels (hue rotates R→G→B, grayscale averages them), which only means something
for red-green-blue pictures; for fluorescence stains use ``stain_jitter``. Both refuse any
channel count other than 3.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import Tensor

from bioaug.augment import native
from bioaug.augment.ops.base import RGB, Op, Params, bcast, rand, register_op, uniform
from bioaug.augment.ops.params import Bool, OpParams, Span

#: ITU-R 601 luma weights, as rounded by torchvision's rgb_to_grayscale.
LUMA = (0.2989, 0.587, 0.114)


def gray(x: Tensor) -> Tensor:
    """Luma of RGB ``x`` (B, 3, H, W) → (B, 1, H, W)."""
    r, g, b = x.unbind(1)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(1)


def adjust_brightness(x: Tensor, f: Tensor) -> Tensor:
    return (x * bcast(f)).clamp(0.0, 1.0)


def adjust_contrast(x: Tensor, f: Tensor) -> Tensor:
    mean = gray(x).mean(dim=(1, 2, 3), keepdim=True)
    return (bcast(f) * x + (1 - bcast(f)) * mean).clamp(0.0, 1.0)


def adjust_saturation(x: Tensor, f: Tensor) -> Tensor:
    return (bcast(f) * x + (1 - bcast(f)) * gray(x)).clamp(0.0, 1.0)


def hue_sixths(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """HSV hue of RGB ``x`` (B, 3, H, W) in sixths of a turn, in [-1, 5), with the per-pixel
    max and max − min (``(B, H, W)`` each). Gray pixels (max = min) get hue 0.

    Branch-free: the max channel is picked by 0/1 masks and arithmetic rather than
    ``torch.where`` (several times faster on the CPU). Ties pick red, then green, the order of
    torchvision's ``_rgb2hsv``; tied branches give the same hue anyway.
    """
    r, g, b = x.unbind(1)
    mx = torch.maximum(torch.maximum(r, g), b)
    d = mx - torch.minimum(torch.minimum(r, g), b)
    is_r = (mx == r).to(x.dtype)
    is_g = (mx == g).to(x.dtype).mul_(1.0 - is_r)
    is_b = 1.0 - is_r - is_g
    h6 = is_r * (g - b) + is_g * (b - r + 2.0 * d) + is_b * (r - g + 4.0 * d)
    # |numerator| <= d, so gray pixels give 0 / tiny = 0
    return h6.div_(d.clamp_min(torch.finfo(x.dtype).tiny)), mx, d


#: Phase of each output channel on the hue hexagon (HSV → RGB: ``f(n) = v − v·s·T(n + 6h)``).
_CHANNEL_PHASE = (5.0, 3.0, 1.0)


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate the HSV hue of RGB ``x`` (B, 3, H, W) by ``shift`` (B,) turns, per sample.

    Exactly torchvision's ``adjust_hue`` (RGB → HSV, ``h ← (h + shift) mod 1``, HSV → RGB;
    saturation and value kept), up to float rounding, for the whole batch at once. Hue
    rotation keeps the max and min of a pixel, so HSV → RGB reduces to the closed form
    ``c_n = max − (max − min)·T((n + 6h) mod 6)`` with ``n = 5, 3, 1`` for R, G, B and the
    trapezoid ``T(k) = clip(2 − |k − 2|, 0, 1)`` — a few batched arithmetic passes, no
    per-sample loop and no per-pixel branching.
    """
    h6, mx, d = hue_sixths(x)
    phase = torch.tensor(_CHANNEL_PHASE, dtype=x.dtype, device=x.device)
    # + 12 keeps k positive (h6 >= -1, shift >= -0.5 turn) so floor-division wraps it to [0, 6)
    offset = (6.0 * shift.to(x.dtype)[:, None] + phase + 12.0).view(-1, 3, 1, 1)
    k = h6.unsqueeze(1) + offset
    k = k.sub_(torch.floor(k / 6.0).mul_(6.0))
    t = k.sub_(2.0).abs_().neg_().add_(2.0).clamp_(0.0, 1.0)
    return t.mul_(-d.unsqueeze(1)).add_(mx.unsqueeze(1)).clamp_(0.0, 1.0)


#: The four adjustments of ``color_jitter``, in the numbering of its ``order`` draw.
JITTERS = ("brightness", "contrast", "saturation", "hue")


class ColorJitterParams(OpParams):
    brightness: Span(0.0, 10.0, scalar="around1", scalar_max=1.0) = Field(
        (0.6, 1.4), description="Brightness factor range; v means [max(0, 1-v), 1+v].")
    contrast: Span(0.0, 10.0, scalar="around1", scalar_max=1.0) = Field(
        (0.6, 1.4), description="Contrast factor range; v means [max(0, 1-v), 1+v].")
    saturation: Span(0.0, 10.0, scalar="around1", scalar_max=1.0) = Field(
        (0.6, 1.4), description="Saturation factor range; v means [max(0, 1-v), 1+v].")
    hue: Span(-0.5, 0.5, scalar="sym") = Field(
        (-0.1, 0.1), description="Hue shift range in turns of the colour wheel; h in [0, 0.5] "
                                 "means [-h, h].")
    random_order: Bool() = Field(True, description="Apply the four adjustments in a random "
                                                   "order per sample (as torchvision).")


@register_op
class ColorJitter(Op):
    """Brightness, contrast, saturation and hue jitter with torchvision's ``ColorJitter``
    semantics (the SimCLR/MoCo v2 recipe, Chen et al. 2020): factors drawn per sample, the
    four adjustments in a random order per sample, each clipped to [0, 1]. RGB only.

    The hue shift rotates the HSV hue exactly as torchvision does, computed for a whole batch
    in closed form (:func:`adjust_hue`); samples whose factor is the identity are left
    untouched, bit for bit."""

    name = "color_jitter"
    Params = ColorJitterParams
    channels = RGB
    summary = "brightness/contrast/saturation/hue (torchvision semantics)"
    group = "natural images (RGB)"
    example: ClassVar[dict[str, Any]] = {"brightness": [0.5, 0.6], "hue": [0.2, 0.3]}

    def sample_params(self, batch_size, image_shape, generator, device) -> Params:
        pr = self.params
        out = {
            "brightness": uniform(pr.brightness, (batch_size,), generator, device),
            "contrast": uniform(pr.contrast, (batch_size,), generator, device),
            "saturation": uniform(pr.saturation, (batch_size,), generator, device),
            "hue": uniform(pr.hue, (batch_size,), generator, device),
        }
        order = rand((batch_size, 4), generator, device).argsort(dim=1)
        if not pr.random_order:
            order = torch.arange(4, device=device).expand(batch_size, 4).clone()
        out["order"] = order
        return out

    def native_apply(self, x: Tensor, out: Tensor, idx: Tensor,
                     params: dict[str, Tensor]) -> bool:
        factors = torch.stack([params[k].to(out.device, out.dtype) for k in JITTERS], 1)
        order = params["order"].to(out.device, torch.int64)
        native.color_jitter(out, order, factors, torch.tensor(LUMA), idx)
        return True

    def transform(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        fns = (("brightness", adjust_brightness), ("contrast", adjust_contrast),
               ("saturation", adjust_saturation), ("hue", adjust_hue))
        identity = {"brightness": 1.0, "contrast": 1.0, "saturation": 1.0, "hue": 0.0}
        order = params["order"].to(x.device)
        factors = {key: params[key].to(x.device, x.dtype) for key, _ in fns}
        # which (position, adjustment) pairs have samples: one small host sync for all 16
        active = ((order[:, :, None] == torch.arange(4, device=x.device))
                  & torch.stack([factors[key] != identity[key] for key, _ in fns], 1)[:, None, :])
        todo = active.any(0).nonzero().tolist()
        out = x.clone()
        # at one position every sample has exactly one adjustment, so the row sets written
        # by the adjustments of a position are disjoint and can share one output tensor
        for position, which in todo:
            key, fn = fns[which]
            sel = active[:, position, which].nonzero().squeeze(1)
            out.index_copy_(0, sel, fn(out.index_select(0, sel), factors[key][sel]))
        return out


class GrayscaleParams(OpParams):
    pass


@register_op
class Grayscale(Op):
    """Replace RGB by its luma (0.2989 R + 0.587 G + 0.114 B) in all three channels
    (torchvision ``RandomGrayscale``). RGB only: on stains it would erase channel identity."""

    name = "grayscale"
    Params = GrayscaleParams
    channels = RGB
    summary = "luma copied to the three channels"
    group = "natural images (RGB)"
    example: ClassVar[dict[str, Any]] = {}

    def transform(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        return gray(x).expand(-1, 3, -1, -1).contiguous()
