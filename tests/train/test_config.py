from __future__ import annotations

import pytest
import yaml

from bioaug.errors import ConfigError
from bioaug.train.config import (
    RECIPE_FIELDS,
    TrainConfig,
    config_diff,
    load_config,
    make_config,
)


def test_defaults_and_effective_lr(tmp_path):
    cfg = TrainConfig(data=tmp_path / "s", protocol="none", out=tmp_path / "r")
    assert cfg.method == "moco_v2" and cfg.backbone == "vgg13_bn"
    assert cfg.data.is_absolute() and cfg.out.is_absolute()
    # optimiser options are the method's recipe until resolved
    assert all(getattr(cfg, name) is None for name in RECIPE_FIELDS)
    with pytest.raises(ValueError, match="not resolved"):
        cfg.effective_lr()
    cfg.lr, cfg.lr_scaling = 0.03, "linear"
    assert cfg.effective_lr() == pytest.approx(0.03)  # batch 256
    cfg.batch_size = 512
    assert cfg.effective_lr() == pytest.approx(0.06)
    cfg.lr_scaling = "sqrt"
    assert cfg.effective_lr() == pytest.approx(0.03 * 2**0.5)
    assert cfg.backbone_options() == {}
    cfg.width = 0.25
    assert cfg.backbone_options() == {"width": 0.25}


def test_sources_of_values(tmp_path):
    run = tmp_path / "run.yaml"
    run.write_text(yaml.safe_dump({"data": "store", "protocol": "p", "out": "out", "epochs": 5,
                                   "method_kwargs": {"temperature": 0.1}}))
    cfg = load_config(run, lr=0.2, method_kwargs={"queue_size": 64})
    src = cfg.sources()
    assert src["epochs"] == "run file" and src["lr"] == "command line"
    assert src["method_kwargs.temperature"] == "run file"
    assert src["method_kwargs.queue_size"] == "command line"
    assert src["seed"] == "default" and "optimizer" not in src   # left to the recipe
    direct = TrainConfig(data="s", protocol="p", out="o", lr=0.1)
    assert direct.sources()["lr"] == "python" and direct.sources()["epochs"] == "default"


def test_yaml_file_with_cli_overrides(tmp_path):
    (tmp_path / "proto.yaml").write_text("x: 1\n")
    run = tmp_path / "run.yaml"
    run.write_text(yaml.safe_dump({"data": "store", "protocol": "proto.yaml", "out": "out",
                                   "epochs": 5, "lr": 0.1,
                                   "method_kwargs": {"temperature": 0.1, "queue_size": 64}}))
    cfg = load_config(run, epochs=7, method_kwargs={"queue_size": 128})
    assert cfg.epochs == 7 and cfg.lr == 0.1
    assert cfg.data == tmp_path / "store"          # relative to the run file
    assert cfg.protocol == str(tmp_path / "proto.yaml")
    assert cfg.method_kwargs == {"temperature": 0.1, "queue_size": 128}


