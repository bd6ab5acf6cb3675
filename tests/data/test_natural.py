from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from bioaug.data.natural import DATASETS, prepare_natural, read_idx
from bioaug.data.store import Store
from bioaug.errors import ConfigError, DataError


def _cifar10(root: Path, rng: np.random.Generator) -> np.ndarray:
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
             b"ship", b"truck"]
    (d / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))
    first = None
    for i in range(1, 6):
        data = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
        first = data if first is None else first
        (d / f"data_batch_{i}").write_bytes(pickle.dumps({b"data": data,
                                                          b"labels": [i, 0, 9]}))
    (d / "test_batch").write_bytes(pickle.dumps({b"data": rng.integers(0, 256, (2, 3072),
                                                                       dtype=np.uint8),
                                                 b"labels": [3, 4]}))
    return first


def test_cifar10(tmp_path: Path) -> None:
    first = _cifar10(tmp_path / "raw", np.random.default_rng(0))
    s = prepare_natural("cifar10", tmp_path / "raw", tmp_path / "s")
    assert len(s) == 17 and s.channels == ["R", "G", "B"] and s.dtype == np.uint8
    assert s.image_size == (32, 32) and s.label_column == "label"
    assert list(s.obs.columns) == ["label", "label_id", "split"]
    np.testing.assert_array_equal(s.read(0), first[0].reshape(3, 32, 32))  # R plane first
    assert s.obs.iloc[0].to_dict() == {"label": "automobile", "label_id": 1, "split": "train"}
    assert s.obs.iloc[-1]["label"] == "deer" and s.obs.iloc[-1]["split"] == "test"
    assert s.header["classes"][9] == "truck"


def test_cifar100(tmp_path: Path) -> None:
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    rng = np.random.default_rng(1)
    (d / "meta").write_bytes(pickle.dumps({b"fine_label_names": [f"f{i}".encode()
                                                                  for i in range(100)]}))
    for split, n in (("train", 5), ("test", 2)):
        (d / split).write_bytes(pickle.dumps({b"data": rng.integers(0, 256, (n, 3072),
                                                                    dtype=np.uint8),
                                              b"fine_labels": list(range(95, 95 + n)),
                                              b"coarse_labels": [0] * n}))
    s = prepare_natural("cifar100", tmp_path, tmp_path / "s")
    assert len(s) == 7 and s.obs["label"].iloc[4] == "f99"


def test_cifar_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no cifar-10-batches-py folder"):
        prepare_natural("cifar10", tmp_path, tmp_path / "s")
    _cifar10(tmp_path, np.random.default_rng(0))
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(DataError, match="data_batch_3: not a CIFAR python pickle"):
        prepare_natural("cifar10", tmp_path, tmp_path / "s")
    assert not (tmp_path / "s").exists()


def _idx(path: Path, arr: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist(tmp_path: Path, gz: bool) -> None:
    rng = np.random.default_rng(2)
    tr = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    _idx(tmp_path / "train-images-idx3-ubyte", tr, gz)
    _idx(tmp_path / "train-labels-idx1-ubyte", np.arange(6) % 10, gz)
    _idx(tmp_path / "t10k-images-idx3-ubyte", tr[:2], gz)
    _idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([7, 8]), gz)
    s = prepare_natural("mnist", tmp_path, tmp_path / "s")
    assert len(s) == 8 and s.channels == ["gray"] and s.image_size == (28, 28)
    np.testing.assert_array_equal(s.read(5)[0], tr[5])
    assert s.obs["label"].tolist() == ["0", "1", "2", "3", "4", "5", "7", "8"]


def test_idx_errors(tmp_path: Path) -> None:
    bad = tmp_path / "x"
    bad.write_bytes(b"\x00\x00\x0d\x01")
    with pytest.raises(DataError, match="bad magic"):
        read_idx(bad)
    _idx(tmp_path / "y", np.zeros((4, 3, 3)), gz=False)
    (tmp_path / "y").write_bytes((tmp_path / "y").read_bytes()[:-5])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "y")
    with pytest.raises(DataError, match=r"no MNIST images .*neither train-images-idx3-ubyte"):
        prepare_natural("mnist", tmp_path, tmp_path / "s")


def test_mnist_with_only_the_training_files(tmp_path: Path) -> None:
    tr = np.random.default_rng(3).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    _idx(tmp_path / "train-images-idx3-ubyte", tr, gz=True)
    _idx(tmp_path / "train-labels-idx1-ubyte", np.arange(4), gz=True)
    s = prepare_natural("mnist", tmp_path, tmp_path / "s")
    assert len(s) == 4 and set(s.obs["split"]) == {"train"}
    assert s.header["splits"] == {"train": 4}
    assert "no t10k-images-idx3-ubyte" in s.header["notes"][0]
    assert "only the train split" in s.header["notes"][0]


