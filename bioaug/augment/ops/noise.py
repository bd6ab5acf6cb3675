"""Sensor noise: ``gaussian_noise`` (read noise) and ``poisson_noise`` (shot noise).

The random numbers of the noise itself are drawn at sampling time (for the picked samples
only) and kept with the other parameters, so a draw replays exactly and a shard of the batch (``PipelineParams.select``)
gets exactly the noise it would have had in the full batch.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import Tensor

from bioaug.augment.ops.base import (
    Op,
    Params,
    bcast,
    bernoulli,
    picked_rows,
    rand,
    randn,
    uniform,
)
from bioaug.augment.ops.params import Bool, OpParams, Span


class GaussianNoiseParams(OpParams):
    std: Span(0.0, 1.0, scalar="point") = Field(
        (0.01, 0.05), description="Noise standard deviation range (intensity units, image in "
                                  "[0, 1]); a number s means [s, s].")
    per_channel: Bool() = Field(True, description="Independent noise per channel (else one "
                                                  "field shared by all channels).")


class GaussianNoise(Op):
    """Add zero-mean Gaussian noise of per-sample ``std`` and clip to [0, 1]:
    ``y = clip(x + σ·z, 0, 1)``, ``z ~ N(0, 1)`` per pixel."""

    name = "gaussian_noise"
    Params = GaussianNoiseParams
    summary = "additive Gaussian (read) noise"

    def sample(self, batch_size, image_shape, generator=None, device="cpu") -> Params:
        c, h, w = image_shape
        mask = bernoulli(self.p, batch_size, generator, device)
        std = uniform(self.params.std, (batch_size,), generator, device)
        shape = (c if self.params.per_channel else 1, h, w)
        z = picked_rows(mask, shape, lambda s: randn(s, generator, device))
        return {"apply": mask, "std": std, "noise": z}

    def apply(self, x: Tensor, params, *, inplace: bool = False) -> Tensor:  # type: ignore[override]
        """Unpicked samples have zero noise rows and get σ = 0: ``x + 0`` is exact, so the
        batch is one in-place pass."""
        mask = params["apply"].to(x.device)
        if not bool(mask.any()):
            return x
        std = params["std"].to(x.device, x.dtype).masked_fill(~mask, 0.0)
        z = params["noise"].to(x.device, x.dtype)
        out = x if inplace else x.clone()
        return out.addcmul_(bcast(std), z).clamp_(0.0, 1.0)

    def transform(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        z = params["noise"].to(x.device, x.dtype)
        return (x + bcast(params["std"].to(x.device, x.dtype)) * z).clamp_(0.0, 1.0)


class PoissonNoiseParams(OpParams):
    photons: Span(1.0, 1e6, scalar="point") = Field(
        (100.0, 1000.0), description="Photon count of a full-scale (1.0) pixel, drawn per "
                                     "sample from this range; fewer photons = more noise.")


class PoissonNoise(Op):
    """Shot noise: pixel ``x`` becomes ``k / N`` with ``k ~ Poisson(x · N)``, clipped to [0, 1].

    ``N`` (``photons``) is the expected photon count of a full-scale pixel. Counts are drawn
    by inverting the Poisson CDF from one stored uniform number per pixel (exact for rates
    below 30, the normal approximation with continuity rounding above).
    """

    name = "poisson_noise"
    Params = PoissonNoiseParams
    summary = "Poisson shot noise with a photon-count scale"

    def sample(self, batch_size, image_shape, generator=None, device="cpu") -> Params:
        mask = bernoulli(self.p, batch_size, generator, device)
        photons = uniform(self.params.photons, (batch_size,), generator, device)
        u = picked_rows(mask, tuple(image_shape), lambda s: rand(s, generator, device))
        return {"apply": mask, "photons": photons, "uniform": u}

    def transform(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        n = bcast(params["photons"].to(x.device, torch.float32))
        rate = x.float() * n
        counts = poisson_from_uniform(rate, params["uniform"].to(x.device, torch.float32))
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
