"""Pipelines: shapes, replay, shards, fusion, the end-of-view rule, channel checks."""

from __future__ import annotations

import pytest
import torch

from bioaug.augment import build_pipeline, fit_to_crop, load_protocol, native, parse_protocol
from bioaug.errors import DataError, ProtocolError

PROTO = """\
bioaug_protocol: 1
name: p
views:
  - crop_size: 12
    steps:
      - random_resized_crop: {scale: [0.4, 1.0]}
      - rotate90: {}
      - flip: {horizontal: true, vertical: true, p: 0.5}
      - stain_jitter: {brightness: 0.3, contrast: 0.3, gamma: 0.2, p: 0.7}
      - channel_dropout: {p: 0.3}
      - gaussian_blur: {sigma: [0.5, 1.0], p: 0.5}
      - gaussian_noise: {std: [0.01, 0.05], p: 0.5}
  - crop_size: 8
    steps:
      - rotate: {degrees: 30, p: 0.5}
  - same_as: 0
"""


@pytest.fixture
def x() -> torch.Tensor:
    return torch.rand(10, 3, 20, 20, generator=torch.Generator().manual_seed(0))


def test_views_have_crop_sizes_and_stay_on_device(x: torch.Tensor) -> None:
    pipe = build_pipeline(parse_protocol(PROTO), 3)
    assert pipe.n_views == 3 and pipe.crop_sizes == [12, 8, 12]
    views = pipe(x, torch.Generator().manual_seed(0))
    assert [tuple(v.shape) for v in views] == [(10, 3, 12, 12), (10, 3, 8, 8), (10, 3, 12, 12)]
    assert all(v.device == x.device and v.dtype == torch.float32 for v in views)
    assert not torch.equal(views[0], views[2])  # same recipe, independent draws


def test_same_seed_same_views_different_seed_different(x: torch.Tensor) -> None:
    pipe = build_pipeline(parse_protocol(PROTO), 3)
    a = pipe(x, torch.Generator().manual_seed(5))
    b = pipe(x, torch.Generator().manual_seed(5))
    c = pipe(x, torch.Generator().manual_seed(6))
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])


def test_sample_then_apply_equals_call_and_replays(x: torch.Tensor) -> None:
    pipe = build_pipeline(parse_protocol(PROTO), 3)
    params = pipe.sample(10, (3, 20, 20), torch.Generator().manual_seed(5))
    direct = pipe(x, torch.Generator().manual_seed(5))
    assert all(torch.equal(u, v) for u, v in zip(pipe.apply(x, params), direct, strict=True))
    assert all(torch.equal(u, v) for u, v in zip(pipe.apply(x, params), direct, strict=True))


@pytest.mark.parametrize("idx", [slice(2, 7), torch.tensor([9, 0, 4]),
                                 torch.arange(10) % 3 == 0])
def test_select_gives_each_shard_its_share(x: torch.Tensor, idx) -> None:
    pipe = build_pipeline(parse_protocol(PROTO), 3)
    params = pipe.sample(10, (3, 20, 20), torch.Generator().manual_seed(1))
    full = pipe.apply(x, params)
    shard = pipe.apply(x[idx], params.select(idx))
    for f, s in zip(full, shard, strict=True):
        torch.testing.assert_close(s, f[idx], atol=1e-6, rtol=0)


def test_input_batch_is_never_modified_and_outputs_do_not_alias_it(x: torch.Tensor) -> None:
    before = x.clone()
    pipe = build_pipeline(parse_protocol(PROTO.replace("crop_size: 12", "crop_size: 20")), 3)
    views = pipe(x, torch.Generator().manual_seed(0))
    assert torch.equal(x, before)
    identity = build_pipeline(load_protocol("none").with_crop_size(20), 3)
    out = identity(x)
    assert torch.equal(out[0], x)
    out[0].zero_()
    assert torch.equal(x, before)
    assert len(views) == 3


def test_end_of_view_rule_center_crops_or_resizes() -> None:
    big = torch.rand(2, 1, 30, 40)
    assert torch.equal(fit_to_crop(big, 10), big[:, :, 10:20, 15:25])
    small = torch.rand(2, 1, 6, 8)
    out = fit_to_crop(small, 12)
    assert out.shape == (2, 1, 12, 12)
    same = torch.rand(1, 1, 5, 5)
    assert fit_to_crop(same, 5) is same


