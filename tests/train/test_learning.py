"""A short training run on real handwritten digits learns: its features beat its own
random initialisation (and chance) at 20-nearest-neighbour classification.

scikit-learn's digits (1,797 images, upscaled to 28 px, shipped with the package, no
download), the shipped ``mnist-all`` protocol, a narrow ``vgg_mnist`` and the method's
recipe (nothing tuned here): the test fails if the recipe, the loop or the method stops
learning.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bioaug.data.natural import prepare_natural
from bioaug.data.store import Store
from bioaug.train import TrainConfig, load_trained, train
from bioaug.train.checks import build_run_model
from bioaug.train.data import to_unit_float
from bioaug.train.knn import knn_accuracy


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
