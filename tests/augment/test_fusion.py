"""Geometric fusion: crop + quarter turns + flips resampled once, same views."""

from __future__ import annotations

import torch

from bioaug.augment import build_pipeline, make_op, parse_protocol
from bioaug.augment.fusion import FusedWarp, plan

PROTO = """\
bioaug_protocol: 1
views:
  - crop_size: 10
    steps:
      - random_resized_crop: {scale: [0.3, 1.0], ratio: [0.5, 2.0]}
      - rotate90: {}
      - flip: {horizontal: true, vertical: true, p: 0.5}
      - stain_jitter: {}
      - rotate90: {}
"""


def test_plan_fuses_runs_that_start_with_a_crop() -> None:
    pipe = build_pipeline(parse_protocol(PROTO), 2)
    assert pipe.views[0].stages == [(0, 3), (3, 4), (4, 5)]
    alone = [make_op("rotate90", p=1.0), make_op("flip", p=1.0)]
    assert plan(alone) == [(0, 1), (1, 2)]  # exact permutations stay exact


def test_plan_reads_the_ops_declarations_not_their_classes() -> None:
    """A fusable op that declares ``resamples`` starts a fused run, whatever its class."""
    from bioaug.augment import OPS
    from bioaug.augment.ops import register_op
    from bioaug.augment.ops.crop import RandomResizedCrop

    class _OtherCrop(RandomResizedCrop):
        name = "test_other_crop"

    register_op(_OtherCrop)
    try:
        ops = [make_op("test_other_crop", size=8, p=1.0), make_op("rotate90", p=1.0),
               make_op("flip", p=1.0), make_op("random_resized_crop", size=8, p=1.0),
               make_op("flip", p=1.0)]
        assert plan(ops) == [(0, 3), (3, 5)]
    finally:
        OPS.pop("test_other_crop")


def test_fused_equals_step_by_step_for_every_symmetry() -> None:
    x = torch.rand(64, 2, 17, 23, generator=torch.Generator().manual_seed(0))
    ops = [make_op("random_resized_crop", scale=[0.3, 1.0], ratio=[0.5, 2.0], size=10, p=0.8),
           make_op("rotate90", p=1.0), make_op("flip", horizontal=True, vertical=True, p=0.5)]
    g = torch.Generator().manual_seed(1)
    shape = (2, 17, 23)
    params = []
    for op in ops:
        params.append(op.sample(64, shape, g))
        shape = op.output_shape(shape)
    fused = FusedWarp(ops).apply(x, params)
    y = x
    for op, p in zip(ops, params, strict=True):
        y = op.apply(y, p)
    torch.testing.assert_close(fused, y, atol=5e-5, rtol=0)
