"""``albumentations``: any albumentations transform by name, per sample on the CPU.

The escape hatch for what bioaug does not have natively. It is slow (a Python loop over the
batch, with copies to and from the CPU) but replayable: each sample's transform is seeded
from the pipeline's generator. ``p`` is bioaug's; the transform itself always runs with
``p=1``. Images are handed over as float32 ``(H, W, C)`` in [0, 1].
"""

from __future__ import annotations

import inspect
import os
from functools import cache
from typing import Annotated, Any, ClassVar

import numpy as np
import torch
from pydantic import ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError
from torch import Tensor

from bioaug.augment.ops.base import Op, Params, Shape, rand, register_op
from bioaug.augment.ops.params import Allowed, OpParams
from bioaug.errors import ProtocolError, did_you_mean


@cache
def albumentations_module() -> Any:
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations

    return albumentations


@cache
def transform_names() -> tuple[str, ...]:
    """Names of albumentations' image transforms (pixel-level and spatial)."""
    a = albumentations_module()
    base = a.core.transforms_interface.BasicTransform
    skip = {"BasicTransform", "DualTransform", "ImageOnlyTransform", "NoOp", "Lambda",
            "BaseCompose", "Compose", "OneOf", "SomeOf", "Sequential", "OneOrOther",
            "ReplayCompose", "SelectiveChannelTransform", "RandomOrder"}
    names = []
    for name in dir(a):
        obj = getattr(a, name)
        if (inspect.isclass(obj) and issubclass(obj, base) and not inspect.isabstract(obj)
                and name not in skip and not name.startswith("_")):
            names.append(name)
    return tuple(sorted(names))


def build_transform(name: str, kwargs: dict[str, Any]) -> Any:
    """Construct ``albumentations.<name>(**kwargs, p=1)`` or raise a schema error."""
    names = transform_names()
    if name not in names:
        raise PydanticCustomError(
            "unknown_transform",
            f"unknown albumentations transform '{name}'{did_you_mean(name, names)}; see "
            "https://albumentations.ai/docs/ for the list")
    cls = getattr(albumentations_module(), name)
    sig = inspect.signature(cls.__init__)
    accepted = [k for k in sig.parameters if k not in ("self", "args", "kwargs")]
    takes_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    for key in kwargs:
        if key not in accepted and not takes_any:
            raise PydanticCustomError(
                "unknown_parameter",
                f"albumentations.{name} has no parameter '{key}'"
                f"{did_you_mean(key, accepted)}; it takes: {', '.join(a for a in accepted if a != 'p')}")
    try:
        return cls(**kwargs, p=1.0)
    except Exception as exc:  # albumentations validates with its own pydantic schemas
        cause = exc if hasattr(exc, "errors") else exc.__cause__
        problems = getattr(cause, "errors", None)
        if callable(problems):
            seen: dict[str, str] = {}
            for e in problems():
                key = str(e.get("loc", ("?",))[0]) if e.get("loc") else "arguments"
                seen.setdefault(key, str(e.get("msg")))
            text = "; ".join(f"{k}: {m}" for k, m in seen.items())
        else:
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PydanticCustomError("bad_arguments",
                                  f"albumentations.{name} rejected its arguments: {text}") from None


def _schema_names(schema: dict[str, Any]) -> None:
    """The JSON Schema lists the transform names albumentations has (when it imports)."""
    try:
        names = list(transform_names())
    except Exception:  # pragma: no cover - albumentations is a hard dependency
        return
    if names:
        schema["properties"]["transform"]["enum"] = names


class AlbumentationsParams(OpParams):
    model_config = ConfigDict(extra="allow", frozen=True, json_schema_extra=_schema_names)

    transform: Annotated[str, Allowed("an albumentations transform name")] = Field(
        description="Name of an albumentations transform (e.g. ElasticTransform); every other "
                    "key is passed to it as a keyword argument.")

    @model_validator(mode="before")
    @classmethod
    def _transform_is_text(cls, data: Any) -> Any:
        if isinstance(data, dict) and "transform" in data and not isinstance(data["transform"], str):
            raise PydanticCustomError("wrong_type", "transform must be the name of an "
                                                    f"albumentations transform, got {data['transform']!r}")
        return data

    @model_validator(mode="after")
    def _constructs(self) -> AlbumentationsParams:
        build_transform(self.transform, self.kwargs())
        return self

    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


