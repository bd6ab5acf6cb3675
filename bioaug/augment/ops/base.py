"""The op base class: per-sample parameter sampling separated from batched application.

Following kornia's design, an op first *samples* the random parameters of every sample of a
batch (a dict of tensors whose first dimension is the batch) from a ``torch.Generator``,
then *applies* them to a ``(B, C, H, W)`` float tensor in one batched computation. The
draw can be replayed, sliced to a shard of the batch (DDP) and inspected.

Parameters depend only on the generator state and the image shape, never on pixel
values, so a draw can be made before the images are loaded (or on another device).

This module also holds the op registry :data:`OPS`. An op module registers its classes with
:func:`register_op`; each class declares everything the rest of bioaug needs to know about
it (its ``group`` for the documentation, ``example`` parameters for the property tests,
whether it ``resamples`` pixels), so adding an op is one module plus its test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor

from bioaug.augment import native
from bioaug.augment.ops.params import OpParams, resolve_channels
from bioaug.errors import ProtocolError

Shape = tuple[int, int, int]
Params = dict[str, Tensor]

#: Samples per block for ``blocked`` ops on the CPU (a few MB of intermediates for
#: 100-px crops).
BLOCK = 32


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


def draw_seeds(batch_size: int, generator: torch.Generator | None,
               device: torch.device | str) -> Tensor:
    """One 62-bit seed per sample (int64, ``(B,)``), for ops whose random numbers are per
    pixel: they store the seed and draw the pixels' numbers when they apply it (see
    :func:`seeded_rows`), so a draw stays small, replayable and sliceable by sample."""
    g_dev = generator_device(generator, device)
    return torch.randint(0, 2**62, (batch_size,), generator=generator, device=g_dev,
                         dtype=torch.int64).to(device)


def _generate(seed: int, shape: tuple[int, ...], kind: str, gen: torch.Generator,
              out: Tensor) -> Tensor:
    gen.manual_seed(seed)
    if kind == "normal":
        return torch.randn(shape, generator=gen, out=out)
    return torch.rand(shape, generator=gen, out=out)


def seeded_rows(seeds: Tensor, shape: tuple[int, ...], kind: str,
                device: torch.device | str) -> Tensor:
    """``(len(seeds), *shape)`` float32: row ``i`` holds ``shape`` numbers drawn by a
    generator on ``device`` seeded with ``seeds[i]``, standard normal (``kind="normal"``) or
    uniform on [0, 1) (``"uniform"``). The numbers of a sample depend only on its seed, so a
    shard of the batch gets exactly what it would get in the whole batch. On the CPU the
    rows are drawn by ``torch.get_num_threads()`` threads, each with its own generator."""
    device = torch.device(device)
    out = torch.empty((len(seeds), *shape), dtype=torch.float32, device=device)
    values = [int(s) for s in seeds.tolist()]

    def draw(start: int, stop: int) -> None:
        gen = torch.Generator(device=device)
        for i in range(start, stop):
            _generate(values[i], shape, kind, gen, out[i])

    if device.type == "cpu":
        native.parallel(draw, len(values))
    else:
        draw(0, len(values))
    return out


def select_samples(params: Mapping[str, Tensor], idx: Tensor) -> dict[str, Tensor]:
    """The parameters of the samples ``idx`` (each tensor indexed on its own device)."""
    return {k: v.index_select(0, idx.to(v.device)) for k, v in params.items()}


def picked(params: Mapping[str, Tensor], device: torch.device) -> tuple[Tensor, dict[str, Tensor]]:
    """The indices (on ``device``) of the samples whose ``apply`` flag is set, and their
    parameters (:func:`select_samples`)."""
    idx = params["apply"].to(device).nonzero().squeeze(1)
    return idx, select_samples(params, idx)


def bcast(v: Tensor, ndim: int = 4) -> Tensor:
    """Reshape a per-sample ``(B,)`` or ``(B, C)`` tensor to broadcast over ``(B, C, H, W)``."""
    return v.reshape(*v.shape, *([1] * (ndim - v.dim())))


class Op:
    """A batched, device-agnostic augmentation.

    Subclasses set ``name``, ``Params`` (a :class:`OpParams` model), ``channels`` and
    implement :meth:`sample_params` and :meth:`transform`. ``transform`` receives only the
    picked samples (those whose ``apply`` flag is set) when the op keeps the image size; ops
    that change the size set ``changes_size = True`` and handle the flag themselves. An op
    whose torch code is slow on the CPU may add a compiled kernel to
    :mod:`bioaug.augment.native` and call it from :meth:`native_apply`, the one way in to
    the kernels; ``transform`` stays the reference the tests hold the kernel to.
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type[OpParams]] = OpParams
    channels: ClassVar[ChannelSupport] = ANY
    #: Where the op is listed in the documentation (one of :data:`GROUPS`, or a new one).
    group: ClassVar[str] = ""
    #: Parameters (without ``p``) that make the op visibly change any image it is applied
    #: to; the property tests run every registered op with them.
    example: ClassVar[Mapping[str, Any]] = {}
    #: The op interpolates between pixels (crops, rotations, warps). A ``fusable`` op that
    #: resamples starts a run of fusable steps that is resampled once (see ``fusion``).
    resamples: ClassVar[bool] = False
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
    #: On the CPU, transform the picked samples :data:`BLOCK` at a time (for ops with large
    #: intermediates: blurs, warps), so they are reused rather than allocated per batch.
    blocked: ClassVar[bool] = False
    #: Parameter → the value that leaves a sample unchanged bit for bit (a gain of 1, no
    #: dropped channel). When given, the unpicked samples get these values and the whole
    #: batch is transformed in one pass, which is cheaper than picking samples out for ops
    #: that are a few passes over the pixels; such an op's ``transform`` takes ``inplace``.
    neutral: ClassVar[Mapping[str, float | bool]] = {}
    #: Parameters that pick channels (:func:`~bioaug.augment.ops.params.ChannelSelection`):
    #: checked against the protocol's declared channel names when it is read
    #: (:meth:`channel_problem`), resolved to indices when the pipeline is built for the
    #: data (:meth:`bind_channels`) and read back with :meth:`selected_channels`.
    channel_params: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: OpParams, crop_size: int | None = None) -> None:
        if not isinstance(params, self.Params):
            raise TypeError(f"{self.name} needs {self.Params.__name__}, got {type(params).__name__}")
        self.params = params
        self.crop_size = crop_size
        self._bound: tuple[int, dict[str, list[int]]] | None = None

    # -- channels ------------------------------------------------------------------
    @classmethod
    def channel_problem(cls, params: OpParams, n_channels: int,
                        names: list[str] | None) -> tuple[str, str] | None:
        """``(parameter, what is wrong)`` with the channels ``params`` pick, for data of
        ``n_channels`` channels called ``names`` (``None``: unnamed); ``None`` when they are
        all there."""
        for key in cls.channel_params:
            try:
                resolve_channels(getattr(params, key), n_channels, names)
            except ValueError as exc:
                return key, str(exc)
        return None

    def bind_channels(self, n_channels: int, names: list[str] | None) -> None:
        """Resolve the channel parameters for data of ``n_channels`` channels called
        ``names`` (raises ``ValueError`` as :meth:`channel_problem` reports)."""
        self._bound = (n_channels, {key: resolve_channels(getattr(self.params, key),
                                                          n_channels, names)
                                    for key in self.channel_params})

    def selected_channels(self, key: str, n_channels: int) -> list[int]:
        """The 0-based channels parameter ``key`` picks in images of ``n_channels``
        channels (as bound by the pipeline; names need it)."""
        if self._bound is not None and self._bound[0] == n_channels:
            return self._bound[1][key]
        try:
            return resolve_channels(getattr(self.params, key), n_channels, None)
        except ValueError as exc:
            raise ProtocolError(f"{self.name}: {key}: {exc}") from None

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
        if (done := self.apply_compiled(x, params, inplace)) is not None:
            return done
        if self.changes_size:
            return self.transform(x, dict(params))
        if self.neutral:
            return self._apply_neutral(x, params, inplace)
        mask = params["apply"]
        if mask.device != x.device:
            mask = mask.to(x.device)
        n = int(mask.sum())
        if n == 0:
            return x
        if self.blocked and x.device.type == "cpu" and n > BLOCK:
            return self._apply_blocks(x, params, mask.nonzero().squeeze(1), inplace)
        if n == mask.numel():
            return self.transform(x, dict(params))
        if not self.subset_apply:
            # transform everything, then put the few unpicked samples back
            keep = (~mask).nonzero().squeeze(1)
            out = self.transform(x, dict(params))
            return out.index_copy_(0, keep, x.index_select(0, keep))
        idx = mask.nonzero().squeeze(1)
        sub = select_samples(params, idx)
        out = x if inplace else x.clone()
        return out.index_copy_(0, idx, self.transform(x.index_select(0, idx), sub).to(x.dtype))

    def _apply_blocks(self, x: Tensor, params: Mapping[str, Tensor], idx: Tensor,
                      inplace: bool) -> Tensor:
        """The picked samples ``idx`` transformed :data:`BLOCK` at a time, written back into
        (a copy of) ``x``: each block's intermediates are small enough for the allocator to
        reuse them from block to block instead of faulting in fresh pages, and stay in the
        cache. Exact because every op treats samples independently (the shard contract)."""
        out = x if inplace else x.clone()
        for start in range(0, int(idx.numel()), BLOCK):
            rows = idx[start:start + BLOCK]
            sub = select_samples(params, rows)
            out.index_copy_(0, rows, self.transform(x.index_select(0, rows), sub).to(x.dtype))
        return out

    def _apply_neutral(self, x: Tensor, params: Mapping[str, Tensor], inplace: bool) -> Tensor:
        """The whole batch transformed at once (in place when allowed), the unpicked
        samples with the :attr:`neutral` parameters (so they come out unchanged)."""
        mask = params["apply"].to(x.device)
        if not bool(mask.any()):
            return x
        filled = dict(params)
        for key, value in self.neutral.items():
            values = params[key].to(x.device)
            keep = (~mask).reshape(-1, *([1] * (values.dim() - 1)))
            filled[key] = values.masked_fill(keep, value)
        return self.transform(x, filled, inplace=inplace)  # type: ignore[call-arg]

    def transform(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        raise NotImplementedError

    def native_apply(self, x: Tensor, out: Tensor, idx: Tensor,
                     params: dict[str, Tensor]) -> bool:
        """Optional: the op by a compiled CPU kernel (:mod:`bioaug.augment.native`).

        Writes the result for the samples ``idx`` of ``x`` into the same rows of ``out``,
        given those samples' ``params``. For an op that keeps the size, ``out`` is ``x``
        (or its contiguous copy) and the picked samples are transformed in place; for an
        op that ``changes_size``, ``out`` is a new ``(B, *output_shape)`` tensor and
        ``idx`` every sample (such ops read the ``apply`` flag from their parameters).
        Returns ``False``, having written nothing, when these parameters do not suit the
        kernel (the torch code then runs). An op with a kernel overrides this;
        :meth:`apply_compiled` calls it.
        """
        raise NotImplementedError

    @classmethod
    def has_kernel(cls) -> bool:
        """Whether the op has a compiled CPU kernel (overrides :meth:`native_apply`)."""
        return cls.native_apply is not Op.native_apply

    def apply_compiled(self, x: Tensor, params: Mapping[str, Tensor],
                       inplace: bool) -> Tensor | None:
        """:meth:`apply` by the op's compiled kernel when it has one and ``x`` suits it
        (the picked samples only, in place when allowed), else ``None``. :meth:`apply`
        calls this first; an op that overrides :meth:`apply` must too."""
        if not self.has_kernel() or not native.available(x):
            return None
        if self.changes_size:
            shape = self.output_shape(tuple(x.shape[1:]))  # type: ignore[arg-type]
            out = torch.empty((x.shape[0], *shape), dtype=x.dtype)
            every = torch.arange(x.shape[0])
            return out if self.native_apply(x, out, every, dict(params)) else None
        idx, sub = picked(params, x.device)
        if idx.numel() == 0:
            return x
        out = native.writable(x, inplace)
        return out if self.native_apply(out, out, idx, sub) else None

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
        return {"name": cls.name, "summary": cls.summary, "channels": cls.channels.describe(),
                "group": cls.group}


# ---------------------------------------------------------------------------- registry
#: Documentation groups, in the order the reference lists them; an op may name a new one,
#: which is listed after these.
GROUPS: tuple[str, ...] = ("geometry", "microscopy intensity and optics",
                           "natural images (RGB)", "escape hatch")

#: The op registry: protocol step name → :class:`Op` class, filled by :func:`register_op`.
OPS: dict[str, type[Op]] = {}

OpClass = TypeVar("OpClass", bound=type[Op])


def register_op(cls: OpClass) -> OpClass:
    """Class decorator: make ``cls`` a protocol step named ``cls.name``.

    Checks the declarations the rest of bioaug reads (name, ``Params``, ``group``,
    ``summary``, ``example``); the property tests check that ``example`` validates.
    """
    name = cls.name
    if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
        raise TypeError(f"{cls.__name__}.name must be a lower-case identifier, got {name!r}")
    if name in OPS and OPS[name].__qualname__ != cls.__qualname__:
        raise TypeError(f"op name '{name}' is taken by {OPS[name].__qualname__}")
    if not (isinstance(cls.Params, type) and issubclass(cls.Params, OpParams)):
        raise TypeError(f"{cls.__name__}.Params must be an OpParams model")
    for attr in ("group", "summary"):
        if not getattr(cls, attr):
            raise TypeError(f"{cls.__name__} must declare `{attr}`")
    if "p" in cls.example:
        raise TypeError(f"{cls.__name__}.example must not set p (the tests choose it)")
    OPS[name] = cls
    return cls


def ops_by_group() -> dict[str, list[str]]:
    """Registered op names by documentation group (known groups first, in order)."""
    groups: dict[str, list[str]] = {g: [] for g in GROUPS}
    for name, cls in OPS.items():
        groups.setdefault(cls.group, []).append(name)
    return {g: names for g, names in groups.items() if names}
