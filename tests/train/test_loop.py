from __future__ import annotations

import math

import pytest
import torch
import yaml

from bioaug.errors import BioaugError, CheckpointError, ConfigError
from bioaug.train import loop as loop_module
from bioaug.train.checkpoint import read_checkpoint
from bioaug.train.loop import TrainingDiverged, train
from bioaug.train.metrics import read_metrics
from bioaug.train.resolve import resolve
from tests.train.helpers import tiny_config


def _weights(run_dir):
    return read_checkpoint(run_dir)["model"]


def test_short_run_lowers_the_loss(tiny_store, tiny_protocol, tmp_path):
    # SimCLR's loss has no queue that changes under it, so the training loss itself is
    # comparable across steps: the mean of the first epoch vs the mean of the last one.
    cfg = tiny_config(tiny_store, tiny_protocol, tmp_path / "run", method="simclr",
                      epochs=6, lr=1.0, seed=0, warmup_epochs=0, optimizer="sgd",
                      method_kwargs={"proj_hidden_dim": 64, "proj_output_dim": 32,
                                     "temperature": 0.2})
    run = train(cfg)
    rows = read_metrics(run / "metrics.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 25))
    first = sum(r["loss"] for r in rows[:4]) / 4
    last = sum(r["loss"] for r in rows[-4:]) / 4
    assert last < first - 0.2, (first, last)
    assert all(math.isfinite(r["loss"]) for r in rows)
    # run directory layout and records
    assert {p.name for p in run.iterdir()} >= {"config.yaml", "protocol.yaml", "checkpoint.pt",
                                                "metrics.csv"}
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved == resolve(cfg, 64).to_plain()          # every recipe value filled in
    assert saved["optimizer"] == "sgd" and saved["weight_decay"] == 1e-4
    assert saved["lr_scaling"] == "sqrt" and saved["exclude_bias_norm"] is True
    assert saved["method_kwargs"]["temperature"] == 0.2
    assert (run / "protocol.yaml").read_text() == tiny_protocol.read_text()
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ck["finished"] and ck["step"] == 24 and ck["epoch"] == 6
    assert ck["store"]["channels"] == ["DAPI", "Actin"] and ck["backbone"]["in_channels"] == 2
    assert ck["method"]["name"] == "simclr" and ck["backbone"]["kwargs"] == {"width": 0.25}
    assert ck["provenance"]["seed"] == 0 and "bioaug_version" in ck["provenance"]
    # lr followed the cosine schedule to (nearly) zero
    assert rows[0]["lr"] == pytest.approx(1.0 * (16 / 256) ** 0.5)
    assert rows[-1]["lr"] < rows[0]["lr"] * 0.01


class _StopAfter(Exception):
    pass


def test_interrupted_run_resumes_to_identical_weights(tiny_store, tiny_protocol, tmp_path,
                                                     monkeypatch):
    full = train(tiny_config(tiny_store, tiny_protocol, tmp_path / "full", epochs=2))
    cfg = tiny_config(tiny_store, tiny_protocol, tmp_path / "cut", epochs=2,
                      save_every_steps=1)
    real_save = loop_module._Run._save

    def save_then_stop(self):
        real_save(self)
        if self.step == 3:  # mid-epoch (4 steps per epoch)
            raise _StopAfter

    monkeypatch.setattr(loop_module._Run, "_save", save_then_stop)
    with pytest.raises(_StopAfter):
        train(cfg)
    monkeypatch.setattr(loop_module._Run, "_save", real_save)
    assert read_checkpoint(cfg.out)["step"] == 3
    with pytest.raises(BioaugError, match="--resume"):
        train(cfg)                                   # refuses to start over a run
    train(cfg, resume=True)
    a, b = _weights(full), _weights(cfg.out)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    rows = read_metrics(cfg.out / "metrics.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 9))
    full_rows = read_metrics(full / "metrics.csv")
    assert [r["loss"] for r in rows] == [r["loss"] for r in full_rows]


def test_resume_with_other_config_lists_differences(tiny_store, tiny_protocol, tmp_path):
    cfg = tiny_config(tiny_store, tiny_protocol, tmp_path / "run", epochs=1)
    train(cfg)
    other = tiny_config(tiny_store, tiny_protocol, tmp_path / "run", epochs=2, lr=0.1)
    with pytest.raises(ConfigError) as err:
        train(other, resume=True)
    msg = str(err.value)
    assert "epochs: 1 → 2" in msg and "lr: 0.5 → 0.1" in msg and "--force" in msg
    train(other, resume=True, force=True)          # one more epoch with the new options
    ck = read_checkpoint(cfg.out)
    assert ck["step"] == 8 and ck["finished"] and ck["config"]["epochs"] == 2


def test_resume_from_corrupt_checkpoint(tiny_store, tiny_protocol, tmp_path):
    cfg = tiny_config(tiny_store, tiny_protocol, tmp_path / "run", epochs=1)
    train(cfg)
    ckpt = cfg.out / "checkpoint.pt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        train(cfg, resume=True)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_store, tiny_protocol, tmp_path,
                                                       monkeypatch):
    def poisoned(method, info):
        calls = {"n": 0}

        def forward(views):
            out = method.training_loss(views)
            calls["n"] += 1
            if calls["n"] == 3:
                out["loss"] = out["loss"] * float("nan")
            return out
        return forward

    monkeypatch.setattr(loop_module, "wrap_ddp", poisoned)
    cfg = tiny_config(tiny_store, tiny_protocol, tmp_path / "run", epochs=2,
                      save_every_steps=1)
    with pytest.raises(TrainingDiverged) as err:
        train(cfg)
    msg = err.value.format()
    assert "loss became nan at step 3" in msg and "last losses:" in msg
    assert "last good checkpoint (step 2)" in msg and "lower --lr" in msg
    ck = read_checkpoint(cfg.out)
    assert ck["step"] == 2
    assert all(torch.isfinite(t).all() for t in ck["model"].values() if t.is_floating_point())


def test_huge_lr_diverges_cleanly(tiny_store, tiny_protocol, tmp_path):
    cfg = tiny_config(tiny_store, tiny_protocol, tmp_path / "run", epochs=2, lr=1e12,
                      save_every_steps=1)
    with pytest.raises(TrainingDiverged, match="training stopped"):
        train(cfg)
    ckpt = cfg.out / "checkpoint.pt"
    if ckpt.exists():  # whatever was saved is finite
        ck = read_checkpoint(ckpt)
        assert all(torch.isfinite(t).all() for t in ck["model"].values()
                   if t.is_floating_point())


def test_lars_warmup_and_crop_override(tiny_store, tiny_protocol, tmp_path):
    cfg = tiny_config(tiny_store, tiny_protocol, tmp_path / "run", optimizer="lars",
                      warmup_epochs=1, lr=0.3, crop=16, method="byol",
                      method_kwargs={"proj_hidden_dim": 32, "proj_output_dim": 16,
                                     "pred_hidden_dim": 32})
    run = train(cfg)
    rows = read_metrics(run / "metrics.csv")
    lrs = [r["lr"] for r in rows]
    base = resolve(cfg, 64).effective_lr
    assert lrs[:4] == pytest.approx([base / 4, base / 2, 3 * base / 4, base])  # warm-up epoch
    assert lrs[4] == pytest.approx(base) and lrs[5] < base and lrs[-1] < 0.2 * base
    ck = read_checkpoint(run)
    assert ck["crop_size"] == 16 and ck["optimizer"]["param_groups"][0]["lars"]
    # BYOL's predictor ran at 10 × the schedule's rate, the rest at the rate itself
    groups = ck["optimizer"]["param_groups"]
    assert sorted({g["lr_scale"] for g in groups}) == [1.0, 10.0]
    assert all(g["lr"] == pytest.approx(lrs[-1] * g["lr_scale"]) for g in groups)
    text = (run / "protocol.yaml").read_text()
    assert text.startswith("# effective protocol") and "crop_size: 16" in text


def test_views_png_shows_the_first_batch_as_trained_on(tiny_store, tiny_protocol, tmp_path):
    import numpy as np
    from PIL import Image

    from bioaug.augment.mosaic import _HEAD, TILE
    from bioaug.data.store import Store
    from bioaug.io import is_bioaug_png
    from bioaug.train.data import epoch_permutation

    cfg = tiny_config(tiny_store, tiny_protocol, tmp_path / "run", epochs=1, max_steps=1,
                      preview_views=3)
    run = train(cfg)
    png = run / "views.png"
    assert is_bioaug_png(png)
    img = np.asarray(Image.open(png))
    store = Store.open(tiny_store)
    first = epoch_permutation(len(store), cfg.seed, 0)[:cfg.batch_size]
    x = store.read_float(first[:1])[0]  # the first image of step 1
    # the original column, first row, DAPI panel: the stored image enlarged to the tile
    k = TILE // max(x.shape[-2:])
    tile = img[_HEAD:_HEAD + x.shape[-2] * k:k, :x.shape[-1] * k:k]
    assert np.abs(tile.astype(int) - np.rint(x[0] * 255)).max() <= 1
    other = store.read_float(first[1:2])[0]
    assert np.abs(tile.astype(int) - np.rint(other[0] * 255)).max() > 1
    assert img.shape[0] == _HEAD + 3 * TILE + 2 * 2  # three rows, as asked

    off = train(tiny_config(tiny_store, tiny_protocol, tmp_path / "off", epochs=1,
                            max_steps=1, preview_views=0))
    assert not (off / "views.png").exists()


MULTICROP = """\
bioaug_protocol: 1
name: tiny-multicrop
channels: [DAPI, Actin]
views:
  - crop_size: 24
    count: 2
    steps:
      - random_resized_crop: {scale: [0.4, 1.0]}
      - flip: {horizontal: true, p: 0.5}
  - crop_size: 12
    count: 3
    steps:
      - random_resized_crop: {scale: [0.1, 0.4]}
"""


def test_dino_with_multicrop_and_a_vit_trains_through_the_loop(tiny_store, tmp_path):
    protocol = tmp_path / "multi.yaml"
    protocol.write_text(MULTICROP)
    cfg = tiny_config(tiny_store, protocol, tmp_path / "run", method="dino", backbone="vit_tiny",
                      width=None, lr=None, backbone_kwargs={"patch_size": 8, "img_size": 24},
                      method_kwargs={"out_dim": 64, "hidden_dim": 32, "bottleneck_dim": 16})
    run = train(cfg)
    rows = read_metrics(run / "metrics.csv")
    assert len(rows) == 8 and all(math.isfinite(r["loss"]) for r in rows)
    # the teacher temperature warms up over 30 % of the run, the momentum ramps to 1
    temps = [r["teacher_temp"] for r in rows]
    assert temps[0] == pytest.approx(0.04) and temps[-1] == pytest.approx(0.07)
    assert temps == sorted(temps)
    assert rows[0]["momentum"] == pytest.approx(0.996)
    # the collapse monitor: the loss is the teacher's entropy plus the KL to the student
    for r in rows:
        assert r["loss"] == pytest.approx(r["teacher_entropy"] + r["kl"], abs=1e-4)
        assert 0.0 <= r["teacher_entropy"] <= math.log(64) + 1e-5
    # the recipe's clipping and weight-decay schedule were resolved and applied
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert (saved["grad_clip"], saved["weight_decay"], saved["weight_decay_end"]) == (3.0, 0.04, 0.4)
    assert saved["optimizer"] == "adamw" and saved["lr_scaling"] == "linear"
    ck = read_checkpoint(run)
    decays = [g["weight_decay"] for g in ck["optimizer"]["param_groups"]]
    assert max(decays) == pytest.approx(0.4, abs=0.02) and min(decays) == 0.0
    assert ck["model"]["center"].abs().sum() > 0
    assert (run / "views.png").is_file() and (run / "attention.png").is_file()


def test_a_run_that_ends_collapsed_says_so(tiny_store, tmp_path, capsys):
    # a teacher temperature of 100 makes the teacher's distribution uniform: collapse
    protocol = tmp_path / "multi.yaml"
    protocol.write_text(MULTICROP)
    hot = {"out_dim": 64, "hidden_dim": 32, "bottleneck_dim": 16, "teacher_temp": 100.0,
           "teacher_temp_start": 100.0}
    cfg = tiny_config(tiny_store, protocol, tmp_path / "run", method="dino", lr=None,
                      method_kwargs=hot)
    train(cfg)
    err = capsys.readouterr().err
    assert "warning: dino: the teacher's outputs are uniform at the end of the run" in err
    assert "log K = 4.159" in err
    saved = read_checkpoint(tmp_path / "run")["health_warnings"]
    assert saved[0].startswith("dino: the teacher's outputs are uniform") and saved[0] in err
    cfg = tiny_config(tiny_store, protocol, tmp_path / "run2", method="dino", lr=None,
                      method_kwargs={**hot, "teacher_temp": 0.04, "teacher_temp_start": 0.04})
    train(cfg)
    assert "teacher's outputs are uniform" not in capsys.readouterr().err
    assert not any(w.startswith("dino:")
                   for w in read_checkpoint(tmp_path / "run2")["health_warnings"])


def test_a_two_view_method_refuses_a_multicrop_protocol(tiny_store, tmp_path):
    protocol = tmp_path / "multi.yaml"
    protocol.write_text(MULTICROP)
    cfg = tiny_config(tiny_store, protocol, tmp_path / "run", method="simclr",
                      method_kwargs={"proj_hidden_dim": 16, "proj_output_dim": 8})
    with pytest.raises(BioaugError, match="needs 2 views per image but the protocol makes 5") \
            as err:
        train(cfg)
    assert "count: N" in err.value.format()
