"""Augmentation throughput: bioaug's batched engine vs albumentations and kornia.

The ``bbbc021-expert`` protocol (two views) on a batch of (256, 3, 96, 96) float32 images,
against two peers with the same steps: the equivalent albumentations ``Compose`` applied
image by image (two calls per image, one per view), and kornia's batched
``AugmentationSequential`` (two calls per batch; needs ``pip install 'bioaug[bench]'``,
skipped when kornia is missing). The engine also runs with its compiled CPU kernels
switched off (``BIOAUG_NATIVE=0``, torch ops only), to show what they add. All run in this process on the CPU, at 1 and at 2 threads,
in alternating rounds so that load from other processes hits all alike. Prints images/s
(wall clock and CPU time) and the ratios at each thread count, first with the default
allocator, then with ``tune_cpu_allocator()`` (see bioaug.augment.cpu), and the load
average. CPU time counts every thread, so at 2 threads it shows the work done, the wall
clock what a training loop waits for.

    python benchmarks/augment.py [--batch 256] [--repeats 7] [--threads 1,2] [--device cpu]
"""

from __future__ import annotations

import argparse
import math
import os
import time

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
# OpenMP threads that spin while waiting collapse on a shared, oversubscribed machine
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import albumentations as A
import cv2
import numpy as np
import torch

from bioaug.augment import build_pipeline, load_protocol, native
from bioaug.augment.cpu import tune_cpu_allocator


def albumentations_equivalent(protocol) -> A.Compose:
    """The bbbc021-expert steps written with albumentations transforms (same ranges/p)."""
    steps = {s.op: s.params for s in protocol.views[0].steps}
    crop = protocol.views[0].crop_size
    rrc, flip = steps["random_resized_crop"], steps["flip"]
    sj, cd = steps["stain_jitter"], steps["channel_dropout"]
    blur, noise = steps["gaussian_blur"], steps["gaussian_noise"]
    return A.Compose([
        A.RandomResizedCrop(size=(crop, crop), scale=rrc.scale, ratio=rrc.ratio, p=1.0),
        A.RandomRotate90(p=steps["rotate90"].p),
        A.HorizontalFlip(p=flip.p),
        A.VerticalFlip(p=flip.p),
        A.Sequential([  # per-channel gain and contrast (and gamma if the protocol has one)
            A.MultiplicativeNoise(multiplier=sj.brightness, per_channel=True, elementwise=False,
                                  p=1.0),
            A.RandomBrightnessContrast(brightness_limit=0.0,
                                       contrast_limit=(sj.contrast[0] - 1, sj.contrast[1] - 1),
                                       p=1.0),
            *([A.RandomGamma(gamma_limit=(sj.gamma[0] * 100, sj.gamma[1] * 100), p=1.0)]
              if sj.gamma != (1.0, 1.0) else []),
        ], p=sj.p),
        A.ChannelDropout(channel_drop_range=(1, cd.max_dropped), fill=cd.fill, p=cd.p),
        A.GaussianBlur(blur_limit=0, sigma_limit=blur.sigma, p=blur.p),
        A.GaussNoise(std_range=noise.std, p=noise.p),
    ], seed=0)


def kornia_equivalent(protocol):
    """The same steps as kornia augmentations (batched, per-sample parameters), or None.

    kornia has no per-channel gain, so stain_jitter becomes its brightness and contrast
    jitter with the same p; its Gaussian noise has one std (the top of the protocol's range).
    """
    try:
        import kornia.augmentation as K
    except ImportError:
        return None
    steps = {s.op: s.params for s in protocol.views[0].steps}
    crop = protocol.views[0].crop_size
    rrc, flip = steps["random_resized_crop"], steps["flip"]
    sj, cd = steps["stain_jitter"], steps["channel_dropout"]
    blur, noise = steps["gaussian_blur"], steps["gaussian_noise"]
    radius = math.ceil(3 * blur.sigma[1])
    return K.AugmentationSequential(
        K.RandomResizedCrop((crop, crop), scale=rrc.scale, ratio=rrc.ratio, p=1.0),
        K.RandomRotation90(times=(0, 3), p=steps["rotate90"].p),
        K.RandomHorizontalFlip(p=flip.p),
        K.RandomVerticalFlip(p=flip.p),
        K.RandomBrightness(brightness=sj.brightness, p=sj.p),
        K.RandomContrast(contrast=sj.contrast, p=sj.p),
        K.RandomChannelDropout(num_drop_channels=cd.max_dropped, fill_value=cd.fill, p=cd.p),
        K.RandomGaussianBlur(kernel_size=2 * radius + 1, sigma=blur.sigma, p=blur.p),
        K.RandomGaussianNoise(std=noise.std[1], p=noise.p),
    )


