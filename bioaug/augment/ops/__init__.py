"""The op registry: protocol step name → :class:`Op` class.

Adding an op is one small module declaring its ``Params`` model and ``channels`` plus one
line here.
"""

from __future__ import annotations

from typing import Any

from bioaug.augment.ops.affine import Affine, Rotate
from bioaug.augment.ops.albumentations_op import Albumentations
from bioaug.augment.ops.base import ChannelSupport, Op
from bioaug.augment.ops.blur import Defocus, GaussianBlur
from bioaug.augment.ops.channel_dropout import ChannelDropout
from bioaug.augment.ops.color import ColorJitter, Grayscale
from bioaug.augment.ops.crop import CenterCrop, RandomResizedCrop, Resize
from bioaug.augment.ops.dihedral import Flip, Rotate90
from bioaug.augment.ops.elastic import Elastic
from bioaug.augment.ops.erasing import RandomErasing
from bioaug.augment.ops.noise import GaussianNoise, PoissonNoise
from bioaug.augment.ops.normalize import IntensityNormalize
from bioaug.augment.ops.params import OpParams
from bioaug.augment.ops.stain_jitter import StainJitter
from bioaug.augment.ops.tone import Equalize, Solarize

OPS: dict[str, type[Op]] = {
    # geometry
    "random_resized_crop": RandomResizedCrop,
    "center_crop": CenterCrop,
    "resize": Resize,
    "rotate90": Rotate90,
    "flip": Flip,
    "rotate": Rotate,
    "affine": Affine,
    "elastic": Elastic,
    # microscopy intensities and optics
    "stain_jitter": StainJitter,
    "channel_dropout": ChannelDropout,
    "gaussian_blur": GaussianBlur,
    "defocus": Defocus,
    "gaussian_noise": GaussianNoise,
    "poisson_noise": PoissonNoise,
    "intensity_normalize": IntensityNormalize,
    "random_erasing": RandomErasing,
    # natural images (RGB)
    "color_jitter": ColorJitter,
    "grayscale": Grayscale,
    "solarize": Solarize,
    "equalize": Equalize,
    # escape hatch
    "albumentations": Albumentations,
}


def make_op(name: str, crop_size: int | None = None, **params: Any) -> Op:
    """Build op ``name`` from keyword parameters, validated as in a protocol file.

    Pass ``p`` explicitly. Bad names or values raise :class:`~bioaug.errors.ProtocolError`.
    """
    from bioaug.augment.schema import parse_step

    step = parse_step({name: params}, path=f"{name}", source="make_op")
    return OPS[step.op](step.params, crop_size=crop_size)


__all__ = ["OPS", "ChannelSupport", "Op", "OpParams", "make_op"]
