"""A short training run on real handwritten digits learns: its features beat its own
random initialisation (and chance) at 20-nearest-neighbour classification.

scikit-learn's digits (1,797 images, upscaled to 28 px, shipped with the package, no
download), the shipped ``mnist-all`` protocol, a narrow ``vgg_mnist`` and the method's
recipe (nothing tuned here): the test fails if the recipe, the loop or the method stops
learning.

The lightly-assembled reference that ``benchmarks/learning.py`` compares each method with
(``benchmarks/_lightly_reference.py``) is checked here too: the recipe it reads back from a
checkpoint, and its MAE against bioaug's (the same loss for the same weights and mask, the
backbone's own initial weights kept, training that moves the backbone and lowers the loss).
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

from bioaug.data.natural import prepare_natural
from bioaug.data.store import Store
from bioaug.errors import ConfigError
from bioaug.methods import build_method
from bioaug.models import build_backbone
from bioaug.train import TrainConfig, load_trained, train
from bioaug.train.checks import build_run_model
from bioaug.train.data import to_unit_float
from bioaug.train.knn import knn_accuracy
from bioaug.train.optim import build_optimizer
from tests.conftest import REPO
from tests.train.helpers import write_protocol

#: a small MAE decoder for the reference tests
MAE_HP: dict[str, Any] = {"mask_ratio": 0.75, "decoder_dim": 32, "decoder_depth": 1,
                          "decoder_heads": 2, "norm_pix_loss": True}
#: a tiny ViT: 16 px crops of 4 px patches (16 patches)
TINY_VIT: dict[str, Any] = {"patch_size": 4, "img_size": 16}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return prepare_natural("digits", None, tmp_path_factory.mktemp("digits") / "store").path


def _knn20(backbone: torch.nn.Module, store: Store) -> float:
    """20-NN accuracy (cosine, weighted vote) of the test split, the train split as reference."""
    x = to_unit_float(torch.from_numpy(store.read(np.arange(len(store)))), store.dtype)
    backbone.eval()
    with torch.no_grad():
        feats = backbone(x)
    split = store.obs["split"].to_numpy()
    labels = torch.as_tensor(store.obs["label_id"].to_numpy())
    tr, te = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
    return knn_accuracy(feats[tr], labels[tr], feats[te], labels[te], k=20)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_simclr_recipe_learns_digits(digits, tmp_path):
    store = Store.open(digits)
    cfg = TrainConfig(data=digits, protocol="mnist-all", out=tmp_path / "run", method="simclr",
                      backbone="vgg_mnist", width=0.25, batch_size=128, epochs=20,
                      max_steps=150, seed=0, device="cpu", num_workers=0, tensorboard=False)
    init = _knn20(build_run_model(cfg, 1, len(store)).backbone, store)  # the run's own init
    learned = _knn20(load_trained(train(cfg)).backbone, store)
    assert learned > 0.5                      # chance is 0.1
    assert learned >= init + 0.02, (init, learned)


# -- the lightly reference of benchmarks/learning.py ---------------------------------------
@pytest.fixture(scope="module")
def reference() -> ModuleType:
    """``benchmarks/_lightly_reference.py`` as a module (benchmarks/ is not a package)."""
    pytest.importorskip("lightly")
    name = "_lightly_reference"
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclass resolves annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _checkpoint(**config: Any) -> dict[str, Any]:
    """The parts of a bioaug checkpoint the reference reads, for a small MAE run."""
    cfg = {"method": "mae", "optimizer": "adamw", "momentum": 0.9, "weight_decay": 0.05,
           "backbone": "vit_tiny", "protocol": "mnist-mae", "batch_size": 32, "seed": 3,
           **config}
    return {"config": cfg, "schedule": {"total_steps": 10, "warmup_steps": 1, "base_lr": 1e-4},
            "model": {}, "backbone": {"kwargs": dict(TINY_VIT)},
            "method": {"effective_hparams": dict(MAE_HP)}}


@pytest.mark.parametrize(("config", "beta2"), [({"adam_beta2": 0.95}, 0.95), ({}, 0.999),
                                               ({"adam_beta2": None}, 0.999)])
def test_reference_recipe_carries_adam_beta2(reference, config, beta2):
    recipe = reference.recipe_from_checkpoint(_checkpoint(**config))
    assert recipe.optimizer == {"name": "adamw", "momentum": 0.9, "weight_decay": 0.05,
                                "adam_beta2": beta2}
    assert recipe.hparams == MAE_HP and recipe.backbone_kwargs == TINY_VIT


@pytest.mark.parametrize(("hparams", "scale"), [({"predictor_lr_scale": 10.0}, 10.0),
                                                ({"predictor_lr_scale": 1.0}, 1.0), ({}, 1.0)])
def test_byol_reference_runs_its_predictor_at_the_runs_rate(reference, hparams, scale):
    # the reference reads the factor from the run's hyperparameters; a run from before the
    # option trained its predictor at the run's rate
    hp = {"proj_hidden_dim": 8, "proj_output_dim": 4, "pred_hidden_dim": 8, "momentum": 0.99,
          **hparams}
    ref = reference.RefBYOL(build_backbone("vgg_mnist", 1, width=0.25), hp)
    assert ref.lr_scales() == {"predictor": scale}
    opt = build_optimizer(ref, "adamw", 1e-3, 0.9, 1e-4, lr_scales=ref.lr_scales())
    scaled = {id(p) for g in opt.param_groups if g["lr_scale"] != 1.0 for p in g["params"]}
    assert scaled == ({id(p) for p in ref.predictor.parameters()} if scale != 1.0 else set())


def _mae_recipe(reference: ModuleType, protocol: str, **kw: Any) -> Any:
    values = {"method": "mae", "hparams": dict(MAE_HP), "backbone": "vit_tiny",
              "backbone_kwargs": dict(TINY_VIT), "protocol": protocol, "batch_size": 16,
              "seed": 0, "total_steps": 24, "warmup_steps": 2, "base_lr": 1e-3,
              "optimizer": {"name": "adamw", "momentum": 0.9, "weight_decay": 0.05,
                            "adam_beta2": 0.95}, "queue_size": None, **kw}
    return reference.RunRecipe(**values)


def test_mae_reference_wraps_the_backbone_vit_and_keeps_its_weights(reference, tmp_path):
    ref = reference.build_reference(_mae_recipe(reference, "none"), 1)
    assert isinstance(ref, reference.RefMAE)
    assert ref.encoder.vit is ref.backbone.vit          # training moves the backbone itself
    torch.manual_seed(0)
    fresh = build_backbone("vit_tiny", 1, **TINY_VIT).state_dict()
    kept = ref.backbone.state_dict()                    # no re-drawn weights, learned positions
    assert all(torch.equal(kept[k], v) for k, v in fresh.items())
    assert ref.backbone.vit.pos_embed.requires_grad
    assert not ref.encoder.mask_token.requires_grad     # only visible tokens are encoded
    with pytest.raises(ConfigError, match=r"img_size 16 px only, got 12×12 px") as err:
        ref.loss(torch.rand(2, 1, 12, 12))
    assert "img_size=12" in err.value.format()


def test_mae_reference_loss_equals_bioaug_mae_for_the_same_weights_and_mask(reference,
                                                                            monkeypatch):
    from timm.layers.pos_embed_sincos import build_sincos2d_pos_embed

    torch.manual_seed(0)
    ref = reference.build_reference(_mae_recipe(reference, "none"), 1).eval()
    ours = build_method("mae", ref.backbone, **MAE_HP).eval()  # the same backbone object
    state = ours.decoder.state_dict()
    outside = {"embed": ref.decoder_embed, "pred": ref.prediction_head}   # lightly's: ours
    for name, layer in outside.items():
        layer.load_state_dict({k.split(".", 1)[1]: v for k, v in state.items()
                               if k.split(".")[0] == name})
    inside = {k: v for k, v in state.items() if k.split(".")[0] not in outside}
    loaded = ref.decoder.load_state_dict(inside, strict=False)
    assert loaded.missing_keys == ["pos_embed"] and not loaded.unexpected_keys
    with torch.no_grad():                               # bioaug's channel order of sin-cos
        ref.decoder.pos_embed[0, 1:] = build_sincos2d_pos_embed([4, 4], 32)
    b, n, keep = 3, 16, 4
    torch.manual_seed(7)
    order = torch.rand(b, n).argsort(dim=1)             # bioaug's draw after the same seed
    cls = torch.zeros(b, 1, dtype=torch.long)

    def same_mask(size, mask_ratio, device=None):
        assert size == (b, n + 1) and mask_ratio == 0.75
        return torch.cat([cls, order[:, :keep] + 1], dim=1), order[:, keep:] + 1

    monkeypatch.setattr("lightly.models.utils.random_token_mask", same_mask)
    images = torch.rand(b, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.manual_seed(7)
        expected = ours.training_loss([images])["loss"]
        got = ref.loss(images)
    assert float(expected) > 0.5
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6), (float(got), float(expected))


@pytest.mark.timeout(60)
def test_mae_reference_trains_the_backbone_and_lowers_the_loss(reference, tiny_store,
                                                               tmp_path):
    protocol = write_protocol(tmp_path / "crop16.yaml", crop=16)
    recipe = _mae_recipe(reference, str(protocol))
    losses: list[float] = []
    backbone = reference.train_reference(recipe, Store.open(tiny_store),
                                         on_step=lambda step, loss: losses.append(loss))
    assert len(losses) == recipe.total_steps and all(np.isfinite(losses))
    first, last = np.mean(losses[:4]), np.mean(losses[-4:])
    assert last < 0.9 * first, losses
    torch.manual_seed(recipe.seed)
    init = build_backbone("vit_tiny", 2, **TINY_VIT).state_dict()
    trained = backbone.state_dict()
    assert not torch.equal(trained["vit.pos_embed"], init["vit.pos_embed"])
    assert not torch.equal(trained["vit.blocks.0.attn.qkv.weight"],
                           init["vit.blocks.0.attn.qkv.weight"])


# -- benchmarks/learning.py's options ------------------------------------------------------
@pytest.fixture(scope="module")
def learning() -> ModuleType:
    """``benchmarks/learning.py`` as a module."""
    spec = importlib.util.spec_from_file_location("learning", REPO / "benchmarks" / "learning.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["learning"] = module
    spec.loader.exec_module(module)
    return module


def test_method_kwargs_reach_the_runs_and_name_them(learning: ModuleType, tmp_path) -> None:
    import argparse

    args = argparse.Namespace(method_kwargs=["momentum=0.95", "out_dim=256"])
    hparams = learning.method_kwargs(args)
    assert hparams == {"momentum": 0.95, "out_dim": 256}
    ds = learning.Dataset("d", tmp_path, "mnist-multicrop", "vit_tiny", {"patch_size": 7},
                          method_kwargs=hparams)
    multicrop, dino = learning.protocol_tag("mnist-multicrop"), learning.defaults_tag("dino")
    assert learning.run_tag(ds, "dino", 60, 128) == (
        f"60steps-b128-vit_tiny-patch_size7-momentum0.95-out_dim256{dino}{multicrop}")
    plain = learning.Dataset("d", tmp_path, "mnist-all", "vgg_mnist", {"width": 0.5})
    assert learning.run_tag(plain, "simclr", 300, 256) == (
        f"300steps-b256-w0.5{learning.defaults_tag('simclr')}{learning.protocol_tag('mnist-all')}")
    with pytest.raises(SystemExit, match="KEY=VALUE pairs, got 'momentum'"):
        learning.method_kwargs(argparse.Namespace(method_kwargs=["momentum"]))


def test_an_edited_protocol_names_new_runs(learning: ModuleType, tmp_path) -> None:
    """The run name follows the protocol's content: an edit under the same file name trains
    afresh instead of reusing a run of the old protocol."""
    from bioaug.augment import resolve_protocol

    mine = tmp_path / "mine.yaml"
    mine.write_bytes(resolve_protocol("mnist-all").read_bytes())
    tag = learning.protocol_tag(str(mine))
    assert tag == learning.protocol_tag("mnist-all")  # content, not the name
    assert len(tag) == 10 and tag.startswith("-p")
    mine.write_text(mine.read_text().replace("p: 0.5", "p: 0.6", 1))
    assert learning.protocol_tag(str(mine)) != tag
    ds = learning.Dataset("d", tmp_path, str(mine), "vgg_mnist", {"width": 0.5})
    assert learning.run_tag(ds, "simclr", 300, 256).endswith(learning.protocol_tag(str(mine)))


def test_new_method_defaults_name_new_runs(learning: ModuleType, monkeypatch) -> None:
    """The run name follows the method's declared recipe and hyperparameter defaults: a
    release that changes them trains afresh instead of reusing runs of the old defaults."""
    from bioaug.methods import METHODS, method_names

    tags = {name: learning.defaults_tag(name) for name in method_names()}
    assert all(len(t) == 10 and t.startswith("-m") for t in tags.values())
    assert len(set(tags.values())) == len(tags)           # each method its own
    assert learning.defaults_tag("byol") == tags["byol"]  # stable
    byol = METHODS["byol"]
    monkeypatch.setattr(byol, "recipe", byol.recipe.model_copy(update={"warmup_fraction": 0.1}))
    assert learning.defaults_tag("byol") != tags["byol"]
    monkeypatch.undo()

    class OneRate(byol.Config):
        predictor_lr_scale: float = 1.0

    monkeypatch.setattr(byol, "Config", OneRate)
    assert learning.defaults_tag("byol") != tags["byol"]


def test_table_marks_runs_that_ended_with_a_health_warning(learning: ModuleType) -> None:
    score = {"knn20": 0.5, "ami": 0.2}
    warning = "dino: the teacher's outputs are uniform at the end of the run (…)"
    rows = [{"dataset": "d", "method": "-", "impl": "raw pixels", "seed": s, **score}
            for s in (0, 1)]
    rows += [{"dataset": "d", "method": "dino", "impl": "bioaug", "seed": s, **score,
              "train_s": 1.0, "health_warnings": [warning] if s == 0 else []}
             for s in (0, 1)]
    rows += [{"dataset": "d", "method": "simclr", "impl": "bioaug", "seed": 0, **score,
              "train_s": 1.0}]                           # a result cached before the key
    text = learning.table(rows, "d", 10, 8)
    (dino,) = [line for line in text.splitlines() if line.startswith("| dino |")]
    assert "[health warning: 1 of 2 runs]" in dino
    (simclr,) = [line for line in text.splitlines() if line.startswith("| simclr |")]
    assert "health warning" not in simclr
    assert text.endswith(f"Health warnings at the end of the runs:\n- {warning}")


def test_runs_off_the_cpu_are_named_apart(learning: ModuleType, tmp_path) -> None:
    ds = learning.Dataset("d", tmp_path, "mnist-all", "vgg_mnist", {"width": 0.5})
    on_cpu = learning.run_tag(ds, "simclr", 300, 256)
    assert learning.device_tag("cpu") == "" and on_cpu.endswith(learning.protocol_tag("mnist-all"))
    from dataclasses import replace

    assert learning.run_tag(replace(ds, device="cuda:1"), "simclr", 300, 256) == on_cpu + "-cuda1"


def test_device_option_is_checked_before_anything_runs(learning: ModuleType, tmp_path,
                                                       capsys) -> None:
    with pytest.raises(SystemExit) as err:
        learning.main(["--device", "gpu", "--work", str(tmp_path)])
    assert err.value.code == 2
    assert "--device" in capsys.readouterr().err and not any(tmp_path.iterdir())
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit) as err:
            learning.main(["--device", "cuda", "--work", str(tmp_path)])
        assert err.value.code == 2 and "CUDA" in capsys.readouterr().err


def test_features_on_a_device_are_the_backbones_output(learning: ModuleType, tiny_store) -> None:
    store = Store.open(tiny_store)
    torch.manual_seed(0)
    bb = build_backbone("vgg_mnist", store.n_channels, width=0.25)
    idx = np.arange(min(6, len(store)))
    got = learning.features(bb, store, idx, device="cpu")
    with torch.no_grad():
        want = bb.eval()(torch.from_numpy(store.read_float(idx))).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