def test_none_protocol_is_the_central_window(x: torch.Tensor) -> None:
    pipe = build_pipeline(load_protocol("none").with_crop_size(8), 3)
    views = pipe(x, torch.Generator().manual_seed(0))
    assert torch.equal(views[0], x[:, :, 6:14, 6:14]) and torch.equal(views[1], views[0])


def test_channel_count_the_op_cannot_handle() -> None:
    protocol = load_protocol("moco-v2-default")
    with pytest.raises(ProtocolError) as info:
        build_pipeline(protocol, 1)
    message = info.value.format()
    assert "moco-v2-default.yaml:" in message
    assert "views[0].steps[1].color_jitter: color_jitter supports exactly 3 channels (RGB); " \
           "the data has 1 channel" in message
    assert "views[0].steps[2].grayscale" in message


def test_declared_channels_must_match_the_data() -> None:
    protocol = load_protocol("bbbc021-expert")
    build_pipeline(protocol, 3, ["dapi", "tubulin", "actin"])  # case does not matter
    with pytest.raises(ProtocolError, match=r"declares 3 channel\(s\) \(DAPI, Tubulin, Actin\) "
                                            "but the data has 4"):
        build_pipeline(protocol, 4)
    with pytest.raises(ProtocolError, match=r"channels \[DAPI, Tubulin, Actin\] but the data's "
                                            r"are \[Actin, Tubulin, DAPI\]"):
        build_pipeline(protocol, 3, ["Actin", "Tubulin", "DAPI"])


def test_bad_batches_are_clear_errors(x: torch.Tensor) -> None:
    pipe = build_pipeline(parse_protocol(PROTO), 3)
    with pytest.raises(DataError, match="batch"):
        pipe(x[0])
    with pytest.raises(DataError, match="float"):
        pipe((x * 255).to(torch.uint8))
    with pytest.raises(DataError, match="built for 3 channel"):
        pipe(torch.rand(2, 4, 20, 20))
    params = pipe.sample(10, (3, 20, 20))
    with pytest.raises(DataError, match="select"):
        pipe.apply(x[:4], params)


def test_pipeline_pickles_for_data_loader_workers(x: torch.Tensor) -> None:
    import pickle

    pipe = build_pipeline(parse_protocol(PROTO), 3)
    copy = pickle.loads(pickle.dumps(pipe))
    a = pipe(x, torch.Generator().manual_seed(0))
    b = copy(x, torch.Generator().manual_seed(0))
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_gives_the_cpu_views_for_the_same_parameters(x: torch.Tensor) -> None:
    pipe = build_pipeline(parse_protocol(PROTO), 3)
    params = pipe.sample(10, (3, 20, 20), torch.Generator().manual_seed(0))
    cpu = pipe.apply(x, params)
    gpu = pipe.apply(x.cuda(), params.to("cuda"))
    for a, b in zip(cpu, gpu, strict=True):
        assert b.device.type == "cuda"
        torch.testing.assert_close(b.cpu(), a, atol=1e-4, rtol=0)
    views = pipe(x.cuda(), torch.Generator(device="cuda").manual_seed(0))
    assert all(v.device.type == "cuda" for v in views)


@pytest.mark.parametrize("name", ["bbbc021-expert", "cellpainting-expert", "mnist-all",
                                  "simclr-default"])
