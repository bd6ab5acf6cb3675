"""Pick the compute device: CUDA, then Apple MPS, then CPU."""

from __future__ import annotations

import torch

from bioaug.errors import ConfigError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def pick_device(preference: str = "auto") -> torch.device:
    """Return the device to use; ``auto`` prefers CUDA, then MPS, then CPU."""
    pref = preference.lower()
    if pref.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was asked for but no CUDA GPU is available",
                              hint="use --device auto or --device cpu")
        return torch.device(pref)
    if pref == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ConfigError("--device mps was asked for but Apple MPS is not available",
                              hint="use --device auto or --device cpu")
        return torch.device("mps")
    if pref == "cpu":
        return torch.device("cpu")
    if pref != "auto":
        raise ConfigError(f"unknown device '{preference}'; use one of {', '.join(DEVICE_CHOICES)}")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if hasattr(torch.backends, "mps") and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
