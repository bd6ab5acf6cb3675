"""The identity of the features a correction was fitted on.

A correction fitted on one model's features means nothing on another's, nor on another
layer of the same model: the controls' means and covariance describe those features only.
``bioaug profile`` records in ``uns["bioaug"]["profile"]["features"]`` which features it
fitted on: the layer (the obsm key when the layer is not recorded), their number, and
the model that made them, as the embedding's provenance names it (checkpoint hash,
backbone and weights, or raw pixels). ``bioaug profile --reuse`` compares that record
with the features it is given and refuses, naming what differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bioaug.errors import DataError

#: What must be equal for a saved correction to apply (``rep`` is reported, not compared:
#: ``X_bioaug_stage3`` of a ``--layer all`` embedding is ``X_bioaug`` of ``--layer stage3``).
COMPARED = ("layer", "n_features", "model")
#: Fields of a model's provenance that identify its features.
MODEL_FIELDS = ("checkpoint_sha256", "method", "backbone", "weights", "weights_sha256", "raw")


def _layer(prov: Mapping[str, Any], rep: str) -> str:
    """The layer of ``obsm[rep]`` according to the embedding's provenance ("" unknown)."""
    probed = [str(v) for v in np.atleast_1d(np.asarray(prov.get("layers", []), dtype=object))
              .tolist() if str(v)]
    if rep == "X_bioaug":
        return str(prov.get("layer") or "")
    name = rep.removeprefix("X_bioaug_")
    return name if rep.startswith("X_bioaug_") and name in probed else ""


def model_identity(prov: Mapping[str, Any]) -> str:
    """The models of an embedding's provenance as one text ("" when none is recorded)."""
    models = prov.get("models")
    if not isinstance(models, Mapping):
        return ""
    parts = []
    for key in sorted(models, key=str):
        info = models[key]
        if isinstance(info, Mapping):
            fields = ", ".join(f"{f} {info[f]}" for f in MODEL_FIELDS if str(info.get(f, "")))
            parts.append(f"model {key}: {fields}")
    return "; ".join(parts)


def feature_identity(adata: Any, rep: str) -> dict[str, Any]:
    """``{"rep", "layer", "n_features", "model"}`` of ``obsm[rep]``."""
    prov = adata.uns.get("bioaug") if hasattr(adata, "uns") else None
    prov = prov if isinstance(prov, Mapping) else {}
    return {"rep": rep, "layer": _layer(prov, rep) or rep,
            "n_features": int(np.shape(adata.obsm[rep])[1]), "model": model_identity(prov)}


def _plain(identity: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: str(identity.get(k, "")) for k in ("rep", "layer", "model")}
    return {**out, "n_features": int(identity.get("n_features", 0))}


def describe(identity: Mapping[str, Any]) -> str:
    """``obsm['X_bioaug'] (layer backbone, 32 features, model 0: …)``."""
    i = _plain(identity)
    return (f"obsm['{i['rep']}'] (layer {i['layer']}, {i['n_features']} features, "
            f"{i['model'] or 'no recorded model'})")


def check_same_features(fitted_on: Mapping[str, Any] | None, given: Mapping[str, Any], *,
                        where: str | None = None) -> None:
    """DataError unless ``given`` features are those a saved correction was fitted on."""
    if not isinstance(fitted_on, Mapping) or not fitted_on:
        raise DataError("the earlier profiles do not record which features their correction "
                        "was fitted on, so it cannot be applied safely", where=where,
                        hint="profile the earlier cells again with this bioaug, then reuse "
                             "that output")
    a, b = _plain(fitted_on), _plain(given)
    differ = [k for k in COMPARED if a[k] != b[k]]
    if differ:
        raise DataError(f"the saved correction was fitted on {describe(a)} but these are "
                        f"{describe(b)}: they differ in {', '.join(differ)}", where=where,
                        hint="reuse profiles made from the same model and layer (--rep), or "
                             "profile these cells on their own")
