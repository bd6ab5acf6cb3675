"""A short training run on real cells learns: its features beat its own random
initialisation at telling cell-cycle phases apart.

The real imaging-flow-cytometry cells of ``../shared/data/real/ifc-cellcycle`` (3,419 Jurkat
cells, brightfield / DNA / darkfield, seven phases; Blasi et al. 2016) enter through
``prepare_crops`` as a user's would; MoCo v2 on a narrow VGG13 with the shipped
``ifc-cellcycle-expert`` protocol and the method's own recipe (nothing tuned here), 150
steps. The score is the accuracy of a cosine 20-NN vote over standardised features (5-fold,
stratified), as ``benchmarks/learning.py`` reports it: the test fails if the recipe, the
loop, the protocol or the method stops learning on real cells.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bioaug.data.crops import prepare_crops
from bioaug.data.store import Store
from bioaug.train import TrainConfig, load_trained, train
from bioaug.train.checks import build_run_model
from tests.conftest import REPO

IFC = REPO.parent / "shared" / "data" / "real" / "ifc-cellcycle"

pytestmark = pytest.mark.skipif(
    not (IFC / "cells.npz").is_file(),
    reason=f"the real cells are not there: {IFC} (the shared data folder beside the repository)")


@pytest.fixture(scope="module")
def ifc_store(tmp_path_factory) -> Store:
    out = tmp_path_factory.mktemp("ifc") / "store"
    return prepare_crops(IFC / "cells.npz", out, obs=IFC / "cells.csv")


def knn20(backbone: torch.nn.Module, store: Store) -> tuple[float, float]:
    """Accuracy and balanced accuracy of the cosine 20-NN vote on standardised features,
    5-fold stratified."""
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import StandardScaler

    backbone.eval()
    with torch.no_grad():
        x = backbone(torch.from_numpy(store.read_float(np.arange(len(store))))).numpy()
    x = StandardScaler().fit_transform(x)
    y = store.obs[store.label_column].astype(str).to_numpy()
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    knn = KNeighborsClassifier(20, metric="cosine", algorithm="brute")
    pred = cross_val_predict(knn, x, y, cv=folds)
    return float(np.mean(pred == y)), float(balanced_accuracy_score(y, pred))


def test_store_holds_the_real_cells(ifc_store):
    assert len(ifc_store) == 3419 and ifc_store.label_column == "phase"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_moco_v2_learns_real_cells(ifc_store, tmp_path):
    cfg = TrainConfig(data=ifc_store.path, protocol="ifc-cellcycle-expert", out=tmp_path / "run",
                      method="moco_v2", backbone="vgg13_bn", width=0.25, batch_size=128,
                      epochs=6, max_steps=150, seed=0, device="cpu", num_workers=0,
                      tensorboard=False)
    init = knn20(build_run_model(cfg, 3, len(ifc_store)).backbone, ifc_store)
    learned = knn20(load_trained(train(cfg)).backbone, ifc_store)
    print("20-NN accuracy, balanced accuracy: init", init, "learned", learned)
    # measured: 0.599 → 0.711, balanced accuracy 0.478 → 0.497 (raw pixels: 0.674 and
    # 0.547; 300 steps pass both, see docs/training.md; the rare mitotic phases decide the
    # balanced score)
    assert learned[0] >= init[0] + 0.08, (init, learned)
