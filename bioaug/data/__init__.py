"""bioaug.data — datasets in, crop stores out.

- :mod:`bioaug.data.store`: the store format every later stage reads (memory-mapped images,
  a per-item table, a validated JSON header; atomic, resumable builds).
- :mod:`bioaug.data.images`: image planes from TIFF / OME-TIFF, PNG and OME-Zarr.
- :mod:`bioaug.data.fields`: the field set every image source becomes; plate shards.
- :mod:`bioaug.data.loaddata`: any screen's CellProfiler LoadData CSV → a field set.
- :mod:`bioaug.data.bbbc021`: BBBC021 metadata (robust CSV parsing, MoA join, the bundled
  published tables) and raw TIFFs.
- :mod:`bioaug.data.prepare`: fields → illumination-corrected single-cell crops (one path
  for LoadData screens and BBBC021).
- :mod:`bioaug.data.crops`: pre-cut single-cell crops (arrays, TIFF stacks, per-cell files)
  → a store, scaled per plate like fields.
- :mod:`bioaug.data.merge`: join stores prepared as parallel jobs.
- :mod:`bioaug.data.synth`: a synthetic BBBC021 twin in the published layout.
- :mod:`bioaug.data.synth_cellpainting`: a synthetic five-channel Cell Painting screen.
- :mod:`bioaug.data.natural`: CIFAR-10/100, MNIST, ImageNet-100, digits.
- :mod:`bioaug.data.fetch`: downloads from the dataset cards in ``datasets/``.
- :mod:`bioaug.data.info`: the summaries behind ``bioaug data info``.

Submodules are imported on demand (``from bioaug.data.prepare import prepare_images``).
"""