def test_imagenet100_folders(tmp_path: Path) -> None:
    import cv2

    rng = np.random.default_rng(3)
    for split, per in (("train", 2), ("val", 1)):
        for c in ("n01440764", "n01443537"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(per):
                img = rng.integers(0, 256, (30 + 10 * i, 50, 3), dtype=np.uint8)
                cv2.imwrite(str(tmp_path / split / c / f"{c}_{i}.png"), img)
    (tmp_path / "train" / "n01440764" / "notes.txt").write_text("skip me")
    s = prepare_natural("imagenet100", tmp_path, tmp_path / "s", size=16)
    assert len(s) == 6 and s.image_size == (16, 16) and s.channels == ["R", "G", "B"]
    assert s.obs["split"].tolist() == ["train"] * 4 + ["test"] * 2
    assert s.obs["label"].tolist()[:2] == ["n01440764"] * 2
    # decoded and committed a few images at a time: same store
    chunked = prepare_natural("imagenet100", tmp_path, tmp_path / "c", size=16, chunk=3)
    np.testing.assert_array_equal(chunked.read(slice(None)), s.read(slice(None)))
    assert chunked.header["units"] == ["train-0", "train-3", "test-0"]
    # BGR on disk → RGB in the store: a pure red image stays red
    red = np.zeros((20, 20, 3), np.uint8)
    red[..., 2] = 255
    cv2.imwrite(str(tmp_path / "val" / "n01443537" / "red.png"), red)
    s2 = prepare_natural("imagenet100", tmp_path, tmp_path / "s2", size=8)
    px = s2.read(len(s2) - 1)
    assert px[0].min() == 255 and px[1].max() == 0
    (tmp_path / "val" / "n99").mkdir()
    with pytest.raises(DataError, match="not among the training classes"):
        prepare_natural("imagenet100", tmp_path, tmp_path / "s3", size=8)


def test_digits(tmp_path: Path) -> None:
    s = prepare_natural("digits", None, tmp_path / "d")
    assert len(s) == 1797 and s.image_size == (28, 28) and s.channels == ["gray"]
    counts = s.obs["split"].value_counts().to_dict()
    assert counts == {"train": 1437, "test": 360}
    # stratified: every class in both splits in about the same proportion
    frac = s.obs.groupby("label")["split"].apply(lambda x: (x == "test").mean())
    assert frac.between(0.15, 0.25).all()
    small = prepare_natural("digits", None, tmp_path / "d8", size=8)
    from sklearn.datasets import load_digits

    d = load_digits()
    want = np.rint(d.images[0] * 255 / 16).astype(np.uint8)
    same = (small.read(np.arange(len(small)))[:, 0] == want).all((1, 2))
    assert same.sum() >= 1 and (small.obs["label"][same] == "0").all()
    assert Store.open(tmp_path / "d").summary()["classes"]["0"] == 178


def test_unknown_dataset_and_missing_root(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown dataset 'cifar11'.*did you mean 'cifar10'"):
        prepare_natural("cifar11", tmp_path, tmp_path / "s")
    with pytest.raises(ConfigError, match="needs --root"):
        prepare_natural("mnist", None, tmp_path / "s")
    assert set(DATASETS) == {"cifar10", "cifar100", "mnist", "imagenet100", "digits"}


def test_val_and_test_folders_both_count(tmp_path: Path) -> None:
    import cv2

    for split in ("train", "val", "test"):
        (tmp_path / split / "a").mkdir(parents=True)
        cv2.imwrite(str(tmp_path / split / "a" / "x.png"), np.full((9, 9, 3), 7, np.uint8))
    s = prepare_natural("imagenet100", tmp_path, tmp_path / "s", size=8)
    assert s.obs["split"].tolist() == ["train", "test", "test"]
    assert s.header["splits"] == {"train": 1, "test": 2}


@pytest.mark.parametrize(("name", "native"), [("cifar10", 32), ("cifar100", 32), ("mnist", 28)])
def test_size_for_a_dataset_stored_at_its_native_size_is_refused(
        tmp_path: Path, name: str, native: int) -> None:
    rng = np.random.default_rng(0)
    _cifar10(tmp_path / "root", rng)
    with pytest.raises(ConfigError, match=f"{name} is stored at its native {native} px; "
                       "--size applies to imagenet100, digits") as e:
        prepare_natural(name, tmp_path / "root", tmp_path / "d", size=64)
    assert "crop_size" in e.value.hint
    assert not (tmp_path / "d").exists()
    store = prepare_natural("cifar10", tmp_path / "root", tmp_path / "c", size=None)
    assert store.image_size == (32, 32)


@pytest.mark.parametrize("size", [0, -3])
def test_size_below_one_is_a_clear_error(tmp_path: Path, size: int) -> None:
    with pytest.raises(ConfigError, match=f"size must be at least 1, got {size}"):
        prepare_natural("digits", None, tmp_path / "d", size=size)
    assert not (tmp_path / "d").exists()


def test_a_size_too_large_for_memory_is_refused_before_reading(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bioaug.data import memory

    monkeypatch.setattr(memory, "available_memory", lambda: 2**30)
    with pytest.raises(ConfigError) as e:
        prepare_natural("digits", None, tmp_path / "d", size=100000)
    text = e.value.format()
    # 1797 digits × 4 bytes per pixel: 1 GiB holds 386² pixels each
    assert f"digits at --size 100000 needs about 65.4 TiB of memory " \
        f"({1797 * 4 * 100000**2:,} bytes) but 1.0 GiB" in text
    assert "the largest --size that fits is about 386" in text
    with pytest.raises(ConfigError, match="the largest --size that fits is about 94"):
        prepare_natural("imagenet100", tmp_path, tmp_path / "i", size=1000, chunk=10000)
    assert not (tmp_path / "d").exists() and not (tmp_path / "i").exists()


def test_upscaled_digits_are_the_bilinear_resize_rounded(tmp_path: Path) -> None:
    import cv2
    from sklearn.datasets import load_digits

    s = prepare_natural("digits", None, tmp_path / "d", size=20)
    first = np.rint(load_digits().images[0] * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    want = np.rint(cv2.resize(first.astype(np.float32), (20, 20),
                              interpolation=cv2.INTER_LINEAR)).clip(0, 255).astype(np.uint8)
    assert s.obs["split"].iloc[0] == "train" and s.obs["label"].iloc[0] == "0"
    np.testing.assert_array_equal(s.read(0)[0], want)


def test_out_names_ending_in_partial_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"names ending in '\.partial' are reserved"):
        prepare_natural("digits", None, tmp_path / "d.partial", size=8)
    assert not any(tmp_path.iterdir())
