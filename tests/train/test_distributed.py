from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch.nn.modules.batchnorm import _BatchNorm

from bioaug.methods.distributed import GlobalBatchNorm
from bioaug.train.checkpoint import read_checkpoint
from bioaug.train.checks import build_run_model
from bioaug.train.distributed import DistInfo, wrap_ddp
from bioaug.train.loop import train
from tests.train.helpers import TINY, tiny_cli_args, tiny_config


def test_single_process_loss_module_is_the_method():
    method = torch.nn.Module()
    method.training_loss = lambda views: {"loss": views[0].sum()}
    fn = wrap_ddp(method, DistInfo())
    assert fn([torch.ones(2)])["loss"] == 2


def test_one_global_batchnorm_class():
    import bioaug.train.distributed as train_dist

    assert not hasattr(train_dist, "GlobalBatchNorm") and not hasattr(train_dist, "convert_batchnorm")


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tiny_store, tiny_protocol, tmp_path):
    """torchrun with 2 CPU processes (Gloo), global batch 16 = 2 × 8, vs 1 process × 16.

    MoCo without shuffle-BN: every batch norm sees the global batch, so the runs agree.
    SGD: Adam's normalised steps would blow float noise in exactly-zero gradients (a conv
    bias before batch norm) up to full-size updates.
    """
    kwargs = {**TINY["method_kwargs"], "shuffle_bn": False}
    one = train(tiny_config(tiny_store, tiny_protocol, tmp_path / "one", epochs=1,
                            optimizer="sgd", method_kwargs=kwargs))
    two = tmp_path / "two"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BIOAUG_PROGRESS": "0",
           "PYTHONPATH": os.pathsep.join([str(p) for p in sys.path if p])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           "2", "-m", "bioaug", *tiny_cli_args(tiny_store, tiny_protocol, two),
           "--epochs", "1", "--optimizer", "sgd", "--method-kwargs", "shuffle_bn=false"]
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
    cfg = tiny_config(tiny_store, tiny_protocol, tmp_path / "init", epochs=1, optimizer="sgd",
                      method_kwargs=kwargs)
    init = build_run_model(cfg, 2, 64).state_dict()
    moved = gap = 0.0
    for key, value in a["model"].items():
        if value.is_floating_point() and "queue" not in key:
            moved = max(moved, float((value - init[key]).abs().max()))
            gap = max(gap, float((value - b["model"][key]).abs().max()))
    assert moved > 1e-3 and gap < moved * 1e-2, (moved, gap)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _moco_rank(rank: int, world: int, port: int, store: str, protocol: str, out: str) -> None:
    """One rank of a 2-process MoCo v2 run through the real loop; records the trained model."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank), BIOAUG_PROGRESS="0")
    torch.set_num_threads(1)
    from bioaug.train import loop

    seen: dict[str, object] = {}
    run_loop = loop._Run._loop

    def spy(self) -> None:
        run_loop(self)
        seen["bn_types"] = {name: type(m).__name__ for name, m in self.method.named_modules()
                            if isinstance(m, _BatchNorm)}
        seen["state"] = {k: v.detach().clone() for k, v in self.method.state_dict().items()}

    loop._Run._loop = spy
    cfg = tiny_config(Path(store), Path(protocol), Path(out) / "run", epochs=1,
                      method_kwargs={**TINY["method_kwargs"], "shuffle_bn": True})
    loop.train(cfg)
    torch.save(seen, Path(out) / f"rank{rank}.pt")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_moco_shuffle_bn_keeps_the_key_encoder_batchnorm_local(tiny_store, tiny_protocol,
                                                               tmp_path):
    """2-process Gloo DDP, MoCo v2 with shuffle-BN: the query encoder's batch norms use the
    global batch, the key encoder's stay per process (He et al. 2020, shuffling BN)."""
    mp.start_processes(_moco_rank, args=(2, _free_port(), str(tiny_store), str(tiny_protocol),
                                         str(tmp_path)), nprocs=2, join=True,
                       start_method="spawn")
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    types = ranks[0]["bn_types"]
    query = {n: t for n, t in types.items() if n.startswith(("backbone.", "projector."))}
    key = {n: t for n, t in types.items() if n.startswith(("key_backbone.", "key_projector."))}
    assert query and key
    assert set(query.values()) == {GlobalBatchNorm.__name__}, query
    assert GlobalBatchNorm.__name__ not in set(key.values()), key
    # What that means for the statistics: the query encoder's running statistics are those
    # of the global batch (the same on both ranks); the key encoder's are each rank's own.
    a, b = ranks[0]["state"], ranks[1]["state"]
    for name in query:
        torch.testing.assert_close(a[f"{name}.running_mean"], b[f"{name}.running_mean"],
                                   rtol=1e-5, atol=1e-6)
    assert any(not torch.allclose(a[f"{n}.running_mean"], b[f"{n}.running_mean"]) for n in key)
