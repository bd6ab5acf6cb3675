from __future__ import annotations

import pytest
import torch

from bioaug.errors import CheckpointError
from bioaug.train.checkpoint import load_trained, read_checkpoint, save_checkpoint
from bioaug.train.loop import train
from tests.train.helpers import tiny_config


@pytest.fixture(scope="module")
def trained_run(tiny_store, tiny_protocol, tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "run"
    return train(tiny_config(tiny_store, tiny_protocol, out, epochs=1))


def test_checkpoint_loads_with_weights_only(trained_run):
    data = torch.load(trained_run / "checkpoint.pt", weights_only=True)
    assert data["format"] == "bioaug-checkpoint" and data["version"] == 1
    assert isinstance(data["config"], dict) and data["config"]["method"] == "moco_v2"
    assert isinstance(data["rng"]["augment"], torch.Tensor)
    # MoCo's whole state: queue, pointer and the momentum (key) encoder
    assert {"queue", "queue_ptr"} <= set(data["model"])
    assert any(k.startswith("key_backbone.") for k in data["model"])
    assert data["model"]["queue"].shape == (32, 32)
    assert data["method"]["effective_hparams"]["queue_size"] == 32


def test_load_trained_rebuilds_the_model(trained_run, tiny_store):
    t = load_trained(trained_run)
    assert t.finished and t.epoch == 1 and t.step == 4
    assert t.n_channels == 2 and t.channels == ["DAPI", "Actin"]
    assert t.method_name == "moco_v2" and t.backbone_name == "vgg_mnist"
    assert t.crop_size == 24 and t.image_size == (32, 32)
    assert len(t.checkpoint_sha256) == 64 and "tiny-test" in t.protocol_text
    assert not t.method.training and t.backbone is t.method.backbone
    saved = read_checkpoint(trained_run)["model"]
    for key, value in t.method.state_dict().items():
        assert torch.equal(value, saved[key]), key
    x = torch.rand(3, 2, 32, 32)
    with torch.no_grad():
        assert t.backbone(x).shape == (3, t.out_dim)
    same_file = load_trained(trained_run / "checkpoint.pt")
    assert same_file.checkpoint_sha256 == t.checkpoint_sha256


def test_missing_corrupt_and_foreign_checkpoints(tmp_path, trained_run):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_trained(tmp_path / "nothing.pt")
    bad = tmp_path / "truncated.pt"
    data = (trained_run / "checkpoint.pt").read_bytes()
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_trained(bad)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_trained(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a bioaug checkpoint"):
        load_trained(foreign)
    newer = tmp_path / "newer.pt"
    save_checkpoint(newer, {"config": {}, "method": {}, "backbone": {}, "model": {}})
    raw = torch.load(newer, weights_only=True)
    raw["version"] = 99
    torch.save(raw, newer)
    with pytest.raises(CheckpointError, match="newer than this bioaug"):
        load_trained(newer)


def test_weights_that_do_not_fit(tmp_path, trained_run):
    data = read_checkpoint(trained_run)
    data["model"] = {k: v for k, v in data["model"].items() if "queue" not in k}
    path = tmp_path / "edited.pt"
    torch.save(data, path)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_trained(path)


def test_failed_write_keeps_previous_checkpoint(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"step": 1})

    class Boom:  # torch.save cannot pickle this lambda-holding object
        def __reduce__(self):
            raise RuntimeError("disk trouble")

    with pytest.raises(RuntimeError):
        save_checkpoint(path, {"step": 2, "bad": Boom()})
    assert torch.load(path, weights_only=True)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_disk_full_is_a_clear_error_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    import errno

    from bioaug.errors import BioaugError
    from bioaug.train import checkpoint as ck

    path = tmp_path / "c.pt"
    save_checkpoint(path, {"step": 1})

    def full(obj, f):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ck.torch, "save", full)
    with pytest.raises(BioaugError, match="disk full"):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["step"] == 1
