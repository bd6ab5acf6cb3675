"""RUN/attention.png: a ViT's class-token attention beside stored cells."""

from __future__ import annotations

import torch
from PIL import Image

from bioaug.data.store import Store
from bioaug.models import build_backbone
from bioaug.train.attention import attention_columns, write_attention


def test_attention_picture_for_a_vit_and_none_for_a_cnn(tiny_store, tmp_path):
    store = Store.open(tiny_store)
    vit = build_backbone("vit_tiny", store.n_channels, patch_size=8, img_size=32)
    vit.train()
    out = write_attention(tmp_path / "attention.png", vit, store, 3)
    assert out is not None and out.is_file() and vit.training
    width, height = Image.open(out).size
    assert width > height  # cell, mean attention and 3 heads side by side, 3 rows
    cnn = build_backbone("vgg_mnist", store.n_channels, width=0.25)
    assert write_attention(tmp_path / "none.png", cnn, store, 3) is None
    assert not (tmp_path / "none.png").exists()


def test_attention_columns_are_scaled_maps_at_the_image_size():
    vit = build_backbone("vit_tiny", 1, patch_size=8, img_size=24).eval()
    cols = attention_columns(vit, torch.rand(2, 1, 20, 20))
    assert [t for t, _ in cols] == ["cell", "attention", "head 1", "head 2", "head 3"]
    for _, batch in cols[1:]:
        assert batch.shape == (2, 1, 20, 20)
        assert float(batch.amin()) == 0.0 and abs(float(batch.amax()) - 1.0) < 1e-6
