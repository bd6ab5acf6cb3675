"""The op base class: per-sample parameter sampling separated from batched application.

Following kornia's design, an op first *samples* the random parameters of every sample of a
batch (a dict of tensors whose first dimension is the batch) from a ``torch.Generator``,
then *applies* them to a ``(B, C, H, W)`` float tensor in one batched computation. The
draw can be replayed, sliced to a shard of the batch (DDP) and inspected.

Parameters depend only on the generator state and the image shape, never on pixel
values, so a draw can be made before the images are loaded (or on another device).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from bioaug.augment.ops.params import OpParams

Shape = tuple[int, int, int]
Params = dict[str, Tensor]


@dataclass(frozen=True)
class ChannelSupport:
    """The channel counts an op handles: any, at least ``minimum``, or exactly ``exact``."""

    minimum: int = 1
    exact: frozenset[int] | None = None
    note: str = ""

    def allows(self, n: int) -> bool:
        if self.exact is not None:
            return n in self.exact
        return n >= self.minimum

    def describe(self) -> str:
        if self.exact is not None:
            counts = ", ".join(str(c) for c in sorted(self.exact))
            text = f"exactly {counts} channel{'s' if self.exact != {1} else ''}"
        elif self.minimum > 1:
            text = f"{self.minimum} or more channels"
        else:
            text = "any number of channels"
        return f"{text} ({self.note})" if self.note else text


ANY = ChannelSupport()
RGB = ChannelSupport(exact=frozenset({3}), note="RGB")


def generator_device(generator: torch.Generator | None, device: torch.device | str) -> torch.device:
    return generator.device if generator is not None else torch.device(device)


def rand(shape: tuple[int, ...], generator: torch.Generator | None,
         device: torch.device | str) -> Tensor:
    """Uniform [0, 1) numbers drawn on the generator's device, returned on ``device``."""
    g_dev = generator_device(generator, device)
    return torch.rand(shape, generator=generator, device=g_dev).to(device)


def randn(shape: tuple[int, ...], generator: torch.Generator | None,
          device: torch.device | str) -> Tensor:
    g_dev = generator_device(generator, device)
    return torch.randn(shape, generator=generator, device=g_dev).to(device)


def uniform(span: tuple[float, float], shape: tuple[int, ...],
            generator: torch.Generator | None, device: torch.device | str) -> Tensor:
    """Uniform numbers in ``[lo, hi]`` (exactly ``lo`` when ``lo == hi``)."""
    lo, hi = span
    u = rand(shape, generator, device)
    return lo + (hi - lo) * u


def bernoulli(p: float, batch_size: int, generator: torch.Generator | None,
              device: torch.device | str) -> Tensor:
    """A boolean mask: which samples of the batch are transformed (probability ``p``)."""
    return rand((batch_size,), generator, device) < p


def picked_rows(mask: Tensor, shape: tuple[int, ...], draw) -> Tensor:
    """A ``(B, *shape)`` tensor whose picked rows hold ``draw((n_picked, *shape))`` and whose
    other rows are zero: per-pixel random numbers are only drawn for the samples an op
    transforms, yet stay indexable by sample (``PipelineParams.select``)."""
    out = torch.zeros((mask.shape[0], *shape), device=mask.device)
    idx = mask.nonzero().squeeze(1)
    if idx.numel():
        out[idx] = draw((int(idx.numel()), *shape)).to(mask.device)
    return out


def bcast(v: Tensor, ndim: int = 4) -> Tensor:
    """Reshape a per-sample ``(B,)`` or ``(B, C)`` tensor to broadcast over ``(B, C, H, W)``."""
    return v.reshape(*v.shape, *([1] * (ndim - v.dim())))


