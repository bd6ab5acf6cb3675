"""The study commands' argument handling and error reporting (no training here)."""

from __future__ import annotations

import pytest
import yaml

from bioaug.cli import main


def test_sweep_needs_config_and_out(capsys):
    assert main(["sweep"]) == 2
    assert "needs --config SWEEP.yaml and --out DIR" in capsys.readouterr().err


def test_sweep_error_is_one_message(tmp_path, capsys):
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump({"bioaug_sweep": 1, "protocol": "bbbc021-expert",
                                   "data": "store", "axes": {"views[*].steps.flip.q": [0.1]}}))
    assert main(["sweep", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bioaug: error: ") and "Traceback" not in err
    assert "op 'flip' has no parameter 'q'" in err


def _tiny_store(path):
    import numpy as np
    import pandas as pd

    from bioaug.data.store import write_store

    return write_store(path, np.zeros((4, 3, 8, 8), dtype=np.uint8),
                       pd.DataFrame({"moa": ["a", "b", "a", "b"]}),
                       channels=["DAPI", "Tubulin", "Actin"], label_column="moa").path


def test_print_commands_one_per_point(tmp_path, capsys):
    _tiny_store(tmp_path / "store")
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump({"bioaug_sweep": 1, "protocol": "bbbc021-expert",
                                   "data": "store", "seeds": [0, 1, 2],
                                   "axes": {"views[*].steps.flip.p": [0.0, 0.5]}}))
    assert main(["sweep", "--config", str(cfg), "--out", str(tmp_path / "o"),
                 "--print-commands"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6
    assert all(line.startswith("bioaug sweep --config ") for line in lines)
    assert [line.rsplit(" ", 1)[1] for line in lines] == [str(k) for k in range(6)]


def test_sweep_report_on_a_non_sweep(tmp_path, capsys):
    assert main(["sweep", "report", str(tmp_path)]) == 2
    assert "is not a sweep directory" in capsys.readouterr().err


def test_invariance_list(capsys):
    assert main(["invariance", "--list"]) == 0
    out = capsys.readouterr().out
    assert "rotate90" in out and "saturation" in out


def test_invariance_needs_its_inputs(capsys):
    assert main(["invariance", "--data", "y"]) == 2
    assert "needs --checkpoint, --out" in capsys.readouterr().err


def test_demo_unknown_device(capsys, tmp_path):
    assert main(["demo", "--out", str(tmp_path), "--device", "tpu"]) == 2
    assert "unknown device 'tpu'" in capsys.readouterr().err


def test_out_is_a_file_exit_2(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("x")
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump({"bioaug_sweep": 1, "protocol": "bbbc021-expert",
                                   "data": "store", "axes": {"views[*].steps.flip.p": [0.5]}}))
    for argv in (["sweep", "--config", str(cfg), "--out", str(taken), "--print-commands"],
                 ["invariance", "--checkpoint", "c", "--data", "d", "--out", str(taken)],
                 ["demo", "--out", str(taken), "--quick"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "is a file, not a" in err and "Traceback" not in err


def test_print_commands_checks_the_store(tmp_path, capsys):
    cfg = tmp_path / "s.yaml"
    sweep = {"bioaug_sweep": 1, "protocol": "bbbc021-expert", "data": "store",
             "axes": {"views[*].steps.flip.p": [0.0, 0.5]}}
    cfg.write_text(yaml.safe_dump(sweep))
    out = tmp_path / "o"
    assert main(["sweep", "--config", str(cfg), "--out", str(out), "--print-commands"]) == 2
    err = capsys.readouterr().err
    assert "s.yaml: data: no store at" in err and not out.exists()
    _tiny_store(tmp_path / "store")
    cfg.write_text(yaml.safe_dump({**sweep, "label": "compound"}))
    assert main(["sweep", "--config", str(cfg), "--out", str(out), "--print-commands"]) == 2
    assert "label 'compound' is not a column of the store" in capsys.readouterr().err


def test_sweep_out_may_not_hold_its_config(tmp_path, capsys):
    _tiny_store(tmp_path / "store")
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump({"bioaug_sweep": 1, "protocol": "bbbc021-expert",
                                   "data": "store", "axes": {"views[*].steps.flip.p": [0.5]}}))
    assert main(["sweep", "--config", str(cfg), "--out", str(tmp_path), "--print-commands"]) == 2
    assert "contains the input" in capsys.readouterr().err


@pytest.mark.parametrize("seeds", [["-5"], ["0", str(2**63)], ["1", str(2**32)]])
def test_demo_seed_out_of_range_fails_before_any_work(tmp_path, capsys, seeds):
    out = tmp_path / "demo"
    assert main(["demo", "--tiny", "--seeds", *seeds, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--seed: a seed must be an integer from 0 to 4294967295 (2**32 - 1), not " \
           f"{seeds[-1]}" in err
    assert "Traceback" not in err and not out.exists()


def test_invariance_seed_out_of_range_fails_before_any_work(tmp_path, capsys):
    out = tmp_path / "inv"
    argv = ["invariance", "--checkpoint", str(tmp_path / "run"), "--data", str(tmp_path / "s"),
            "--out", str(out), "--seed", str(2**64)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--seed: a seed must be an integer from 0 to 4294967295" in err and not out.exists()


def test_invariance_replaces_results_only_when_asked(tmp_path, capsys):
    out = tmp_path / "inv"
    out.mkdir()
    (out / "invariance.json").write_text("{}")
    store = _tiny_store(tmp_path / "store")
    argv = ["invariance", "--checkpoint", str(tmp_path / "run"), "--data", str(store),
            "--out", str(out)]
    assert main(argv) == 2
    assert "already holds an invariance study" in capsys.readouterr().err
