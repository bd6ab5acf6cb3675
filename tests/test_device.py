"""Device names: the spellings accepted, and the devices this machine has (GPUs faked)."""

from __future__ import annotations

import pytest
import torch

from bioaug import device as device_module
from bioaug.device import parse_device, pick_device
from bioaug.errors import ConfigError


def _fake_gpus(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def _no_mps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(device_module.AVAILABLE, "mps", lambda: False)


@pytest.mark.parametrize(("text", "name"), [
    ("auto", "auto"), ("cpu", "cpu"), ("cuda", "cuda"), ("mps", "mps"), ("cuda:0", "cuda:0"),
    ("cuda:1", "cuda:1"), ("CUDA:12", "cuda:12"), (" Cpu ", "cpu"), ("cuda:01", "cuda:1"),
])
def test_parse_device_accepts_every_form(text, name):
    assert parse_device(text) == name


@pytest.mark.parametrize("text", ["gpu", "cuda:", "cuda:-1", "cuda:x", "cuda1", "cuda:1:2",
                                  "cpu:0", ""])
def test_parse_device_rejects_other_spellings_listing_the_forms(text):
    with pytest.raises(ConfigError) as exc:
        parse_device(text)
    assert exc.value.where == "--device"
    assert f"unknown device '{text}'" in exc.value.message
    assert "auto, cpu, cuda, cuda:N (N = 0, 1, … the GPU's index) or mps" in exc.value.message


def test_pick_device_takes_an_existing_gpu_index(monkeypatch):
    _fake_gpus(monkeypatch, 2)
    assert pick_device("cuda:1") == torch.device("cuda", 1)
    assert pick_device("cuda") == torch.device("cuda")


@pytest.mark.parametrize(("count", "index", "have"), [
    (2, 2, "has 2 CUDA GPUs (cuda:0 … cuda:1)"), (2, 7, "has 2 CUDA GPUs (cuda:0 … cuda:1)"),
    (1, 1, "has 1 CUDA GPU (cuda:0)"),
])
def test_pick_device_refuses_an_index_beyond_the_gpus(monkeypatch, count, index, have):
    _fake_gpus(monkeypatch, count)
    with pytest.raises(ConfigError) as exc:
        pick_device(f"cuda:{index}")
    assert exc.value.message == (f"--device cuda:{index} asks for GPU {index} but this "
                                 f"machine {have}")
    assert f"use an index below {count}" in exc.value.hint


@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_pick_device_without_cuda_says_so(monkeypatch, name):
    _fake_gpus(monkeypatch, 0)
    with pytest.raises(ConfigError) as exc:
        pick_device(name)
    assert exc.value.message == f"--device {name} was asked for but no CUDA GPU is available"


def test_pick_device_without_mps_says_so(monkeypatch):
    _no_mps(monkeypatch)
    with pytest.raises(ConfigError, match="--device mps was asked for but Apple MPS is not"):
        pick_device("mps")


def test_pick_device_names_the_flag_it_is_given(monkeypatch):
    _fake_gpus(monkeypatch, 1)
    with pytest.raises(ConfigError, match=r"^device cuda:1 asks for GPU 1"):
        pick_device("cuda:1", flag="device")


@pytest.mark.parametrize(("gpus", "expected"), [(2, "cuda"), (0, "cpu")])
def test_auto_prefers_cuda_then_cpu(monkeypatch, gpus, expected):
    _fake_gpus(monkeypatch, gpus)
    _no_mps(monkeypatch)
    assert pick_device("auto") == torch.device(expected)
    assert pick_device("CPU") == torch.device("cpu")
