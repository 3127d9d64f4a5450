"""The small built-in sources: mnist (IDX files in torchvision's raw layout), digits (scikit-learn's
bundled 8x8 digits) and synthetic (generated blobs for tests). None of them imports torchvision or
scikit-learn to read its data; the MNIST-format reader is shared with fashion_mnist
(torchvision_sets.py).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .base import DATASETS, Dataset, dataset_from_arrays, ensure_files, without_config

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


IDX_UBYTE = 0x08  # the IDX type code of unsigned bytes, the only one MNIST-format files use


def read_idx_ubyte(path: Path) -> np.ndarray:
    """An uncompressed IDX file of unsigned bytes (MNIST's format: 2 zero bytes, the type code 0x08,
    the number of dimensions, then each dimension as a big-endian int32, then the data) as a
    read-only uint8 array of that shape. Equal to torchvision's `read_sn3_pascalvincent_tensor` on
    such files (tested), without importing torchvision."""
    raw = path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != IDX_UBYTE:
        raise DataError(f"{path}: not an IDX file of unsigned bytes (header {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(shape, dtype=np.int64)):
        raise DataError(
            f"{path}: IDX header says {shape} = {int(np.prod(shape))} bytes, the file has {len(raw) - offset}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def load_idx_dataset(torchvision_class: str, name: str, title: str, root: Path, download: bool = True) -> Dataset:
    """An MNIST-format dataset in torchvision's raw layout for its class (`MNIST`, `FashionMNIST`:
    same file names, same IDX format, no checksum on reading), official split:
    root/<class name>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (uncompressed), read by
    `read_idx_ubyte`. Downloads through the torchvision class when files are missing and `download`
    is set (`ensure_files`). Pixels / 255, shaped (N, 1, 28, 28); labels the class indices."""
    raw = root / torchvision_class / "raw"  # torchvision's raw_folder

    def fetch() -> None:
        import torchvision.datasets  # only to download: reading the files does not need torchvision

        cls = getattr(torchvision.datasets, torchvision_class)
        cls(str(root), train=True, download=True)
        cls(str(root), train=False, download=True)

    ensure_files(
        title, raw, MNIST_FILES, download, fetch, f"torchvision's raw {title} files", f"{torchvision_class}/raw/"
    )
    x_train, y_train, x_test, y_test = (read_idx_ubyte(raw / f) for f in MNIST_FILES)
    for images, labels, split in ((x_train, y_train, "train"), (x_test, y_test, "t10k")):
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"{title} files in {raw.resolve()} cannot be read: {split} images {images.shape} "
                f"and labels {labels.shape} do not match"
            )
    return dataset_from_arrays(
        name,
        torch.from_numpy(x_train.copy()).unsqueeze(1).float() / 255.0,
        torch.from_numpy(y_train.astype(np.int64)),
        torch.from_numpy(x_test.copy()).unsqueeze(1).float() / 255.0,
        torch.from_numpy(y_test.astype(np.int64)),
    )


def load_mnist(root: Path, download: bool = True) -> Dataset:
    """MNIST, official split (60,000 train / 10,000 test), torchvision's raw layout under `root`.

    Reads root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte. Downloads through
    torchvision when they are missing and `download` is set; otherwise, or when the download fails,
    raises a DataError that names the files, the folder and the environment variable.
    """
    return load_idx_dataset("MNIST", "mnist", "MNIST", root, download)


DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits as (images (1797, 8, 8) float64 in 0..16, labels): read from its
    data file `sklearn/datasets/data/digits.csv.gz` as `sklearn.datasets.load_digits` reads it
    (equal arrays, tested) without importing scikit-learn; through `load_digits` itself when the
    file is not where this scikit-learn keeps it."""
    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    path = (
        Path(next(iter(spec.submodule_search_locations or [""]))) / "datasets" / "data" / "digits.csv.gz"
        if spec
        else None
    )
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits as sk_digits

        d = sk_digits()
        return d.images, d.target
    table = np.loadtxt(path, delimiter=",")
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(int)


def load_digits(root: Path, download: bool = True) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 images, no download); pixels 0..16 scaled to [0, 1].

    Fixed split: a permutation with seed 0, the last 20% (359 images) as the test split.
    """
    images, target = _digits_arrays()
    x = images.astype(np.float32)[:, None] / 16.0
    perm = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(x))
    n_test = int(round(len(x) * DIGITS_TEST_FRACTION))
    tr, te = perm[:-n_test], perm[-n_test:]
    return dataset_from_arrays("digits", x[tr], target[tr], x[te], target[te])


def load_synthetic(root: Path, download: bool = True) -> Dataset:
    """Deterministic toy images for unit tests: 512 train / 128 test, 1x10x12 (non-square).

    Each image is one Gaussian blob; its label (0..3) is the quadrant of the blob's centre.
    """
    g = np.random.default_rng(1234)
    n, h, w = 640, 10, 12
    cy, cx = g.uniform(1, h - 2, n), g.uniform(1, w - 2, n)
    width = g.uniform(1.0, 2.5, n)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.exp(-((yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2) / (2 * width[:, None, None] ** 2))
    x = img.astype(np.float32)[:, None]
    y = (cy > h / 2).astype(np.int64) * 2 + (cx > w / 2).astype(np.int64)
    return dataset_from_arrays("synthetic", x[:512], y[:512], x[512:], y[512:])


# Registered last, once everything above is defined.
DATASETS.register("mnist", without_config(load_mnist, "MNIST, 60,000 / 10,000, torchvision's raw files"))
DATASETS.register("digits", without_config(load_digits, "scikit-learn's bundled 8x8 digits, no download"))
DATASETS.register("synthetic", without_config(load_synthetic, "deterministic 10x12 blobs for tests"))