@register_op
class Albumentations(Op):
    """Run an albumentations transform on each picked sample (CPU, one sample at a time).

    Example: ``- albumentations: {transform: ElasticTransform, alpha: 30, sigma: 5, p: 0.3}``.
    Spatial transforms must give every sample the same output size.
    """

    name = "albumentations"
    Params = AlbumentationsParams
    per_sample = True
    summary = "any albumentations transform by name (per sample, CPU)"
    group = "escape hatch"
    example: ClassVar[dict[str, Any]] = {"transform": "RandomBrightnessContrast"}

    def __init__(self, params: OpParams, crop_size: int | None = None) -> None:
        super().__init__(params, crop_size)
        self.transform_obj = build_transform(self.params.transform, self.params.kwargs())
        self._shapes: dict[Shape, Shape] = {}
        self.location = f"albumentations.{self.params.transform}"

    def output_shape(self, shape: Shape) -> Shape:
        shape = tuple(shape)
        if shape not in self._shapes:
            probe = np.zeros((shape[1], shape[2], shape[0]), dtype=np.float32)
            out = self._run(probe, 0)
            self._shapes[shape] = (shape[0], out.shape[0], out.shape[1])
        return self._shapes[shape]

    @property
    def changes_size(self) -> bool:  # type: ignore[override]
        return any(s[1:] != o[1:] for s, o in self._shapes.items())

    def sample_params(self, batch_size, image_shape, generator, device) -> Params:
        self.output_shape(image_shape)
        seeds = (rand((batch_size,), generator, device) * 2**31).long()
        return {"seed": seeds}

    def _run(self, image: np.ndarray, seed: int) -> np.ndarray:
        t = self.transform_obj
        t.set_random_seed(int(seed))
        try:
            out = t(image=image)["image"]
        except Exception as exc:
            raise ProtocolError(
                f"albumentations.{self.params.transform} failed on a {image.shape[0]}×"
                f"{image.shape[1]} image with {image.shape[2]} channel(s): {exc}",
                where=self.location) from None
        out = np.asarray(out, dtype=np.float32)
        if out.ndim == 2:
            out = out[:, :, None]
        if out.shape[2] != image.shape[2]:
            raise ProtocolError(
                f"albumentations.{self.params.transform} changed the channel count from "
                f"{image.shape[2]} to {out.shape[2]}", where=self.location)
        return out

    def transform(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        """Each picked sample through the transform; when the transform changes the size
        (the op then gets the whole batch, :attr:`changes_size`), the unpicked samples are
        resized to match."""
        shape = self.output_shape(tuple(x.shape[1:]))
        mask = params["apply"].cpu().tolist() if "apply" in params else [True] * len(x)
        seeds = params["seed"].cpu().tolist()
        host = x.detach().float().cpu().permute(0, 2, 3, 1).numpy()
        outs = []
        for image, picked, seed in zip(host, mask, seeds, strict=True):
            if picked:
                outs.append(self._run(np.ascontiguousarray(image), seed))
            elif shape[1:] == tuple(image.shape[:2]):
                outs.append(image)
            else:  # an unpicked sample still has to match the picked ones' size
                small = torch.from_numpy(image).permute(2, 0, 1)[None]
                small = torch.nn.functional.interpolate(small, size=shape[1:], mode="bilinear",
                                                        align_corners=False, antialias=True)
                outs.append(small[0].permute(1, 2, 0).numpy())
        batch = torch.from_numpy(np.stack(outs)).permute(0, 3, 1, 2)
        return batch.clamp(0.0, 1.0).to(device=x.device, dtype=x.dtype).contiguous()