def test_compiled_kernels_give_the_torch_views(monkeypatch, name: str) -> None:
    """The CPU kernels (bioaug.augment.native) change speed, not results: the same draws
    give the views of the torch code up to float rounding."""
    proto = load_protocol(name)
    c = len(proto.channels) if proto.channels else 3
    pipe = build_pipeline(proto, c)
    x = torch.rand(24, c, 48, 48, generator=torch.Generator().manual_seed(2))
    params = pipe.sample(24, (c, 48, 48), torch.Generator().manual_seed(3))
    compiled = pipe.apply(x, params)
    monkeypatch.setenv(native.ENV, "0")
    reference = pipe.apply(x, params)
    for a, b in zip(compiled, reference, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_views_still_held_are_never_overwritten_and_released_ones_are_reused(x) -> None:
    pipe = build_pipeline(parse_protocol(PROTO), 3)
    first = pipe(x, torch.Generator().manual_seed(0))
    kept = [v.clone() for v in first]
    second = pipe(x, torch.Generator().manual_seed(1))
    for v, k in zip(first, kept, strict=True):
        assert torch.equal(v, k)
    addresses = {v.data_ptr() for v in second}
    del first, second
    third = pipe(x, torch.Generator().manual_seed(2))
    assert {v.data_ptr() for v in third} == addresses


MULTI = """\
bioaug_protocol: 1
name: multi
views:
  - crop_size: 16
    count: 2
    steps:
      - random_resized_crop: {scale: [0.4, 1.0]}
      - rotate90: {}
      - flip: {horizontal: true, vertical: true, p: 0.5}
      - stain_jitter: {brightness: 0.3, contrast: 0.3, p: 0.7}
  - crop_size: 8
    count: 3
    steps:
      - random_resized_crop: {scale: [0.05, 0.4]}
      - gaussian_noise: {std: [0.01, 0.05], p: 0.5}
"""


def test_count_makes_independent_views_of_each_size(x: torch.Tensor) -> None:
    pipe = build_pipeline(parse_protocol(MULTI), 3)
    assert pipe.n_views == 5 and pipe.crop_sizes == [16, 16, 8, 8, 8]
    views = pipe(x, torch.Generator().manual_seed(0))
    assert [tuple(v.shape) for v in views] == [(10, 3, 16, 16)] * 2 + [(10, 3, 8, 8)] * 3
    assert not torch.equal(views[0], views[1]) and not torch.equal(views[2], views[3])
    # the views of one size share one output block (made together)
    assert views[0].untyped_storage().data_ptr() == views[1].untyped_storage().data_ptr()
    assert views[2].untyped_storage().data_ptr() == views[4].untyped_storage().data_ptr()


def test_multicrop_views_replay_and_shard(x: torch.Tensor) -> None:
    pipe = build_pipeline(parse_protocol(MULTI), 3)
    params = pipe.sample(10, (3, 20, 20), torch.Generator().manual_seed(0))
    whole = [v.clone() for v in pipe.apply(x, params)]
    again = pipe(x, torch.Generator().manual_seed(0))
    half = pipe.apply(x[5:], params.select(slice(5, 10)))
    for w, a, h in zip(whole, again, half, strict=True):
        torch.testing.assert_close(w, a, atol=1e-6, rtol=0)
        torch.testing.assert_close(w[5:], h, atol=1e-5, rtol=0)


def test_copies_of_one_recipe_run_as_one_batch_with_the_same_views(x: torch.Tensor) -> None:
    """The accelerator path (copies of a recipe joined along the batch) gives the views of
    running each copy on its own, for the same draws."""
    pipe = build_pipeline(parse_protocol(MULTI), 3)
    params = pipe.sample(10, (3, 20, 20), torch.Generator().manual_seed(1))
    joined = pipe._apply_on_device(x, params)
    alone = [view.run(x, drawn) for view, drawn in zip(pipe.views, params.views, strict=True)]
    for a, b in zip(joined, alone, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_multicrop_gives_the_cpu_views(x: torch.Tensor) -> None:
    pipe = build_pipeline(parse_protocol(MULTI), 3)
    params = pipe.sample(10, (3, 20, 20), torch.Generator().manual_seed(0))
    cpu = pipe.apply(x, params)
    gpu = pipe.apply(x.cuda(), params.to("cuda"))
    for a, b in zip(cpu, gpu, strict=True):
        torch.testing.assert_close(b.cpu(), a, atol=1e-4, rtol=0)


def test_channel_names_match_by_one_rule() -> None:
    from bioaug.augment import same_channels

    assert same_channels(["DAPI", "Actin"], ["dapi", "ACTIN"])
    assert not same_channels(["DAPI", "Actin"], ["Actin", "DAPI"])
    assert not same_channels(["DAPI"], ["DAPI", "Actin"])
