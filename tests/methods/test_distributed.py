"""The collective helpers in one process (no-ops) and across 2 CPU processes (Gloo)."""

from __future__ import annotations

import copy
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from bioaug.methods.barlow_twins import barlow_twins_loss
from bioaug.methods.distributed import (
    GlobalBatchNorm,
    batch_shuffle,
    batch_unshuffle,
    convert_to_global_batchnorm,
    gather_no_grad,
    gather_with_grad,
    is_distributed,
    rank,
    world_size,
)
from bioaug.methods.simclr import nt_xent_loss
from bioaug.methods.vicreg import vicreg_loss

LOSSES = {
    "nt_xent": lambda a, b: nt_xent_loss(a, b, 0.5),
    "barlow_twins": lambda a, b: barlow_twins_loss(a, b, 0.0051),
    "vicreg": lambda a, b: vicreg_loss(a, b, 25.0, 25.0, 1.0),
}
N, D_IN, D_OUT = 8, 5, 4


def _data():
    g = torch.Generator().manual_seed(0)
    x1, x2 = torch.randn(N, D_IN, generator=g), torch.randn(N, D_IN, generator=g)
    weight = torch.randn(D_OUT, D_IN, generator=g)
    return x1, x2, weight


METHOD_CASES = {
    "simclr": {"proj_hidden_dim": 8, "proj_output_dim": 4},
    "moco_v2": {"proj_hidden_dim": 8, "proj_output_dim": 4, "queue_size": 16, "shuffle_bn": False},
    "vicreg": {"proj_hidden_dim": 8, "proj_output_dim": 4},
}


def _method(name: str, hp: dict):
    from bioaug.methods import build_method
    from tests.methods.conftest import TinyBackbone

    torch.manual_seed(0)
    return build_method(name, TinyBackbone(), **hp)


def _method_views() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return [torch.rand(N, 2, 6, 6, generator=g) for _ in range(2)]


def _state(method) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in method.state_dict().items()}


