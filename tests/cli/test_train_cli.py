"""``bioaug train`` from the command line: options, run files and every input mistake."""

from __future__ import annotations

import pytest
import torch
import yaml

from bioaug.cli import main
from bioaug.methods import METHODS, method_names
from bioaug.methods.registry import register_method
from bioaug.train.checkpoint import read_checkpoint
from tests.methods.test_registry import make_dummy_method
from tests.train.helpers import make_store, tiny_cli_args, write_protocol


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("cli-store") / "tiny")


@pytest.fixture(scope="module")
def protocol(tmp_path_factory):
    return write_protocol(tmp_path_factory.mktemp("cli-proto") / "tiny.yaml")


def _fails(capsys, argv, *needles):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def test_train_runs_and_writes_the_run_dir(store, protocol, tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*tiny_cli_args(store, protocol, out), "--epochs", "1"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["epochs"] == 1 and cfg["width"] == 0.25 and cfg["batch_size"] == 16
    given = {"proj_hidden_dim": 64, "proj_output_dim": 32, "queue_size": 32}
    assert cfg["method_kwargs"].items() >= given.items()      # every hyperparameter, resolved
    assert cfg["method_kwargs"]["temperature"] == 0.2 and cfg["optimizer"] == "adamw"
    assert read_checkpoint(out)["finished"]
    _fails(capsys, [*tiny_cli_args(store, protocol, out), "--epochs", "1"],
           "already holds a training run", "--resume")
    # resuming a finished run with the same options is a no-op
    assert main([*tiny_cli_args(store, protocol, out), "--epochs", "1", "--resume"]) == 0


def test_run_config_file_and_override(store, protocol, tmp_path, capsys):
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(yaml.safe_dump({
        "data": str(store), "protocol": str(protocol), "out": str(tmp_path / "r"),
        "backbone": "vgg_mnist", "width": 0.25, "batch_size": 16, "epochs": 3, "device": "cpu",
        "num_workers": 0, "tensorboard": False, "max_steps": 2,
        "method_kwargs": {"proj_hidden_dim": 32, "proj_output_dim": 16, "queue_size": 32}}))
    assert main(["train", "--config", str(run_yaml), "--max-steps", "1", "--lr", "0.1",
                 "--method-kwargs", "temperature=0.1"]) == 0
    saved = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert saved["max_steps"] == 1 and saved["lr"] == 0.1 and saved["epochs"] == 3
    given = {"proj_hidden_dim": 32, "proj_output_dim": 16, "queue_size": 32, "temperature": 0.1}
    assert saved["method_kwargs"].items() >= given.items()
    ck = read_checkpoint(tmp_path / "r")
    assert ck["config_sources"]["lr"] == "command line"
    assert ck["config_sources"]["method_kwargs.temperature"] == "command line"
    assert ck["config_sources"]["method_kwargs.queue_size"] == "run file"
    assert ck["config_sources"]["weight_decay"] == "recipe"
    assert read_checkpoint(tmp_path / "r")["step"] == 1
    capsys.readouterr()


def test_missing_required_options(capsys, tmp_path):
    _fails(capsys, ["train", "--protocol", "x", "--out", str(tmp_path)],
           "data: required")


def test_unknown_method_and_backbone_list_the_known_ones(store, protocol, tmp_path, capsys):
    base = tiny_cli_args(store, protocol, tmp_path / "r")
    _fails(capsys, [*base, "--method", "mocov2"], "unknown method 'mocov2'",
           "did you mean 'moco_v2'", ", ".join(method_names()))
    _fails(capsys, [*base, "--backbone", "vgg13"], "unknown backbone 'vgg13'", "vgg13_bn",
           "resnet18")


def test_protocol_channels_must_match_the_store(store, tmp_path, capsys):
    proto = write_protocol(tmp_path / "rgb.yaml", channels=["DAPI", "Tubulin", "Actin"])
    _fails(capsys, tiny_cli_args(store, proto, tmp_path / "r"), "3 channels",
           "['DAPI', 'Tubulin', 'Actin']", "2 channels ['DAPI', 'Actin']", str(proto))
    swapped = write_protocol(tmp_path / "swapped.yaml", channels=["Actin", "DAPI"])
    _fails(capsys, tiny_cli_args(store, swapped, tmp_path / "r"),
           "are not the store's channels", "same order")


def test_crop_larger_than_stored_images(store, protocol, tmp_path, capsys):
    _fails(capsys, [*tiny_cli_args(store, protocol, tmp_path / "r"), "--crop", "48"],
           "--crop 48 is larger than the stored images (32×32", "crop size ≤ 32")
    big = write_protocol(tmp_path / "big.yaml", crop=40)
    _fails(capsys, tiny_cli_args(store, big, tmp_path / "r"), "views[0].crop_size 40")


def test_batch_size_problems(store, protocol, tmp_path, capsys):
    base = tiny_cli_args(store, protocol, tmp_path / "r")
    _fails(capsys, [*base, "--batch-size", "128"], "64 items, fewer than one batch of 128")
    _fails(capsys, [*base, "--batch-size", "12", "--method-kwargs", "queue_size=20"],
           "queue_size 20", "multiple")


def test_bad_option_values(store, protocol, tmp_path, capsys):
    base = tiny_cli_args(store, protocol, tmp_path / "r")
    _fails(capsys, [*base, "--lr", "-1"], "lr: must be more than 0.0 (got -1.0)")
    _fails(capsys, [*base, "--method-kwargs", "temprature=0.1"], "temprature",
           "did you mean 'temperature'")
    _fails(capsys, [*base, "--force"], "--force only applies with --resume")


def test_resume_with_other_options_then_force(store, protocol, tmp_path, capsys):
    out = tmp_path / "r"
    base = [*tiny_cli_args(store, protocol, out), "--max-steps", "2"]
    assert main(base) == 0
    err = _fails(capsys, [*base, "--resume", "--lr", "0.25", "--max-steps", "3"],
                 "cannot resume", "lr: 0.5 → 0.25", "max_steps: 2 → 3", "--force")
    assert "device" not in err
    assert main([*base, "--resume", "--force", "--lr", "0.25", "--max-steps", "3"]) == 0
    assert read_checkpoint(out)["step"] == 3
    capsys.readouterr()


def test_force_with_another_model_says_so(store, protocol, tmp_path, capsys):
    out = tmp_path / "r"
    base = [*tiny_cli_args(store, protocol, out), "--max-steps", "2"]
    assert main(base) == 0
    capsys.readouterr()
    err = _fails(capsys, [*base, "--resume", "--force", "--width", "0.5"],
                 "cannot resume with --force", "do not fit the new model", "another --out")
    assert "bioaug version" not in err


def test_corrupt_checkpoint_on_resume(store, protocol, tmp_path, capsys):
    out = tmp_path / "r"
    base = [*tiny_cli_args(store, protocol, out), "--max-steps", "1"]
    assert main(base) == 0
    (out / "checkpoint.pt").write_bytes(b"\x00" * 100)
    _fails(capsys, [*base, "--resume"], "corrupt or truncated", "checkpoint.pt")


def test_nan_loss_message_and_last_good_checkpoint(store, protocol, tmp_path, capsys):
    out = tmp_path / "r"
    argv = [*tiny_cli_args(store, protocol, out), "--lr", "1e30", "--save-every-steps", "1"]
    err = _fails(capsys, argv, "training stopped", "at step", "lower --lr")
    if (out / "checkpoint.pt").exists():
        ck = read_checkpoint(out)
        assert all(torch.isfinite(v).all() for v in ck["model"].values()
                   if v.is_floating_point())
        assert f"(step {ck['step']})" in err


def test_print_config_shows_each_value_and_its_source(store, protocol, tmp_path, capsys):
    out = tmp_path / "r"
    argv = ["train", "--data", str(store), "--protocol", str(protocol), "--out", str(out),
            "--method", "byol", "--backbone", "vgg_mnist", "--batch-size", "16", "--epochs", "2",
            "--lr", "0.5", "--method-kwargs", "proj_hidden_dim=32", "--print-config"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert not out.exists()                                       # nothing trained, nothing written
    lines = {line.split(":")[0]: line for line in text.splitlines() if not line.startswith(" ")}
    assert lines["lr"].split("#")[1].strip() == "command line"
    assert lines["optimizer"].startswith("optimizer: adamw") and lines["optimizer"].endswith("# recipe")
    assert lines["weight_decay"].endswith("# recipe") and lines["seed"].endswith("# default")
    # BYOL's recipe warms up for 45 % of the run: 0.9 of 2 epochs, 4 of 8 steps
    assert "warmup_epochs: 0.9" in lines["warmup_epochs"] and "45% of the run" in lines["warmup_epochs"]
    assert "  proj_hidden_dim: 32" in text and "  momentum: 0.99" in text
    assert "# schedule: 64 items, 4 steps/epoch, 8 steps, warm-up 4 steps, peak lr 0.125" in text
    # an 8-step BYOL run: the target encoder cannot move, the warning says what to use
    assert "# warning: byol: with momentum 0.99 → 1 (cosine) the target encoder" in text
    assert "use momentum=0.8 with momentum_end=1.0" in text
    # the output is a valid run file giving the same resolved config
    plain = yaml.safe_load(text)
    assert plain["optimizer"] == "adamw" and plain["method_kwargs"]["proj_hidden_dim"] == 32
    run_file = tmp_path / "resolved.yaml"
    run_file.write_text(text)
    assert main(["train", "--config", str(run_file), "--dry-run"]) == 0
    again = capsys.readouterr().out
    strip = [line.split("#")[0].rstrip() for line in text.splitlines()]
    assert [line.split("#")[0].rstrip() for line in again.splitlines()] == strip
    assert "# run file" in again


def test_warnings_are_printed_once_at_the_start(store, protocol, tmp_path, capsys):
    argv = [*tiny_cli_args(store, protocol, tmp_path / "r"), "--max-steps", "2",
            "--warmup-epochs", "1"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert err.count("warning: the warm-up (4 steps, 1 epochs) is as long as the run (2 steps)") == 1
    assert "use --warmup-epochs 0.05" in err
    assert err.count("warning: moco_v2: with momentum") == 1


def test_out_must_not_be_the_data(store, protocol, tmp_path, capsys):
    base = tiny_cli_args(store, protocol, tmp_path / "r")
    i = base.index("--out")
    _fails(capsys, [*base[:i + 1], str(store), *base[i + 2:]], f"--out {store} is the input",
           "never writes over its own input")
    _fails(capsys, [*base[:i + 1], str(store.parent), *base[i + 2:]], "contains the input")
    inside = store / "run"
    _fails(capsys, [*base[:i + 1], str(inside), *base[i + 2:]], "is inside the store")
    assert not inside.exists()


@pytest.fixture
def dummy_method():
    cls = register_method(make_dummy_method("dummy_ssl"))
    yield cls
    METHODS.pop(cls.name)


def test_a_registered_method_is_usable_with_no_other_change(dummy_method, store, protocol,
                                                            tmp_path, capsys):
    base = tiny_cli_args(store, protocol, tmp_path / "r")
    i = base.index("--method-kwargs")
    argv = [*base[:i], "--method", "dummy_ssl", "--method-kwargs", "scale=2.0"]
    argv[argv.index("--method") + 1] = "dummy_ssl"        # TINY's --method moco_v2 replaced
    assert main([*argv, "--print-config"]) == 0
    text = capsys.readouterr().out
    assert "method: dummy_ssl" in text and "optimizer: adamw" in text and "scale: 2.0" in text
    assert main([*argv, "--max-steps", "1"]) == 0
    assert read_checkpoint(tmp_path / "r")["method"]["name"] == "dummy_ssl"
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "dummy_ssl (Dummy)" in " ".join(capsys.readouterr().out.split())


# -- the dry run refuses what the run refuses -------------------------------------------------
def _replace(argv: list[str], flag: str, value: str) -> list[str]:
    i = argv.index(flag)
    return [*argv[:i + 1], value, *argv[i + 2:]]


def _nan_store(path):
    import numpy as np
    import pandas as pd

    from bioaug.data.store import write_store

    images = np.random.default_rng(0).random((64, 2, 32, 32)).astype(np.float32)
    images[3, 1, 5, 5] = np.nan
    images[11, 0, 0, 0] = np.inf
    write_store(path, images, pd.DataFrame({"label": ["a"] * 64}), channels=["DAPI", "Actin"])
    return path


def _mistakes(store, protocol, tmp_path):
    """argv → what the error says, for input mistakes a dry run used to accept."""
    base = [*tiny_cli_args(store, protocol, tmp_path / "r"), "--max-steps", "1"]
    existing = tmp_path / "existing"
    assert main(_replace(base, "--out", str(existing))) == 0  # a finished run
    three = tmp_path / "three.yaml"
    three.write_text(protocol.read_text() + "  - same_as: 0\n")
    return {
        "unknown protocol": (_replace(base, "--protocol", "bbbc021-expret"),
                             "unknown protocol 'bbbc021-expret'"),
        "--out is --data": (_replace(base, "--out", str(store)), "is the input"),
        "crop too large": ([*base, "--crop", "48"], "--crop 48 is larger than the stored"),
        "a run without --resume": (_replace(base, "--out", str(existing)),
                                   "already holds a training run"),
        "channels": (_replace(base, "--data", str(_nan_store(tmp_path / "nan"))),
                     "items 3, 11 (2 of 64 items) have NaN or infinite pixels"),
        "views vs method": (_replace(base, "--protocol", str(three)),
                            "needs 2 views per image but the protocol makes 3"),
        "resume with other options": (
            [*_replace(base, "--out", str(existing)), "--resume", "--lr", "0.25"],
            "cannot resume"),
    }


def test_the_dry_run_refuses_exactly_what_the_run_refuses(store, protocol, tmp_path, capsys):
    mistakes = _mistakes(store, protocol, tmp_path)
    capsys.readouterr()
    for what, (argv, needle) in mistakes.items():
        dry = _fails(capsys, [*argv, "--dry-run"], needle)
        real = _fails(capsys, argv, needle)
        assert dry == real, what


def test_the_dry_run_of_a_resumable_run_passes_and_writes_nothing(store, protocol, tmp_path,
                                                                   capsys):
    out = tmp_path / "r"
    base = [*tiny_cli_args(store, protocol, out), "--max-steps", "2"]
    assert main(base) == 0
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    capsys.readouterr()
    assert main([*base, "--resume", "--dry-run"]) == 0
    assert "# schedule:" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


@pytest.mark.parametrize("seed", [str(2**32), str(2**63), str(2**64 + 1)])
def test_a_seed_beyond_32_bits_is_one_clear_error(store, protocol, tmp_path, capsys, seed):
    argv = [*tiny_cli_args(store, protocol, tmp_path / "r"), "--seed", seed]
    for extra in ([], ["--dry-run"]):
        _fails(capsys, [*argv, *extra],
               f"seed: a seed must be an integer from 0 to 4294967295 (2**32 - 1), not {seed}")
    assert not (tmp_path / "r").exists()


def test_a_store_with_nan_pixels_is_refused_before_training(protocol, tmp_path, capsys):
    bad = _nan_store(tmp_path / "nan")
    out = tmp_path / "r"
    _fails(capsys, [*tiny_cli_args(bad, protocol, out), "--max-steps", "1"],
           f"{bad}: items 3, 11 (2 of 64 items) have NaN or infinite pixels",
           "fix or drop those items")
    assert not out.exists()


def test_adam_beta2_option_is_recorded_and_checked(store, protocol, tmp_path, capsys):
    out = tmp_path / "r"
    base = [*tiny_cli_args(store, protocol, out), "--max-steps", "1"]
    _fails(capsys, [*base, "--adam-beta2", "1.0"], "adam_beta2: must be less than 1")
    assert main([*base, "--adam-beta2", "0.98"]) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["adam_beta2"] == 0.98
    ck = read_checkpoint(out)
    assert ck["config_sources"]["adam_beta2"] == "command line"
    assert tuple(ck["optimizer"]["param_groups"][0]["betas"]) == (0.9, 0.98)
    capsys.readouterr()


def test_a_run_from_before_adam_beta2_resumes(store, protocol, tmp_path, capsys):
    out = tmp_path / "r"
    base = [*tiny_cli_args(store, protocol, out), "--max-steps", "1"]
    assert main(base) == 0
    ck = read_checkpoint(out)
    del ck["config"]["adam_beta2"]                       # as written before the option existed
    torch.save(ck, out / "checkpoint.pt")
    assert main([*base, "--resume"]) == 0                # it ran with 0.999: no difference
    _fails(capsys, [*base, "--resume", "--adam-beta2", "0.95"],
           "cannot resume", "adam_beta2: 0.999 → 0.95")


def test_resuming_with_force_applies_the_new_adam_beta2(store, protocol, tmp_path, capsys):
    out = tmp_path / "r"
    base = [*tiny_cli_args(store, protocol, out), "--max-steps", "1"]
    assert main(base) == 0
    assert main([*base[:-1], "2", "--resume", "--force", "--adam-beta2", "0.9"]) == 0
    ck = read_checkpoint(out)
    assert ck["step"] == 2 and tuple(ck["optimizer"]["param_groups"][0]["betas"]) == (0.9, 0.9)
    capsys.readouterr()


def test_help_lists_adam_beta2(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--adam-beta2 ADAM_BETA2" in capsys.readouterr().out
