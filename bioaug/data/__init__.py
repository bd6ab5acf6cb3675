"""bioaug.data — datasets in, crop stores out.

- :mod:`bioaug.data.store`: the store format every later stage reads (memory-mapped images,
  a per-item table, a JSON header; atomic, resumable builds).
- :mod:`bioaug.data.bbbc021`: BBBC021 metadata (robust CSV parsing, MoA join) and raw TIFFs.
- :mod:`bioaug.data.prepare`: BBBC021 fields → illumination-corrected single-cell crops.
- :mod:`bioaug.data.synth`: a synthetic BBBC021 twin in the published layout.
- :mod:`bioaug.data.natural`: CIFAR-10/100, MNIST, ImageNet-100, digits.
- :mod:`bioaug.data.fetch`: downloads from the dataset cards in ``datasets/``.
- :mod:`bioaug.data.info`: the summaries behind ``bioaug data info``.

Submodules are imported on demand (``from bioaug.data.prepare import prepare_bbbc021``).
"""
