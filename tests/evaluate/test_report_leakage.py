"""The evaluation says which obs columns training used and warns about label leakage."""

from __future__ import annotations

import warnings

import anndata as ad
import pytest
import yaml

from bioaug.evaluate import evaluate
from bioaug.evaluate.leakage import leakage_warnings
from bioaug.evaluate.render import report_markdown
from tests.evaluate.conftest import bbbc021_like


def _trained(positives: str) -> list[dict]:
    from bioaug.train.batches import sampling_record

    return [{"model": "0", **sampling_record({"positives": positives})}]


def test_treatment_positives_flag_metrics_that_keep_the_compound():
    _, obs = bbbc021_like()
    (text,) = leakage_warnings(obs, "moa", _trained("same_treatment"), "compound",
                               replicate=True)
    assert "same_treatment" in text and "compound, concentration" in text
    assert "Leiden AMI" in text and "replicate mAP" in text and "NSC" in text
    assert "linear accuracy" not in text  # the probe was split by compound
    (text,) = leakage_warnings(obs, "moa", _trained("same_treatment_other_plate"), None)
    assert "linear accuracy" in text
    (text,) = leakage_warnings(obs, "moa", _trained("same_well"), "compound")
    assert "plate, well" in text


def test_no_warning_when_the_label_is_not_fixed_by_the_positives():
    _, obs = bbbc021_like()
    assert leakage_warnings(obs, "batch", _trained("same_cell"), None) == []
    obs = obs.assign(noise=[str(i % 7) for i in range(len(obs))])
    assert leakage_warnings(obs, "noise", _trained("same_treatment"), None) == []


def test_evaluate_reads_the_run_config_and_warns(tmp_path):
    x, obs = bbbc021_like(cells=3)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(
        {"positives": "same_treatment_other_plate", "batches": "plate_balanced"}))
    adata = ad.AnnData(obs=obs)
    adata.obsm["X_bioaug"] = x
    adata.uns["bioaug"] = {"kind": "checkpoint", "models": {"0": {
        "run": str(run), "checkpoint": str(run / "checkpoint.pt"), "method": "moco_v2"}}}
    with pytest.warns(UserWarning, match="same_treatment_other_plate"):
        report = evaluate(adata, label="moa", profiling_mode="off", plot=False)
    prov = report.input.embedding_provenance
    assert prov["training"][0]["obs_columns"] == ["compound", "concentration", "plate"]
    text = report_markdown(report)
    assert "obs columns used: compound, concentration, plate" in text and "**warning**" in text
    (run / "config.yaml").write_text(yaml.safe_dump({"positives": "same_cell"}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plain = evaluate(adata, label="moa", profiling_mode="off", plot=False)
    assert not [w for w in caught if "--positives" in str(w.message)]
    assert "training" not in (plain.input.embedding_provenance or {})
