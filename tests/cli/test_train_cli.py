"""``bioaug train`` from the command line: options, run files and every input mistake."""

from __future__ import annotations

import pytest
import torch
import yaml

from bioaug.cli import main
from bioaug.train.checkpoint import read_checkpoint
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
    assert cfg["method_kwargs"] == {"proj_hidden_dim": 64, "proj_output_dim": 32,
                                    "queue_size": 32}
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
    assert saved["method_kwargs"] == {"proj_hidden_dim": 32, "proj_output_dim": 16,
                                      "queue_size": 32, "temperature": 0.1}
    assert read_checkpoint(tmp_path / "r")["step"] == 1
    capsys.readouterr()


def test_missing_required_options(capsys, tmp_path):
    _fails(capsys, ["train", "--protocol", "x", "--out", str(tmp_path)],
           "data: required (give --data")


def test_unknown_method_and_backbone_list_the_known_ones(store, protocol, tmp_path, capsys):
    base = tiny_cli_args(store, protocol, tmp_path / "r")
    _fails(capsys, [*base, "--method", "mocov2"], "unknown method 'mocov2'",
           "did you mean 'moco_v2'", "barlow_twins, byol, moco_v2, simclr, vicreg")
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
    _fails(capsys, [*base, "--lr", "-1"], "lr: Input should be greater than 0")
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
