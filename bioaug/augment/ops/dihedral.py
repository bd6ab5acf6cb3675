"""Exact pixel permutations: ``rotate90`` and ``flip``.

Microscopy fields have no preferred orientation, so the eight symmetries of the square are
the cheapest invariance to ask for (used by every expert protocol for cell images). Both
ops move pixels without resampling: outputs are bit-identical to ``torch.rot90`` /
``torch.flip`` and to albumentations' ``RandomRotate90`` / ``HorizontalFlip`` /
``VerticalFlip``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import torch
from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError
from torch import Tensor

from bioaug.augment.ops.base import Op, Params, rand, register_op
from bioaug.augment.ops.params import Allowed, Bool, OpParams
from bioaug.errors import DataError


class Rotate90Params(OpParams):
    turns: Annotated[list[int], Allowed("subset of [0, 1, 2, 3]")] = Field(
        [0, 1, 2, 3],
        description="Quarter turns (counter-clockwise) to draw from, uniformly; subset of 0-3.",
        json_schema_extra={"items": {"enum": [0, 1, 2, 3]}, "minItems": 1})

    @field_validator("turns", mode="before")
    @classmethod
    def _check_turns(cls, value: Any) -> list[int]:
        if not isinstance(value, list) or not value:
            raise PydanticCustomError("wrong_type",
                                      f"must be a non-empty list of quarter turns 0-3, got {value!r}")
        for t in value:
            if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= 3:
                raise PydanticCustomError("out_of_range",
                                          f"quarter turns must be in [0, 3], got {t!r}")
        return sorted(set(value))


@register_op
class Rotate90(Op):
    """Rotate by ``k`` quarter turns counter-clockwise, ``k`` drawn uniformly from ``turns``.

    With the default ``turns: [0, 1, 2, 3]`` and ``p: 1`` each orientation has probability
    1/4. Images must be square (put a crop before it otherwise). Applied per group of equal
    ``k`` (at most four ``torch.rot90`` calls per batch).
    """

    name = "rotate90"
    Params = Rotate90Params
    summary = "quarter turns (exact permutation)"
    group = "geometry"
    example: ClassVar[dict[str, Any]] = {"turns": [1, 2, 3]}
    fusable = True

    def matrix(self, params, shape) -> Tensor:
        _, h, w = shape
        if h != w:
            raise DataError(f"rotate90 needs square images, got {h}×{w}",
                            hint="put a crop (random_resized_crop, center_crop) before it")
        k = torch.where(params["apply"], params["k"], torch.zeros_like(params["k"]))
        n = float(w - 1)
        # torch.rot90 by k: output (x, y) reads input (x, y) rotated back k quarter turns
        table = torch.tensor([[[1, 0, 0], [0, 1, 0]],
                              [[0, -1, n], [1, 0, 0]],
                              [[-1, 0, n], [0, -1, n]],
                              [[0, 1, 0], [-1, 0, n]]], dtype=torch.float32, device=k.device)
        return table[k.long()]

    def sample_params(self, batch_size, image_shape, generator, device) -> Params:
        turns = torch.tensor(self.params.turns, device=device)
        pick = (rand((batch_size,), generator, device) * len(turns)).long().clamp(max=len(turns) - 1)
        return {"k": turns[pick]}

    def transform(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        if x.shape[2] != x.shape[3]:
            raise DataError(f"rotate90 needs square images, got {x.shape[2]}×{x.shape[3]}",
                            hint="put a crop (random_resized_crop, center_crop) before it")
        k = params["k"].to(x.device)
        out = x.clone()
        for turn in (1, 2, 3):
            sel = (k == turn).nonzero().squeeze(1)
            if sel.numel():
                out[sel] = torch.rot90(x.index_select(0, sel), turn, dims=(2, 3))
        return out


class FlipParams(OpParams):
    horizontal: Bool() = Field(True, description="Mirror left-right (with probability p).")
    vertical: Bool() = Field(False, description="Mirror top-bottom (with probability p, "
                                                "independently of the horizontal flip).")


@register_op
class Flip(Op):
    """Mirror images left-right and/or top-bottom.

    Each enabled axis is flipped independently with probability ``p`` (like torchvision's
    ``RandomHorizontalFlip`` followed by ``RandomVerticalFlip``); ``apply`` marks the samples
    flipped along at least one axis.
    """

    name = "flip"
    Params = FlipParams
    summary = "mirror left-right / top-bottom"
    group = "geometry"
    example: ClassVar[dict[str, Any]] = {"horizontal": True}
    fusable = True

    def matrix(self, params, shape) -> Tensor:
        _, h, w = shape
        hf = params["horizontal"].float()
        vf = params["vertical"].float()
        zero = torch.zeros_like(hf)
        row0 = torch.stack([1 - 2 * hf, zero, hf * (w - 1)], dim=1)
        row1 = torch.stack([zero, 1 - 2 * vf, vf * (h - 1)], dim=1)
        return torch.stack([row0, row1], dim=1)

    def sample(self, batch_size, image_shape, generator=None, device="cpu") -> Params:
        u = rand((batch_size, 2), generator, device)
        h = (u[:, 0] < self.p) & self.params.horizontal
        v = (u[:, 1] < self.p) & self.params.vertical
        return {"apply": h | v, "horizontal": h, "vertical": v}

    def transform(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        for key, dim in (("horizontal", 3), ("vertical", 2)):
            x = _flip_rows(x, params[key].to(x.device), dim)
        return x


def _flip_rows(x: Tensor, rows: Tensor, dim: int) -> Tensor:
    """``x`` with the samples marked in ``rows`` mirrored along ``dim`` (copies only those;
    a masked ``torch.where`` over the whole batch is several times slower on the CPU)."""
    idx = rows.nonzero().squeeze(1)
    if idx.numel() == 0:
        return x
    if idx.numel() == len(x):
        return x.flip(dim)
    return x.clone().index_copy_(0, idx, x.index_select(0, idx).flip(dim))
