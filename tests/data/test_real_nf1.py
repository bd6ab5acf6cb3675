"""Real known answers: nucleus finding and mask crops against CellProfiler (nf1-cellpainting).

Five real Cell Painting fields with the binary nucleus masks CellProfiler wrote for them.
The known answers (CellProfiler's objects, their centroids, which crops fit in the field)
are computed here with scipy alone, independently of bioaug.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from scipy import ndimage

from bioaug.data.prepare import prepare_images
from bioaug.data.store import Store
from tests.conftest import REPO

DATA = REPO.parent / "shared" / "data" / "real" / "nf1-cellpainting"
CROP = 96

pytestmark = pytest.mark.skipif(
    not (DATA / "Plate_2_images").is_dir(),
    reason=f"real nf1-cellpainting fields not found at {DATA} (../shared/data/real)")


def fields() -> pd.DataFrame:
    rows = []
    for f in sorted((DATA / "Plate_2_images").glob("*_DAPI_001.tif")):
        well, plane, _, site = f.name.split("_")[:4]  # <Well>_01_<ch>_<site>_DAPI_001.tif
        rows.append({"well": well, "site": int(site), "dapi": f,
                     "gfp": f.parent / f"{well}_{plane}_2_{site}_GFP_001.tif",
                     "rfp": f.parent / f"{well}_{plane}_3_{site}_RFP_001.tif",
                     "mask": DATA / "Plate_2_masks" / f.name.replace(".tif", "_MaskNuclei.tiff")})
    return pd.DataFrame(rows)


def cellprofiler_nuclei(mask_file: Path) -> np.ndarray:
    """Centroids (y, x) of CellProfiler's nuclei: 8-connected components of the 0/255 mask."""
    mask = tifffile.imread(mask_file) > 0
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    return np.array(ndimage.center_of_mass(mask, labels, np.arange(1, n + 1))).reshape(-1, 2)


def load_data_csv(path: Path, channels: dict[str, str], masks: bool) -> Path:
    f = fields()
    table: dict[str, object] = {}
    for name, col in channels.items():
        table[f"FileName_{name}"] = [p.name for p in f[col]]
        table[f"PathName_{name}"] = [f"{p.parent}/" for p in f[col]]
    if masks:
        table["FileName_MaskNuclei"] = [p.name for p in f["mask"]]
        table["PathName_MaskNuclei"] = [f"{p.parent}/" for p in f["mask"]]
    table.update({"Metadata_Plate": "Plate_2", "Metadata_Well": list(f["well"]),
                  "Metadata_Site": list(f["site"])})
    pd.DataFrame(table).to_csv(path, index=False)
    return path


def nearest(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance from each centre of ``a`` to the nearest of ``b``."""
    if len(b) == 0:
        return np.full(len(a), np.inf)
    return np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1)).min(1)


@pytest.fixture(scope="module")
def found(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """bioaug's nuclei on the DAPI fields, every one kept (edge reflect)."""
    tmp = tmp_path_factory.mktemp("nf1_nuclei")
    csv = load_data_csv(tmp / "load_data.csv", {"DAPI": "dapi"}, masks=False)
    return prepare_images(csv, tmp / "store", edge="reflect", crop_size=8)


def test_masks_are_cellprofiler_objects() -> None:
    """The masks hold separate objects; touching nuclei never share a border in them."""
    for m in fields()["mask"]:
        mask = tifffile.imread(m)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
        n4 = ndimage.label(mask > 0)[1]
        n8 = ndimage.label(mask > 0, structure=np.ones((3, 3)))[1]
        assert n4 == n8 and 20 <= n8 <= 35  # 23–29 nuclei per field


def test_nucleus_finding_agrees_with_cellprofiler(found: Store) -> None:
    f = fields()
    hits_ref = hits_det = n_ref = n_det = 0
    for k, mask in enumerate(f["mask"]):
        ref = cellprofiler_nuclei(mask)
        rows = found.obs["image_number"] == k + 1
        det = found.obs.loc[rows, ["center_y", "center_x"]].to_numpy()
        recall = float((nearest(ref, det) <= 5).mean())
        precision = float((nearest(det, ref) <= 5).mean())
        # measured: recall 0.931–1.000, precision 0.900–1.000 per field
        assert recall >= 0.9 and precision >= 0.85, (f["well"][k], recall, precision)
        assert abs(len(det) - len(ref)) <= 3
        hits_ref += int((nearest(ref, det) <= 5).sum())
        hits_det += int((nearest(det, ref) <= 5).sum())
        n_ref, n_det = n_ref + len(ref), n_det + len(det)
    # measured: 132 CellProfiler nuclei, 135 bioaug; recall 0.970, precision 0.948
    assert hits_ref / n_ref >= 0.95 and hits_det / n_det >= 0.92


def test_masks_column_crops_cellprofiler_nuclei(tmp_path: Path) -> None:
    csv = load_data_csv(tmp_path / "load_data.csv",
                        {"DAPI": "dapi", "GFP": "gfp", "RFP": "rfp"}, masks=True)
    # what `bioaug data prepare images --masks-column MaskNuclei` runs (the CLI's parser
    # loads every model: too slow for this test)
    store = prepare_images(csv, tmp_path / "store", masks_column="MaskNuclei", crop_size=CROP)
    assert store.channels == ["DAPI", "GFP", "RFP"]
    f = fields()
    for k in range(len(f)):
        ref = cellprofiler_nuclei(f["mask"][k])
        dapi = tifffile.imread(f["dapi"][k]).astype(np.float64)
        h, w = dapi.shape
        y0 = np.rint(ref[:, 0]).astype(int) - CROP // 2
        x0 = np.rint(ref[:, 1]).astype(int) - CROP // 2
        fits = (y0 >= 0) & (x0 >= 0) & (y0 + CROP <= h) & (x0 + CROP <= w)
        rows = np.flatnonzero(store.obs["image_number"] == k + 1)
        assert len(rows) == int(fits.sum()) > 10
        got = store.obs.iloc[rows][["center_y", "center_x"]].to_numpy()
        np.testing.assert_allclose(got, ref[fits], atol=0.006)
        # each crop's DAPI is the field's DAPI around that centroid (up to the scaling)
        crops = store.read_float(rows)[:, 0]
        for crop, ty, tx in zip(crops, y0[fits], x0[fits], strict=True):
            window = dapi[ty:ty + CROP, tx:tx + CROP]
            assert np.corrcoef(crop.ravel(), window.ravel())[0, 1] > 0.95
