"""A synthetic twin of BBBC021: the published layout, rendered MCF7-like cells.

:func:`synth_bbbc021` writes a folder that every BBBC021 reader accepts unchanged:
``BBBC021_v1_image.csv`` and ``BBBC021_v1_moa.csv`` with the real header, quoting and six
decimals, ``WeekN/WeekN_PLATE/`` folders, file names ``<prefix><Well>_s<site>_w<1|2|4><GUID>.tif``
and 16-bit TIFFs. Plates, wells, compounds, concentrations and MoAs are taken from the real
design (Caie et al. 2010, bundled in ``bioaug/data/resources``): plates are chosen greedily to
cover all 12 MoAs plus DMSO (six plates suffice), then per plate the wells of every MoA on
it, two DMSO wells and one unannotated well, filled up to ``wells_per_plate``.

Generative model (per field)
----------------------------
1. *Cells.* ``Poisson(cells_per_field · density)`` cells, where the density factor
   varies per plate (log-normal σ = 0.15) and per well (σ = 0.3) but not with the MoA;
   nuclei at least ~2.6 nuclear radii apart, 60 % of the cells placed next to an earlier
   one (colonies, as MCF7 grows), each with a random orientation, size and shape. A cell is a
   soft-edged body whose outline is an ellipse modulated by low (k = 2–4, lobes) and high
   (k = 6–9, protrusions) angular harmonics, containing 1–3 nuclear lobes.
   - DAPI: the nucleus with chromatin texture, optional bright foci, dark holes,
     micronuclei; mitotic cells have condensed chromatin (a compact blob or, for Eg5
     inhibition, a ring of chromosomes round a monopolar spindle).
   - Tubulin: cytoplasm with radial microtubules (count, sharpness, contrast, waviness) that
     concentrate round the nucleus; optional perinuclear bundle ring, fragments, an
     aggresome; mitotic cells show an aster.
   - Actin: cytoplasm with stress fibres along the long axis and a cortical ring; optional
     puncta (aggregates).
2. *Phenotype.* Each parameter is ``base + s · delta[MoA]`` where ``s`` grows with the
   concentration (the annotated concentrations of a compound map to 0.5…1, unannotated
   lower ones to less), ``delta`` is the MoA's signature (table :data:`SIGNATURES`) scaled by
   a per-compound fingerprint (±25 %), and each cell draws its own penetrance
   (``s · U(0.4, 1)``), so phenotypes are heterogeneous like real ones. Compounds without a
   MoA get a weak compound-specific random perturbation.
3. *Stain conservation.* Every cell's integrated intensity per channel is drawn independently
   of the MoA (log-normal, plus a G2 sub-population with twice the DNA), so morphology
   *redistributes* signal but never changes how much there is: phenotype cannot be read from
   mean intensity.
4. *Nuisance.* Cell density and colonies (above: neighbours reach into single-cell
   crops, more in dense wells); per week and channel a stain gain (log-normal, σ = 0.25) and per plate a
   further gain (σ = 0.08) and background; per plate and channel an off-centre quadratic
   vignette (20–45 % fall-off); per field a focus blur (half-normal σ, 0.6 px) and a gain
   jitter; Poisson-like shot noise plus read noise over a camera offset; 16-bit clipping.

All randomness comes from one seed; the same arguments give the same bytes (but for the GUIDs,
which are seeded too).
"""

from __future__ import annotations

import functools
import hashlib
import os
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from bioaug.data.bbbc021 import (
    CHANNELS,
    CONTROL,
    IMAGE_COLUMNS,
    IMAGE_CSV,
    IMAGE_QUOTED,
    MOA_CLASSES,
    MOA_COLUMNS,
    MOA_CSV,
    MOA_QUOTED,
    WAVELENGTHS,
    match_moa,
    plate_sort_key,
)
from bioaug.data.parallel import Runner, check_workers
from bioaug.data.store import begin_partial, check_out_name, replace_dir
from bioaug.errors import ConfigError
from bioaug.io import atomic_write_text
from bioaug.progress import progress

# -- phenotype parameters ---------------------------------------------------------------
#: Baseline (DMSO) cell parameters.
BASE: dict[str, float] = {
    "cell_scale": 1.0, "aspect": 0.35, "harm_low": 0.10, "harm_poly": 0.02, "harm_high": 0.015,
    "nuc_scale": 1.0, "nuc_aspect": 0.2, "lobes": 0.0, "dapi_tex": 0.25, "dapi_foci": 0.0,
    "dapi_holes": 0.0, "micronuclei": 0.0, "mitotic": 0.03,
    "tub_perinuc": 0.8, "tub_contrast": 0.5, "tub_nfil": 14.0, "tub_sharp": 3.0,
    "tub_wobble": 0.3, "tub_ring": 0.0, "tub_frag": 0.0, "tub_aggr": 0.0,
    "act_cortex": 0.6, "act_fibres": 0.5, "act_period": 5.0, "act_puncta": 0.0,
}
#: Change of each parameter at full strength (s = 1), per MoA: each signature is distinct,
#: touches several channels, and none changes a cell's integrated intensity.
SIGNATURES: dict[str, dict[str, float]] = {
    "Actin disruptors": {"act_fibres": -0.45, "act_puncta": 10, "act_cortex": -0.35,
                         "harm_high": 0.03},
    "Aurora kinase inhibitors": {"nuc_scale": 0.45, "lobes": 1.6, "cell_scale": 0.35,
                                 "dapi_tex": 0.1},
    "Cholesterol-lowering": {"act_period": -2.2, "tub_wobble": 1.4, "harm_low": 0.07,
                             "cell_scale": 0.1},
    "DNA damage": {"nuc_scale": 0.3, "dapi_foci": 8, "micronuclei": 1.5, "cell_scale": 0.15},
    "DNA replication": {"nuc_scale": 0.25, "nuc_aspect": 0.5, "dapi_holes": 4,
                        "dapi_tex": -0.15, "cell_scale": 0.2, "aspect": 0.3},
    "Eg5 inhibitors": {"mitotic": 0.75},
    "Epithelial": {"act_cortex": 1.0, "act_fibres": -0.3, "harm_low": -0.05, "harm_poly": 0.09,
                   "cell_scale": 0.1, "aspect": -0.2},
    "Kinase inhibitors": {"aspect": 1.2, "harm_high": 0.12, "act_fibres": 0.3},
    "Microtubule destabilizers": {"tub_contrast": -0.45, "tub_frag": 12, "mitotic": 0.4,
                                  "tub_perinuc": -0.5},
    "Microtubule stabilizers": {"tub_nfil": -8, "tub_sharp": 9, "tub_contrast": 0.45,
                                "tub_ring": 1.0, "micronuclei": 1.0, "mitotic": 0.15},
    "Protein degradation": {"tub_aggr": 1.5, "act_puncta": 3, "nuc_aspect": 0.15},
    "Protein synthesis": {"cell_scale": -0.3, "nuc_scale": -0.12, "tub_perinuc": -0.5,
                          "act_fibres": -0.25, "aspect": -0.2},
}
#: MoAs whose mitotic cells arrest with a monopolar spindle (others: condensed chromatin).
MONOPOLAR = frozenset({"Eg5 inhibitors"})
#: Pixel sizes at the native BBBC021 resolution.
NUC_R = 10.0
CELL_R = 24.0
#: Integrated intensity per cell and channel (counts · px) and background (counts).
AMOUNT = np.array([6.0e5, 9.0e5, 8.0e5], dtype=np.float32)
BACKGROUND = np.array([180.0, 260.0, 220.0], dtype=np.float32)
CAMERA_OFFSET = 110.0

