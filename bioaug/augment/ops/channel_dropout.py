"""``channel_dropout``: lose whole channels, never all of them."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import Tensor

from bioaug.augment.ops.base import ChannelSupport, Op, Params, bcast, rand, register_op
from bioaug.augment.ops.params import ChannelSelection, Integer, Number, OpParams


class ChannelDropoutParams(OpParams):
    max_dropped: Integer(1, 64) = Field(
        1, description="Most channels dropped at once (capped at channels - 1); the count is "
                       "uniform in [1, max_dropped].")
    fill: Number(0.0, 1.0) = Field(0.0, description="Value written into dropped channels.")
    channels: ChannelSelection() = Field(
        None, description="The channels that may be dropped (indices from 0 or declared "
                          "names); null: any channel.")


@register_op
class ChannelDropout(Op):
    """Replace 1 to ``max_dropped`` randomly chosen whole channels by ``fill``.

    At least one channel always survives (the count is capped at ``C - 1``), so a model
    must recognise a phenotype from any subset of stains (albumentations
    ``ChannelDropout``). Needs two or more channels.

    ``channels`` limits the draw to some channels, so the others are always kept: dropping
    the label-free channels of imaging flow cytometry (brightfield, darkfield) and never
    the DNA stain makes views that agree only through the DNA, so what a model learns
    follows DNA content and DNA shape, which is what separates cell-cycle phases (Blasi et
    al. 2016, Nat Commun 7:10256; the shipped ``ifc-cellcycle-expert`` protocol). The
    count is then capped at the number of channels picked too.
    """

    name = "channel_dropout"
    Params = ChannelDropoutParams
    channels = ChannelSupport(minimum=2)
    summary = "blank whole channels (at least one survives)"
    group = "microscopy intensity and optics"
    example: ClassVar[dict[str, Any]] = {"max_dropped": 2}
    channel_params = ("channels",)
    # one masked pass over the batch: unpicked samples have no dropped channel
    neutral: ClassVar[dict[str, bool]] = {"dropped": False}

    def sample_params(self, batch_size, image_shape, generator, device) -> Params:
        c = image_shape[0]
        pickable = self.selected_channels("channels", c)
        most = max(1, min(self.params.max_dropped, c - 1, len(pickable)))
        count = 1 + (rand((batch_size,), generator, device) * most).long().clamp(max=most - 1)
        keys = rand((batch_size, c), generator, device)
        if len(pickable) < c:  # the channels that may not go rank last, so are never dropped
            kept = torch.ones(c, dtype=torch.bool, device=keys.device)
            kept[pickable] = False
            keys = keys.masked_fill(kept, 2.0)
        order = keys.argsort(dim=1).argsort(dim=1)
        return {"dropped": order < count[:, None]}

    def transform(self, x: Tensor, params: dict[str, Tensor], *,
                  inplace: bool = False) -> Tensor:
        return self._blank(x, params["dropped"].to(x.device), inplace)

    def _blank(self, x: Tensor, dropped: Tensor, inplace: bool) -> Tensor:
        """``fill`` into the dropped ``(sample, channel)`` planes, the rest untouched."""
        out = x if inplace else x.clone()
        planes = dropped.reshape(-1).nonzero().squeeze(1)
        b, c, h, w = out.shape
        if out.is_contiguous():
            out.view(b * c, h, w).index_fill_(0, planes, self.params.fill)
        else:
            out.masked_fill_(bcast(dropped), self.params.fill)
        return out
