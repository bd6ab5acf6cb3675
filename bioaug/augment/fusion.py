"""Geometric fusion: a run of crop / quarter-turn / flip steps resampled once.

``random_resized_crop`` followed by ``rotate90`` and ``flip`` is, per sample, one affine map
from output pixels to input pixels. Composing the per-sample matrices and calling
``grid_sample`` once gives the same result as running the steps one by one (quarter turns
and flips map the pixel grid onto itself, so they commute exactly with the bilinear
resampling of the crop) at the cost of one resampling. Runs are only fused when they start
with a fusable op that ``resamples`` (the op declares it); chains of quarter turns and flips
alone stay exact permutations.
Parameters are sampled by each op as usual, so fused and unfused pipelines give the same
views for the same seed (up to float rounding).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from bioaug.augment import native
from bioaug.augment.ops.base import Op, Shape
from bioaug.augment.ops.geometry import compose, warp, warp_views


class FusedWarp:
    """Several fusable ops applied as one resampling."""

    def __init__(self, ops: Sequence[Op]) -> None:
        self.ops = list(ops)
        self.name = "+".join(op.name for op in self.ops)
        first = self.ops[0]
        self.mode = getattr(first.params, "interpolation", "bilinear")

    def matrix(self, shape: Shape, params: Sequence[Mapping[str, Tensor]],
               device: torch.device) -> tuple[Tensor, tuple[int, int]]:
        """The per-sample output→input maps ``(B, 2, 3)`` of the whole run for an input of
        ``shape`` ``(C, H, W)``, and the output size."""
        total = None
        for op, p in zip(self.ops, params, strict=True):
            p = {k: v.to(device) for k, v in p.items()}
            m = op.matrix(p, shape).to(torch.float32)
            total = m if total is None else compose(total, m)
            shape = op.output_shape(shape)
        assert total is not None
        return total, (shape[1], shape[2])

    def apply(self, x: Tensor, params: Sequence[Mapping[str, Tensor]],
              out: Tensor | None = None) -> Tensor:
        """The warped batch; written into ``out`` when the resampler can (see :func:`warp`).

        On the CPU a bilinear run is resampled by the compiled kernel where it takes the
        batch (:func:`warp_views`), otherwise by the torch code (:func:`warp`)."""
        total, size = self.matrix(tuple(x.shape[1:]), params, x.device)  # type: ignore[arg-type]
        if self.mode == "bilinear" and native.available(x):
            shape = (*x.shape[:2], *size)
            target = out if out is not None and tuple(out.shape) == shape else \
                torch.empty(shape, dtype=x.dtype)
            if warp_views(x, [total], size, target[None]):
                return target
        return warp(x, total, size, mode=self.mode, padding="border", out=out)


def plan(ops: Sequence[Op]) -> list[tuple[int, int]]:
    """Stages as ``(start, stop)`` index ranges into ``ops``; fused runs span several ops."""
    stages = []
    i = 0
    while i < len(ops):
        j = i + 1
        if ops[i].fusable and ops[i].resamples:
            while j < len(ops) and ops[j].fusable and not ops[j].resamples:
                j += 1
        stages.append((i, j))
        i = j
    return stages
