"""Natural-image benchmarks in the crop store: CIFAR-10/100, MNIST, ImageNet-100, digits.

Each reader takes the standard on-disk format and yields uint8 images ``(N, C, H, W)``,
class names and a split; :func:`prepare_natural` writes them to a store (one unit per
split and chunk, so an interrupted build resumes). Obs columns: ``label`` (class name),
``label_id`` (int), ``split`` ("train"/"test"); label column ``label``.

- ``cifar10`` / ``cifar100``: the python pickles (``cifar-10-batches-py/data_batch_1..5``,
  ``test_batch``, ``batches.meta``; ``cifar-100-python/train``, ``test``, ``meta`` with
  fine labels), channels R, G, B, 32×32.
- ``mnist``: the idx files (``train-images-idx3-ubyte`` etc., gzipped or not), channel gray,
  28×28.
- ``imagenet100``: class folders ``ROOT/{train,val}/<wnid>/*.JPEG`` (``val`` becomes
  "test"), resized (shorter side, then centre crop) to ``size`` (default 64), R, G, B.
- ``digits``: scikit-learn's bundled 8×8 digits (1,797 images, values 0–16; no download),
  upscaled bilinearly to ``size`` (default 28, the MNIST size, so MNIST models apply; 8
  keeps them as they are), values × 255/16; a stratified seeded split holds out
  ``test_fraction`` (0.2) as "test".
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bioaug.data.store import Store, StoreWriter, check_out_name
from bioaug.errors import ConfigError, DataError, unknown_choice
from bioaug.progress import progress


@dataclass
class Split:
    """One split of a natural-image dataset."""

    name: str  # "train" / "test"
    images: np.ndarray  # (N, C, H, W) uint8
    labels: np.ndarray  # (N,) int
    classes: list[str]


# -- CIFAR ------------------------------------------------------------------------------
def _unpickle(path: Path) -> dict[Any, Any]:
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh, encoding="bytes")
    except FileNotFoundError as exc:
        raise DataError("file is missing", where=path,
                        hint="fetch it with `bioaug data fetch cifar10 --out DIR`") from exc
    except Exception as exc:  # damaged pickle
        raise DataError(f"not a CIFAR python pickle ({type(exc).__name__}: {exc})",
                        where=path) from exc


def _key(d: dict[Any, Any], name: str, path: Path) -> Any:
    for k in (name.encode(), name):
        if k in d:
            return d[k]
    raise DataError(f"the pickle has no '{name}' entry (has: "
                    f"{', '.join(str(k) for k in list(d)[:8])})", where=path)


def _cifar_images(data: Any, path: Path) -> np.ndarray:
    arr = np.asarray(data, dtype=np.uint8)
    if arr.ndim != 2 or arr.shape[1] != 3072:
        raise DataError(f"CIFAR data must be (N, 3072) uint8 rows, got {list(arr.shape)}",
                        where=path)
    return arr.reshape(-1, 3, 32, 32)


def _find_dir(root: Path, names: list[str]) -> Path:
    for n in names:
        for c in (root / n, root):
            if c.is_dir() and any((c / f).exists() for f in ("batches.meta", "meta", "train")):
                return c
    raise DataError(f"no {' or '.join(names)} folder in {root}",
                    hint="unpack the python version of the dataset there, or use "
                    "`bioaug data fetch`")


def read_cifar10(root: Path, **_: Any) -> Iterator[Split]:
    d = _find_dir(root, ["cifar-10-batches-py"])
    meta = _unpickle(d / "batches.meta")
    classes = [c.decode() if isinstance(c, bytes) else str(c)
               for c in _key(meta, "label_names", d / "batches.meta")]
    for split, files in (("train", [f"data_batch_{i}" for i in range(1, 6)]),
                         ("test", ["test_batch"])):
        imgs, labels = [], []
        for f in files:
            b = _unpickle(d / f)
            imgs.append(_cifar_images(_key(b, "data", d / f), d / f))
            labels.append(np.asarray(_key(b, "labels", d / f), dtype=np.int64))
        yield Split(split, np.concatenate(imgs), np.concatenate(labels), classes)


def read_cifar100(root: Path, **_: Any) -> Iterator[Split]:
    d = _find_dir(root, ["cifar-100-python"])
    meta = _unpickle(d / "meta")
    classes = [c.decode() if isinstance(c, bytes) else str(c)
               for c in _key(meta, "fine_label_names", d / "meta")]
    for split in ("train", "test"):
        b = _unpickle(d / split)
        yield Split(split, _cifar_images(_key(b, "data", d / split), d / split),
                    np.asarray(_key(b, "fine_labels", d / split), dtype=np.int64), classes)


# -- MNIST ------------------------------------------------------------------------------
MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path: Path) -> np.ndarray:
    """An idx file (ubyte), gzipped or not."""
    opener: Callable[..., Any] = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read idx file: {exc}", where=path) from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError("not an idx ubyte file (bad magic number)", where=path)
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(f"idx file is truncated: header says {list(dims)} "
                        f"({int(np.prod(dims))} values), found {body.size}", where=path)
    return body.reshape(dims)


def _mnist_file(root: Path, name: str) -> Path:
    for d in (root, root / "MNIST" / "raw", root / "mnist", root / "raw"):
        for n in (name, name + ".gz", name.replace("-idx", ".idx")):
            if (d / n).is_file():
                return d / n
    raise DataError(f"no {name}[.gz] in {root}",
                    hint="fetch it with `bioaug data fetch mnist --out DIR`")


def read_mnist(root: Path, notes: list[str] | None = None, **_: Any) -> Iterator[Split]:
    """The MNIST splits whose files are present (at least one); each missing split is
    described in ``notes``."""
    classes = [str(i) for i in range(10)]
    present = {}
    for split, (img_name, _lab) in MNIST_FILES.items():
        try:
            present[split] = _mnist_file(root, img_name)
        except DataError:
            continue
    if not present:
        raise DataError(f"no MNIST images in {root} (neither {MNIST_FILES['train'][0]} nor "
                        f"{MNIST_FILES['test'][0]}, optionally .gz)",
                        hint="fetch them with `bioaug data fetch mnist --out DIR`")
    for split, (img_name, _lab) in MNIST_FILES.items():
        if split not in present and notes is not None:
            notes.append(f"no {img_name}[.gz] in {root}: the store holds only the "
                         f"{', '.join(present)} split")
    for split, (_img, lab_name) in MNIST_FILES.items():
        if split not in present:
            continue
        imgs = read_idx(present[split])
        labels = read_idx(_mnist_file(root, lab_name)).astype(np.int64)
        if imgs.ndim != 3 or len(imgs) != len(labels):
            raise DataError(f"{split}: {len(imgs)} images of shape {list(imgs.shape[1:])} but "
                            f"{len(labels)} labels", where=root)
        yield Split(split, imgs[:, None], labels, classes)


# -- ImageNet-100 -------------------------------------------------------------------------
IMAGE_EXT = (".jpeg", ".jpg", ".png", ".bmp", ".tif", ".tiff")


def load_rgb(path: Path, size: int) -> np.ndarray:
    """An image file → ``(3, size, size)`` uint8: shorter side to ``size``, centre crop."""
    import cv2

    buf = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if img is None:
        raise DataError("cannot decode image", where=path)
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    h, w = img.shape[:2]
    s = size / min(h, w)
    nh, nw = max(size, round(h * s)), max(size, round(w * s))
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    y, x = (nh - size) // 2, (nw - size) // 2
    return img[y:y + size, x:x + size].transpose(2, 0, 1)


def read_imagenet100(root: Path, size: int = 64, chunk: int = 10000,
                     skip: Callable[[str, int], bool] | None = None, **_: Any
                     ) -> Iterator[Split]:
    """Class folders, decoded ``chunk`` images at a time (memory stays bounded); chunks that
    ``skip(split, offset)`` reports as already stored are not decoded."""
    splits = [(s, n) for s, n in (("train", "train"), ("test", "val"), ("test", "test"))
              if (root / n).is_dir()]
    if not splits:
        raise DataError(f"no train/ or val/ class folders in {root}",
                        hint="ImageNet-100 is read as ROOT/{train,val}/<class>/<image>")
    classes = sorted(p.name for p in (root / splits[0][1]).iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"no class folders in {root / splits[0][1]}")
    index = {c: i for i, c in enumerate(classes)}
    offsets: dict[str, int] = {}
    for split, folder in splits:
        files: list[tuple[Path, int]] = []
        for c in sorted(p.name for p in (root / folder).iterdir() if p.is_dir()):
            if c not in index:
                raise DataError(f"class folder {c} is not among the training classes",
                                where=root / folder / c)
            files += [(f, index[c]) for f in sorted((root / folder / c).iterdir())
                      if f.suffix.lower() in IMAGE_EXT]
        if not files:
            raise DataError(f"no images under {root / folder}")
        bar = progress(total=len(files), desc=folder, unit="img")
        for start in range(0, len(files), chunk):
            part = files[start:start + chunk]
            offset = offsets.get(split, 0)
            offsets[split] = offset + len(part)
            labels = np.array([y for _, y in part], dtype=np.int64)
            if skip is not None and skip(split, offset):
                imgs = np.zeros((len(part), 3, size, size), dtype=np.uint8)  # not stored again
            else:
                imgs = np.stack([load_rgb(f, size) for f, _ in part])
            bar.update(len(part))
            yield Split(split, imgs, labels, classes)
        bar.close()


# -- digits -------------------------------------------------------------------------------
#: Images in scikit-learn's digits set.
N_DIGITS = 1797
#: Bytes per stored pixel while the digits are upscaled and written: the uint8 images,
#: their train/test copies and the bytes handed to the store, plus slack.
DIGITS_BYTES_PER_PIXEL = 4


def digits_memory(size: int, chunk: int = 0) -> int:
    """Bytes needed to prepare the digits at ``size`` × ``size`` (``chunk`` is not used:
    the set is read at once)."""
    return N_DIGITS * DIGITS_BYTES_PER_PIXEL * int(size) ** 2


def _upscale(imgs: np.ndarray, size: int) -> np.ndarray:
    """``(n, 8, 8)`` uint8 images → ``(n, size, size)`` uint8, bilinear, one at a time (the
    float copy of one image is all that is held besides the result)."""
    if size == imgs.shape[1]:
        return imgs
    import cv2

    out = np.empty((len(imgs), size, size), dtype=np.uint8)
    for i, im in enumerate(imgs):
        big = cv2.resize(im.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
        out[i] = np.rint(big).clip(0, 255).astype(np.uint8)
    return out


def read_digits(root: Path | None = None, size: int = 28, test_fraction: float = 0.2,
                seed: int = 0, **_: Any) -> Iterator[Split]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0 < test_fraction < 1:
        raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction}")
    d = load_digits()
    imgs = _upscale(np.rint(d.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8), size)
    idx = np.arange(len(imgs))
    tr, te = train_test_split(idx, test_size=test_fraction, random_state=seed,
                              stratify=d.target)
    classes = [str(i) for i in range(10)]
    for split, sel in (("train", np.sort(tr)), ("test", np.sort(te))):
        yield Split(split, imgs[sel][:, None], d.target[sel].astype(np.int64), classes)


def imagenet100_memory(size: int, chunk: int = 10000) -> int:
    """Bytes needed to decode and store ``chunk`` ImageNet-100 images at ``size``: the
    decoded crops, their stacked copy and the bytes handed to the store, plus slack."""
    return int(chunk) * 3 * 4 * int(size) ** 2


@dataclass(frozen=True)
class NaturalDataset:
    """A reader, its channels, whether it needs ``--root``, and either the bytes a size
    needs, ``memory(size, chunk)`` (readers whose images are resized to ``--size``), or the
    one ``native_size`` its images are stored at."""

    reader: Callable[..., Iterator[Split]]
    channels: tuple[str, ...]
    needs_root: bool = True
    memory: Callable[[int, int], int] | None = None
    native_size: int | None = None


DATASETS: dict[str, NaturalDataset] = {
    "cifar10": NaturalDataset(read_cifar10, ("R", "G", "B"), native_size=32),
    "cifar100": NaturalDataset(read_cifar100, ("R", "G", "B"), native_size=32),
    "mnist": NaturalDataset(read_mnist, ("gray",), native_size=28),
    "imagenet100": NaturalDataset(read_imagenet100, ("R", "G", "B"),
                                  memory=imagenet100_memory),
    "digits": NaturalDataset(read_digits, ("gray",), needs_root=False, memory=digits_memory),
}


def check_size_memory(name: str, size: int, chunk: int = 10000,
                      available: int | None = None) -> None:
    """A clear error, before anything is read, when ``name`` at ``--size`` cannot fit in
    the memory available (datasets that are not resized are not checked)."""
    from bioaug.data.memory import available_memory, check_memory, largest_fitting

    estimate = DATASETS[name].memory
    free = available_memory() if available is None else available
    if estimate is None or free is None:
        return
    largest = largest_fitting(lambda s: estimate(s, chunk), free)
    check_memory(estimate(size, chunk), f"{name} at --size {size}", available=free,
                 largest=(f"the largest --size that fits is about {largest}" if largest
                          else "not even --size 1 fits"))


def prepare_natural(name: str, root: str | os.PathLike | None, out: str | os.PathLike, *,
                    overwrite: bool = False, chunk: int = 10000, **kw: Any) -> Store:
    """Read a natural-image dataset in its standard format and write a store.

    Parameters
    ----------
    name
        A dataset of :data:`DATASETS`: ``cifar10``, ``cifar100``, ``mnist``,
        ``imagenet100`` or ``digits`` (scikit-learn's, bundled: no root, no download).
    root
        The folder holding the dataset's files in their standard format (None for
        ``digits``).
    out
        The store directory to write.
    overwrite
        Replace an existing store at ``out``.
    chunk
        Images written at a time.
    **kw
        Go to the reader: ``size`` (imagenet100, digits), ``test_fraction`` and ``seed``
        (digits).

    Returns
    -------
    Store
        The finished, opened store; items are ordered train then test, ``obs`` has
        ``label``, ``label_id`` and ``split``.

    Examples
    --------
    >>> import tempfile
    >>> from bioaug.data.natural import prepare_natural
    >>> store = prepare_natural("digits", None, f"{tempfile.mkdtemp()}/digits", size=8)
    >>> len(store), store.channels, store.image_size, store.label_column
    (1797, ['gray'], (8, 8), 'label')
    >>> store.obs["split"].value_counts().to_dict()
    {'train': 1437, 'test': 360}
    """
    # 80+ lines only through its documentation (parameters and a running example), not its code.
    if name not in DATASETS:
        raise ConfigError(unknown_choice("dataset", name, DATASETS))
    check_out_name(out)
    ds = DATASETS[name]
    if ds.needs_root:
        if root is None:
            raise ConfigError(f"{name} needs --root (the folder holding its files)")
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"{root} is not a directory")
    kw = {k: v for k, v in kw.items() if v is not None}
    if "size" in kw and ds.memory is None:
        resizable = ", ".join(k for k, d in DATASETS.items() if d.memory is not None)
        raise ConfigError(f"{name} is stored at its native {ds.native_size} px; --size "
                          f"applies to {resizable}",
                          hint="leave --size out; views are cut at the protocol's crop_size "
                          "(or bioaug train --crop)")
    if "size" in kw and int(kw["size"]) < 1:
        raise ConfigError(f"size must be at least 1, got {kw['size']}")
    if "size" in kw:
        check_size_memory(name, int(kw["size"]), chunk)
    writer: StoreWriter | None = None
    classes: list[str] = []
    counts: dict[str, int] = {}

    def stored(split_name: str, offset: int) -> bool:
        return writer is not None and f"{split_name}-{offset}" in writer.done_units

    notes: list[str] = []
    extra_kw: dict[str, Any] = {"chunk": chunk, "skip": stored} if name == "imagenet100" else \
        ({"notes": notes} if name == "mnist" else {})
    try:
        for split in ds.reader(Path(root) if root is not None else None, **kw, **extra_kw):
            n, c, h, w = split.images.shape
            if c != len(ds.channels):
                raise DataError(f"{name} {split.name}: {c} channels, expected "
                                f"{len(ds.channels)}")
            if split.labels.min(initial=0) < 0 or split.labels.max(initial=0) >= len(split.classes):
                raise DataError(f"{name} {split.name}: labels outside 0..{len(split.classes) - 1}")
            if writer is None:
                config = {"dataset": name, **{k: v for k, v in kw.items()}}
                writer = StoreWriter(out, channels=list(ds.channels), image_size=(h, w),
                                     dtype="uint8", config=config, overwrite=overwrite)
                classes = split.classes
            offset = counts.get(split.name, 0)  # units are named by their first item
            counts[split.name] = offset + n
            names = np.asarray(split.classes, dtype=object)[split.labels]
            for start in range(0, n, chunk):
                unit = f"{split.name}-{offset + start}"
                if unit in writer.done_units:
                    continue
                sl = slice(start, start + chunk)
                rows = pd.DataFrame({"label": names[sl], "label_id": split.labels[sl],
                                     "split": split.name})
                writer.add(np.ascontiguousarray(split.images[sl], dtype=np.uint8), rows)
                writer.commit(unit)
        if writer is None:
            raise DataError(f"{name}: nothing to read")
        return writer.finalize(
            label_column="label", normalization={"store_scale": "uint8 = round(value * 255)"},
            extra={"dataset": name, "classes": classes, "splits": counts,
                   **({"notes": notes} if notes else {})},
            provenance_extra={"source": str(root) if root is not None else "scikit-learn"})
    finally:
        if writer is not None:
            writer.close()
