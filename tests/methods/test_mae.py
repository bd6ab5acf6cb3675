"""MAE: patches against lightly's, masking, the loss by hand, learning, the loop, errors."""

from __future__ import annotations

import math

import pytest
import torch

from bioaug.errors import ConfigError
from bioaug.methods import METHODS, build_method, method_config
from bioaug.methods.mae import (
    kept_count,
    mae_loss,
    patchify,
    random_masking,
    unpatchify,
    unshuffle,
)
from bioaug.models import build_backbone

SMALL = {"decoder_dim": 32, "decoder_depth": 1, "decoder_heads": 2}


def _vit(channels: int = 1, patch: int = 4, img: int = 16):
    return build_backbone("vit_tiny", channels, patch_size=patch, img_size=img)


@pytest.mark.parametrize(("channels", "size", "patch"), [(1, 16, 4), (3, 12, 2), (5, 8, 8)])
def test_patchify_matches_lightly_and_round_trips(channels, size, patch):
    utils = pytest.importorskip("lightly.models.utils")
    x = torch.rand(2, channels, size, size, generator=torch.Generator().manual_seed(0))
    ours = patchify(x, patch)
    assert torch.equal(ours, utils.patchify(x, patch))
    grid = (size // patch, size // patch)
    assert torch.equal(unpatchify(ours, patch, grid), x)


def test_patchify_known_layout_and_rectangles():
    x = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(1, 2, 4, 6)
    patches = patchify(x, 2)
    assert patches.shape == (1, 6, 8)
    # patch (row 0, column 1): pixels (0,2) (0,3) (1,2) (1,3), two channels each, channel last
    assert patches[0, 1].tolist() == [2, 26, 3, 27, 8, 32, 9, 33]
    assert torch.equal(unpatchify(patches, 2, (2, 3)), x)
    with pytest.raises(ConfigError, match=r"10×10 px, not a multiple of the backbone's "
                                          r"patch_size 4") as err:
        patchify(torch.zeros(1, 1, 10, 10), 4)
    assert "8 or 12" in err.value.format()


@pytest.mark.parametrize(("n", "ratio", "kept"), [(196, 0.75, 49), (16, 0.75, 4), (16, 0.5, 8),
                                                  (9, 0.75, 2), (4, 0.1, 3), (4, 0.9, 1)])
def test_kept_count_rounds_and_keeps_one_of_each(n, ratio, kept):
    assert kept_count(n, ratio) == kept


def test_masking_keeps_a_different_subset_per_image_and_restores_the_order():
    torch.manual_seed(0)
    b, n = 6, 16
    tokens = torch.arange(n, dtype=torch.float32).reshape(1, n, 1).expand(b, n, 3).clone()
    kept, mask, restore = random_masking(tokens, 0.75)
    assert kept.shape == (b, 4, 3)
    assert mask.sum(dim=1).tolist() == [12.0] * b
    subsets = {tuple(sorted(k[:, 0].long().tolist())) for k in kept}
    assert len(subsets) > 1                                   # not one pattern for all
    for i in range(b):                                        # the kept ones are the unmasked
        assert sorted(kept[i, :, 0].long().tolist()) == torch.nonzero(mask[i] == 0).flatten().tolist()
    filler = torch.full((b, n - 4, 3), -1.0)
    restored = unshuffle(torch.cat([kept, filler], dim=1), restore)
    visible = mask == 0
    assert torch.equal(restored[visible], tokens[visible])    # unshuffle ∘ shuffle = identity
    assert torch.all(restored[~visible] == -1)


def test_loss_by_hand_ignores_visible_patches():
    target = torch.tensor([[[1.0, 3.0], [2.0, 2.0], [0.0, 4.0]]])
    pred = torch.tensor([[[0.0, 0.0], [5.0, 5.0], [1.0, 1.0]]], requires_grad=True)
    mask = torch.tensor([[1.0, 0.0, 1.0]])
    # raw pixels: patch 0 (1 + 9)/2 = 5, patch 2 (1 + 9)/2 = 5 → mean 5
    assert mae_loss(pred, target, mask, norm_pix=False).item() == pytest.approx(5.0)
    # normalised: patch 0 → (−1, 1)/√(2 + 1e−6), patch 2 → (−2, 2)/√(8 + 1e−6), both ≈ (−0.7071,
    # 0.7071); the error against 0 and 1 is (0.5 + 0.5)/2 and ((1.7071)² + (0.2929)²)/2
    z = 1 / math.sqrt(2)
    expected = (z**2 + ((1 + z) ** 2 + (1 - z) ** 2) / 2) / 2
    assert mae_loss(pred, target, mask).item() == pytest.approx(expected, rel=1e-5)
    changed = pred.detach().clone()
    changed[0, 1] = 100.0                                    # a visible patch
    assert mae_loss(changed, target, mask).item() == mae_loss(pred, target, mask).item()
    mae_loss(pred, target, mask).backward()
    assert torch.all(pred.grad[0, 1] == 0) and torch.all(pred.grad[0, 0] != 0)


def test_loss_and_mask_stay_float32_under_bfloat16():
    # 513 hidden patches: bfloat16 counts them as 512
    n = 513
    half = torch.ones(1, n, dtype=torch.bfloat16)
    loss = mae_loss(torch.zeros(1, n, 1), torch.ones(1, n, 1), half, norm_pix=False)
    assert loss.item() == pytest.approx(1.0, abs=1e-7)
    _, mask, _ = random_masking(torch.rand(2, 16, 4).bfloat16(), 0.5)
    assert mask.dtype == torch.float32


def test_norm_pix_normalises_each_patch():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(2, 5, 12, generator=g) * 3 + 7
    mean, std = target.mean(-1, keepdim=True), target.var(-1, keepdim=True).add(1e-6).sqrt()
    mask = torch.ones(2, 5)
    assert mae_loss((target - mean) / std, target, mask).item() == pytest.approx(0.0, abs=1e-10)
    # the same patches shifted and scaled per patch give the same normalised targets
    scaled = target * torch.rand(2, 5, 1, generator=g).add(0.5) - 4
    pred = torch.randn(2, 5, 12, generator=g)
    assert mae_loss(pred, scaled, mask).item() == pytest.approx(
        mae_loss(pred, target, mask).item(), rel=1e-4)


@pytest.mark.parametrize("channels", [1, 3])
def test_a_few_steps_on_a_fixed_batch_lower_the_loss(channels):
    torch.manual_seed(0)
    method = build_method("mae", _vit(channels), **SMALL)
    method.configure_for_dataset(n_items=100, batch_size=8)
    x = torch.rand(8, channels, 16, 16, generator=torch.Generator().manual_seed(1))
    opt = torch.optim.AdamW(method.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        torch.manual_seed(2)                                 # the same mask every step
        loss = method.training_loss([x, x.flip(-1)])["loss"]
        opt.zero_grad()
        loss.backward()
        assert all(p.grad is not None for p in method.parameters() if p.requires_grad)
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_only_the_first_view_is_reconstructed():
    torch.manual_seed(0)
    method = build_method("mae", _vit(), **SMALL)
    x, other = torch.rand(4, 1, 16, 16), torch.rand(4, 1, 8, 8)
    torch.manual_seed(3)
    one = method.training_loss([x])["loss"]
    torch.manual_seed(3)
    two = method.training_loss([x, other])["loss"]
    assert one.item() == two.item()
    with pytest.raises(ConfigError, match="one view per image"):
        method.training_loss([])


def test_embedding_is_the_backbones_unmasked_class_token():
    torch.manual_seed(0)
    vit = _vit(3, patch=4, img=16).eval()
    method = build_method("mae", vit, **SMALL).eval()
    x = torch.rand(2, 3, 24, 24)                             # another size: positions interpolated
    with torch.no_grad():
        assert torch.equal(method.embed(x), vit(x))
        assert method.embed(x, "block3").shape == (2, 192)
    assert "projection" not in method.layers()
    with pytest.raises(ConfigError, match="unknown embedding layer 'projection'"):
        method.embed(x, "projection")


def test_encoder_sees_only_the_visible_patches():
    torch.manual_seed(0)
    method = build_method("mae", _vit(1, patch=4, img=16), **SMALL, mask_ratio=0.75)
    lengths = []
    method.backbone.vit.blocks[0].register_forward_hook(lambda m, i, o: lengths.append(i[0].shape[1]))
    method.training_loss([torch.rand(2, 1, 16, 16)])
    assert lengths == [1 + 4]                                # class token + 16 · 0.25 patches


def test_config_errors_name_the_key():
    vit = _vit()
    with pytest.raises(ConfigError, match=r"method 'mae': mask_ratio: must be less than 1.0 "
                                          r"\(got 1.0\)"):
        build_method("mae", vit, mask_ratio=1.0)
    with pytest.raises(ConfigError, match=r"mask_ratio: must be more than 0.0"):
        build_method("mae", vit, mask_ratio=0)
    with pytest.raises(ConfigError, match=r"decoder_heads: must divide decoder_dim 32 \(got 3\)"):
        build_method("mae", vit, decoder_dim=32, decoder_heads=3)
    with pytest.raises(ConfigError, match=r"decoder_dim: must be a multiple of 4 \(got 30\)"):
        build_method("mae", vit, decoder_dim=30, decoder_heads=2)
    with pytest.raises(ConfigError) as err:
        build_method("mae", build_backbone("vgg_mnist", 1, width=0.125))
    text = err.value.format()
    assert text.startswith("backbone: method 'mae' works only on the Vision Transformer "
                           "backbones (vit_tiny, vit_small), got 'vgg_mnist'")
    assert METHODS["mae"].backbones == ("vit_tiny", "vit_small")
    one_value = build_backbone("vit_tiny", 1, patch_size=1, img_size=4)
    with pytest.raises(ConfigError, match="norm_pix_loss needs patches of at least 2 values"):
        build_method("mae", one_value, **SMALL)
    assert build_method("mae", one_value, **SMALL, norm_pix_loss=False).decoder.pred.out_features == 1


def test_view_sizes_must_be_whole_patches():
    method = build_method("mae", _vit(1, patch=8, img=16), **SMALL)
    with pytest.raises(ConfigError, match=r"18×18 px, not a multiple of the backbone's "
                                          r"patch_size 8"):
        method.training_loss([torch.rand(2, 1, 18, 18)])
    with pytest.raises(ConfigError, match="at least 2 patches"):
        method.training_loss([torch.rand(2, 1, 8, 8)])


def test_recipe_and_defaults_are_the_papers_with_a_small_decoder():
    r = METHODS["mae"].recipe
    assert (r.optimizer, r.lr, r.lr_scaling, r.weight_decay) == ("adamw", 1.5e-4, "linear", 0.05)
    assert r.momentum == 0.9 and r.warmup_max_epochs == 40 and r.exclude_bias_norm
    assert "0.95" in r.reference
    c = method_config("mae")
    assert (c.mask_ratio, c.decoder_dim, c.decoder_depth, c.decoder_heads) == (0.75, 128, 2, 4)
    assert c.norm_pix_loss is True
    assert METHODS["mae"].target_momentum(c, 0.5) is None    # no target network


def test_a_short_run_through_the_training_loop(tmp_path):
    from bioaug.train.checkpoint import load_trained, read_checkpoint
    from bioaug.train.loop import train
    from bioaug.train.metrics import read_metrics
    from tests.train.helpers import make_store, tiny_config, write_protocol

    store = make_store(tmp_path / "store", n=32, size=32)
    protocol = write_protocol(tmp_path / "tiny.yaml", crop=24)
    cfg = tiny_config(store, protocol, tmp_path / "run", method="mae", backbone="vit_tiny",
                      width=None, lr=None, batch_size=8, epochs=1,
                      backbone_kwargs={"patch_size": 8, "img_size": 24}, method_kwargs=SMALL)
    run = train(cfg)
    rows = read_metrics(run / "metrics.csv")
    assert len(rows) == 4 and all(math.isfinite(r["loss"]) for r in rows)
    ck = read_checkpoint(run)
    assert ck["finished"] and "decoder.mask_token" in ck["model"]
    assert ck["method"]["name"] == "mae"
    trained = load_trained(run)                              # embeds as any ViT run does
    x = torch.rand(3, 2, 24, 24)
    with torch.no_grad():
        assert torch.equal(trained.method.embed(x), trained.backbone(x))


def test_a_crop_of_partial_patches_is_refused_before_training(tmp_path):
    from bioaug.train.checks import prepare_run
    from tests.train.helpers import make_store, tiny_config, write_protocol

    store = make_store(tmp_path / "store", n=32, size=32)
    protocol = write_protocol(tmp_path / "tiny.yaml", crop=20)
    cfg = tiny_config(store, protocol, tmp_path / "run", method="mae", backbone="vit_tiny",
                      width=None, lr=None, batch_size=8, epochs=1,
                      backbone_kwargs={"patch_size": 8, "img_size": 24}, method_kwargs=SMALL)
    with pytest.raises(ConfigError, match=r"20×20 px, not a multiple of the backbone's "
                                          r"patch_size 8") as e:
        prepare_run(cfg, world_size=1)     # what the run and a dry run check first
    assert "16 or 24" in e.value.hint
    assert not (tmp_path / "run").exists()