assert set(SIGNATURES) == set(MOA_CLASSES)
assert all(set(d) <= set(BASE) for d in SIGNATURES.values())


def _name_seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "little")


def compound_signature(compound: str, moa: str | None) -> dict[str, float]:
    """The MoA's signature scaled by a per-compound fingerprint (DMSO: none)."""
    rng = np.random.default_rng(_name_seed("compound", compound))
    if moa == CONTROL:
        return {}
    if moa is None or moa not in SIGNATURES:
        # a compound without a known MoA: a weak, compound-specific perturbation
        keys = sorted(BASE)
        chosen = rng.choice(len(keys), size=3, replace=False)
        return {keys[i]: float(rng.normal(0, 0.25)) * max(abs(BASE[keys[i]]), 0.3)
                for i in chosen}
    return {k: v * float(np.clip(1 + 0.25 * rng.standard_normal(), 0.4, 1.6))
            for k, v in SIGNATURES[moa].items()}


def cell_parameters(n: int, signature: dict[str, float], strength: float,
                    rng: np.random.Generator, mitotic_kind: str = "condensed"
                    ) -> dict[str, np.ndarray]:
    """Per-cell parameters (arrays of length ``n``) for one treatment."""
    pen = strength * rng.uniform(0.4, 1.0, n)
    p = {k: np.full(n, v, dtype=np.float64) + pen * signature.get(k, 0.0) for k, v in BASE.items()}
    out: dict[str, np.ndarray] = {}
    out["theta"] = rng.uniform(0, 2 * np.pi, n)
    out["dx"], out["dy"] = rng.uniform(-0.5, 0.5, n), rng.uniform(-0.5, 0.5, n)
    out["cell_r"] = CELL_R * np.maximum(p["cell_scale"], 0.4) * rng.lognormal(0, 0.12, n)
    out["aspect"] = 1.0 + np.maximum(p["aspect"], 0.0) * rng.uniform(0.2, 1.0, n)
    k = np.arange(2, 10)
    amp = np.where(k <= 4, np.maximum(p["harm_low"], 0)[:, None],
                   np.where(k <= 5, np.maximum(p["harm_poly"], 0)[:, None],
                            np.maximum(p["harm_high"], 0)[:, None]))
    out["harm_amp"] = amp * rng.uniform(0.3, 1.0, (n, len(k))) / np.sqrt(k / 2.0)
    out["harm_phase"] = rng.uniform(0, 2 * np.pi, (n, len(k)))
    nuc_r = NUC_R * np.maximum(p["nuc_scale"], 0.4) * rng.lognormal(0, 0.08, n)
    n_lobes = 1 + np.minimum(rng.poisson(np.maximum(p["lobes"], 0)), 2)
    lob_ang = rng.uniform(0, 2 * np.pi, n)
    # lobes spread around the centre; single nuclei sit slightly off-centre
    spread = np.where(n_lobes > 1, 0.75 * nuc_r, 0.15 * out["cell_r"] * rng.uniform(0, 1, n))
    offs = np.zeros((n, 3, 2))
    lobe_w = np.zeros((n, 3))
    lobe_scale = np.ones((n, 3))
    for j in range(3):
        ang = lob_ang + j * 2 * np.pi / np.maximum(n_lobes, 1)
        offs[:, j, 0] = spread * np.cos(ang)
        offs[:, j, 1] = spread * np.sin(ang)
        lobe_w[:, j] = (j < n_lobes).astype(float)
        lobe_scale[:, j] = np.where(n_lobes > 1, 0.8, 1.0) * rng.uniform(0.9, 1.1, n)
    out["lobe_off"], out["lobe_w"], out["lobe_scale"] = offs, lobe_w, lobe_scale
    out["nuc_r"] = nuc_r
    out["nuc_aspect"] = 1.0 + np.maximum(p["nuc_aspect"], 0) * rng.uniform(0.2, 1.0, n)
    out["nuc_theta"] = rng.uniform(-0.4, 0.4, n)
    mitotic = rng.uniform(0, 1, n) < np.clip(p["mitotic"], 0, 0.95)
    out["mitotic"] = mitotic.astype(np.float64)
    out["monopolar"] = np.full(n, 1.0 if mitotic_kind == "monopolar" else 0.0)
    # mitotic cells round up and shrink
    out["cell_r"] = np.where(mitotic, 0.72 * CELL_R * rng.lognormal(0, 0.08, n), out["cell_r"])
    out["aspect"] = np.where(mitotic, 1.0 + 0.08 * rng.uniform(0, 1, n), out["aspect"])
    out["harm_amp"] = np.where(mitotic[:, None], out["harm_amp"] * 0.15, out["harm_amp"])
    for key in ("dapi_tex", "tub_perinuc", "tub_contrast", "tub_sharp", "tub_wobble",
                "tub_ring", "tub_aggr", "act_cortex", "act_fibres"):
        out[key] = np.maximum(p[key], 0.0)
    out["tub_nfil"] = np.maximum(np.round(p["tub_nfil"] * rng.uniform(0.8, 1.2, n)), 3)
    out["act_period"] = np.maximum(p["act_period"], 2.0) * rng.uniform(0.85, 1.15, n)
    out["tub_phase"] = rng.uniform(0, 2 * np.pi, n)
    out["act_phase"] = rng.uniform(0, 2 * np.pi, n)
    for key in ("dapi_foci", "dapi_holes", "micronuclei", "tub_frag", "act_puncta"):
        out[key] = rng.poisson(np.maximum(p[key], 0)).astype(np.float64)
    # how much stain each cell holds, independent of its phenotype (G2 cells: twice the DNA)
    amount = AMOUNT[None, :] * rng.lognormal(0, 0.15, (n, 3))
    amount[:, 0] *= np.where(rng.uniform(0, 1, n) < 0.25, 1.8, 1.0)
    out["amount"] = amount
    return out


