from __future__ import annotations

import copy
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from bioaug.train.checkpoint import read_checkpoint
from bioaug.train.checks import build_run_model
from bioaug.train.distributed import GlobalBatchNorm, convert_batchnorm, wrap_ddp
from bioaug.train.loop import train
from tests.train.helpers import tiny_cli_args, tiny_config


def test_global_batchnorm_is_batchnorm_in_one_process():
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    conv = convert_batchnorm(copy.deepcopy(ref), torch.device("cpu"))
    assert isinstance(conv[1], GlobalBatchNorm)
    assert list(conv.state_dict()) == list(ref.state_dict())
    x = torch.randn(6, 2, 8, 8)
    assert torch.allclose(conv(x), ref(x))
    assert torch.allclose(conv[1].running_var, ref[1].running_var)
    conv.eval()
    ref.eval()
    assert torch.allclose(conv(x), ref(x))


def test_conversion_reuses_parameters():
    bn = nn.BatchNorm2d(3)
    model = nn.Sequential(nn.Conv2d(1, 3, 1), bn)
    out = convert_batchnorm(model, torch.device("cpu"))
    assert out[1].weight is bn.weight and out[1].running_mean is bn.running_mean


def test_single_process_loss_module_is_the_method():
    method = nn.Module()
    method.training_loss = lambda views: {"loss": views[0].sum()}
    from bioaug.train.distributed import DistInfo

    fn = wrap_ddp(method, DistInfo())
    assert fn([torch.ones(2)])["loss"] == 2


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tiny_store, tiny_protocol, tmp_path):
    """torchrun with 2 CPU processes (Gloo), global batch 16 = 2 × 8, vs 1 process × 16."""
    one = train(tiny_config(tiny_store, tiny_protocol, tmp_path / "one", epochs=1))
    two = tmp_path / "two"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BIOAUG_PROGRESS": "0",
           "PYTHONPATH": os.pathsep.join([str(p) for p in sys.path if p])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           "2", "-m", "bioaug", *tiny_cli_args(tiny_store, tiny_protocol, two),
           "--epochs", "1"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = read_checkpoint(one), read_checkpoint(two)
    assert a["step"] == b["step"] == 4 and b["provenance"]["world_size"] == 2
    for key, value in a["model"].items():
        other = b["model"][key]
        if value.is_floating_point():
            assert torch.allclose(value, other, rtol=1e-4, atol=1e-5), key
        else:
            assert torch.equal(value, other), key
    # the runs really trained: the 1-vs-2-process gap is far below the size of the updates
    cfg = tiny_config(tiny_store, tiny_protocol, tmp_path / "init", epochs=1)
    init = build_run_model(cfg, 2, 64).state_dict()
    moved = gap = 0.0
    for key, value in a["model"].items():
        if value.is_floating_point() and "queue" not in key:
            moved = max(moved, float((value - init[key]).abs().max()))
            gap = max(gap, float((value - b["model"][key]).abs().max()))
    assert moved > 1e-3 and gap < moved * 1e-2, (moved, gap)
