"""The transformations whose invariance ``bioaug invariance`` measures.

Each entry is a :mod:`bioaug.augment` op with **fixed amplitudes** (ranges written
``[a, a]``) and ``p = 1``, swept over a range of amplitudes as in Ericsson et al. (BMVC
2022): rotation 0–360°, quarter turns, flips, scale (resized crop of a fixed area), shear,
translation, brightness/contrast/gamma (``stain_jitter``, per image), blur σ up to 20, noise,
defocus, channel dropout; and for 3-channel images the colour ops of the natural-image
recipes (brightness/contrast/saturation 0.25–5, hue ±0.5, grayscale).

Amplitude 0 / factor 1 (the identity) is left out: it measures nothing. Ops whose channel
support does not include the data's channel count are skipped from the default library (with
a note) and are an error when asked for by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bioaug.errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class Transformation:
    """A named op at a list of fixed amplitudes."""

    name: str
    op: str
    amplitude: str  # what the amplitude is (unit)
    amplitudes: tuple[Any, ...]
    params: Callable[[Any], dict[str, Any]]
    description: str

    def op_params(self, amplitude: Any) -> dict[str, Any]:
        """The op's parameters at ``amplitude``, always applied (``p = 1``).

        Examples
        --------
        >>> from bioaug.study.invariance_library import LIBRARY
        >>> LIBRARY["blur"].op_params(2.0)
        {'sigma': [2.0, 2.0], 'p': 1.0}
        >>> params = LIBRARY["contrast"].op_params(0.5)
        >>> params["contrast"], params["brightness"], params["gamma"], params["p"]
        ([0.5, 0.5], [1.0, 1.0], [1.0, 1.0], 1.0)
        """
        return {**self.params(amplitude), "p": 1.0}


def _fixed(name: str) -> Callable[[Any], dict[str, Any]]:
    return lambda a: {name: [a, a]}


def _jitter(name: str) -> Callable[[Any], dict[str, Any]]:
    """One stain_jitter factor fixed at ``a``, the others at the identity (1)."""
    def params(a: Any) -> dict[str, Any]:
        out = {"brightness": [1.0, 1.0], "contrast": [1.0, 1.0], "gamma": [1.0, 1.0],
               "per_channel": False}
        out[name] = [a, a]
        return out
    return params


def _color(name: str) -> Callable[[Any], dict[str, Any]]:
    def params(a: Any) -> dict[str, Any]:
        out = {"brightness": [1.0, 1.0], "contrast": [1.0, 1.0],
               "saturation": [1.0, 1.0], "hue": [0.0, 0.0]}
        out[name] = [a, a]
        return out
    return params


FACTORS = (0.25, 0.5, 0.75, 1.5, 2.0, 3.0, 5.0)

LIBRARY: dict[str, Transformation] = {t.name: t for t in [
    Transformation("rotate", "rotate", "degrees", tuple(range(30, 360, 30)),
                   lambda a: {"degrees": [a, a], "mode": "reflect"},
                   "rotation by a fixed angle (reflect padding)"),
    Transformation("rotate90", "rotate90", "quarter turns", (1, 2, 3),
                   lambda a: {"turns": [a]}, "exact quarter turns"),
    Transformation("hflip", "flip", "", ("on",), lambda a: {"horizontal": True,
                                                          "vertical": False},
                   "left-right mirror"),
    Transformation("vflip", "flip", "", ("on",), lambda a: {"horizontal": False,
                                                          "vertical": True},
                   "top-bottom mirror"),
    Transformation("scale", "random_resized_crop", "area fraction", (0.08, 0.25, 0.5, 0.75),
                   lambda a: {"scale": [a, a], "ratio": [1.0, 1.0]},
                   "zoom: a random square crop of this area fraction, resized back"),
    Transformation("shear", "affine", "degrees", (10.0, 20.0, 30.0, 45.0),
                   lambda a: {"degrees": [0.0, 0.0], "shear": [a, a], "mode": "reflect"},
                   "shear by a fixed angle"),
    Transformation("translate", "affine", "fraction of size", (0.05, 0.1, 0.2, 0.3),
                   lambda a: {"degrees": [0.0, 0.0], "translate": [a, a], "mode": "reflect"},
                   "translation by a fixed fraction of the image size"),
    Transformation("brightness", "stain_jitter", "factor", FACTORS, _jitter("brightness"),
                   "intensity × factor (all channels)"),
    Transformation("contrast", "stain_jitter", "factor", FACTORS, _jitter("contrast"),
                   "contrast about the mean × factor (all channels)"),
    Transformation("gamma", "stain_jitter", "exponent", (0.25, 0.5, 0.75, 1.5, 2.0, 3.0),
                   _jitter("gamma"), "intensity ** gamma"),
    Transformation("blur", "gaussian_blur", "sigma (px)", (0.5, 1.0, 2.0, 4.0, 8.0, 20.0),
                   _fixed("sigma"), "Gaussian blur"),
    Transformation("defocus", "defocus", "radius (px)", (1.0, 2.0, 4.0, 8.0),
                   _fixed("radius"), "out-of-focus disk blur"),
    Transformation("noise", "gaussian_noise", "std", (0.01, 0.02, 0.05, 0.1, 0.2),
                   _fixed("std"), "additive Gaussian noise"),
    Transformation("shot_noise", "poisson_noise", "photons at full scale",
                   (1000.0, 300.0, 100.0, 30.0, 10.0), _fixed("photons"),
                   "Poisson shot noise (fewer photons = noisier)"),
    Transformation("channel_dropout", "channel_dropout", "channels dropped", (1,),
                   lambda a: {"max_dropped": a}, "one random channel blanked"),
    Transformation("color_brightness", "color_jitter", "factor", FACTORS,
                   _color("brightness"), "RGB brightness factor"),
    Transformation("color_contrast", "color_jitter", "factor", FACTORS,
                   _color("contrast"), "RGB contrast factor"),
    Transformation("saturation", "color_jitter", "factor", FACTORS,
                   _color("saturation"), "RGB saturation factor"),
    Transformation("hue", "color_jitter", "hue shift", (-0.5, -0.25, -0.1, 0.1, 0.25, 0.5),
                   _color("hue"), "hue rotation (fraction of the colour wheel)"),
    Transformation("grayscale", "grayscale", "", ("on",), lambda a: {},
                   "RGB to grey (kept 3 channels)"),
]}


def channel_support(op_name: str) -> Any:
    """The channel counts a registered op declares it handles (None: any).

    Examples
    --------
    >>> from bioaug.study.invariance_library import channel_support
    >>> channel_support("color_jitter").describe()
    'exactly 3 channels (RGB)'
    """
    from bioaug.augment import OPS

    return getattr(OPS[op_name], "channels", None)


def supports(op_name: str, n_channels: int) -> bool:
    """Whether a registered op handles images of ``n_channels`` channels.

    Examples
    --------
    >>> from bioaug.study.invariance_library import supports
    >>> supports("gaussian_blur", 5), supports("color_jitter", 3), supports("color_jitter", 1)
    (True, True, False)
    """
    support = channel_support(op_name)
    return True if support is None else bool(support.allows(n_channels))


def select(names: Sequence[str] | None, n_channels: int) -> tuple[list[Transformation],
                                                                   list[str]]:
    """The transformations to measure and notes on what was skipped.

    ``names=None``: the whole library minus what ``n_channels`` does not support or this
    build lacks (each noted). Named transformations must exist, be supported and be named
    once each.

    Examples
    --------
    >>> from bioaug.study.invariance_library import LIBRARY, select
    >>> chosen, notes = select(["blur", "rotate90"], n_channels=5)
    >>> [(t.name, t.amplitudes) for t in chosen], notes
    ([('blur', (0.5, 1.0, 2.0, 4.0, 8.0, 20.0)), ('rotate90', (1, 2, 3))], [])

    The whole library on one-channel images: what needs several channels is left out, with
    a note each.

    >>> chosen, notes = select(None, n_channels=1)
    >>> "hue" in [t.name for t in chosen], len(chosen) + len(notes) == len(LIBRARY)
    (False, True)
    >>> print(notes[0])
    channel_dropout: op 'channel_dropout' needs 2 or more channels, the data has 1; skipped
    >>> select(["blurr"], n_channels=1)
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: unknown transformation 'blurr' (did you mean 'blur'?); known: ...
    >>> select(["blur", "rotate90", "blur"], n_channels=1)
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: transformation 'blur' is named twice (positions 1 and 3 ...); name ...
    """
    from bioaug.augment import OPS

    notes: list[str] = []
    if names is None:
        chosen = []
        for t in LIBRARY.values():
            if t.op not in OPS:
                notes.append(f"{t.name}: op '{t.op}' is not available; skipped")
            elif not supports(t.op, n_channels):
                notes.append(f"{t.name}: op '{t.op}' needs "
                             f"{channel_support(t.op).describe()}, the data has "
                             f"{n_channels}; skipped")
            else:
                chosen.append(t)
        return chosen, notes
    chosen = []
    for name in names:
        if name not in LIBRARY:
            raise ConfigError(f"unknown transformation '{name}'"
                              f"{did_you_mean(name, LIBRARY)}; known: {', '.join(LIBRARY)}")
        t = LIBRARY[name]
        if t.op not in OPS:
            raise ConfigError(f"transformation '{name}' needs op '{t.op}', which this build "
                              "of bioaug does not have")
        if not supports(t.op, n_channels):
            raise ConfigError(
                f"transformation '{name}' (op '{t.op}') needs "
                f"{channel_support(t.op).describe()}, but the data has {n_channels} "
                f"channel{'s' if n_channels != 1 else ''}",
                hint="choose transformations that work on any channel count: "
                     + ", ".join(n for n, tt in LIBRARY.items()
                                 if tt.op in OPS and supports(tt.op, n_channels)))
        chosen.append(t)
    _refuse_repeated_names(names)
    return chosen, notes


def _refuse_repeated_names(names: Sequence[str]) -> None:
    """A ConfigError naming the first transformation that is asked for more than once."""
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        j = first.setdefault(name, i)
        if j != i:
            raise ConfigError(f"transformation '{name}' is named twice (positions {j + 1} and "
                              f"{i + 1} of the list); name each transformation once")


def describe_library() -> str:
    """A text table of the library (``bioaug invariance --list``).

    Examples
    --------
    >>> from bioaug.study.invariance_library import describe_library
    >>> for line in describe_library().splitlines()[:3]:
    ...     print(line)
    name              op                   amplitude              values
    rotate            rotate               degrees                30, 60, 90, 120, ...
    rotate90          rotate90             quarter turns          1, 2, 3
    """
    lines = [f"{'name':<17} {'op':<20} {'amplitude':<22} values"]
    for t in LIBRARY.values():
        vals = ", ".join(str(a) for a in t.amplitudes)
        lines.append(f"{t.name:<17} {t.op:<20} {t.amplitude:<22} {vals}")
    return "\n".join(lines)
