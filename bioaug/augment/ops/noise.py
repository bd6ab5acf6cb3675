"""Sensor noise: ``gaussian_noise`` (read noise) and ``poisson_noise`` (shot noise).

A draw holds one seed per sample; the per-pixel random numbers of a sample are generated
from its seed when the noise is applied (for the picked samples only), so a draw is small,
replays exactly, and a shard of the batch
(``PipelineParams.select``) gets exactly the noise it would have had in the full batch. The
numbers are generated on the images' device, so the CPU and a GPU give different (equally
distributed) noise for the same seed.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import Tensor

from bioaug.augment import native
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
from bioaug.augment.ops.params import Bool, OpParams, Span


class GaussianNoiseParams(OpParams):
    std: Span(0.0, 1.0, scalar="point") = Field(
        (0.01, 0.05), description="Noise standard deviation range (intensity units, image in "
                                  "[0, 1]); a number s means [s, s].")
    per_channel: Bool() = Field(True, description="Independent noise per channel (else one "
                                                  "field shared by all channels).")


@register_op
class GaussianNoise(Op):
    """Add zero-mean Gaussian noise of per-sample ``std`` and clip to [0, 1]:
    ``y = clip(x + σ·z, 0, 1)``, ``z ~ N(0, 1)`` per pixel."""

    name = "gaussian_noise"
    Params = GaussianNoiseParams
    summary = "additive Gaussian (read) noise"
    group = "microscopy intensity and optics"
    example: ClassVar[dict[str, Any]] = {"std": [0.05, 0.1]}

    def sample(self, batch_size, image_shape, generator=None, device="cpu") -> Params:
        mask = bernoulli(self.p, batch_size, generator, device)
        std = uniform(self.params.std, (batch_size,), generator, device)
        return {"apply": mask, "std": std, "seed": draw_seeds(batch_size, generator, device)}

    def noise_shape(self, x: Tensor) -> tuple[int, int, int]:
        c, h, w = x.shape[1:]
        return (c if self.params.per_channel else 1, h, w)

    def native_apply(self, x: Tensor, out: Tensor, idx: Tensor,
                     params: dict[str, Tensor]) -> bool:
        # all picked samples' numbers at once, added by the kernel
        z = seeded_rows(params["seed"], self.noise_shape(out), "normal", out.device)
        native.add_noise(out, z, params["std"], idx)
        return True

    def transform(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        z = seeded_rows(params["seed"], self.noise_shape(x), "normal", x.device).to(x.dtype)
        noise = z.mul_(bcast(params["std"].to(x.device, x.dtype)))
        # std·z + x in the noise's own memory when it has x's shape (one pass fewer)
        total = noise.add_(x) if noise.shape == x.shape else noise + x
        return total.clamp_(0.0, 1.0)


class PoissonNoiseParams(OpParams):
    photons: Span(1.0, 1e6, scalar="point") = Field(
        (100.0, 1000.0), description="Photon count of a full-scale (1.0) pixel, drawn per "
                                     "sample from this range; fewer photons = more noise.")


@register_op
class PoissonNoise(Op):
    """Shot noise: pixel ``x`` becomes ``k / N`` with ``k ~ Poisson(x · N)``, clipped to [0, 1].

    ``N`` (``photons``) is the expected photon count of a full-scale pixel. Counts are drawn
    by inverting the Poisson CDF from one uniform number per pixel, generated from the
    sample's seed (exact for rates below 30, the normal approximation with continuity
    rounding above).
    """

    name = "poisson_noise"
    Params = PoissonNoiseParams
    summary = "Poisson shot noise with a photon-count scale"
    group = "microscopy intensity and optics"
    example: ClassVar[dict[str, Any]] = {"photons": [20, 50]}

    def sample(self, batch_size, image_shape, generator=None, device="cpu") -> Params:
        mask = bernoulli(self.p, batch_size, generator, device)
        photons = uniform(self.params.photons, (batch_size,), generator, device)
        return {"apply": mask, "photons": photons, "seed": draw_seeds(batch_size, generator, device)}

    def transform(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        n = bcast(params["photons"].to(x.device, torch.float32))
        rate = x.float() * n
        u = seeded_rows(params["seed"], tuple(x.shape[1:]), "uniform", x.device)
        counts = poisson_from_uniform(rate, u)
        return (counts / n).clamp_(0.0, 1.0).to(x.dtype)


SMALL_RATE = 30.0


def poisson_from_uniform(rate: Tensor, u: Tensor) -> Tensor:
    """Poisson counts with mean ``rate`` from uniforms ``u`` (inverse CDF; normal above 30)."""
    u = u.clamp(1e-7, 1 - 1e-7)
    z = math.sqrt(2.0) * torch.erfinv(2.0 * u - 1.0)
    out = torch.round(rate + torch.sqrt(rate) * z).clamp_min(0.0)
    small = rate < SMALL_RATE
    if bool(small.any()):
        lam, us = rate[small].double(), u[small].double()
        prob = torch.exp(-lam)
        cdf = prob.clone()
        k = torch.zeros_like(lam)
        max_k = int(SMALL_RATE + 8 * math.sqrt(SMALL_RATE)) + 10
        for i in range(1, max_k):
            above = us > cdf
            if not bool(above.any()):
                break
            k += above.to(k.dtype)
            prob = prob * lam / i
            cdf = cdf + prob
        out[small] = k.to(out.dtype)
    return out
