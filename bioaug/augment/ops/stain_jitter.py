"""``stain_jitter``: per-channel intensity changes of fluorescence stains."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field
from torch import Tensor

from bioaug.augment import native
from bioaug.augment.ops.base import Op, Params, bcast, register_op, uniform
from bioaug.augment.ops.params import Bool, OpParams, Span


class StainJitterParams(OpParams):
    brightness: Span(0.0, 10.0, scalar="around1", scalar_max=1.0) = Field(
        (0.8, 1.2), description="Intensity gain range; a number v in [0, 1] means [1-v, 1+v].")
    contrast: Span(0.0, 10.0, scalar="around1", scalar_max=1.0) = Field(
        (0.8, 1.2), description="Contrast factor range about the channel mean; v means [1-v, 1+v].")
    gamma: Span(0.0, 10.0, open_lo=True, scalar="around1", scalar_max=0.99) = Field(
        (1.0, 1.0), description="Gamma exponent range; v in [0, 0.99] means [1-v, 1+v]; "
                                "[1, 1] (default) turns it off.")
    per_channel: Bool() = Field(
        True, description="Draw factors per channel (stains vary independently) or one per image.")


@register_op
class StainJitter(Op):
    """Random gain, contrast and gamma per channel, as stains vary from plate to plate.

    For a sample with per-channel factors ``b_c`` (brightness), ``k_c`` (contrast) and
    ``g_c`` (gamma), each drawn uniformly from its range (one draw shared by all channels
    when ``per_channel`` is false), channel ``c`` of image ``x`` becomes::

        a_c = clip(b_c · x_c, 0, 1)
        m_c = mean over pixels of a_c
        y_c = clip(k_c · (a_c − m_c) + m_c, 0, 1) ** g_c

    Brightness is multiplicative (a stain's intensity scales its signal; a black background
    stays black), contrast stretches about the channel mean, and gamma bends the response.
    Unlike ``color_jitter`` it never mixes channels, so channel identity is kept (the
    microscopy argument of Bendidi et al. 2023).
    """

    name = "stain_jitter"
    Params = StainJitterParams
    summary = "per-channel gain / contrast / gamma (fluorescence stains)"
    group = "microscopy intensity and optics"
    example: ClassVar[dict[str, Any]] = {"brightness": [0.5, 0.7]}
    # factors (1, 1, 1) leave an image in [0, 1] bit-identical: the whole batch is one set
    # of passes, the unpicked samples with these
    neutral: ClassVar[dict[str, float]] = {"brightness": 1.0, "contrast": 1.0, "gamma": 1.0}

    def sample_params(self, batch_size, image_shape, generator, device) -> Params:
        n = image_shape[0] if self.params.per_channel else 1
        shape = (batch_size, n)
        b = uniform(self.params.brightness, shape, generator, device)
        k = uniform(self.params.contrast, shape, generator, device)
        g = uniform(self.params.gamma, shape, generator, device)
        if not self.params.per_channel:
            c = image_shape[0]
            b, k, g = b.expand(-1, c), k.expand(-1, c), g.expand(-1, c)
        return {"brightness": b.contiguous(), "contrast": k.contiguous(), "gamma": g.contiguous()}

    def native_apply(self, x: Tensor, out: Tensor, idx: Tensor,
                     params: dict[str, Tensor]) -> bool:
        native.stain_jitter(out, params["brightness"], params["contrast"], params["gamma"], idx)
        return True

    def transform(self, x: Tensor, params: dict[str, Tensor], *,
                  inplace: bool = False) -> Tensor:
        return stain_jitter(x, params["brightness"].to(x.device, x.dtype),
                            params["contrast"].to(x.device, x.dtype),
                            params["gamma"].to(x.device, x.dtype), inplace=inplace)


def stain_jitter(x: Tensor, brightness: Tensor, contrast: Tensor, gamma: Tensor, *,
                 inplace: bool = False) -> Tensor:
    """The formula of :class:`StainJitter` with given ``(B, C)`` factors."""
    b = bcast(brightness)
    a = x.mul_(b) if inplace else x * b
    a.clamp_(0.0, 1.0)
    m = a.mean(dim=(2, 3), keepdim=True)
    k = bcast(contrast)
    # k·(a − m) + m  ==  k·a + (1 − k)·m  (two in-place passes; k = 1 leaves a exactly)
    y = a.mul_(k).add_((1 - k) * m).clamp_(0.0, 1.0)
    active = gamma != 1
    if bool(active.any()):
        rows = active.any(1).nonzero().squeeze(1)
        if rows.numel() == len(y):
            y.pow_(bcast(gamma))
        else:  # only the samples with a gamma: x ** 1 is not always exact in vector pow
            y.index_copy_(0, rows, y.index_select(0, rows).pow_(bcast(gamma[rows])))
    return y