def test_single_process_is_a_no_op():
    x = torch.randn(4, 3, requires_grad=True)
    assert not is_distributed() and world_size() == 1 and rank() == 0
    assert gather_with_grad(x) is x
    assert torch.equal(gather_no_grad(x), x) and not gather_no_grad(x).requires_grad
    shuffled, idx = batch_shuffle(x)
    assert idx is None and torch.equal(shuffled, x)
    assert torch.equal(batch_unshuffle(x, None), x)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(r: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=r, world_size=world)
    try:
        results: dict[str, object] = {}
        x1, x2, weight = _data()
        shard = slice(r * N // world, (r + 1) * N // world)
        for name, loss_fn in LOSSES.items():
            w = weight.clone().requires_grad_()
            z1 = gather_with_grad(x1[shard] @ w.T)
            z2 = gather_with_grad(x2[shard] @ w.T)
            loss = loss_fn(z1, z2)
            loss.backward()
            grad = w.grad.clone()
            dist.all_reduce(grad)  # what DDP does: average the ranks' gradients
            results[name] = (loss.detach(), grad / world)
        # shuffle-BN: a permutation across ranks that unshuffles exactly
        local = torch.arange(r * 4, r * 4 + 4, dtype=torch.float32).unsqueeze(1)
        torch.manual_seed(100 + r)  # rank 0's permutation must win (broadcast)
        shuffled, idx = batch_shuffle(local)
        results["shuffled"] = gather_no_grad(shuffled)
        results["unshuffled"] = batch_unshuffle(shuffled * 10, idx)
        # MoCo: every rank enqueues the keys of the whole global batch
        from bioaug.methods import build_method
        from tests.methods.conftest import TinyBackbone

        torch.manual_seed(0)
        moco = build_method(
            "moco_v2", TinyBackbone(), proj_hidden_dim=8, proj_output_dim=4, queue_size=16
        )
        g = torch.Generator().manual_seed(r)
        views = [torch.rand(4, 2, 8, 8, generator=g) for _ in range(2)]
        moco.training_loss(views)
        results["queue"] = moco.queue.clone()
        results["queue_ptr"] = int(moco.queue_ptr.item())
        # Whole methods with global batch norm: the same loss, gradients and state as one
        # process with the global batch.
        for name, hp in METHOD_CASES.items():
            method = _method(name, hp).use_global_batchnorm()
            global_views = _method_views()
            loss = method.training_loss([v[shard] for v in global_views])["loss"]
            loss.backward()
            grads = [p.grad.clone() for p in method.parameters() if p.requires_grad]
            for tensor in [loss.detach(), *grads]:
                dist.all_reduce(tensor)
                tensor.div_(world)
            results[f"method:{name}"] = (loss.detach(), grads, _state(method))
        torch.save(results, Path(out) / f"rank{r}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_two_gloo_processes_match_one_process(tmp_path):
    mp.start_processes(
        _worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True, start_method="spawn"
    )
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    x1, x2, weight = _data()
    for name, loss_fn in LOSSES.items():
        w = weight.clone().requires_grad_()
        loss = loss_fn(x1 @ w.T, x2 @ w.T)
        loss.backward()
        for res in ranks:
            dist_loss, dist_grad = res[name]
            torch.testing.assert_close(dist_loss, loss.detach(), rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(dist_grad, w.grad, rtol=1e-4, atol=1e-5)
    for name, hp in METHOD_CASES.items():
        method = _method(name, hp).use_global_batchnorm()  # plain batch norm in one process
        loss = method.training_loss(_method_views())["loss"]
        loss.backward()
        grads = [p.grad for p in method.parameters() if p.requires_grad]
        state = method.state_dict()
        for res in ranks:
            dist_loss, dist_grads, dist_state = res[f"method:{name}"]
            torch.testing.assert_close(dist_loss, loss.detach(), rtol=1e-5, atol=1e-6)
            assert len(dist_grads) == len(grads)
            # Float noise relative to the largest gradient (a conv bias before batch norm
            # has an exactly-zero gradient in exact arithmetic, ~1e-6 of the scale here).
            atol = 1e-5 * max(g.abs().max().item() for g in grads)
            for a, b in zip(dist_grads, grads, strict=True):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=atol)
            assert dist_state.keys() == state.keys()
            for key, value in state.items():  # running statistics, queue, pointer
                torch.testing.assert_close(dist_state[key], value, rtol=1e-4, atol=1e-5, msg=key)
    shuffled = ranks[0]["shuffled"]
    assert torch.equal(shuffled, ranks[1]["shuffled"])  # one permutation for all ranks
    assert sorted(shuffled.squeeze(1).tolist()) == list(range(8))
    for r, res in enumerate(ranks):
        expected = 10 * torch.arange(r * 4, r * 4 + 4, dtype=torch.float32).unsqueeze(1)
        assert torch.equal(res["unshuffled"], expected)
    assert ranks[0]["queue_ptr"] == ranks[1]["queue_ptr"] == 8
    assert torch.equal(ranks[0]["queue"], ranks[1]["queue"])


def test_global_batchnorm_in_one_process_is_batchnorm():
    torch.manual_seed(0)
    plain = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.BatchNorm2d(3))
    converted = convert_to_global_batchnorm(copy.deepcopy(plain))
    assert isinstance(converted[1], GlobalBatchNorm)
    assert converted.state_dict().keys() == plain.state_dict().keys()
    x = torch.randn(5, 2, 4, 4)
    torch.testing.assert_close(converted(x), plain(x))
    torch.testing.assert_close(converted[1].running_var, plain[1].running_var)


def test_moco_keeps_shuffled_key_encoder_batchnorm_local():
    from bioaug.methods import build_method
    from tests.methods.conftest import TinyBackbone

    def bn_types(module):
        return {type(m).__name__ for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}

    moco = build_method("moco_v2", TinyBackbone(), proj_hidden_dim=4, proj_output_dim=4, queue_size=8)
    moco.use_global_batchnorm()
    assert bn_types(moco.backbone) == {"GlobalBatchNorm"}
    assert bn_types(moco.key_backbone) == {"BatchNorm2d"}
    moco = build_method(
        "moco_v2", TinyBackbone(), proj_hidden_dim=4, proj_output_dim=4, queue_size=8, shuffle_bn=False
    )
    moco.use_global_batchnorm()
    assert bn_types(moco.key_backbone) == {"GlobalBatchNorm"}
