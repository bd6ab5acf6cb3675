"""The shipped protocols: all valid, documented, runnable."""

from __future__ import annotations

import pytest
import torch

from bioaug.augment import build_pipeline, load_protocol, protocols_dir, shipped_protocols

EXPECTED = {"bbbc021-expert", "moco-v2-default", "simclr-default", "none", "moco-v2-ventral",
            "moco-v2-dorsal", "cifar-default", "mnist-crop", "mnist-rotation", "mnist-affine",
            "mnist-blur", "mnist-all"}


def test_the_expected_protocols_ship() -> None:
    assert set(shipped_protocols()) >= EXPECTED
    assert protocols_dir().name == "protocols"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_protocol_validates_and_runs(name: str) -> None:
    protocol = load_protocol(name)
    assert protocol.name == name
    assert len(protocol.description) > 80  # says what it is for and where it comes from
    n = len(protocol.channels) if protocol.channels else 3
    pipe = build_pipeline(protocol, n, protocol.channels)
    x = torch.rand(6, n, 40, 40, generator=torch.Generator().manual_seed(0))
    views = pipe(x, torch.Generator().manual_seed(0))
    assert len(views) == 2
    for v, size in zip(views, protocol.crop_sizes, strict=True):
        assert v.shape == (6, n, size, size)
        assert torch.isfinite(v).all() and float(v.min()) >= 0 and float(v.max()) <= 1


def test_expert_protocol_keeps_channel_identity() -> None:
    ops = {s.op for v in load_protocol("bbbc021-expert").views for s in v.steps}
    assert {"stain_jitter", "rotate90", "flip", "channel_dropout"} <= ops
    assert not ops & {"color_jitter", "grayscale"}
    assert load_protocol("bbbc021-expert").crop_sizes == [64, 64]


def test_moco_v2_default_is_the_published_recipe() -> None:
    steps = {s.op: s.params for s in load_protocol("moco-v2-default").views[0].steps}
    assert steps["random_resized_crop"].scale == (0.2, 1.0)
    cj = steps["color_jitter"]
    assert (cj.brightness, cj.contrast, cj.saturation, cj.hue, cj.p) == (
        (0.6, 1.4), (0.6, 1.4), (0.6, 1.4), (-0.1, 0.1), 0.8)
    assert steps["grayscale"].p == 0.2
    assert (steps["gaussian_blur"].sigma, steps["gaussian_blur"].p) == ((0.1, 2.0), 0.5)
    assert steps["flip"].horizontal and not steps["flip"].vertical
    assert load_protocol("moco-v2-default").crop_sizes == [64, 64]


def test_ventral_is_spatial_and_dorsal_is_appearance_only() -> None:
    ventral = {s.op for s in load_protocol("moco-v2-ventral").views[0].steps}
    dorsal = {s.op for s in load_protocol("moco-v2-dorsal").views[0].steps}
    assert ventral == {"random_resized_crop", "flip"}
    assert {"color_jitter", "grayscale", "gaussian_blur"} <= dorsal
    assert not dorsal & {"random_resized_crop", "flip", "rotate90", "rotate", "affine"}


def test_cifar_and_mnist_sizes() -> None:
    assert load_protocol("cifar-default").crop_sizes == [32, 32]
    cj = load_protocol("cifar-default").views[0].steps[1].params
    assert (cj.brightness, cj.contrast, cj.saturation, cj.hue) == (
        (0.6, 1.4), (0.6, 1.4), (0.8, 1.2), (-0.1, 0.1))
    for name in ("mnist-crop", "mnist-rotation", "mnist-affine", "mnist-blur", "mnist-all"):
        p = load_protocol(name)
        assert p.crop_sizes == [28, 28] and p.channels == ["gray"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_show_output_reads_back_identically(name: str) -> None:
    from bioaug.augment import parse_protocol

    protocol = load_protocol(name)
    assert parse_protocol(protocol.to_yaml(), "shown.yaml").to_dict() == protocol.to_dict()


@pytest.mark.parametrize(("name", "sizes"), [("dino-multicrop", [48] * 2 + [24] * 6),
                                             ("mnist-multicrop", [28] * 2 + [14] * 4),
                                             ("ifc-cellcycle-multicrop", [40] * 2 + [24] * 4)])
def test_multicrop_protocols_make_global_and_local_views(name: str, sizes: list[int]) -> None:
    protocol = load_protocol(name)
    assert protocol.name == name and len(protocol.description) > 80
    assert protocol.crop_sizes == sizes and protocol.n_views == len(sizes)
    n = len(protocol.channels) if protocol.channels else 5  # any channel count
    x = torch.rand(4, n, 64, 64, generator=torch.Generator().manual_seed(0))
    views = build_pipeline(protocol, n, protocol.channels)(x, torch.Generator().manual_seed(0))
    assert [v.shape[-1] for v in views] == sizes
    assert all(torch.isfinite(v).all() and 0 <= float(v.min()) <= float(v.max()) <= 1
               for v in views)


def test_mnist_mae_makes_one_view_of_28_px() -> None:
    protocol = load_protocol("mnist-mae")
    assert protocol.n_views == 1 and protocol.crop_sizes == [28]
    assert len(protocol.description) > 80 and protocol.channels == ["gray"]
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    views = build_pipeline(protocol, 1, protocol.channels)(x, torch.Generator().manual_seed(0))
    assert len(views) == 1 and views[0].shape == (4, 1, 28, 28)
    assert not torch.equal(views[0], x)  # cropped and moved
