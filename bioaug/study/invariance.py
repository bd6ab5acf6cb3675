"""``bioaug invariance``: how invariant a trained model is to each transformation.

Implements the measurement of Ericsson, Gouk & Hospedales, "Why Do Self-Supervised Models
Transfer? On the Impact of Invariance on Downstream Tasks" (BMVC 2022): for every
transformation of :mod:`bioaug.study.invariance_library` (and every step of a protocol, if
given) at each of its fixed amplitudes, the mean over images of
``cos((f(x) − μ)L, (f(T(x)) − μ)L)`` with ``μ``, ``L = Cholesky(Σ⁻¹)`` from the frozen
backbone's features of the clean images (:mod:`bioaug.study.invariance_metric`).

Inputs: ``n_images`` items drawn (seeded) from the store, resized to the crop size the
model was trained at (the whole crop, as a view at scale 1 shows it). Random parts of a
transformation (which channel is dropped, the position of a zoom crop, noise) are drawn from
a seeded generator, so a rerun gives the same numbers.

Outputs in ``out``: per model ``<model>/invariance.csv`` (op, amplitude, mean, std, n) and
``<model>/invariance.png``; for all models ``invariance.csv``, ``summary.csv`` (mean over
amplitudes), ``comparison.png`` (models side by side) and ``invariance.json``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from bioaug.errors import ConfigError
from bioaug.io import atomic_path, atomic_write_json, provenance
from bioaug.progress import progress
from bioaug.study import invariance_library as library
from bioaug.study.invariance_metric import DEFAULT_RIDGE, fit_whitening, invariance_scores


@dataclass
class Probe:
    """One transformation at one amplitude, as a ready-to-run op."""

    name: str
    amplitude: Any
    unit: str
    op: Any  # bioaug.augment Op


def library_probes(transforms: Sequence[library.Transformation]) -> list[Probe]:
    from bioaug.augment import make_op

    probes = []
    for t in transforms:
        for a in t.amplitudes:
            probes.append(Probe(t.name, a, t.amplitude, make_op(t.op, **t.op_params(a))))
    return probes


def protocol_probes(protocol: Any, n_channels: int) -> list[Probe]:
    """Each distinct step of a protocol, always applied (``p = 1``), with its own ranges."""
    from bioaug.augment import OPS, make_op
    from bioaug.study.keypath import step_name_params

    probes: list[Probe] = []
    seen: list[tuple[str, str]] = []
    for view in protocol.to_dict().get("views", []):
        for step in view.get("steps") or []:
            name, params = step_name_params(step)
            key = (name, repr(sorted(params.items())))
            if key in seen:
                continue
            seen.append(key)
            if name in OPS and not library.supports(name, n_channels):
                raise ConfigError(
                    f"protocol step '{name}' needs {library.channel_support(name).describe()}, "
                    f"but the data has {n_channels} channel{'s' if n_channels != 1 else ''}")
            params = {**params, "p": 1.0}
            label = ", ".join(f"{k}={v}" for k, v in params.items() if k != "p")
            probes.append(Probe(f"protocol:{name}", label or "as in protocol",
                                "protocol ranges", make_op(name, **params)))
    return probes


@torch.no_grad()
def features(model: nn.Module, images: torch.Tensor, *, batch_size: int = 128,
             device: torch.device | str = "cpu", transform: Any = None,
             seed: int = 0) -> np.ndarray:
    """Features of ``images`` (optionally transformed, seeded) as float64 numpy."""
    model.eval()
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    out = []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(device)
        if transform is not None:
            x = transform(x, generator=gen)
        out.append(model(x).float().cpu().numpy().astype(np.float64))
    return np.concatenate(out, axis=0)


def measure(model: nn.Module, images: torch.Tensor, probes: Sequence[Probe], *,
            batch_size: int = 128, device: torch.device | str = "cpu", seed: int = 0,
            ridge: float = DEFAULT_RIDGE, desc: str = "invariance") -> pd.DataFrame:
    """Invariance of ``model`` to every probe: rows (op, amplitude, unit, mean, std, n)."""
    clean = features(model, images, batch_size=batch_size, device=device)
    whitening = fit_whitening(clean, ridge=ridge)
    rows = []
    for i, probe in enumerate(progress(probes, total=len(probes), desc=desc, unit="probe")):
        t = features(model, images, batch_size=batch_size, device=device, transform=probe.op,
                     seed=seed * 100_003 + i)
        s = invariance_scores(clean, t, whitening)
        rows.append({"op": probe.name, "amplitude": probe.amplitude, "unit": probe.unit,
                     "mean": float(s.mean()), "std": float(s.std(ddof=1)) if len(s) > 1
                     else 0.0, "n": len(s)})
    return pd.DataFrame(rows)


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean invariance over the amplitudes of each transformation (Ericsson et al.)."""
    g = table.groupby("op", sort=False)["mean"]
    return pd.DataFrame({"op": g.mean().index, "invariance": g.mean().to_numpy(),
                         "min_over_amplitudes": g.min().to_numpy(),
                         "n_amplitudes": g.count().to_numpy()})