class Op:
    """A batched, device-agnostic augmentation.

    Subclasses set ``name``, ``Params`` (a :class:`OpParams` model), ``channels`` and
    implement :meth:`sample_params` and :meth:`transform`. ``transform`` receives only the
    picked samples (those whose ``apply`` flag is set) when the op keeps the image size; ops
    that change the size set ``changes_size = True`` and handle the flag themselves.
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type[OpParams]] = OpParams
    channels: ClassVar[ChannelSupport] = ANY
    changes_size: ClassVar[bool] = False
    #: The op runs per sample on the CPU (albumentations escape hatch).
    per_sample: ClassVar[bool] = False
    #: One line for ``list-ops``; the class docstring gives the details.
    summary: ClassVar[str] = ""
    #: Run ``transform`` on the picked samples only (worth it for costly ops); otherwise
    #: transform the whole batch and copy the unpicked samples back.
    subset_apply: ClassVar[bool] = True
    #: The op is a pixel-space affine map that never reads outside the image (crops,
    #: quarter turns, flips): a run of such ops is resampled once (see ``fusion``).
    fusable: ClassVar[bool] = False

    def __init__(self, params: OpParams, crop_size: int | None = None) -> None:
        if not isinstance(params, self.Params):
            raise TypeError(f"{self.name} needs {self.Params.__name__}, got {type(params).__name__}")
        self.params = params
        self.crop_size = crop_size

    @property
    def p(self) -> float:
        return float(self.params.p)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.model_dump().items())
        return f"{type(self).__name__}({args})"

    # -- shapes --------------------------------------------------------------------
    def output_shape(self, shape: Shape) -> Shape:
        """The ``(C, H, W)`` this op produces from an input of ``shape``."""
        return shape

    # -- sampling ------------------------------------------------------------------
    def sample(self, batch_size: int, image_shape: Shape,
               generator: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> Params:
        """Per-sample parameters: ``apply`` (bool, ``(B,)``) plus the op's own draws."""
        params = {"apply": bernoulli(self.p, batch_size, generator, device)}
        params.update(self.sample_params(batch_size, tuple(image_shape), generator, device))
        return params

    def sample_params(self, batch_size: int, image_shape: Shape,
                      generator: torch.Generator | None, device: torch.device | str) -> Params:
        return {}

    # -- application ---------------------------------------------------------------
    def apply(self, x: Tensor, params: Mapping[str, Tensor], *, inplace: bool = False) -> Tensor:
        """Apply sampled ``params`` to ``x`` (``(B, C, H, W)``); unpicked samples pass through
        unchanged (bit for bit); when no sample is picked ``x`` itself is returned.
        ``inplace`` lets the op overwrite ``x`` (the pipeline does so for the intermediate
        tensors it owns); the result must still be used."""
        if self.changes_size:
            return self.transform(x, dict(params))
        mask = params["apply"]
        if mask.device != x.device:
            mask = mask.to(x.device)
        n = int(mask.sum())
        if n == 0:
            return x
        if n == mask.numel():
            return self.transform(x, dict(params))
        if not self.subset_apply:
            # transform everything, then put the few unpicked samples back
            keep = (~mask).nonzero().squeeze(1)
            out = self.transform(x, dict(params))
            return out.index_copy_(0, keep, x.index_select(0, keep))
        idx = mask.nonzero().squeeze(1)
        sub = {k: v.index_select(0, idx.to(v.device)) for k, v in params.items()}
        out = x if inplace else x.clone()
        return out.index_copy_(0, idx, self.transform(x.index_select(0, idx), sub).to(x.dtype))

    def transform(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        raise NotImplementedError

    def matrix(self, params: Mapping[str, Tensor], shape: Shape) -> Tensor:
        """For ``fusable`` ops: per-sample ``(B, 2, 3)`` pixel maps output → input (identity
        for unpicked samples), for an input of ``shape``."""
        raise NotImplementedError

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Sample parameters for ``x`` and apply them."""
        params = self.sample(x.shape[0], tuple(x.shape[1:]), generator, x.device)
        return self.apply(x, params)

    # -- documentation -------------------------------------------------------------
    @classmethod
    def doc(cls) -> str:
        return (cls.__doc__ or "").strip()

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {"name": cls.name, "summary": cls.summary, "channels": cls.channels.describe()}
