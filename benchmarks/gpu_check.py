"""GPU check: the CUDA paths end to end in under five minutes, one table.

On a machine with a CUDA device it runs, each with its own time limit:

1. the CUDA-only tests (``pytest -k "cuda or gpu"``: they skip without a device);
2. the augmentation engine on the device: ``bbbc021-expert``, two views of a
   (256, 3, 96, 96) float32 batch, images/s;
3. training through :func:`bioaug.train.train`: MoCo v2, vgg13_bn at 96 px, bf16 autocast and
   channels-last, a few hundred steps on a synthetic store; images/s (median of the second
   half of the steps, from ``metrics.csv``) and peak memory (``torch.cuda.max_memory_allocated``);
4. a one-GPU ``torchrun --nproc-per-node 1`` run: NCCL process group, an all-reduce, and a
   few DDP steps of vgg13_bn (bf16, channels-last). ``bioaug train`` itself joins a process
   group only when there are two or more processes, so this part drives NCCL directly.

A failing part is a row in the table, not the end of the run; the exit status is 1 when any
part failed. Without CUDA it prints ``skipped: no CUDA device`` and exits 0.

    python benchmarks/gpu_check.py [--steps 300] [--batch-size 256]      (or: make gpu-check)
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("BIOAUG_PROGRESS", "0")

ROOT = Path(__file__).resolve().parent.parent
CHANNELS = ["DAPI", "Tubulin", "Actin"]
Row = tuple[str, str, str]  # (status, result, detail)


def cuda_tests(timeout: float) -> Row:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda or gpu",
           str(ROOT / "tests")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    lines = out.stdout.strip().splitlines()
    summary = lines[-1].strip("= ") if lines else "no output"
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|error)", summary)}
    ok = out.returncode == 0 and counts.get("passed", 0) > 0
    return ("ok" if ok else "FAILED", summary, " ".join(cmd[3:6]))


def augmentation(batch: int = 256, size: int = 96, rounds: int = 20, device: str = "cuda"
                 ) -> Row:
    import torch

    from bioaug.augment import build_pipeline, load_protocol

    pipeline = build_pipeline(load_protocol("bbbc021-expert"), n_channels=3)
    x = torch.rand((batch, 3, size, size), device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(3):
        views = pipeline(x, gen)
    sync()
    t0 = time.perf_counter()
    for _ in range(rounds):
        views = pipeline(x, gen)
    sync()
    rate = batch * rounds / (time.perf_counter() - t0)
    shapes = ", ".join(str(tuple(v.shape)) for v in views)
    return ("ok", f"{rate:,.0f} images/s (2 views)", f"bbbc021-expert, batch {batch}, "
            f"{size} px -> {shapes}")


def _synthetic_store(path: Path, n: int, size: int) -> Path:
    import numpy as np
    import pandas as pd

    from bioaug.data.store import write_store

    rng = np.random.default_rng(0)
    images = rng.integers(0, 65535, size=(n, len(CHANNELS), size, size), dtype=np.uint16)
    obs = pd.DataFrame({"label": [f"c{i % 4}" for i in range(n)]})
    write_store(path, images, obs, channels=CHANNELS, label_column="label")
    return path


def training(steps: int, batch: int, size: int = 96, device: str = "cuda") -> Row:
    import statistics

    import torch

    from bioaug.train.config import TrainConfig
    from bioaug.train.loop import train
    from bioaug.train.metrics import read_metrics

    with tempfile.TemporaryDirectory() as tmp:
        store = _synthetic_store(Path(tmp) / "store", n=max(batch * 16, 2048), size=size)
        cfg = TrainConfig(data=store, protocol="bbbc021-expert", out=Path(tmp) / "run",
                          method="moco_v2", backbone="vgg13_bn", crop=size, batch_size=batch,
                          epochs=10_000, max_steps=steps, device=device, amp=True,
                          channels_last=True, tensorboard=False)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        run = train(cfg)
        wall = time.perf_counter() - t0
        peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
        rows = read_metrics(run / "metrics.csv")
    rates = [r["images_per_s"] for r in rows[len(rows) // 2:]
             if math.isfinite(r.get("images_per_s", math.nan))]
    rate = statistics.median(rates) if rates else float("nan")
    return ("ok", f"{rate:,.0f} images/s, peak {peak:.2f} GiB",
            f"moco_v2 vgg13_bn {size} px, bf16 + channels-last, batch {batch}, {len(rows)} "
            f"steps in {wall:.0f} s (with start-up)")


def torchrun(timeout: float) -> Row:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1",
           "--master-port", "29517", str(Path(__file__).resolve()), "--nccl-child"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    found = re.search(r"NCCL_OK (.*)", out.stdout)
    if out.returncode == 0 and found:
        return ("ok", found.group(1), "torchrun --nproc-per-node 1: NCCL all-reduce + DDP")
    tail = (out.stdout + out.stderr).strip().splitlines()[-1:] or ["no output"]
    return ("FAILED", f"exit {out.returncode}", tail[0][:100])


def nccl_child(steps: int = 20, batch: int = 64, size: int = 96) -> int:
    """Runs inside torchrun: NCCL group, all-reduce, a few DDP steps of vgg13_bn."""
    import torch
    import torch.distributed as dist

    from bioaug.models import build_backbone

    local = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local)
    dist.init_process_group("nccl")
    ones = torch.ones(4, device="cuda")
    dist.all_reduce(ones)
    if not torch.allclose(ones, torch.full_like(ones, dist.get_world_size())):
        raise RuntimeError(f"all_reduce gave {ones.tolist()}")
    model = build_backbone("vgg13_bn", 3).cuda().to(memory_format=torch.channels_last)
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local])
    opt = torch.optim.SGD(ddp.parameters(), lr=0.01)
    x = torch.rand((batch, 3, size, size), device="cuda").to(memory_format=torch.channels_last)
    t0 = time.perf_counter()
    for i in range(steps):
        if i == 2:  # after warm-up
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = ddp(x).float().pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    torch.cuda.synchronize()
    rate = batch * (steps - 2) / (time.perf_counter() - t0)
    print(f"NCCL_OK world {dist.get_world_size()}, {steps} DDP steps, {rate:,.0f} images/s, "
          f"loss {loss.item():.3g}", flush=True)
    dist.destroy_process_group()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    p.add_argument("--batch-size", type=int, default=256, help="training batch (default 256)")
    p.add_argument("--nccl-child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.nccl_child:
        return nccl_child()
    try:
        import torch
    except ImportError:
        print("skipped: no CUDA device (torch is not installed)")
        return 0
    if not torch.cuda.is_available():
        print("skipped: no CUDA device (torch.cuda.is_available() is False)")
        return 0

    parts: list[tuple[str, Callable[[], Row]]] = [
        ("CUDA-only tests", lambda: cuda_tests(timeout=120)),
        ("augmentation on the device", augmentation),
        ("training (bioaug.train.train)", lambda: training(a.steps, a.batch_size)),
        ("torchrun 1 GPU (NCCL)", lambda: torchrun(timeout=90)),
    ]
    table: list[tuple[str, str, str, str, float]] = []
    start = time.perf_counter()
    for name, fn in parts:
        t0 = time.perf_counter()
        try:
            status, result, detail = fn()
        except subprocess.TimeoutExpired as e:
            status, result, detail = "FAILED", f"timed out after {e.timeout:.0f} s", ""
        except Exception as e:  # a failing part is a row of the table
            status, result, detail = "FAILED", type(e).__name__, str(e).splitlines()[0][:100] \
                if str(e) else ""
        table.append((name, status, result, detail, time.perf_counter() - t0))
        print(f"[gpu-check] {name}: {status} ({time.perf_counter() - t0:.0f} s)", flush=True)

    name = torch.cuda.get_device_name(0)
    print(f"\nGPU check on {name}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"{time.perf_counter() - start:.0f} s in all")
    header = ("check", "status", "result", "detail")
    w = [max(len(header[i]), *(len(r[i]) for r in table)) for i in range(4)]
    print("  ".join(h.ljust(w[i]) for i, h in enumerate(header)) + "  seconds")
    for row in table:
        print("  ".join(row[i].ljust(w[i]) for i in range(4)) + f"  {row[4]:7.1f}")
    return 0 if all(r[1] == "ok" for r in table) else 1


if __name__ == "__main__":
    sys.exit(main())
