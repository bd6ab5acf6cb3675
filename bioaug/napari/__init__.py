"""napari plugin: write augmentation protocols while looking at what they do.

Optional (``pip install "bioaug[napari]"``); nothing else in bioaug imports it, and importing
this package imports neither napari nor Qt. napari finds the plugin through the
``napari.manifest`` entry point (``napari.yaml``), which names:

* the dock widget :class:`bioaug.napari.widget.ProtocolWidget`: edit a protocol with live
  validation, pick image layers, see N views per view as a grid, resample with a seed,
  move each step's ``p`` and main amplitude with sliders that write into the text, save;
* the reader :func:`bioaug.napari.reader.get_reader`: a crop store as a stack of crops;
* sample data :mod:`bioaug.napari.samples`: a synthetic twin field and real flow cells.

See ``docs/napari.md``.
"""

from __future__ import annotations

#: The manifest napari reads (``bioaug.napari:napari.yaml``).
MANIFEST = "napari.yaml"