def _sig(x: np.ndarray) -> np.ndarray:
    return 0.5 + 0.5 * np.tanh(0.5 * x)


def _blobs(u: np.ndarray, v: np.ndarray, centres: np.ndarray, sigma: np.ndarray,
           weight: np.ndarray) -> np.ndarray:
    """Sum of Gaussian spots: centres (n, K, 2), sigma and weight (n, K) → (n, P, P)."""
    out = np.zeros(u.shape, dtype=np.float32)
    for k in range(centres.shape[1]):  # only the cells that have a k-th spot
        sel = np.flatnonzero(weight[:, k])
        if sel.size == 0:
            continue
        du = u[sel] - centres[sel, k, 0, None, None].astype(np.float32)
        dv = v[sel] - centres[sel, k, 1, None, None].astype(np.float32)
        s2 = (2 * sigma[sel, k] ** 2).astype(np.float32)[:, None, None]
        out[sel] += weight[sel, k, None, None].astype(np.float32) * np.exp(-(du * du + dv * dv) / s2)
    return out


def _random_points(rng: np.random.Generator, counts: np.ndarray, radius: np.ndarray,
                   centre: np.ndarray, kmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``kmax`` points per cell uniformly in a disc; returns centres and a 0/1 mask."""
    n = len(counts)
    k = int(min(max(counts.max(initial=0), 0), kmax))
    r = radius[:, None] * np.sqrt(rng.uniform(0, 1, (n, k)))
    a = rng.uniform(0, 2 * np.pi, (n, k))
    pts = np.stack([centre[:, 0, None] + r * np.cos(a), centre[:, 1, None] + r * np.sin(a)], -1)
    mask = (np.arange(k)[None, :] < counts[:, None]).astype(np.float32)
    return pts, mask


def _col(a: Any) -> np.ndarray:
    """Per-cell values as float32 ``(n, 1, 1)``, to broadcast over a patch."""
    return np.asarray(a, dtype=np.float32)[:, None, None]


@dataclass(frozen=True)
class _CellFrame:
    """Coordinates and masks of ``n`` cells on their patches, each ``(n, P, P)`` float32.

    ``u``, ``v``: the cell's own axes; ``body``, ``d_edge``: the soft cell body and the
    distance to its outline; ``nuc``: the soft nucleus; ``r_n``, ``psi``: polar
    coordinates round the first nuclear lobe ``c0`` (``(n, 2)``).
    """

    u: np.ndarray
    v: np.ndarray
    body: np.ndarray
    d_edge: np.ndarray
    nuc: np.ndarray
    c0: np.ndarray
    r_n: np.ndarray
    psi: np.ndarray


def _cell_axes(p: dict[str, np.ndarray], patch: int) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel in the rotated frame of its cell (centre offset ``dx``, ``dy``)."""
    f32 = np.float32
    g = np.arange(patch, dtype=f32) - f32((patch - 1) / 2.0)
    X = g[None, None, :] - _col(p["dx"])
    Y = g[None, :, None] - _col(p["dy"])
    c, s = _col(np.cos(p["theta"])), _col(np.sin(p["theta"]))
    return c * X + s * Y, -s * X + c * Y


def _cell_body(p: dict[str, np.ndarray], u: np.ndarray, v: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """The soft body (a harmonic-modulated ellipse) and the signed distance to its edge."""
    ca = _col(p["cell_r"] * np.sqrt(p["aspect"]))
    cb = _col(p["cell_r"] / np.sqrt(p["aspect"]))
    un, vn = u / ca, v / cb
    rho = np.sqrt(un * un + vn * vn)
    phi = np.arctan2(vn, un)
    R = np.ones_like(rho)
    for j, k in enumerate(range(2, 10)):
        R += _col(p["harm_amp"][:, j]) * np.cos(k * phi + _col(p["harm_phase"][:, j]))
    d_edge = (R - rho) * _col(p["cell_r"])
    return _sig(d_edge / np.float32(1.2)), d_edge


def _nucleus(p: dict[str, np.ndarray], u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The soft nucleus: the union of up to three elliptical lobes."""
    nuc = np.zeros_like(u)
    nr = p["nuc_r"]
    cn, sn = _col(np.cos(p["nuc_theta"])), _col(np.sin(p["nuc_theta"]))
    for j in range(3):
        if not p["lobe_w"][:, j].any():
            continue
        r_l = nr * p["lobe_scale"][:, j]
        du = u - _col(p["lobe_off"][:, j, 0])
        dv = v - _col(p["lobe_off"][:, j, 1])
        a_ = du * cn + dv * sn
        b_ = -du * sn + dv * cn
        na, nb = _col(r_l * np.sqrt(p["nuc_aspect"])), _col(r_l / np.sqrt(p["nuc_aspect"]))
        rn = np.sqrt((a_ / na) ** 2 + (b_ / nb) ** 2)
        lobe = _sig((1 - rn) * _col(r_l) / np.float32(0.9))
        nuc = np.maximum(nuc, _col(p["lobe_w"][:, j]) * lobe)
    return nuc


def _cell_frame(p: dict[str, np.ndarray], patch: int) -> _CellFrame:
    u, v = _cell_axes(p, patch)
    body, d_edge = _cell_body(p, u, v)
    c0 = p["lobe_off"][:, 0]
    du0, dv0 = u - _col(c0[:, 0]), v - _col(c0[:, 1])
    return _CellFrame(u=u, v=v, body=body, d_edge=d_edge, nuc=_nucleus(p, u, v), c0=c0,
                      r_n=np.sqrt(du0 * du0 + dv0 * dv0), psi=np.arctan2(dv0, du0))


def _render_dapi(p: dict[str, np.ndarray], f: _CellFrame, texture: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    """DNA: textured nucleus, foci, holes, micronuclei; mitotic chromatin as a ring round
    a monopolar spindle or a condensed blob."""
    f32, n, nr, u, v = np.float32, len(p["cell_r"]), p["nuc_r"], f.u, f.v
    dapi = f.nuc * (1 + _col(p["dapi_tex"]) * texture)
    pts, m = _random_points(rng, p["dapi_foci"], 0.7 * nr, f.c0, 12)
    dapi += f.nuc * _blobs(u, v, pts, np.full(m.shape, 1.1), 1.5 * m)
    pts, m = _random_points(rng, p["dapi_holes"], 0.6 * nr, f.c0, 6)
    dapi *= 1 - 0.6 * np.minimum(_blobs(u, v, pts, np.full(m.shape, 1.8), m), 1)
    ang = rng.uniform(0, 2 * np.pi, (n, 3))
    rad = (nr[:, None] * rng.uniform(1.5, 2.2, (n, 3)))
    mic = np.stack([f.c0[:, 0, None] + rad * np.cos(ang), f.c0[:, 1, None] + rad * np.sin(ang)],
                   -1)
    mm = (np.arange(3)[None, :] < np.minimum(p["micronuclei"], 3)[:, None]).astype(f32)
    dapi += _blobs(u, v, mic, np.full(mm.shape, 1.6), 0.9 * mm)
    mono = _col(p["monopolar"])
    ring = np.exp(-(((f.r_n - _col(0.55 * nr)) / f32(1.6)) ** 2)) * \
        (0.6 + 0.4 * np.cos(7 * f.psi) ** 2)
    blob = _sig((1 - f.r_n / _col(0.55 * nr)) * f32(6.0)) * (1 + 0.3 * texture)
    mit_dapi = mono * ring + (1 - mono) * blob
    mit = _col(p["mitotic"])
    return (1 - mit) * dapi + mit * mit_dapi


def _render_tubulin(p: dict[str, np.ndarray], f: _CellFrame,
                    rng: np.random.Generator) -> np.ndarray:
    """Microtubules: radial filaments round the nucleus, a perinuclear ring, fragments, an
    aggresome; mitotic cells show an aster."""
    f32, n, nr, r_n, psi, body = np.float32, len(p["cell_r"]), p["nuc_r"], f.r_n, f.psi, f.body
    wob = _col(p["tub_wobble"]) * np.sin(r_n / f32(6.0) + _col(p["tub_phase"]))
    fil = (0.5 + 0.5 * np.cos(_col(p["tub_nfil"]) * psi + _col(p["tub_phase"]) + wob))
    fil = fil ** _col(p["tub_sharp"])
    tc = _col(np.minimum(p["tub_contrast"], 0.98))
    fil = (1 - tc) + tc * fil * 2.0
    tub = body * (0.35 + _col(p["tub_perinuc"]) * np.exp(-r_n / _col(0.55 * p["cell_r"]))) * fil
    tub *= 1 - 0.85 * f.nuc  # microtubules lie above/below the nucleus, dimmer there
    tub += _col(p["tub_ring"]) * body * np.exp(-(((r_n - _col(1.25 * nr)) / f32(2.0)) ** 2))
    pts, m = _random_points(rng, p["tub_frag"], 0.8 * p["cell_r"], np.zeros((n, 2)), 16)
    tub += body * _blobs(f.u, f.v, pts, np.full(m.shape, 1.2), 0.8 * m)
    side = rng.uniform(0, 2 * np.pi, n)
    c0 = f.c0
    agg = np.stack([c0[:, 0] + 1.4 * nr * np.cos(side), c0[:, 1] + 1.4 * nr * np.sin(side)], -1)
    tub += _col(p["tub_aggr"]) * _blobs(f.u, f.v, agg[:, None], np.full((n, 1), 3.5),
                                        np.ones((n, 1)))
    aster = np.exp(-(r_n**2) / f32(2 * 2.5**2)) * 2 \
        + np.exp(-r_n / f32(7.0)) * (0.5 + 0.5 * np.cos(9 * psi)) ** 4
    mono, mit = _col(p["monopolar"]), _col(p["mitotic"])
    mit_tub = body * 0.3 + mono * aster + (1 - mono) * body * 0.3
    return (1 - mit) * tub + mit * mit_tub


def _render_actin(p: dict[str, np.ndarray], f: _CellFrame,
                  rng: np.random.Generator) -> np.ndarray:
    """Actin: stress fibres along the long axis, a cortical ring, puncta."""
    n = len(p["cell_r"])
    fib = (0.5 + 0.5 * np.cos(2 * np.pi * f.v / _col(p["act_period"])
                              + _col(p["act_phase"]))) ** 2
    cortex = np.exp(-((f.d_edge / np.float32(2.0)) ** 2))
    act = f.body * (0.25 + _col(p["act_fibres"]) * fib) + _col(p["act_cortex"]) * cortex
    pts, m = _random_points(rng, p["act_puncta"], 0.8 * p["cell_r"], np.zeros((n, 2)), 16)
    act += f.body * _blobs(f.u, f.v, pts, np.full(m.shape, 1.4), 1.6 * m)
    mit = _col(p["mitotic"])
    return (1 - mit) * act + mit * (f.body * 0.2 + 1.2 * cortex)


def render_cells(p: dict[str, np.ndarray], patch: int, rng: np.random.Generator,
                 texture: np.ndarray | None = None) -> np.ndarray:
    """Render cells into ``(n, 3, patch, patch)`` float32 patches (DAPI, Tubulin, Actin).

    Each cell's channels sum to its ``amount`` (stain conservation). ``texture`` is
    ``(n, patch, patch)`` smooth noise for chromatin (drawn here when not given).
    """
    f32 = np.float32
    n = len(p["cell_r"])
    frame = _cell_frame(p, patch)
    if texture is None:
        texture = ndimage.gaussian_filter(rng.standard_normal((n, patch, patch)).astype(f32),
                                          (0, 1.3, 1.3)) * f32(3.0)
    # the channels draw from ``rng`` in this order
    dapi = _render_dapi(p, frame, texture, rng)
    tub = _render_tubulin(p, frame, rng)
    act = _render_actin(p, frame, rng)
    out = np.stack([dapi, tub, act], 1)
    np.maximum(out, 0, out=out)
    total = out.sum((2, 3), keepdims=True)
    out *= (np.asarray(p["amount"], dtype=f32)[:, :, None, None] / np.maximum(total, 1e-6))
    return out


def patch_sizes(p: dict[str, np.ndarray]) -> np.ndarray:
    """Odd patch side per cell, in steps of 16 px, that holds the whole cell."""
    reach = p["cell_r"] * np.sqrt(p["aspect"]) * (1 + p["harm_amp"].sum(1)) * 1.15 + 4
    half = np.clip(np.ceil(reach / 8) * 8, 24, 160).astype(int)
    return 2 * half + 1


def patch_size(p: dict[str, np.ndarray]) -> int:
    """One patch side that holds every cell of ``p``."""
    return int(patch_sizes(p).max(initial=2 * 24 + 1))


# -- a field ----------------------------------------------------------------------------
@dataclass
class PlateNuisance:
    """Per-plate nuisance: stain gains (per channel), background, vignette."""

    gain: np.ndarray  # (3,)
    background: np.ndarray  # (3,)
    vignette_strength: np.ndarray  # (3,)
    vignette_centre: np.ndarray  # (3, 2) in fractions of (H, W)

    def vignette(self, size: tuple[int, int]) -> np.ndarray:
        h, w = size
        yy = (np.arange(h, dtype=np.float32) / max(h - 1, 1))[:, None]
        xx = (np.arange(w, dtype=np.float32) / max(w - 1, 1))[None, :]
        out = np.empty((3, h, w), dtype=np.float32)
        for ch in range(3):
            cy, cx = self.vignette_centre[ch]
            r2 = ((yy - cy) ** 2 * (h / max(h, w)) ** 2 + (xx - cx) ** 2 * (w / max(h, w)) ** 2)
            out[ch] = 1 - self.vignette_strength[ch] * r2 / 0.5
        return np.clip(out, 0.2, None)


def plate_nuisance(week_gain: np.ndarray, rng: np.random.Generator) -> PlateNuisance:
    gain = week_gain * rng.lognormal(0, 0.08, 3)
    return PlateNuisance(
        gain=gain.astype(np.float32),
        background=(BACKGROUND * rng.lognormal(0, 0.15, 3)).astype(np.float32),
        vignette_strength=np.full(3, rng.uniform(0.2, 0.45)) * rng.uniform(0.9, 1.1, 3),
        vignette_centre=np.clip(rng.normal([0.5, 0.5], 0.08, (1, 2))
                                + rng.normal(0, 0.02, (3, 2)), 0.25, 0.75),
    )


#: Fraction of cells that grow next to an earlier cell (MCF7 forms epithelial colonies).
CLUMPING = 0.6
#: Log-normal σ of the cell density per plate and per well (seeding and growth vary).
DENSITY_SIGMA = {"plate": 0.15, "well": 0.3}


def place_cells(n: int, size: tuple[int, int], min_dist: float,
                rng: np.random.Generator, clumping: float = CLUMPING) -> np.ndarray:
    """Up to ``n`` centres ``(y, x)`` in the field at least ``min_dist`` apart.

    A cell is placed at random in the field, or, with probability ``clumping``, next to a
    cell placed before it (1–1.5 × ``min_dist`` away): cells form colonies, as MCF7 does,
    so single-cell crops often hold parts of neighbours.
    """
    h, w = size
    m = n * 8 + 8
    free = rng.uniform(0, 1, (m, 2)) * np.array([h, w])
    near = rng.uniform(0, 1, m) < clumping
    ang = rng.uniform(0, 2 * np.pi, m)
    dist = min_dist * rng.uniform(1.0, 1.5, m)
    pick = rng.uniform(0, 1, m)
    chosen: list[np.ndarray] = []
    for i in range(m):
        if len(chosen) >= n:
            break
        c = free[i]
        if chosen and near[i]:
            anchor = chosen[int(pick[i] * len(chosen))]
            c = anchor + dist[i] * np.array([np.sin(ang[i]), np.cos(ang[i])])
            if not (0 <= c[0] < h and 0 <= c[1] < w):
                continue
        if not chosen or np.min(np.sum((np.asarray(chosen) - c) ** 2, 1)) >= min_dist**2:
            chosen.append(c)
    return np.asarray(chosen).reshape(-1, 2)


def density_factors(n: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` log-normal density factors with mean 1 (clipped to 0.4–2.5)."""
    return np.clip(rng.lognormal(-0.5 * sigma**2, sigma, n), 0.4, 2.5)


@functools.lru_cache(maxsize=1)
def _texture_tile(size: int = 640) -> np.ndarray:
    """A fixed tile of smooth unit noise (σ = 1.3 px) that chromatin texture is cut from."""
    noise = np.random.default_rng(20100601).standard_normal((size, size)).astype(np.float32)
    return ndimage.gaussian_filter(noise, 1.3, mode="wrap") * np.float32(3.0)


def render_field(size: tuple[int, int], cells: dict[str, np.ndarray], centres: np.ndarray,
                 nuisance: PlateNuisance, vignette: np.ndarray, rng: np.random.Generator
                 ) -> np.ndarray:
    """One field as ``(3, H, W)`` uint16, cells at ``centres`` (y, x) with nuisance applied."""
    h, w = size
    n = len(centres)
    sizes = patch_sizes(cells) if n else np.zeros(0, dtype=int)
    pad = int(sizes.max(initial=1))
    field = np.zeros((3, h + 2 * pad, w + 2 * pad), dtype=np.float32)
    if n:
        iy = np.floor(centres[:, 0]).astype(int)
        ix = np.floor(centres[:, 1]).astype(int)
        cells = dict(cells)
        cells["dx"] = centres[:, 1] - ix
        cells["dy"] = centres[:, 0] - iy
        tile = _texture_tile()
        # cells are rendered in groups of equal patch size: small cells cost less
        for P in np.unique(sizes):
            group = np.flatnonzero(sizes == P)
            y0 = iy[group] + pad - P // 2
            x0 = ix[group] + pad - P // 2
            # chromatin texture: windows at random places of a fixed smooth-noise tile
            win = np.lib.stride_tricks.sliding_window_view(tile, (P, P))
            tex = win[rng.integers(0, tile.shape[0] - P, len(group)),
                      rng.integers(0, tile.shape[1] - P, len(group))]
            for start in range(0, len(group), 48):
                sl = slice(start, start + 48)
                sub = {k: v[group[sl]] for k, v in cells.items()}
                patches = render_cells(sub, int(P), rng, texture=tex[sl])
                for i, pt in enumerate(patches):
                    yy, xx = y0[start + i], x0[start + i]
                    field[:, yy:yy + P, xx:xx + P] += pt
    field = field[:, pad:pad + h, pad:pad + w]
    sigma = abs(rng.normal(0, 0.6))
    if sigma > 0.35:
        field = ndimage.gaussian_filter(field, (0, sigma, sigma))
    gain = nuisance.gain * rng.lognormal(0, 0.04, 3).astype(np.float32)
    signal = (field * gain[:, None, None] + nuisance.background[:, None, None]) * vignette
    # shot noise (variance ∝ signal, 0.6 counts per photo-electron) and read noise (σ = 3)
    sd = np.sqrt(signal * np.float32(0.6) + np.float32(9.0))
    signal += sd * rng.standard_normal(signal.shape, dtype=np.float32)
    signal += np.float32(CAMERA_OFFSET)
    return np.clip(np.rint(signal), 0, 65535).astype(np.uint16)


def render_cell_crops(moas: list[str], strengths: np.ndarray | list[float], size: int = 64,
                      seed: int = 0, n_plates: int = 4, compounds: list[str] | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Isolated single cells, centred, with plate/week stain nuisance: ``(n, 3, size, size)``.

    Float32 counts (before noise). Returns the crops and each crop's plate index. Used to
    check that phenotype is not readable from mean intensity.
    """
    rng = np.random.default_rng(seed)
    n = len(moas)
    plate_gain = rng.lognormal(0, 0.25, (n_plates, 3)).astype(np.float32)
    plate_of = rng.integers(0, n_plates, n)
    out = np.zeros((n, 3, size, size), dtype=np.float32)
    for i, moa in enumerate(moas):
        compound = compounds[i] if compounds else moa
        sig = compound_signature(compound, moa)
        kind = "monopolar" if moa in MONOPOLAR else "condensed"
        p = cell_parameters(1, sig, float(strengths[i]), rng, kind)
        P = max(patch_size(p), size)
        P += (P - size) % 2
        img = render_cells(p, P, rng)[0]
        o = (P - size) // 2
        out[i] = img[:, o:o + size, o:o + size] * plate_gain[plate_of[i], :, None, None]
        out[i] += BACKGROUND[:, None, None] * plate_gain[plate_of[i], :, None, None]
    return out, plate_of


# -- the design -------------------------------------------------------------------------
def load_design() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The real BBBC021 plate design (one row per well) and MoA table, bundled."""
    res = resources.files("bioaug.data") / "resources"
    with resources.as_file(res / "bbbc021_design.csv.gz") as f:
        wells = pd.read_csv(f, keep_default_na=False)
    with resources.as_file(res / "bbbc021_moa.csv") as f:
        moa = pd.read_csv(f, keep_default_na=False)
    moa["line"] = np.arange(len(moa)) + 2
    labels, _ = match_moa(wells, moa, 5e-7)
    wells["moa"] = labels
    return wells, moa


def strength_of(compound: str, concentration: float, moa_table: pd.DataFrame) -> float:
    """Phenotype strength from the concentration: annotated ones map to 0.5…1 in log order."""
    rows = moa_table[moa_table["compound"] == compound]
    if rows.empty or compound == CONTROL:
        return 0.0 if compound == CONTROL else 0.5
    concs = np.sort(rows["concentration"].to_numpy(float))
    if concentration < concs[0] * 0.999:
        return float(np.clip(0.5 * concentration / concs[0], 0.05, 0.5))
    rank = int(np.searchsorted(concs, concentration * 1.001) - 1)
    return float(0.5 + 0.5 * (rank + 1) / len(concs))


def choose_plates(wells: pd.DataFrame, n: int, rng: np.random.Generator) -> list[str]:
    """Greedy cover: plates adding the most new MoAs, then new (MoA, compound) pairs."""
    plates = sorted(wells["plate"].unique(), key=plate_sort_key)
    if not 1 <= n <= len(plates):
        raise ConfigError(f"plates must be between 1 and {len(plates)}, got {n}")
    ann = wells[wells["moa"].notna()]
    moas = {p: set(g["moa"]) for p, g in ann.groupby("plate")}
    pairs = {p: set(zip(g["moa"], g["compound"], strict=True)) for p, g in ann.groupby("plate")}
    chosen: list[str] = []
    have_m: set[str] = set()
    have_p: set[tuple[str, str]] = set()
    jitter = dict(zip(plates, rng.uniform(0, 0.1, len(plates)), strict=True))
    for _ in range(n):
        best = max((p for p in plates if p not in chosen),
                   key=lambda p: (len(moas.get(p, set()) - have_m),
                                  len(pairs.get(p, set()) - have_p) + jitter[p]))
        chosen.append(best)
        have_m |= moas.get(best, set())
        have_p |= pairs.get(best, set())
    return sorted(chosen, key=plate_sort_key)


def choose_wells(plate_wells: pd.DataFrame, k: int, rng: np.random.Generator,
                 unannotated: int = 1) -> pd.DataFrame:
    """Per plate: a DMSO well, one well per MoA present, a second DMSO well,
    ``unannotated`` wells without a MoA, then the rarest MoAs, up to ``k`` wells."""
    order = rng.permutation(len(plate_wells))
    pw = plate_wells.iloc[order]
    dmso = list(pw[pw["moa"] == CONTROL].index[:2])
    picked: list[int] = dmso[:1]  # a control comes first, whatever k
    for _moa, g in pw[pw["moa"].notna() & (pw["moa"] != CONTROL)].groupby("moa", sort=True):
        # the highest concentration of one compound shows the phenotype best
        picked.append(g.sort_values("concentration").index[-1])
    picked += dmso[1:]
    picked += list(pw[pw["moa"].isna()].index[:unannotated])
    # fill with the MoA that has the fewest wells so far (balanced classes)
    rest = [i for i in pw[pw["moa"].notna()].index if i not in picked]
    count = pw.loc[picked, "moa"].value_counts().to_dict()
    while len(picked) < k and rest:
        # DMSO and taxol (stabilisers) fill half of every real plate: give them less room
        best = min(rest, key=lambda i: count.get(pw.at[i, "moa"], 0)
                   + 2 * (pw.at[i, "moa"] in (CONTROL, "Microtubule stabilizers")))
        rest.remove(best)
        picked.append(best)
        count[pw.at[best, "moa"]] = count.get(pw.at[best, "moa"], 0) + 1
    return plate_wells.loc[picked[:max(k, 1)]]


# -- CSV writing in the published format ----------------------------------------------------
def _csv_value(value: Any, quoted: bool, decimals: int | None = None) -> str:
    if quoted:
        return '"' + str(value).replace('"', '""') + '"'
    if decimals is not None:
        return f"{float(value):.{decimals}f}"
    return str(int(value))


def image_csv_text(rows: pd.DataFrame) -> str:
    """``BBBC021_v1_image.csv`` text: published header, quoting and six decimals, LF."""
    lines = [",".join(f'"{c}"' if c in IMAGE_QUOTED else c for c in IMAGE_COLUMNS)]
    for r in rows[list(IMAGE_COLUMNS)].itertuples(index=False):
        lines.append(",".join(
            _csv_value(v, c in IMAGE_QUOTED, 6 if c == "Image_Metadata_Concentration" else None)
            for c, v in zip(IMAGE_COLUMNS, r, strict=True)))
    return "\n".join(lines) + "\n"


def moa_csv_text(rows: pd.DataFrame) -> str:
    lines = [",".join(f'"{c}"' if c in MOA_QUOTED else c for c in MOA_COLUMNS)]
    for r in rows[list(MOA_COLUMNS)].itertuples(index=False):
        lines.append(",".join(_csv_value(v, c in MOA_QUOTED, 6 if c == "concentration" else None)
                              for c, v in zip(MOA_COLUMNS, r, strict=True)))
    return "\n".join(lines) + "\n"


def _guid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4)).upper()


# -- the twin ---------------------------------------------------------------------------
def parse_size(text: str) -> tuple[int, int]:
    """``"256x320"`` → (256, 320) (H×W)."""
    try:
        h, w = (int(x) for x in str(text).lower().replace("×", "x").split("x"))
    except ValueError as exc:
        raise ConfigError(f"size must look like HxW (e.g. 256x320), got {text!r}") from exc
    if h < 32 or w < 32:
        raise ConfigError(f"size {h}x{w} is too small; fields need at least 32x32 pixels")
    return h, w


_VIGNETTES: dict[tuple[Any, ...], np.ndarray] = {}


def _synth_field(t: dict[str, Any]) -> dict[str, str]:
    """Render one field and write its three TIFFs; return the file name per channel."""
    import tifffile

    rng = np.random.default_rng(t["seed"])
    nuis: PlateNuisance = t["nuisance"]
    key = (t["size"], nuis.vignette_strength.tobytes(), nuis.vignette_centre.tobytes())
    vig = _VIGNETTES.get(key)
    if vig is None:
        _VIGNETTES.clear()
        vig = _VIGNETTES[key] = nuis.vignette(t["size"])
    moa = t["moa"]
    sig = compound_signature(t["compound"], moa)
    kind = "monopolar" if moa in MONOPOLAR else "condensed"
    n = max(1, int(rng.poisson(t["cells"])))
    centres = place_cells(n, t["size"], 2.6 * NUC_R, rng)
    cells = cell_parameters(len(centres), sig, t["strength"], rng, kind)
    img = render_field(t["size"], cells, centres, nuis, vig, rng)
    files = {}
    for ch, plane in zip(CHANNELS, img, strict=True):
        name = f"{t['prefix']}{t['well']}_s{t['site']}_w{WAVELENGTHS[ch]}{_guid(rng)}.tif"
        tifffile.imwrite(Path(t["folder"]) / name, plane, photometric="minisblack")
        files[ch] = name
    return files


#: Peak bytes per field pixel while one field is rendered and written (padded float32
#: planes, noise, vignette), measured with tracemalloc on 1024×1280 fields, rounded up.
FIELD_BYTES_PER_PIXEL = 96
#: Padding on each side of a field while its cells are rendered (the largest cell patch).
FIELD_PAD = 2 * 160 + 1


def field_memory(size: tuple[int, int], workers: int = 1) -> int:
    """Bytes needed to render fields of ``size`` (H, W) in ``workers`` processes at once."""
    h, w = size
    return int(workers) * FIELD_BYTES_PER_PIXEL * (h + 2 * FIELD_PAD) * (w + 2 * FIELD_PAD)


def check_field_memory(size: tuple[int, int], workers: int = 1,
                       available: int | None = None) -> None:
    """A clear error before rendering when fields of ``size`` cannot fit in memory."""
    from bioaug.data.memory import available_memory, check_memory, largest_fitting

    free = available_memory() if available is None else available
    if free is None:
        return
    side = largest_fitting(lambda x: field_memory((x, x), workers), free, low=32)
    largest = (f"the largest square field that fits is about {side}x{side}" if side
               else "not even a 32x32 field fits")
    if workers > 1:
        largest += "; fewer --workers fit larger fields"
    each = f" in each of {workers} workers" if workers > 1 else ""
    check_memory(field_memory(size, workers), f"a {size[0]}x{size[1]} field (--size){each}",
                 largest=largest, available=free)


def _check_twin_arguments(sites: int, cells_per_field: int, wells_per_plate: int,
                          seed: int, workers: int) -> None:
    if sites < 1 or sites > 9:
        raise ConfigError(f"sites must be between 1 and 9, got {sites}")
    if cells_per_field < 1:
        raise ConfigError(f"cells_per_field must be at least 1, got {cells_per_field}")
    if wells_per_plate < 1:
        raise ConfigError(f"wells_per_plate must be at least 1, got {wells_per_plate}")
    if seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed}")
    check_workers(workers)


def _check_twin_out(out: Path, overwrite: bool) -> None:
    """``out`` is new, empty, or (with ``overwrite``) a BBBC021 folder."""
    check_out_name(out)
    if (out / IMAGE_CSV).exists() and not overwrite:
        raise ConfigError(f"{out} already holds a BBBC021 folder",
                          hint="pass --overwrite to replace it, or choose another --out")
    if out.exists() and not (out / IMAGE_CSV).exists() and (not out.is_dir()
                                                           or any(out.iterdir())):
        raise ConfigError(f"{out} exists and is not a BBBC021 folder; refusing to replace it",
                          hint="choose a new or empty --out")


def _twin_design(plates: int, wells_per_plate: int, unannotated_wells: int,
                 rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The wells to render (one row each), the MoA table and the chosen plates."""
    wells, moa_table = load_design()
    chosen = choose_plates(wells, plates, rng)
    design = pd.concat([choose_wells(wells[wells["plate"] == p], wells_per_plate, rng,
                                     unannotated_wells) for p in chosen])
    return design, moa_table, chosen


def _plate_tasks(tmp: Path, pi: int, plate: str, pw: pd.DataFrame, nuis: PlateNuisance,
                 moa_table: pd.DataFrame, *, seed: int, sites: int, size: tuple[int, int],
                 cells_per_field: int) -> list[dict[str, Any]]:
    """One task per field of plate number ``pi`` (its folder is made here)."""
    (tmp / pw["path"].iloc[0]).mkdir(parents=True, exist_ok=True)
    # cell density: a plate factor times a factor per well, independent of the MoA
    drng = np.random.default_rng([seed, 3, pi])
    density = density_factors(1, DENSITY_SIGMA["plate"], drng) * \
        density_factors(len(pw), DENSITY_SIGMA["well"], drng)
    tasks = []
    for wi, w in enumerate(pw.itertuples(index=False)):
        moa = w.moa if isinstance(w.moa, str) else None
        for site in range(1, sites + 1):
            tasks.append({
                "folder": str(tmp / w.path), "plate": plate, "well": w.well,
                "prefix": w.prefix, "site": site, "compound": w.compound, "moa": moa,
                "strength": strength_of(w.compound, w.concentration, moa_table),
                "nuisance": nuis, "size": size,
                "cells": cells_per_field * float(density[wi]),
                "seed": [seed, 2, pi, wi, site],
                "row": {"table": int(w.table), "path": w.path, "replicate": int(w.replicate),
                        "concentration": float(w.concentration)}})
    return tasks


def _field_tasks(tmp: Path, chosen: list[str], design: pd.DataFrame, moa_table: pd.DataFrame,
                 rng: np.random.Generator, **kw: Any) -> list[dict[str, Any]]:
    """Every field to render, plate by plate, with its week's and plate's nuisance."""
    weeks = sorted(design["path"].str.split("/").str[0].unique(), key=plate_sort_key)
    week_gain = {w: rng.lognormal(0, 0.25, 3) for w in weeks}
    tasks: list[dict[str, Any]] = []
    for pi, plate in enumerate(chosen):
        pw = design[design["plate"] == plate]
        week = pw["path"].iloc[0].split("/")[0]
        nuis = plate_nuisance(week_gain[week], np.random.default_rng([kw["seed"], 1, pi]))
        tasks += _plate_tasks(tmp, pi, plate, pw, nuis, moa_table, **kw)
    return tasks


def _render_fields(tasks: list[dict[str, Any]], workers: int) -> pd.DataFrame:
    """Render and write every field; the image table's rows, in task order."""
    rows: list[dict[str, Any]] = []
    image_no: dict[int, int] = {}
    bar = progress(total=len(tasks), desc="synth", unit="field")
    with Runner(workers) as runner:
        for t, files in zip(tasks, runner.map(_synth_field, tasks), strict=True):
            r = t["row"]
            image_no[r["table"]] = image_no.get(r["table"], 0) + 1
            rows.append({
                "TableNumber": r["table"], "ImageNumber": image_no[r["table"]],
                "Image_FileName_DAPI": files["DAPI"], "Image_PathName_DAPI": r["path"],
                "Image_FileName_Tubulin": files["Tubulin"], "Image_PathName_Tubulin": r["path"],
                "Image_FileName_Actin": files["Actin"], "Image_PathName_Actin": r["path"],
                "Image_Metadata_Plate_DAPI": t["plate"], "Image_Metadata_Well_DAPI": t["well"],
                "Replicate": r["replicate"], "Image_Metadata_Compound": t["compound"],
                "Image_Metadata_Concentration": r["concentration"],
            })
            bar.update(1)
    bar.close()
    return pd.DataFrame(rows)


def _write_twin_tables(tmp: Path, image_rows: pd.DataFrame, design: pd.DataFrame,
                       moa_table: pd.DataFrame) -> None:
    """The two BBBC021 CSVs: the image table, and the MoA rows of the treatments used."""
    atomic_write_text(tmp / IMAGE_CSV, image_csv_text(image_rows))
    present = set(zip(design["compound"], design["concentration"].round(6), strict=True))
    moa_rows = moa_table[[(c, round(x, 6)) in present for c, x in
                          zip(moa_table["compound"], moa_table["concentration"], strict=True)]]
    atomic_write_text(tmp / MOA_CSV, moa_csv_text(moa_rows))


def synth_bbbc021(out: str | os.PathLike, *, plates: int = 6, sites: int = 2,
                  size: tuple[int, int] = (256, 320), cells_per_field: int = 15,
                  seed: int = 0, wells_per_plate: int = 12, unannotated_wells: int = 1,
                  workers: int = 1, overwrite: bool = False) -> Path:
    """Write a BBBC021 twin in the published layout (see the module docstring).

    ``plates`` real plates are chosen to cover all 12 MoAs and DMSO (six plates cover
    them; fewer cover as many as they can), ``wells_per_plate`` wells each, ``sites`` fields
    per well of ``size`` (H, W) pixels holding about ``cells_per_field`` cells, rendered by
    ``workers`` processes (each field has its own seed: the output does not depend on
    ``workers``). The folder is written as ``OUT.partial`` and renamed when complete; a
    field too large for the memory available is refused before anything is written.

    Parameters
    ----------
    out
        The folder to write.
    plates
        Real plates to copy the design of (six cover every MoA and DMSO).
    sites
        Fields per well.
    size
        Field size ``(H, W)`` in pixels.
    cells_per_field
        About this many cells per field.
    seed
        The seed; the same arguments give the same files.
    wells_per_plate
        Wells per plate.
    unannotated_wells
        Wells per plate of compounds without a MoA (as BBBC021 has).
    workers
        Processes rendering the fields.
    overwrite
        Replace an existing twin at ``out`` (never a folder that is not one).

    Returns
    -------
    Path
        ``out``: ``BBBC021_v1_image.csv``, ``BBBC021_v1_moa.csv`` and the plate folders of
        16-bit TIFFs, as :func:`bioaug.data.prepare.prepare_bbbc021` reads them.

    Examples
    --------
    >>> import tempfile
    >>> from bioaug.data.bbbc021 import load_metadata
    >>> from bioaug.data.synth import synth_bbbc021
    >>> tmp = tempfile.mkdtemp()
    >>> twin = synth_bbbc021(f"{tmp}/twin", plates=1, wells_per_plate=2, sites=1,
    ...                      size=(64, 64), cells_per_field=3)
    >>> fields = load_metadata(twin).fields
    >>> len(fields), fields["plate"].unique().tolist()
    (2, ['Week3_25421'])
    >>> sorted(p.name for p in twin.iterdir())
    ['BBBC021_v1_image.csv', 'BBBC021_v1_moa.csv', 'Week3']
    """
    out = Path(out)
    _check_twin_arguments(sites, cells_per_field, wells_per_plate, seed, workers)
    size = (int(size[0]), int(size[1]))
    _check_twin_out(out, overwrite)
    check_field_memory(size, workers)
    rng = np.random.default_rng(seed)
    design, moa_table, chosen = _twin_design(plates, wells_per_plate, unannotated_wells, rng)
    tmp = begin_partial(out, what="synthetic screen")
    tasks = _field_tasks(tmp, chosen, design, moa_table, rng, seed=seed, sites=sites,
                         size=size, cells_per_field=cells_per_field)
    _write_twin_tables(tmp, _render_fields(tasks, workers), design, moa_table)
    replace_dir(tmp, out)
    return out
