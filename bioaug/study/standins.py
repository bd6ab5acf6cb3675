"""Offline stand-ins for the natural-image studies (no download needed).

The papers' natural-image experiments use CIFAR-10 and ImageNet (RGB). When those are not
on disk, the examples run the same protocols on scikit-learn's bundled digits turned into
RGB images:

- :func:`rgb_digits_store` — the gray digit copied into R, G and B (so colour jitter,
  grayscale and the rest of the RGB recipes apply unchanged);
- with ``tint=True`` each digit is also painted in one of :data:`TINTS` at random and the
  tint is stored as a second label column, ``tint``. Digit identity is a *shape* task and
  tint a *colour* task: the two want opposite invariances, the situation Ericsson et al.
  (2022) study with their ventral (spatial) and dorsal (appearance) models.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

#: Tint name → RGB gain.
TINTS: dict[str, tuple[float, float, float]] = {
    "red": (1.0, 0.25, 0.2),
    "green": (0.25, 1.0, 0.3),
    "blue": (0.3, 0.35, 1.0),
    "yellow": (1.0, 0.9, 0.2),
}


def rgb_digits_store(out: str | Path, *, size: int = 32, tint: bool = False,
                     seed: int = 0) -> Path:
    """Write (once) an RGB store of the sklearn digits at ``size`` px; returns its path.

    Parameters
    ----------
    out
        The store directory; an existing store there is returned as it is.
    size
        Side of the square images in pixels.
    tint
        Paint each digit in one of :data:`TINTS`, drawn at random, and store the name in
        the ``tint`` column.
    seed
        Seed of the tint draw.

    Returns
    -------
    Path
        ``out``: a three-channel (``R``, ``G``, ``B``) store of the 1797 digits whose label
        column is ``label``.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from bioaug.data.store import Store
    >>> from bioaug.study.standins import TINTS, rgb_digits_store
    >>> folder = tempfile.mkdtemp()
    >>> store = Store.open(rgb_digits_store(f"{folder}/digits", size=12, tint=True))
    >>> len(store), store.channels, store.obs.columns.tolist()
    (1797, ['R', 'G', 'B'], ['label', 'label_id', 'split', 'tint'])

    Every digit is brightest in the channel its tint favours:

    >>> images = store.read(slice(None))
    >>> brightest = images.sum(axis=(2, 3)).argmax(axis=1)
    >>> favoured = [int(np.argmax(TINTS[name])) for name in store.obs["tint"]]
    >>> bool((brightest == favoured).all())
    True
    """
    from bioaug.data.natural import prepare_natural
    from bioaug.data.store import Store, is_store, write_store

    out = Path(out)
    if is_store(out):
        return out
    gray_path = out.with_name(out.name + ".gray")
    gray = Store.open(gray_path) if is_store(gray_path) else \
        prepare_natural("digits", None, gray_path, size=size)
    images = gray.read(slice(None))  # (N, 1, H, W) uint8
    obs = gray.obs.copy()
    rgb = np.repeat(images, 3, axis=1).astype(np.float32)
    if tint:
        rng = np.random.default_rng(seed)
        names = list(TINTS)
        pick = rng.integers(0, len(names), size=len(rgb))
        gains = np.array([TINTS[n] for n in names], dtype=np.float32)[pick]
        rgb *= gains[:, :, None, None]
        obs["tint"] = [names[i] for i in pick]
    write_store(out, np.rint(rgb).clip(0, 255).astype(np.uint8), obs,
                channels=["R", "G", "B"], label_column="label")
    shutil.rmtree(gray_path, ignore_errors=True)
    return out
