from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from bioaug.data.store import Store
from bioaug.embed import embed
from bioaug.embed.embed import prepare_batch
from bioaug.errors import CheckpointError, ConfigError
from bioaug.io import sha256_file
from bioaug.train.checkpoint import load_trained
from tests.embed.conftest import make_store, train_tiny


@pytest.fixture(scope="module")
def cells(tiny_run, tiny_store):
    return embed([tiny_run], tiny_store, device="cpu", batch_size=20)


def test_one_row_per_item_with_metadata(cells, tiny_store):
    store = Store.open(tiny_store)
    assert cells.n_obs == len(store) == 48
    assert list(cells.obs.index[:3]) == ["0", "1", "2"]
    for col in ("plate", "well", "site", "replicate", "batch", "compound", "concentration",
                "moa"):
        assert isinstance(cells.obs[col].dtype, pd.CategoricalDtype), col
    assert cells.obs["center_x"].dtype.kind == "f"
    assert cells.obsm["X_bioaug"].shape == (48, 64)  # VGG13-BN at width 1/8: 512 / 8
    assert cells.obsm["X_bioaug"].dtype == np.float32


def test_embedding_equals_the_model_on_resized_items(cells, tiny_run, tiny_store):
    trained = load_trained(tiny_run)
    store = Store.open(tiny_store)
    x = torch.from_numpy(store.read_float(slice(0, 5)))
    with torch.inference_mode():
        want = trained.method.embed(F.interpolate(x, size=(32, 32), mode="bilinear",
                                                  align_corners=False, antialias=True))
    np.testing.assert_allclose(cells.obsm["X_bioaug"][:5], want.numpy(), rtol=1e-4, atol=1e-5)


def test_provenance(cells, tiny_run, tiny_store):
    prov = cells.uns["bioaug"]
    model = prov["models"]["0"]
    assert model["checkpoint_sha256"] == sha256_file(tiny_run / "checkpoint.pt")
    assert model["method"] == "simclr" and model["backbone"] == "vgg13_bn"
    assert model["crop_size"] == 32 and model["preprocess"] == "resize"
    assert "bbbc021-expert" in model["protocol_text"]
    assert prov["store_header_sha256"] == sha256_file(tiny_store / "header.json")
    assert prov["store_obs_sha256"] == sha256_file(tiny_store / "obs.csv")
    assert prov["layer"] == "backbone" and prov["kind"] == "checkpoint"
    assert prov["layer_source"] == "default of backbone vgg13_bn"
    assert model["layer"] == "backbone"


def test_batch_size_does_not_change_the_result(cells, tiny_run, tiny_store):
    other = embed(tiny_run, tiny_store, device="cpu", batch_size=7)
    np.testing.assert_allclose(other.obsm["X_bioaug"], cells.obsm["X_bioaug"], rtol=1e-4,
                               atol=1e-5)


def test_projection_layer(tiny_run, tiny_store):
    trained = load_trained(tiny_run)
    proj = embed(tiny_run, tiny_store, layer="projection", device="cpu")
    x = torch.from_numpy(Store.open(tiny_store).read_float(slice(0, 2)))
    with torch.inference_mode():
        want = trained.method.embed(prepare_batch(x, 32, "resize"), layer="projection")
    assert proj.obsm["X_bioaug"].shape[1] == want.shape[1]
    np.testing.assert_allclose(proj.obsm["X_bioaug"][:2], want.numpy(), rtol=1e-4, atol=1e-5)


def test_feature_map_layer(tiny_run, tiny_store):
    trained = load_trained(tiny_run)
    fmap = embed(tiny_run, tiny_store, layer="feature_map", device="cpu")
    x = torch.from_numpy(Store.open(tiny_store).read_float(slice(0, 2)))
    with torch.inference_mode():
        want = trained.method.embed(prepare_batch(x, 32, "resize"), layer="feature_map")
    assert fmap.obsm["X_bioaug"].shape[1] == want.shape[1] >= trained.backbone.out_dim
    np.testing.assert_allclose(fmap.obsm["X_bioaug"][:2], want.numpy(), rtol=1e-4, atol=1e-5)
    assert fmap.uns["bioaug"]["layer"] == "feature_map"


