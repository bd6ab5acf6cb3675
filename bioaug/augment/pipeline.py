"""From a protocol to batched views: :func:`build_pipeline`, :class:`Pipeline`.

A pipeline turns one batch ``(B, C, H, W)`` into one tensor per view, each
``(B, C, crop_size, crop_size)``, on the batch's device. Sampling is separate from
application, as in kornia: :meth:`Pipeline.sample` draws every random parameter of every
view for a batch, :meth:`Pipeline.apply` uses them. Under data parallelism every rank
samples the parameters of the *global* batch from the same seed and applies
``params.select(its_shard)`` to its own images, so the views do not depend on how many
ranks there are.

**End-of-view rule.** A view always leaves at ``crop_size``. If its steps leave the image
at another size (or it has no crop step), the view ends with an implicit fit: a central
``crop_size`` window when the image is at least that large on both sides, otherwise a
resize of the shorter side to ``crop_size`` (bilinear, antialiased) followed by that
central window.

**Multi-crop.** A protocol view with ``count: N`` makes N views, each with its own draws
(:attr:`Pipeline.views` lists every view made). Views of one crop size are made together:
on the CPU they share one output block and, where their first stages are crops, turns and
flips, one pass over the batch (:func:`warp_views`); on an accelerator the N copies of one
recipe run as one batch of ``N·B`` images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from bioaug.augment import native
from bioaug.augment.buffers import OutputBuffers
from bioaug.augment.fusion import FusedWarp, plan
from bioaug.augment.ops import OPS, Op
from bioaug.augment.ops.base import Shape
from bioaug.augment.ops.crop import center_crop
from bioaug.augment.ops.geometry import warp_views
from bioaug.augment.schema import Protocol
from bioaug.errors import DataError, ProtocolError, format_path

Index = slice | Tensor | Sequence[int]


def fit_to_crop(x: Tensor, size: int) -> Tensor:
    """Apply the end-of-view rule (see the module docstring).

    Parameters
    ----------
    x
        A batch ``(B, C, H, W)``.
    size
        The view's crop size.

    Returns
    -------
    Tensor
        ``(B, C, size, size)``: the central window when ``x`` is at least ``size`` on both
        sides, else ``x`` resized (shorter side to ``size``) and then its central window.

    Examples
    --------
    >>> import torch
    >>> from bioaug.augment import fit_to_crop
    >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> fit_to_crop(x, 2)
    tensor([[[[ 5.,  6.],
              [ 9., 10.]]]])

    A smaller image is enlarged first, a constant one stays constant:

    >>> small = fit_to_crop(torch.ones(2, 3, 3, 5), 4)
    >>> tuple(small.shape), round(float(small.min()), 4), round(float(small.max()), 4)
    ((2, 3, 4, 4), 1.0, 1.0)
    """
    h, w = x.shape[2], x.shape[3]
    if (h, w) == (size, size):
        return x
    if min(h, w) < size:
        scale = size / min(h, w)
        nh, nw = max(size, math.ceil(h * scale - 1e-6)), max(size, math.ceil(w * scale - 1e-6))
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    return center_crop(x, size)


@dataclass
class PipelineParams:
    """Every random parameter of every view for one batch (replayable, sliceable).

    ``views[v][s]`` is the dict of per-sample tensors of step ``s`` of view ``v``; every
    tensor's first dimension is the batch.
    """

    batch_size: int
    image_shape: Shape
    views: list[list[dict[str, Tensor]]] = field(default_factory=list)

    def select(self, idx: Index) -> PipelineParams:
        """The parameters of a subset of the batch (a slice, index tensor or bool mask)."""
        if isinstance(idx, slice):
            n = len(range(*idx.indices(self.batch_size)))
            def take(t: Tensor) -> Tensor:
                return t[idx]
        else:
            index = torch.as_tensor(idx)
            if index.dtype == torch.bool:
                if index.numel() != self.batch_size:
                    raise ValueError(f"a boolean mask must have {self.batch_size} entries, "
                                     f"got {index.numel()}")
                index = index.nonzero().squeeze(1)
            index = index.long()
            n = int(index.numel())
            def take(t: Tensor) -> Tensor:
                return t.index_select(0, index.to(t.device))
        views = [[{k: take(v) for k, v in step.items()} for step in view] for view in self.views]
        return PipelineParams(batch_size=n, image_shape=self.image_shape, views=views)

    def to(self, device: torch.device | str) -> PipelineParams:
        views = [[{k: v.to(device) for k, v in step.items()} for step in view]
                 for view in self.views]
        return PipelineParams(self.batch_size, self.image_shape, views)


@dataclass
class ViewPipeline:
    crop_size: int
    ops: list[Op]
    paths: list[str]
    stages: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.stages:
            self.stages = [(i, i + 1) for i in range(len(self.ops))]
        self._fused = {start: FusedWarp(self.ops[start:stop])
                       for start, stop in self.stages if stop - start > 1}

    def head(self, shape: Shape, drawn: Sequence[dict[str, Tensor]],
             device: torch.device) -> Tensor | None:
        """The maps ``(B, 2, 3)`` of the first stage when it is a bilinear fused warp that
        lands on ``crop_size`` (so that :class:`Pipeline` may warp it together with the other
        views' first stages), else ``None``."""
        if not self.stages or self.stages[0][1] - self.stages[0][0] < 2:
            return None
        fused = self._fused[0]
        if fused.mode != "bilinear":
            return None
        matrix, size = fused.matrix(shape, drawn[:self.stages[0][1]], device)
        return matrix if size == (self.crop_size, self.crop_size) else None

    def run(self, x: Tensor, drawn: Sequence[dict[str, Tensor]],
            out: Tensor | None = None, *, first: int = 0) -> Tensor:
        """The view of batch ``x`` for the parameters ``drawn``; written into ``out`` (a
        ``(B, C, crop, crop)`` tensor) when given, by the first stage where it can be.
        ``first=1`` when the first stage was done elsewhere: ``x`` is then its output."""
        source = x
        for i, (start, stop) in enumerate(self.stages[first:], start=first):
            if stop - start > 1:
                x = self._fused[start].apply(x, drawn[start:stop], out=out if i == 0 else None)
            else:
                # the caller's batch is never written to; our own intermediates may be
                x = self.ops[start].apply(x, drawn[start], inplace=not _shares(x, source)
                                          or first > 0)
        x = fit_to_crop(x, self.crop_size)
        if out is not None:
            if x.data_ptr() == out.data_ptr() and x.shape == out.shape and x.is_contiguous():
                return out
            return out.copy_(x.clone() if _shares(x, out) else x)
        return x.clone() if _shares(x, source) else x.contiguous()


def _join_draws(drawn: list[list[dict[str, Tensor]]], batch: int
                ) -> list[dict[str, Tensor]] | None:
    """The draws of several views of one recipe joined along the batch (view-major), or
    ``None`` when a parameter is not per sample."""
    joined = []
    for steps in zip(*drawn, strict=True):
        if any(t.ndim == 0 or t.shape[0] != batch for step in steps for t in step.values()):
            return None
        joined.append({k: torch.cat([step[k] for step in steps]) for k in steps[0]})
    return joined


def _shares(a: Tensor, b: Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


class Pipeline:
    """Batched augmentation views for one protocol and one channel count.

    ``pipeline(x, generator)`` → list of ``n_views`` tensors ``(B, C, crop, crop)``.
    """

    def __init__(self, protocol: Protocol, views: list[ViewPipeline], n_channels: int) -> None:
        self.protocol = protocol
        self.views = views
        self.n_channels = n_channels
        self._outputs = OutputBuffers()

    @property
    def n_views(self) -> int:
        return len(self.views)

    @property
    def crop_sizes(self) -> list[int]:
        return [v.crop_size for v in self.views]

    def __repr__(self) -> str:
        lines = [f"Pipeline({self.protocol.name!r}, channels={self.n_channels})"]
        for i, v in enumerate(self.views):
            names = [" + ".join(op.name for op in v.ops[a:b]) for a, b in v.stages]
            lines.append(f"  view {i} (crop {v.crop_size}): " + (" → ".join(names) or "identity"))
        return "\n".join(lines)

    # -- checks ----------------------------------------------------------------------
    def _check_input(self, x: Any) -> None:
        if not isinstance(x, Tensor):
            raise DataError(f"augmentation input must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4:
            raise DataError(f"augmentation input must be a batch (B, C, H, W), got shape "
                            f"{tuple(x.shape)}")
        if not x.is_floating_point():
            raise DataError(f"augmentation input must be float in [0, 1], got {x.dtype}",
                            hint="use Store.read_float or divide integers by their maximum")
        if x.shape[1] != self.n_channels:
            raise DataError(f"the pipeline was built for {self.n_channels} channel(s) but the "
                            f"batch has {x.shape[1]}")

    # -- sampling / application -------------------------------------------------------
    def sample(self, batch_size: int, image_shape: Sequence[int],
               generator: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> PipelineParams:
        """Draw the parameters of every view for a batch of ``batch_size`` images of
        ``image_shape`` ``(C, H, W)``. The same generator state gives the same draw."""
        shape: Shape = tuple(int(s) for s in image_shape)  # type: ignore[assignment]
        if len(shape) != 3:
            raise DataError(f"image_shape must be (C, H, W), got {tuple(image_shape)}")
        if shape[0] != self.n_channels:
            raise DataError(f"the pipeline was built for {self.n_channels} channel(s) but "
                            f"image_shape has {shape[0]}")
        out = PipelineParams(batch_size=int(batch_size), image_shape=shape)
        for view in self.views:
            s = shape
            drawn = []
            for op in view.ops:
                drawn.append(op.sample(batch_size, s, generator, device))
                s = op.output_shape(s)
            out.views.append(drawn)
        return out

    def apply(self, x: Tensor, params: PipelineParams) -> list[Tensor]:
        """Apply drawn ``params`` to ``x``; returns one ``(B, C, crop, crop)`` tensor per view.

        On the CPU the views are written into the memory of an earlier batch's views once
        nothing holds those any more (:mod:`bioaug.augment.buffers`); when all views have
        the same crop size they are slices of one ``(V, B, C, crop, crop)`` tensor, and
        their first stages may run as one pass over ``x`` (:func:`warp_views`)."""
        self._check_input(x)
        if tuple(x.shape[1:]) != tuple(params.image_shape) or x.shape[0] != params.batch_size:
            raise DataError(f"the parameters were drawn for {params.batch_size} images of shape "
                            f"{tuple(params.image_shape)}, got {x.shape[0]} of "
                            f"{tuple(x.shape[1:])}", hint="use params.select() for a shard")
        if x.device.type != "cpu":  # the device's caching allocator reuses memory anyway
            return self._apply_on_device(x, params)
        b, c = x.shape[0], x.shape[1]
        out: list[Tensor | None] = [None] * self.n_views
        for slot, (crop, members) in enumerate(self._groups(lambda v: v.crop_size)):
            # one buffer per crop size: the first stages of its views may run together
            block = self._outputs.take(slot, (len(members), b, c, crop, crop), x.dtype,
                                       x.device)
            first = 1 if self._joint_heads(x, params, block, members) else 0
            for k, i in enumerate(members):
                view, target = self.views[i], block[k]
                out[i] = view.run(target if first else x, params.views[i], out=target,
                                  first=first)
        return out  # type: ignore[return-value]

    def _groups(self, key: Any) -> list[tuple[Any, list[int]]]:
        """View indices grouped by ``key(view)``, groups in order of first appearance."""
        groups: dict[Any, list[int]] = {}
        for i, view in enumerate(self.views):
            groups.setdefault(key(view), []).append(i)
        return list(groups.items())

    def _apply_on_device(self, x: Tensor, params: PipelineParams) -> list[Tensor]:
        """The copies of one recipe (``count: N``) as one batch of ``N·B`` images."""
        out: list[Tensor | None] = [None] * self.n_views
        b = x.shape[0]
        for _, members in self._groups(id):
            view = self.views[members[0]]
            drawn = [params.views[i] for i in members]
            joined = _join_draws(drawn, b) if len(members) > 1 else None
            if joined is None:
                for i in members:
                    out[i] = view.run(x, params.views[i])
                continue
            both = view.run(x.repeat(len(members), 1, 1, 1), joined)
            for i, part in zip(members, both.split(b), strict=True):
                out[i] = part
        return out  # type: ignore[return-value]

    def _joint_heads(self, x: Tensor, params: PipelineParams, block: Tensor,
                     members: list[int]) -> bool:
        """Warp the first stage of the views ``members`` in one pass over ``x`` into
        ``block`` ``(V, B, C, crop, crop)`` when they are all crops/turns/flips (see
        :func:`warp_views`)."""
        if len(members) < 2 or not native.available(x):
            return False
        shape: Shape = tuple(x.shape[1:])  # type: ignore[assignment]
        heads = [self.views[i].head(shape, params.views[i], x.device) for i in members]
        if any(h is None for h in heads):
            return False
        size = (block.shape[3], block.shape[4])
        return warp_views(x, heads, size, block)  # type: ignore[arg-type]

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        self._check_input(x)
        params = self.sample(x.shape[0], tuple(x.shape[1:]), generator, x.device)
        return self.apply(x, params)


def same_channels(declared: Sequence[str], actual: Sequence[str]) -> bool:
    """Whether two channel lists name the same channels in the same order.

    The one rule for matching channel names everywhere: case does not count (``DAPI`` is
    ``dapi``), order does.

    Parameters
    ----------
    declared
        Channel names a protocol or a model expects.
    actual
        Channel names of the data.

    Returns
    -------
    bool
        True when both lists have the same names, case aside, in the same order.

    Examples
    --------
    >>> from bioaug.augment import same_channels
    >>> same_channels(["DAPI", "Tubulin"], ["dapi", "TUBULIN"])
    True
    >>> same_channels(["DAPI", "Tubulin"], ["Tubulin", "DAPI"])
    False
    """
    return [str(n).casefold() for n in declared] == [str(n).casefold() for n in actual]


def build_pipeline(protocol: Protocol, n_channels: int,
                   channel_names: Sequence[str] | None = None, *,
                   fuse: bool = True) -> Pipeline:
    """Instantiate the ops of ``protocol`` for data with ``n_channels`` channels.

    ``fuse`` resamples runs of crop / quarter-turn / flip steps once (see
    :mod:`bioaug.augment.fusion`); ``fuse=False`` runs every step on its own.

    Parameters
    ----------
    protocol
        A validated protocol (:func:`~bioaug.augment.load_protocol`).
    n_channels
        Channels of the images the pipeline will get.
    channel_names
        The data's channel names, checked against the protocol's ``channels:`` (case
        aside, order counts) when both are given.
    fuse
        Resample runs of crop / quarter-turn / flip steps once.

    Returns
    -------
    Pipeline
        Callable on a float batch ``(B, n_channels, H, W)``; returns one
        ``(B, n_channels, crop, crop)`` tensor per view.

    Raises :class:`ProtocolError` when an op cannot handle that many channels or the
    protocol's declared channels do not match the data's.

    Examples
    --------
    >>> import torch
    >>> from bioaug.augment import build_pipeline, load_protocol
    >>> pipeline = build_pipeline(load_protocol("none"), n_channels=2)
    >>> pipeline.n_views, pipeline.crop_sizes
    (2, [64, 64])
    >>> x = torch.rand(3, 2, 80, 80, generator=torch.Generator().manual_seed(0))
    >>> views = pipeline(x, generator=torch.Generator().manual_seed(0))
    >>> tuple(views[0].shape), torch.equal(views[0], x[:, :, 8:72, 8:72])
    ((3, 2, 64, 64), True)

    The expert BBBC021 protocol declares three channels:

    >>> build_pipeline(load_protocol("bbbc021-expert"), n_channels=2)
    Traceback (most recent call last):
    ...
    bioaug.errors.ProtocolError: ...bbbc021-expert.yaml:...: the protocol declares 3 channel(s) (DAPI, Tubulin, Actin) but the data has 2...
    """
    # 80+ lines only through its documentation (parameters and a running example), not its code.
    if isinstance(n_channels, bool) or not isinstance(n_channels, int) or n_channels < 1:
        raise ProtocolError(f"n_channels must be a positive integer, got {n_channels!r}")
    declared = protocol.channels
    if declared is not None:
        if len(declared) != n_channels:
            raise ProtocolError(
                f"the protocol declares {len(declared)} channel(s) ({', '.join(declared)}) but "
                f"the data has {n_channels}", where=protocol.location(("channels",)),
                hint="use a protocol written for this data, or remove `channels:` from it")
        if channel_names is not None:
            names = list(channel_names)
            if not same_channels(declared, names):
                raise ProtocolError(
                    f"the protocol declares channels [{', '.join(declared)}] but the data's are "
                    f"[{', '.join(names)}]", where=protocol.location(("channels",)),
                    hint="channel order matters; fix `channels:` in the protocol")
    names = list(declared) if declared is not None else (
        list(channel_names) if channel_names is not None else None)
    problems = []
    views = []
    for i, view in enumerate(protocol.views):
        home = view.same_as if view.same_as is not None else i
        ops, paths = [], []
        for j, step in enumerate(view.steps):
            path = ("views", home, "steps", j, step.op)
            cls = OPS[step.op]
            if not cls.channels.allows(n_channels):
                problems.append((path, f"{step.op} supports {cls.channels.describe()}; the "
                                       f"data has {n_channels} channel"
                                       f"{'s' if n_channels != 1 else ''}"))
                continue
            wrong = cls.channel_problem(step.params, n_channels, names)
            if wrong is not None:
                problems.append(((*path, wrong[0]), wrong[1]))
                continue
            op = cls(step.params, crop_size=view.crop_size)
            op.bind_channels(n_channels, names)
            if hasattr(op, "location"):
                op.location = f"{protocol.location(path)}: {format_path(path)}"
            ops.append(op)
            paths.append(format_path(path))
        stages = plan(ops) if fuse else []
        made = ViewPipeline(crop_size=view.crop_size, ops=ops, paths=paths, stages=stages)
        views += [made] * view.count  # each copy gets its own draws
    if problems:
        seen, unique = set(), []
        for path, msg in problems:
            if path not in seen:
                seen.add(path)
                unique.append((path, msg))
        from bioaug.augment.schema import make_error
        items = [(protocol._lines.line(p), format_path(p), m) for p, m in unique]
        raise make_error(protocol.source, items)
    return Pipeline(protocol, views, n_channels)
