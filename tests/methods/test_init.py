from __future__ import annotations

import pytest
import torch

from bioaug.errors import ConfigError
from bioaug.methods import METHODS, build_method, method_config, method_names
from bioaug.models import build_backbone

#: small sizes for whichever of these hyperparameters a method has
_SMALL_SIZES = {"proj_hidden_dim": 16, "proj_output_dim": 8, "pred_hidden_dim": 16,
                "queue_size": 60, "out_dim": 32, "hidden_dim": 16, "bottleneck_dim": 8,
                "decoder_dim": 32, "decoder_depth": 1}


def small(name: str) -> dict[str, int]:
    """Small head/queue sizes for method ``name`` (any registered method)."""
    fields = METHODS[name].Config.model_fields
    return {k: v for k, v in _SMALL_SIZES.items() if k in fields}


SMALL = {name: small(name) for name in METHODS}

#: a small build of each backbone a method may declare it needs (``Method.backbones``)
_SMALL_BACKBONES = {"vgg_mnist": {"width": 0.125}, "vit_tiny": {"patch_size": 4, "img_size": 8}}


def small_backbone(name: str) -> torch.nn.Module:
    """A small 2-channel backbone method ``name`` works on: the small VGG unless the method
    lists the backbones it needs, then the first of those."""
    needs = METHODS[name].backbones
    backbone = "vgg_mnist" if needs is None else needs[0]
    return build_backbone(backbone, 2, **_SMALL_BACKBONES[backbone])


def test_registry_holds_the_five_methods_of_the_papers():
    assert {"moco_v2", "simclr", "byol", "barlow_twins", "vicreg"} <= set(method_names())
    assert method_names() == sorted(METHODS)


def test_unknown_method(tiny_backbone):
    with pytest.raises(ConfigError) as err:
        build_method("moco", tiny_backbone)
    msg = str(err.value)
    assert "unknown method 'moco'" in msg and "did you mean 'moco_v2'" in msg
    assert all(name in msg for name in method_names())


@pytest.mark.parametrize(
    ("name", "hparams", "match"),
    [
        ("moco_v2", {"temperature": 0}, r"temperature: must be more than 0.0 \(got 0\)"),
        ("moco_v2", {"momentum": 1.5}, r"momentum: must be at most 1.0 \(got 1.5\)"),
        ("moco_v2", {"queue_size": 0}, r"queue_size: .*\(got 0\)"),
        ("moco_v2", {"tau": 0.2}, r"tau: unknown key.*known: proj_hidden_dim"),
        ("simclr", {"temprature": 0.1}, r"temprature: unknown key \(did you mean 'temperature'\?\)"),
        ("simclr", {"proj_output_dim": "big"}, r"proj_output_dim: .*\(got 'big'\)"),
        ("byol", {"momentum_end": -0.1}, r"momentum_end: .*\(got -0.1\)"),
        ("barlow_twins", {"lambd": -1}, r"lambd: .*\(got -1\)"),
        ("vicreg", {"eps": 0}, r"eps: .*\(got 0\)"),
    ],
)
def test_bad_hparams_name_field_and_range(tiny_backbone, name, hparams, match):
    with pytest.raises(ConfigError, match=match) as err:
        build_method(name, tiny_backbone, **hparams)
    assert str(err.value).startswith(f"method '{name}': ")


def test_defaults_follow_the_papers():
    moco = method_config("moco_v2")
    # MoCo v2's temperature, queue and head; the momentum ramps 0.99 → 1.0 (short runs)
    assert (moco.temperature, moco.queue_size, moco.proj_output_dim) == (0.2, 65536, 128)
    assert (moco.momentum, moco.momentum_end) == (0.99, 1.0)
    assert moco.symmetric is False
    byol = method_config("byol")
    assert (byol.momentum, byol.momentum_end, byol.proj_output_dim) == (0.99, 1.0, 256)
    assert method_config("barlow_twins").lambd == 0.0051
    vic = method_config("vicreg")
    assert (vic.sim_coeff, vic.std_coeff, vic.cov_coeff, vic.gamma, vic.eps) == (25, 25, 1, 1, 1e-4)


def test_backbone_without_out_dim_is_rejected():
    with pytest.raises(ConfigError, match="integer out_dim"):
        build_method("simclr", torch.nn.Linear(2, 2))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_method_trains_and_embeds(name, views):
    torch.manual_seed(0)
    backbone = small_backbone(name)
    method = build_method(name, backbone, **SMALL[name])
    method.configure_for_dataset(n_items=600, batch_size=6)
    out = method.training_loss(views)
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    assert all(v.ndim == 0 for v in out.values())
    out["loss"].backward()
    trained = [p for p in method.parameters() if p.requires_grad]
    assert all(p.grad is not None for p in trained)
    method.after_step(0.5)
    assert method.embed(views[0]).shape == (6, backbone.out_dim)
    if "projection" in method.layers():
        assert method.embed(views[0], "projection").shape[0] == 6
    # Everything needed to resume lives in the state dict.
    clone = build_method(name, small_backbone(name), **SMALL[name])
    clone.configure_for_dataset(n_items=600, batch_size=6)
    clone.load_state_dict(method.state_dict())
    for (k, a), b in zip(method.state_dict().items(), clone.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_a_few_steps_lower_the_loss():
    """SimCLR on a fixed pair of views: the optimiser must make progress."""
    torch.manual_seed(0)
    method = build_method("simclr", build_backbone("vgg_mnist", 1, width=0.125), **SMALL["simclr"])
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 1, 12, 12, generator=g)
    views = [x, x.flip(-1)]
    opt = torch.optim.SGD(method.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(15):
        loss = method.training_loss(views)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1


def test_none_hparams_mean_default(tiny_backbone):
    method = build_method("simclr", tiny_backbone, temperature=None, proj_hidden_dim=4)
    assert method.hparams == {"proj_hidden_dim": 4, "proj_output_dim": 128, "temperature": 0.5}