def test_fusion_of_two_checkpoints(cells, tiny_run, tiny_run_b, tiny_store):
    fused = embed([tiny_run, tiny_run_b], tiny_store, device="cpu")
    a, b = fused.obsm["X_bioaug_0"], fused.obsm["X_bioaug_1"]
    np.testing.assert_allclose(fused.obsm["X_bioaug"], a)
    np.testing.assert_allclose(a, cells.obsm["X_bioaug"], rtol=1e-4, atol=1e-5)
    f = fused.obsm["X_bioaug_fused"]
    assert f.shape == (48, a.shape[1] + b.shape[1])
    np.testing.assert_allclose(np.linalg.norm(f[:, :a.shape[1]], axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(f[:, a.shape[1]:] * np.linalg.norm(b, axis=1, keepdims=True), b,
                               rtol=1e-4, atol=1e-5)
    assert set(fused.uns["bioaug"]["models"]) == {"0", "1"}


def test_raw_pixels_known_answer(tiny_store):
    raw = embed(data=tiny_store, raw=True)
    store = Store.open(tiny_store)
    assert raw.obsm["X_bioaug"].shape == (48, 3 * 16 * 16)
    x = store.read_float(slice(0, 1))[0]
    # 40 px → 16 cells: area averaging, so the grand mean of each channel is preserved
    per_channel = raw.obsm["X_bioaug"][0].reshape(3, 16, 16).mean(axis=(1, 2))
    np.testing.assert_allclose(per_channel, x.mean(axis=(1, 2)), atol=2e-3)
    assert raw.uns["bioaug"]["kind"] == "raw"


def test_random_backbone_baseline(tiny_store):
    out = embed(data=tiny_store, backbone="vgg13_bn", backbone_kwargs={"width": 0.125})
    assert out.obsm["X_bioaug"].shape == (48, 64)
    assert "random initialisation" in out.uns["bioaug"]["models"]["vgg13_bn"]["weights"]


def test_supervised_baseline_without_weights_fails_clearly(tiny_store, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    with pytest.raises(CheckpointError, match="no ImageNet ResNet-101 weights found"):
        embed(data=tiny_store, backbone="resnet101_supervised")


def test_channel_count_mismatch(tiny_run, tmp_path):
    gray = make_store(tmp_path / "gray", channels=["DAPI"])
    with pytest.raises(CheckpointError, match=r"trained on 3-channel images \(DAPI, Tubulin, "
                                              r"Actin\) but the store .*gray has 1 \(DAPI\)"):
        embed(tiny_run, gray)


def test_fusing_models_of_different_channels_is_an_error(tiny_run, tmp_path):
    rgb_store = make_store(tmp_path / "rgb", channels=["R", "G", "B"])
    rgb_run = train_tiny(rgb_store, tmp_path / "rgb_run", protocol="none")
    with pytest.warns(UserWarning, match="trained on channels"), \
            pytest.raises(CheckpointError, match="cannot fuse models trained on different "
                                                 "channels"):
        embed([tiny_run, rgb_run], rgb_store)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "exactly one source"),
    ({"raw": True, "backbone": "vgg13_bn"}, "exactly one source"),
    ({"raw": True, "layer": "projection"}, "needs a checkpoint"),
    ({"raw": True, "layer": "feature_map"}, "needs a checkpoint"),
    ({"backbone": "vgg13_bn", "layer": "projection"}, "needs a checkpoint"),
    ({"raw": True, "layer": "head"}, "unknown layer 'head'"),
    ({"raw": True, "layer": "all"}, "unknown layer 'all'"),
    ({"backbone": "vgg13_bn", "layer": "stage9"},
     r"unknown layer 'stage9'.* for backbone 'vgg13_bn'; its layers: backbone, feature_map, "
     r"stage1, stage2, stage3, stage4, stage5, or 'all'"),
    ({"raw": True, "preprocess": "crop"}, "unknown preprocessing 'crop'"),
    ({"raw": True, "batch_size": 0}, "batch_size must be a positive integer"),
    ({"backbone": "vgg13_bn", "seed": 2**32}, r"^seed: a seed must be an integer from 0 to "
                                              r"4294967295"),
    ({"raw": True, "seed": -1}, "a seed must be an integer"),
])
def test_bad_arguments(tiny_store, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        embed(data=tiny_store, **kwargs)


def test_missing_checkpoint(tiny_store, tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        embed(tmp_path / "nothing", tiny_store)


def test_prepare_batch_center_crop():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6)
    out = prepare_batch(x, 4, "center_crop")
    assert torch.equal(out, x[..., 1:5, 1:5])
    assert prepare_batch(x, 6, "resize") is x
    assert prepare_batch(x, 3, "resize").shape == (2, 1, 3, 3)


def test_embed_then_evaluate_end_to_end(tiny_run, tiny_store, tmp_path):
    from bioaug.embed import write_h5ad
    from bioaug.evaluate import evaluate

    path = write_h5ad(embed(tiny_run, tiny_store, device="cpu"), tmp_path / "cells.h5ad")
    report = evaluate(path, label="moa", out=tmp_path / "report", plot=False)
    assert report["clustering"]["n_items"] == 48 and report["clustering"]["n_classes"] == 3
    assert -1.0 <= report["clustering"]["leiden"]["ami"] <= 1.0
    assert report["profiling"]["nsc"]["n_treatments"] == 6
    assert report["linear"]["split"]["groups_on_both_sides"] == 0
    assert report["input"]["embedding_provenance"]["models"]["0"]["method"] == "simclr"
    assert (tmp_path / "report" / "report.json").is_file()


def test_raw_floor_separates_an_easy_store(tiny_store):
    # the store's MoA sets the channel brightness: raw pixels must cluster it perfectly
    from bioaug.evaluate import evaluate

    report = evaluate(embed(data=tiny_store, raw=True), label="moa")
    assert report["clustering"]["kmeans"]["ami"] > 0.99
    assert report["profiling"]["nsc"]["accuracy"] == 1.0


def test_interrupted_embedding_resumes_where_it_stopped(tiny_store, tmp_path):
    from bioaug.embed.embed import Embedder, run_embedders

    store = Store.open(tiny_store)
    seen: list[int] = []

    def forward(x: torch.Tensor) -> torch.Tensor:
        seen.append(len(x))
        return x.mean(dim=(2, 3))

    def failing(x: torch.Tensor) -> torch.Tensor:
        if len(seen) == 3:
            raise KeyboardInterrupt
        return forward(x)

    work = tmp_path / "partial"
    with pytest.raises(KeyboardInterrupt):
        run_embedders(store, [Embedder("m", failing, 3)], batch_size=5, work_dir=work,
                      commit_every=2)
    assert sum(seen) == 15  # three batches embedded, two committed (10 items)
    seen.clear()
    out = run_embedders(store, [Embedder("m", forward, 3)], batch_size=5, work_dir=work)[0]
    assert sum(seen) == 48 - 10  # resumed after the last committed item
    want = store.read_float(slice(None)).mean(axis=(2, 3))
    np.testing.assert_allclose(out, want, rtol=1e-5)
    # other models → other signature → starts over
    seen.clear()
    run_embedders(store, [Embedder("other", forward, 3)], batch_size=5, work_dir=work)
    assert sum(seen) == 48


def test_twin_store_embed_evaluate(tiny_run, twin_store, tmp_path):
    from bioaug.embed import aggregate, write_h5ad
    from bioaug.evaluate import evaluate

    cells = embed(tiny_run, twin_store, device="cpu")
    obs = Store.open(twin_store).obs
    assert cells.n_obs == len(obs)
    path = write_h5ad(cells, tmp_path / "cells.h5ad")
    report = evaluate(path, label="moa", plot=False)
    annotated = obs[obs["moa"].notna() & (obs["moa"] != "DMSO")]
    n_treatments = len(annotated.groupby(["compound", "concentration"]))
    assert report["profiling"]["nsc"]["n_treatments"] == n_treatments
    assert report["profiling"]["n_wells"] == len(obs.groupby(["plate", "well"]))
    assert report["clustering"]["n_items"] == int(obs["moa"].notna().sum())
    treatments = aggregate(cells, "treatment")
    assert treatments.n_obs == len(obs.groupby(["compound", "concentration"]))


def test_twin_dmso_wells_are_the_default_controls_of_profile(twin_store):
    """`bioaug profile`'s default control query finds the twin's DMSO wells."""
    from bioaug.profile import profile

    cells = embed(raw=True, data=twin_store, raw_size=2)
    obs = Store.open(twin_store).obs
    dmso = obs[obs["moa"] == "DMSO"].groupby(["plate", "well"]).ngroups
    prof = profile(cells)
    rec = prof.uns["bioaug"]["profile"]
    assert dmso > 0 and rec["n_controls"] == dmso
    assert rec["steps_source"] == "standard"
    assert not any("correcting without controls" in n for n in rec["standard"]["notes"])


def test_nan_pixels_are_an_error_naming_the_items(tmp_path):
    from bioaug.data.store import write_store
    from bioaug.errors import DataError

    images = np.random.default_rng(0).random((10, 1, 8, 8)).astype(np.float32)
    images[3, 0, 2, 2] = np.nan
    images[7, 0, 0, 0] = np.inf
    store = write_store(tmp_path / "s", images, pd.DataFrame({"i": range(10)}),
                        channels=["DNA"]).path
    with pytest.raises(DataError, match=r"items 3, 7 \(2 of 10 items\) have NaN or infinite"):
        embed(raw=True, data=store)
    with pytest.raises(DataError, match=r"item 3 \(1 of 5 items\) has NaN"):
        embed(raw=True, data=store, shard="0/2")  # only the shard's items are checked


def test_nan_features_are_an_error_naming_the_items(tiny_store):
    from bioaug.embed.embed import Embedder, run_embedders

    def broken(x):
        out = x.mean(dim=(2, 3))
        out[1] = float("nan")
        return out

    with pytest.raises(CheckpointError, match=r"NaN or infinite features for item 1 \(1 of 48"):
        run_embedders(Store.open(tiny_store), [Embedder("m", broken, 3)], batch_size=5)


def test_aggregating_data_without_wells_fails_before_embedding(tmp_path, monkeypatch):
    import sys

    from bioaug.data.store import write_store
    from bioaug.errors import DataError

    embed_mod = sys.modules["bioaug.embed.embed"]  # the package's `embed` is the function

    images = np.zeros((4, 1, 8, 8), dtype=np.uint8)
    store = write_store(tmp_path / "digits", images, pd.DataFrame({"label": [0, 1, 2, 3]}),
                        channels=["gray"]).path

    def never(*args, **kwargs):
        raise AssertionError("embedded before checking the aggregation")

    monkeypatch.setattr(embed_mod, "run_embedders", never)
    with pytest.raises(DataError, match="cannot aggregate per well: the data has no 'plate', "
                                        "'well' column"):
        embed(raw=True, data=store, aggregate="well")


def test_public_embed_has_the_real_signature(tiny_store):
    import importlib
    import inspect

    import bioaug
    from bioaug.embed.embed import embed as stage_embed

    fresh = importlib.reload(bioaug)  # the function, as a new session sees it
    public, stage = inspect.signature(fresh.embed), inspect.signature(stage_embed)
    assert list(public.parameters) == list(stage.parameters)
    for name, p in public.parameters.items():
        assert p.default == stage.parameters[name].default, name
        assert p.kind == stage.parameters[name].kind, name
        if name not in ("checkpoints", "data"):  # one source of the docs: the stage's
            assert f"    {name}\n" in stage_embed.__doc__, f"{name} is not documented"
    # importing the package `bioaug.embed` hides the function in a session; it is callable
    package = importlib.import_module("bioaug.embed")
    first = fresh.embed(raw=True, data=tiny_store)
    again = package(raw=True, data=tiny_store)
    assert np.array_equal(first.obsm["X_bioaug"], again.obsm["X_bioaug"])
    assert inspect.signature(package) == stage


# -- the default layer: each backbone declares its own ---------------------------------------
def test_default_layer_is_the_backbones(tiny_mnist_run, tiny_store):
    """vgg_mnist declares ``feature_map``: with no layer given that is what is embedded."""
    out = embed(tiny_mnist_run, tiny_store, device="cpu")
    prov = out.uns["bioaug"]
    assert prov["layer"] == "feature_map"
    assert prov["layer_source"] == "default of backbone vgg_mnist"
    assert prov["models"]["0"]["layer_source"] == "default of backbone vgg_mnist"
    trained = load_trained(tiny_mnist_run)
    x = torch.from_numpy(Store.open(tiny_store).read_float(slice(0, 3)))
    with torch.inference_mode():
        want = trained.method.embed(prepare_batch(x, 32, "resize"), layer="feature_map")
    assert out.obsm["X_bioaug"].shape == (48, 16 * 8 * 8)  # 128 / 8 channels, 32 px / 4
    np.testing.assert_allclose(out.obsm["X_bioaug"][:3], want.numpy(), rtol=1e-4, atol=1e-5)


def test_an_explicit_layer_wins_over_the_backbones_default(tiny_mnist_run, tiny_store):
    out = embed(tiny_mnist_run, tiny_store, layer="backbone", device="cpu")
    assert out.obsm["X_bioaug"].shape == (48, 16)
    assert out.uns["bioaug"]["layer"] == "backbone"
    assert out.uns["bioaug"]["layer_source"] == "given"


def test_fused_models_each_use_their_backbones_default(tiny_run, tiny_mnist_run, tiny_store):
    out = embed([tiny_run, tiny_mnist_run], tiny_store, device="cpu")
    assert out.obsm["X_bioaug_0"].shape == (48, 64)
    assert out.obsm["X_bioaug_1"].shape == (48, 1024)
    assert out.uns["bioaug"]["layer"] == "backbone,feature_map"
    assert out.uns["bioaug"]["layer_source"] == ("default of backbone vgg13_bn,"
                                                 "default of backbone vgg_mnist")


def test_named_backbone_baseline_uses_its_default_layer(tiny_store):
    out = embed(data=tiny_store, backbone="vgg_mnist", backbone_kwargs={"width": 0.125})
    assert out.obsm["X_bioaug"].shape == (48, 16 * 10 * 10)  # 40 px items / 4
    assert out.uns["bioaug"]["layer"] == "feature_map"
    pooled = embed(data=tiny_store, backbone="vgg_mnist", backbone_kwargs={"width": 0.125},
                   layer="backbone")
    assert pooled.obsm["X_bioaug"].shape == (48, 16)
    assert pooled.uns["bioaug"]["layer_source"] == "given"


def test_layer_all_writes_every_stage_beside_the_default(tiny_run, tiny_store):
    cells = embed(tiny_run, tiny_store, layer="all", device="cpu")
    default = embed(tiny_run, tiny_store, device="cpu")
    stages = [f"stage{i}" for i in range(1, 6)]
    prov = cells.uns["bioaug"]
    assert prov["layers"] == stages and prov["layer"] == "backbone"
    assert prov["layer_source"] == "default of backbone vgg13_bn"
    assert list(cells.obsm) == ["X_bioaug", *(f"X_bioaug_{s}" for s in stages)]
    assert {k: v.shape[1] for k, v in cells.obsm.items()} == {
        "X_bioaug": 64, "X_bioaug_stage1": 8, "X_bioaug_stage2": 16, "X_bioaug_stage3": 32,
        "X_bioaug_stage4": 64, "X_bioaug_stage5": 64}
    np.testing.assert_allclose(cells.obsm["X_bioaug"], default.obsm["X_bioaug"], atol=1e-6)
    np.testing.assert_allclose(cells.obsm["X_bioaug_stage5"], cells.obsm["X_bioaug"], atol=1e-5)
    assert prov["obsm"]["X_bioaug_stage3"] == "layer stage3"


def test_one_stage_of_vgg13(tiny_run, tiny_store):
    cells = embed(tiny_run, tiny_store, layer="stage2", device="cpu")
    every = embed(tiny_run, tiny_store, layer="all", device="cpu")
    assert cells.obsm["X_bioaug"].shape == (48, 16)
    assert (cells.uns["bioaug"]["layer"], cells.uns["bioaug"]["layer_source"]) == \
        ("stage2", "given")
    np.testing.assert_allclose(cells.obsm["X_bioaug"], every.obsm["X_bioaug_stage2"], atol=1e-6)


def test_a_vit_block_of_a_named_backbone(tiny_store):
    kwargs = {"img_size": 40, "patch_size": 8}
    cells = embed(backbone="vit_tiny", data=tiny_store, layer="block3", device="cpu",
                  backbone_kwargs=kwargs)
    every = embed(backbone="vit_tiny", data=tiny_store, layer="all", device="cpu",
                  backbone_kwargs=kwargs)
    assert cells.obsm["X_bioaug"].shape == (48, 192)
    assert every.uns["bioaug"]["layers"] == [f"block{i}" for i in range(1, 13)]
    np.testing.assert_allclose(cells.obsm["X_bioaug"], every.obsm["X_bioaug_block3"], atol=1e-5)


def test_unknown_checkpoint_layer_lists_that_backbones_layers(tiny_run, tiny_store):
    with pytest.raises(ConfigError, match=r"unknown embedding layer 'block3' for backbone "
                                          r"'vgg13_bn'; its layers: backbone, feature_map, "
                                          r"projection, stage1, .*stage5, or 'all'"):
        embed(tiny_run, tiny_store, layer="block3", device="cpu")


def test_layer_all_takes_one_checkpoint(tiny_run, tiny_run_b, tiny_store):
    with pytest.raises(ConfigError, match="--layer all takes one checkpoint, got 2"):
        embed([tiny_run, tiny_run_b], tiny_store, layer="all", device="cpu")