def time_rounds(fns: dict[str, object], threads: list[int], repeats: int
                ) -> dict[tuple[int, str], tuple[float, float]]:
    """Median (wall, cpu) seconds per call for every (thread count, candidate).

    Each round runs every candidate at every thread count back to back, so that load from
    other processes on a shared machine hits all of them alike; medians over the rounds.
    """
    def use(n: int) -> None:
        torch.set_num_threads(n)
        cv2.setNumThreads(n)

    for n in threads:
        use(n)
        for fn in fns.values():
            fn()  # warm-up
    wall: dict[tuple[int, str], list[float]] = {(n, k): [] for n in threads for k in fns}
    cpu: dict[tuple[int, str], list[float]] = {(n, k): [] for n in threads for k in fns}
    for _ in range(repeats):
        for n in threads:
            use(n)
            for name, fn in fns.items():
                w0, c0 = time.perf_counter(), time.process_time()
                fn()
                wall[n, name].append(time.perf_counter() - w0)
                cpu[n, name].append(time.process_time() - c0)
    return {key: (float(np.median(wall[key])), float(np.median(cpu[key]))) for key in wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=7, help="alternating rounds")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", default="1,2",
                        help="comma-separated CPU thread counts for torch and OpenCV (default "
                             "1,2: 1 is a data-loader worker's budget and the like-for-like "
                             "comparison; albumentations works image by image, so extra "
                             "threads only help the batched engine)")
    parser.add_argument("--no-tune", action="store_true",
                        help="skip the second run with the tuned CPU allocator")
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",") if t.strip()]

    protocol = load_protocol("bbbc021-expert")
    pipeline = build_pipeline(protocol, n_channels=3)
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    images = rng.random((args.batch, 3, args.size, args.size), dtype=np.float32)
    x = torch.from_numpy(images).to(device)
    gen = torch.Generator(device=device).manual_seed(0)

    def bioaug_batch() -> None:
        views = pipeline(x, gen)
        if device.type == "cuda":
            torch.cuda.synchronize()
        assert len(views) == 2

    compose = albumentations_equivalent(protocol)
    hwc = [np.ascontiguousarray(im.transpose(1, 2, 0)) for im in images]

    def albumentations_batch() -> None:
        for im in hwc:
            compose(image=im)
            compose(image=im)

    def torch_only_batch() -> None:
        previous = os.environ.get(native.ENV)
        os.environ[native.ENV] = "0"
        try:
            bioaug_batch()
        finally:
            if previous is None:
                del os.environ[native.ENV]
            else:
                os.environ[native.ENV] = previous

    fns = {"bioaug": bioaug_batch, "albumentations": albumentations_batch}
    if device.type == "cpu":
        fns["bioaug-torch"] = torch_only_batch
    labels = {"bioaug": f"bioaug batched engine ({device.type})",
              "bioaug-torch": "bioaug, torch ops only (BIOAUG_NATIVE=0)",
              "albumentations": "albumentations Compose per sample",
              "kornia": f"kornia AugmentationSequential ({device.type})"}
    kornia_aug = kornia_equivalent(protocol)
    if kornia_aug is not None:
        def kornia_batch() -> None:
            with torch.no_grad():
                kornia_aug(x)
                kornia_aug(x)
            if device.type == "cuda":
                torch.cuda.synchronize()

        fns["kornia"] = kornia_batch
    else:
        print("(kornia is not installed: `pip install 'bioaug[bench]'` adds it as a peer)")
    print(f"bbbc021-expert, 2 views, batch ({args.batch}, 3, {args.size}, {args.size}) float32, "
          f"median of {args.repeats} alternating rounds; {os.cpu_count()} CPU(s) visible")
    settings = [("default glibc malloc", None)]
    if not args.no_tune:
        settings.append(("tuned malloc (bioaug.augment.cpu.tune_cpu_allocator)",
                         tune_cpu_allocator))
    for title, setup in settings:
        if setup is not None and not setup():
            print(f"  ({title}: not available on this platform)")
            continue
        times = time_rounds(fns, threads, args.repeats)
        print(f"  {title}  (load average {os.getloadavg()[0]:.1f} after it)")
        for n in threads:
            print(f"    {n} thread(s) (torch and OpenCV)      {'images/s (wall)':>16} "
                  f"{'images/s (cpu)':>16}")
            for name in fns:
                w, c = times[n, name]
                print(f"      {labels[name]:<38} {args.batch / w:16.0f} {args.batch / c:16.0f}")
            wb, cb = times[n, "bioaug"]
            for peer in [k for k in fns if k != "bioaug"]:
                wp, cp = times[n, peer]
                print(f"      {'ratio bioaug / ' + peer:<38} {wp / wb:15.2f}x {cp / cb:15.2f}x")


if __name__ == "__main__":
    main()