def test_unknown_key_suggests_the_right_one(tmp_path):
    run = tmp_path / "run.yaml"
    run.write_text("data: s\nprotocol: none\nout: o\nepocs: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(run)
    msg = str(err.value)
    assert "epocs" in msg and "did you mean 'epochs'" in msg and str(run) in msg


def test_bad_values_name_the_key():
    with pytest.raises(ConfigError) as err:
        make_config({"data": "s", "protocol": "none", "out": "o", "lr": -1, "optimizer": "adam"})
    msg = str(err.value)
    assert "lr:" in msg and "optimizer:" in msg and "'adam'" in msg


def test_missing_required_option():
    with pytest.raises(ConfigError, match=r"data: required"):
        make_config({"protocol": "none", "out": "o"})


def test_device_message_lists_every_accepted_form():
    with pytest.raises(ConfigError) as info:
        make_config({"data": "s", "protocol": "none", "out": "o", "device": "gpu"})
    assert str(info.value).endswith(
        "device: unknown device 'gpu'; use auto, cpu, cuda, cuda:N (N = 0, 1, … the GPU's "
        "index) or mps")


def test_device_spellings_are_normalised():
    config = make_config({"data": "s", "protocol": "none", "out": "o", "device": " CUDA:01 "})
    assert config.device == "cuda:1"


def test_bad_device_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        make_config({"data": "s", "protocol": "none", "out": "o", "device": "tpu"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="YAML syntax error") as info:
        load_config(bad)
    assert f"{bad}:2:" in str(info.value)


def test_config_diff_ignores_resume_free_keys():
    a = {"lr": 0.1, "epochs": 3, "device": "cpu", "num_workers": 0}
    b = {"lr": 0.2, "epochs": 3, "device": "cuda", "num_workers": 4}
    assert config_diff(a, b) == {"lr": (0.1, 0.2)}
    old = {"method_kwargs": {"temperature": 0.2, "queue_size": 64}}
    new = {"method_kwargs": {"temperature": 0.1, "queue_size": 64}}
    assert config_diff(old, new) == {"method_kwargs.temperature": (0.2, 0.1)}


def test_an_option_given_twice_in_a_run_file_names_the_key_and_both_lines(tmp_path):
    run = tmp_path / "run.yaml"
    run.write_text("data: s\nprotocol: none\nout: o\nlr: 0.1\nepochs: 2\nlr: 0.5\n")
    with pytest.raises(ConfigError) as info:
        load_config(run)
    assert str(info.value).startswith(f"{run}:6: key 'lr' (lines 4 and 6) is given twice")
    nested = tmp_path / "nested.yaml"
    nested.write_text("data: s\nprotocol: none\nout: o\nmethod_kwargs:\n  temperature: 0.1\n"
                      "  temperature: 0.2\n")
    with pytest.raises(ConfigError, match=r"'method_kwargs\.temperature' \(lines 5 and 6\)"):
        load_config(nested)
    # the same keys in different mappings are no repeat
    fine = tmp_path / "fine.yaml"
    fine.write_text("data: s\nprotocol: none\nout: o\nmethod_kwargs: {lr: 1}\n"
                    "backbone_kwargs: {lr: 1}\n")
    assert load_config(fine).method_kwargs == {"lr": 1}


def test_a_run_file_that_is_not_a_mapping_or_not_text(tmp_path):
    listed = tmp_path / "list.yaml"
    listed.write_text("- data\n- out\n")
    with pytest.raises(ConfigError, match="a run config is a mapping of options, not list"):
        load_config(listed)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\x00\x01data")
    with pytest.raises(ConfigError, match="binary file, not a YAML run config"):
        load_config(binary)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize("seed", [-1, 2**32, 2**63, 2**70])
def test_seeds_beyond_32_bits_are_refused(tmp_path, seed):
    with pytest.raises(ConfigError) as info:
        make_config({"data": "s", "protocol": "none", "out": "o", "seed": seed})
    assert f"seed: a seed must be an integer from 0 to 4294967295 (2**32 - 1), not {seed}" \
        in str(info.value)
    assert make_config({"data": "s", "protocol": "none", "out": "o",
                        "seed": 2**32 - 1}).seed == 2**32 - 1


@pytest.mark.parametrize("beta2", [1.0, 0.0, -0.5])
def test_adam_beta2_outside_zero_one_names_the_key(beta2):
    with pytest.raises(ConfigError) as info:
        make_config({"data": "s", "protocol": "none", "out": "o", "adam_beta2": beta2})
    assert "adam_beta2:" in str(info.value) and f"(got {beta2})" in str(info.value)


def test_a_byol_run_from_before_the_predictor_rate_resumes_as_it_ran(tmp_path):
    new = TrainConfig(data=tmp_path, protocol="x", out=tmp_path / "o", method="byol",
                      method_kwargs={"momentum": 0.99, "predictor_lr_scale": 1.0})
    old = new.to_plain()
    del old["method_kwargs"]["predictor_lr_scale"]
    assert config_diff(old, new.to_plain()) == {}           # its predictor ran at the run's rate
    today = new.model_copy(update={"method_kwargs": {"momentum": 0.99,
                                                     "predictor_lr_scale": 10.0}})
    assert config_diff(old, today.to_plain()) == {"method_kwargs.predictor_lr_scale": (1.0, 10.0)}


def test_a_run_from_before_adam_beta2_resumes_as_it_ran(tmp_path):
    new = TrainConfig(data=tmp_path, protocol="x", out=tmp_path / "o", adam_beta2=0.999)
    old = {k: v for k, v in new.to_plain().items() if k != "adam_beta2"}
    assert load_config(None, **old).adam_beta2 is None      # loads: the recipe fills it in
    assert config_diff(old, new.to_plain()) == {}           # it ran with AdamW's 0.999
    other = new.model_copy(update={"adam_beta2": 0.95}).to_plain()
    assert config_diff(old, other) == {"adam_beta2": (0.999, 0.95)}
