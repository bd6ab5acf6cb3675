"""Optical blur: ``gaussian_blur`` (separable, per-sample sigma) and ``defocus`` (disk).

Each sample gets its own kernel and the whole batch is blurred at once, reflecting at the
borders: ``gaussian_blur`` in two 1-D passes (:func:`separable_blur`), ``defocus`` in one
grouped ``conv2d`` call (``B·C`` groups).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from bioaug.augment import native
from bioaug.augment.ops.base import Op, Params, register_op, uniform
from bioaug.augment.ops.params import OpParams, OptionalInteger, Span


def gaussian_kernels(sigma: Tensor, radius: int) -> Tensor:
    """Normalised 1-D Gaussian kernels ``(B, 2·radius+1)`` for per-sample ``sigma`` ``(B,)``."""
    t = torch.arange(-radius, radius + 1, dtype=sigma.dtype, device=sigma.device)
    k = torch.exp(-0.5 * (t[None, :] / sigma[:, None].clamp_min(1e-6)) ** 2)
    return k / k.sum(dim=1, keepdim=True)


def _pad_reflect(x: Tensor, pad: tuple[int, int, int, int]) -> Tensor:
    h, w = x.shape[-2:]
    if pad[0] >= w or pad[2] >= h:  # reflection needs pad < size
        return F.pad(x, pad, mode="replicate")
    return F.pad(x, pad, mode="reflect")


def separable_blur(x: Tensor, kernels: Tensor) -> Tensor:
    """Blur ``x`` (B, C, H, W) with per-sample 1-D ``kernels`` (B, K) along y then x.

    The vertical pass makes each output row a weighted sum of K padded input rows: on the
    CPU that is one ``embedding_bag`` over the table of all rows (a fused kernel). The
    horizontal pass (and the vertical one elsewhere) is K shifted multiply-adds, each a
    batched ``addcmul``; both are several times faster than a grouped convolution with
    ``B·C`` groups.
    """
    b, c, h, w = x.shape
    k = kernels.shape[1]
    r = k // 2
    taps = kernels.to(x.dtype).view(b, 1, k, 1, 1)
    padded = _pad_reflect(x, (r, r, r, r))
    hp, wp = h + 2 * r, w + 2 * r
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        planes = torch.arange(b * c, device=x.device).view(b, c, 1, 1) * hp
        offsets = torch.arange(h, device=x.device)[:, None] + torch.arange(k, device=x.device)
        index = (planes + offsets).view(-1, k)  # (B·C·H, K) rows of the padded planes
        weight = taps.view(b, 1, 1, k).expand(b, c, h, k).reshape(-1, k)
        rows = F.embedding_bag(index, padded.reshape(b * c * hp, wp),
                               per_sample_weights=weight, mode="sum").view(b, c, h, wp)
    else:
        rows = padded[:, :, 0:h, :] * taps[:, :, 0]
        for i in range(1, k):
            rows.addcmul_(padded[:, :, i:i + h, :], taps[:, :, i])
    out = rows[..., 0:w] * taps[:, :, 0]
    for i in range(1, k):
        out.addcmul_(rows[..., i:i + w], taps[:, :, i])
    return out


class GaussianBlurParams(OpParams):
    sigma: Span(0.0, 50.0, open_lo=True, scalar="point") = Field(
        (0.1, 2.0), description="Standard deviation range in pixels; a number s means [s, s].")
    kernel_size: OptionalInteger(3, 201) = Field(
        None, description="Odd kernel width; null = 2·ceil(3·max sigma)+1 (capped by the image).")


@register_op
class GaussianBlur(Op):
    """Gaussian blur with ``sigma`` drawn per sample (the SimCLR / MoCo v2 blur, Chen et al.
    2020). Separable: a vertical then a horizontal pass with each sample's own kernel."""

    name = "gaussian_blur"
    Params = GaussianBlurParams
    summary = "Gaussian blur, per-sample sigma (separable)"
    group = "microscopy intensity and optics"
    blocked = True
    example: ClassVar[dict[str, Any]] = {"sigma": [1.0, 2.0]}

    def sample_params(self, batch_size, image_shape, generator, device) -> Params:
        return {"sigma": uniform(self.params.sigma, (batch_size,), generator, device)}

    def radius(self, h: int, w: int) -> int:
        if self.params.kernel_size is not None:
            radius = self.params.kernel_size // 2
        else:
            radius = math.ceil(3.0 * self.params.sigma[1])
        return max(1, min(radius, max(h, w) - 1))

    def native_apply(self, x: Tensor, out: Tensor, idx: Tensor,
                     params: dict[str, Tensor]) -> bool:
        kernels = gaussian_kernels(params["sigma"].to(out.device, torch.float32),
                                   self.radius(*out.shape[2:]))
        native.blur(out, kernels, idx)
        return True

    def transform(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        sigma = params["sigma"].to(x.device, torch.float32)
        return separable_blur(x, gaussian_kernels(sigma, self.radius(*x.shape[2:])))


class DefocusParams(OpParams):
    radius: Span(0.0, 20.0, scalar="point") = Field(
        (1.0, 3.0), description="Disk radius range in pixels; a number r means [r, r].")


@register_op
class Defocus(Op):
    """Out-of-focus blur: convolution with an anti-aliased disk of per-sample ``radius``
    (the point-spread function of a defocused lens in geometric optics)."""

    name = "defocus"
    Params = DefocusParams
    summary = "out-of-focus blur with a disk kernel"
    group = "microscopy intensity and optics"
    blocked = True
    example: ClassVar[dict[str, Any]] = {"radius": [1.5, 2.5]}

    def sample_params(self, batch_size, image_shape, generator, device) -> Params:
        return {"radius": uniform(self.params.radius, (batch_size,), generator, device)}

    def transform(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        b, c, h, w = x.shape
        reach = max(1, min(math.ceil(self.params.radius[1]), min(h, w) - 1))
        t = torch.arange(-reach, reach + 1, dtype=torch.float32, device=x.device)
        dist = torch.sqrt(t[:, None] ** 2 + t[None, :] ** 2)
        radius = params["radius"].to(x.device, torch.float32).clamp_min(0.5)
        k = (radius[:, None, None] + 0.5 - dist[None]).clamp(0.0, 1.0)  # soft disk edge
        k = k / k.sum(dim=(1, 2), keepdim=True)
        size = 2 * reach + 1
        weight = k.to(x.dtype).repeat_interleave(c, dim=0).view(b * c, 1, size, size)
        flat = _pad_reflect(x.reshape(1, b * c, h, w), (reach, reach, reach, reach))
        return F.conv2d(flat, weight, groups=b * c).view(b, c, h, w)
