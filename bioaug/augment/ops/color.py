"""Colour ops for RGB images: ``color_jitter`` and ``grayscale``.

They mix channels (hue rotates R→G→B, grayscale averages them), which only means something
for red-green-blue pictures; for fluorescence stains use ``stain_jitter``. Both refuse any
channel count other than 3.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor

from bioaug.augment.ops.base import RGB, Op, Params, bcast, rand, uniform
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


def rgb_to_hsv(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r, g, b = x.unbind(1)
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / maxc.clamp_min(1e-12), torch.zeros_like(maxc))
    safe = delta.clamp_min(1e-12)
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    return h, s, maxc


def hsv_to_rgb(h: Tensor, s: Tensor, v: Tensor) -> Tensor:
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.long() % 6
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = torch.stack([
        torch.stack([v, q, p, p, t, v], 1),
        torch.stack([t, v, v, q, p, p], 1),
        torch.stack([p, p, t, v, v, q], 1),
    ], 1)  # (B, 3, 6, H, W)
    idx = i.unsqueeze(1).unsqueeze(2).expand(-1, 3, 1, -1, -1)
    return table.gather(2, idx).squeeze(2)


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    h, s, v = rgb_to_hsv(x)
    h = (h + bcast(shift, 3)) % 1.0
    return hsv_to_rgb(h, s, v).clamp(0.0, 1.0)


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


class ColorJitter(Op):
    """Brightness, contrast, saturation and hue jitter with torchvision's ``ColorJitter``
    semantics (the SimCLR/MoCo v2 recipe, Chen et al. 2020): factors drawn per sample, the
    four adjustments in a random order per sample, each clipped to [0, 1]. RGB only."""

    name = "color_jitter"
    Params = ColorJitterParams
    channels = RGB
    summary = "brightness/contrast/saturation/hue (torchvision semantics)"

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

    def transform(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        fns = (("brightness", adjust_brightness), ("contrast", adjust_contrast),
               ("saturation", adjust_saturation), ("hue", adjust_hue))
        order = params["order"].to(x.device)
        identity = {"brightness": 1.0, "contrast": 1.0, "saturation": 1.0, "hue": 0.0}
        for position in range(4):
            for which, (key, fn) in enumerate(fns):
                factor = params[key].to(x.device, x.dtype)
                sel = ((order[:, position] == which) & (factor != identity[key])).nonzero()
                sel = sel.squeeze(1)
                if sel.numel():
                    x = x.index_copy(0, sel, fn(x.index_select(0, sel), factor[sel]))
        return x


class GrayscaleParams(OpParams):
    pass


class Grayscale(Op):
    """Replace RGB by its luma (0.2989 R + 0.587 G + 0.114 B) in all three channels
    (torchvision ``RandomGrayscale``). RGB only: on stains it would erase channel identity."""

    name = "grayscale"
    subset_apply = False
    Params = GrayscaleParams
    channels = RGB
    summary = "luma copied to the three channels"

    def transform(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        return gray(x).expand(-1, 3, -1, -1).contiguous()
