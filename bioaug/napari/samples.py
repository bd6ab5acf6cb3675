"""Sample data for napari's File > Open Sample menu.

* ``twin_field``: one field of the synthetic BBBC021 twin
  (:func:`bioaug.data.synth.synth_bbbc021`: one plate, one well, one site of 512×640 px,
  DAPI / Tubulin / Actin as 16-bit camera counts), rendered into a temporary folder and
  read back.
* ``ifc_cells``: 49 real Jurkat cells imaged in flow (7 per cell-cycle phase; Blasi et al.
  2016, BSD-3, see ``ifc_cells.LICENSE``) as a stack, with each cell's phase in ``obs``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from bioaug.napari.layers import LayerData, channel_layers

IFC_CELLS = Path(__file__).with_name("ifc_cells.npz")
#: The twin field: its size, about how many cells it holds, and the seed that fixes it.
FIELD_SIZE = (512, 640)
FIELD_CELLS = 40
FIELD_SEED = 0


def twin_field_array(seed: int = FIELD_SEED) -> tuple[np.ndarray, dict[str, object]]:
    """One twin field ``(3, H, W)`` uint16 and its row of the twin's metadata."""
    from bioaug.data import bbbc021
    from bioaug.data.synth import synth_bbbc021

    with tempfile.TemporaryDirectory(prefix="bioaug-twin-") as tmp:
        root = synth_bbbc021(Path(tmp) / "twin", plates=1, sites=1, wells_per_plate=1,
                             size=FIELD_SIZE, cells_per_field=FIELD_CELLS, seed=seed)
        row = bbbc021.load_metadata(root).fields.iloc[0]
        paths = [root / row["path"] / row[f"file_{c}"] for c in bbbc021.CHANNELS]
        field = bbbc021.read_field(paths)
    keep = ("plate", "well", "site", "compound", "concentration", "moa")
    return field, {k: row[k] for k in keep}


def twin_field() -> list[LayerData]:
    """The twin field as one layer per channel."""
    from bioaug.data.bbbc021 import CHANNELS

    field, info = twin_field_array()
    return channel_layers(field, 0, CHANNELS, "twin field",
                          metadata={"channels": list(CHANNELS), "field": info})


def ifc_cells_arrays() -> tuple[np.ndarray, list[str], pd.DataFrame]:
    """The bundled real cells ``(49, 3, 40, 40)`` uint16, channel names, and their phases."""
    with np.load(IFC_CELLS) as z:
        images, channels = z["images"], [str(c) for c in z["channels"]]
        obs = pd.DataFrame({"cell": z["cell"], "phase": z["phase"].astype(str)})
    return images, channels, obs


def ifc_cells() -> list[LayerData]:
    """The real cells as a stack, one layer per channel, phases in ``obs``."""
    images, channels, obs = ifc_cells_arrays()
    return channel_layers(images, 1, channels, "ifc cells",
                          metadata={"channels": channels, "obs": obs})