# -- running on checkpoints ----------------------------------------------------------------
@dataclass
class InvarianceResult:
    tables: dict[str, pd.DataFrame]
    out: Path
    notes: list[str] = field(default_factory=list)

    def summary(self) -> pd.DataFrame:
        frames = [summarize(t).set_index("op")["invariance"].rename(m)
                  for m, t in self.tables.items()]
        return pd.concat(frames, axis=1)

    def summary_text(self) -> str:
        return ("mean invariance over amplitudes (1 = invariant, 0 = unrelated features):\n"
                + self.summary().to_string(float_format=lambda v: f"{v:.3f}"))


def _model_names(paths: Sequence[Path]) -> list[str]:
    """Short unique names: the run folder's name, with parent folders added while two
    models would share a name (``ventral-seed-0-run``), numbered if paths are identical."""
    parts = [list(Path(p).resolve().parts) for p in paths]
    parts = [pp[:-1] if pp and pp[-1].endswith(".pt") else pp for pp in parts]
    depth = [1] * len(parts)
    names = ["-".join(pp[-d:]) for pp, d in zip(parts, depth, strict=True)]
    for _ in range(8):
        dup = {n for n in names if names.count(n) > 1}
        if not dup:
            break
        for i, n in enumerate(names):
            same = {tuple(parts[j]) for j, m in enumerate(names) if m == n}
            if n in dup and len(same) > 1 and depth[i] < len(parts[i]) - 1:
                depth[i] += 1
        new = ["-".join(pp[-d:]) for pp, d in zip(parts, depth, strict=True)]
        if new == names:
            break
        names = new
    out: list[str] = []
    for n in names:
        name, i = n, 2
        while name in out:
            name, i = f"{n}-{i}", i + 1
        out.append(name)
    return out


def load_images(data: str | os.PathLike, n_images: int, seed: int) -> tuple[torch.Tensor, Any]:
    from bioaug.data.store import Store

    store = Store.open(data)
    if len(store) < 2:
        raise ConfigError(f"the store {data} holds {len(store)} item(s); invariance needs ≥ 2")
    n = min(int(n_images), len(store))
    if n < 2:
        raise ConfigError(f"--n-images must be ≥ 2, got {n_images}")
    idx = np.sort(np.random.default_rng(seed).choice(len(store), size=n, replace=False))
    return torch.from_numpy(store.read_float(idx)), store


def fit_to_model(images: torch.Tensor, crop_size: int | None) -> torch.Tensor:
    """Resize square-cropped images to the model's training crop size (whole-crop view)."""
    from bioaug.augment import make_op

    h, w = images.shape[2:]
    if h != w:
        images = make_op("center_crop", size=min(h, w), p=1.0)(images)
    if crop_size and crop_size != images.shape[2]:
        images = make_op("resize", size=int(crop_size), p=1.0)(images)
    return images


def run_invariance(checkpoints: Sequence[str | os.PathLike], data: str | os.PathLike,
                   out: str | os.PathLike, *, protocol: str | None = None,
                   ops: Sequence[str] | None = None, n_images: int = 512,
                   batch_size: int = 128, seed: int = 0, device: str = "auto",
                   ridge: float = DEFAULT_RIDGE,
                   names: Sequence[str] | None = None) -> InvarianceResult:
    """Measure every model's invariances on ``data`` and write tables and pictures.

    Parameters
    ----------
    checkpoints
        Run directories or checkpoint files, one model each.
    data
        The crop store the images are drawn from.
    out
        Output folder (layout in the module docstring).
    protocol
        Also measure every distinct step of this protocol (name or YAML path).
    ops
        Transformations of :mod:`bioaug.study.invariance_library` to measure (default:
        every one the store's channel count supports).
    n_images
        Images drawn (seeded) from the store.
    batch_size
        Images per forward pass.
    seed
        Seed of the image draw and of the transformations' random parts.
    device
        ``auto``, ``cpu``, ``cuda`` …
    ridge
        Added to the feature covariance before it is inverted.
    names
        One display name per checkpoint (default: from the run folders).

    Returns
    -------
    InvarianceResult
        ``tables``: model name → rows (op, amplitude, unit, mean, std, n); ``notes``:
        transformations left out and warnings; ``summary()``: mean over amplitudes.

    Examples
    --------
    A 2-step SimCLR model measured on mirror-symmetric crops, which a left-right flip
    leaves unchanged (invariance 1):

    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> import pandas as pd
    >>> from bioaug.data.store import write_store
    >>> from bioaug.study.invariance import run_invariance
    >>> from bioaug.train import load_config, train
    >>> folder = tempfile.mkdtemp()
    >>> half = np.random.default_rng(0).integers(0, 255, (32, 3, 12, 6), dtype=np.uint8)
    >>> images = np.concatenate([half, half[..., ::-1]], axis=3)
    >>> _ = write_store(f"{folder}/crops", images, pd.DataFrame({"label": ["a", "b"] * 16}),
    ...                 channels=["R", "G", "B"])
    >>> config = load_config(data=f"{folder}/crops", protocol="none", out=f"{folder}/run",
    ...                      method="simclr", backbone="vgg_mnist", width=0.25, crop=12,
    ...                      batch_size=8, epochs=1, max_steps=2, device="cpu", num_workers=0,
    ...                      tensorboard=False, preview_views=0,
    ...                      method_kwargs={"proj_hidden_dim": 16, "proj_output_dim": 8})
    >>> result = run_invariance([train(config)], f"{folder}/crops", f"{folder}/invariance",
    ...                         ops=["hflip", "rotate90"], n_images=32, device="cpu",
    ...                         names=["simclr"])
    >>> table = result.tables["simclr"]
    >>> table[["op", "amplitude", "n"]].to_numpy().tolist()
    [['hflip', 'on', 32], ['rotate90', 1, 32], ['rotate90', 2, 32], ['rotate90', 3, 32]]
    >>> round(float(table["mean"].iloc[0]), 6)
    1.0
    >>> sorted(p.name for p in Path(folder, "invariance").iterdir())
    ['comparison.png', 'invariance.csv', 'invariance.json', 'simclr', 'summary.csv']
    """
    # 80+ lines only through its documentation (parameters and a running example), not its code.
    from bioaug.augment import load_protocol
    from bioaug.device import pick_device
    from bioaug.study.invariance_plots import plot_comparison, plot_model
    from bioaug.train.checkpoint import load_trained

    if not checkpoints:
        raise ConfigError("give at least one --checkpoint")
    if int(batch_size) < 1:
        raise ConfigError(f"--batch-size must be ≥ 1, got {batch_size}")
    dev = pick_device(device)
    images, store = load_images(data, n_images, seed)
    transforms, notes = library.select(ops, store.n_channels)
    probes = library_probes(transforms)
    if protocol is not None:
        probes += protocol_probes(load_protocol(protocol), store.n_channels)
    if not probes:
        raise ConfigError("no transformation to measure")
    out = Path(out)
    if names is not None and len(names) != len(checkpoints):
        raise ConfigError(f"{len(names)} names for {len(checkpoints)} checkpoints")
    names = list(names) if names is not None else _model_names([Path(c) for c in checkpoints])
    tables: dict[str, pd.DataFrame] = {}
    models_meta = {}
    for name, ckpt in zip(names, checkpoints, strict=True):
        trained = load_trained(ckpt, device=dev)
        if trained.n_channels != store.n_channels:
            raise ConfigError(f"model {name} was trained on {trained.n_channels} channels but "
                              f"the store {data} has {store.n_channels}")
        x = fit_to_model(images, trained.crop_size)
        if ridge == DEFAULT_RIDGE and trained.out_dim and len(x) <= trained.out_dim:
            notes.append(f"{name}: {len(x)} images for {trained.out_dim} feature dimensions; "
                         "the covariance is singular and only the ridge keeps it invertible — "
                         "use --n-images above the feature dimension for stable numbers")
        backbone = trained.backbone.to(dev).eval()
        table = measure(backbone, x, probes, batch_size=batch_size, device=dev, seed=seed,
                        ridge=ridge, desc=f"invariance {name}")
        tables[name] = table
        model_dir = out / name
        model_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(model_dir / "invariance.csv") as tmp:
            table.to_csv(tmp, index=False)
        plot_model(table, model_dir / "invariance.png", title=f"Invariance of {name}")
        models_meta[name] = {"checkpoint": str(ckpt), "sha256": trained.checkpoint_sha256,
                             "method": trained.method_name, "backbone": trained.backbone_name,
                             "crop_size": trained.crop_size, "out_dim": trained.out_dim}
    all_rows = pd.concat([t.assign(model=m) for m, t in tables.items()], ignore_index=True)
    all_rows = all_rows[["model", *[c for c in all_rows.columns if c != "model"]]]
    with atomic_path(out / "invariance.csv") as tmp:
        all_rows.to_csv(tmp, index=False)
    result = InvarianceResult(tables=tables, out=out, notes=notes)
    with atomic_path(out / "summary.csv") as tmp:
        result.summary().to_csv(tmp, index_label="op")
    plot_comparison(tables, out / "comparison.png")
    atomic_write_json(out / "invariance.json", {
        "metric": "cos((f(x)-mu) L, (f(T(x))-mu) L), L = cholesky(inv(Sigma + ridge I)); "
                  "Ericsson et al. BMVC 2022",
        "ridge": ridge, "n_images": len(images), "seed": seed, "data": str(data),
        "protocol": protocol, "models": models_meta, "notes": notes,
        "provenance": provenance(stage="invariance")})
    return result
