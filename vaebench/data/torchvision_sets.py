"""The standard image datasets torchvision downloads, registered like any user dataset:
`fashion_mnist`, `cifar10`, `svhn` (RGB 32x32) and `celeba` (RGB, 64x64 by default).

    dataset: {name: cifar10}
    dataset: {name: celeba, image_size: 64, max_train: 20000, max_test: 2000}

Files: torchvision's own layouts, with the data root (--data-root, $VAEBENCH_DATA_ROOT, else
./data; the folder that holds MNIST/raw/) as torchvision's `root` — a folder a torchvision user
already has works as it is:

| dataset | files under the data root | train / test |
|---|---|---|
| fashion_mnist | FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (uncompressed IDX) | 60,000 / 10,000, official |
| cifar10 | cifar-10-batches-py/data_batch_1 .. data_batch_5, test_batch (the "python version" pickles) | 50,000 / 10,000, official |
| svhn | train_32x32.mat, test_32x32.mat (torchvision puts SVHN directly in its root) | 73,257 / 26,032, official ("extra" not used) |
| celeba | celeba/img_align_celeba/*.jpg (178x218 aligned faces), celeba/list_eval_partition.txt | partition 0 (162,770) / partition 2 (19,962) |

When files are missing, `download` set (the default; `--no-download` clears it) and the network
allows, torchvision's dataset class downloads them (`CIFAR10(root, download=True)`, ...: its URLs,
its md5 checks of what it downloads, its extraction). Otherwise, or when the download fails, a
`DataError` (exit code 2) names the missing files and the folder (`data.ensure_files`, shared with
MNIST).

Reading, and why not always through torchvision's classes:

- fashion_mnist: torchvision's `FashionMNIST` class itself (`data.load_idx_dataset`, as MNIST): it
  only checks that the four files exist.
- cifar10, svhn, celeba: torchvision's classes refuse any file whose md5 is not the official
  release's, when constructed (`CIFAR10._check_integrity` and `_load_meta`, `SVHN._check_integrity`:
  md5 of every batch / .mat file; `CelebA._check_integrity`: md5 of the five annotation .txt files,
  four of which — identity, attributes, boxes, landmarks — an unlabeled dataset does not use). The
  only ways around that are subclassing with the md5 sums removed or patching their module's
  `check_integrity` (PyTorch-VAE subclasses CelebA with `_check_integrity` returning True).
  Instead vaebench reads these files with its own small readers below, which follow torchvision's
  reading code line for line (the same pickle keys and reshape, the same `loadmat` transpose and
  10 -> 0 label mapping, the same partition file); tests/data/test_datasets_torchvision.py checks them
  against the arrays it wrote and against torchvision's classes reading the same files (md5 check
  patched out there). No md5 is checked on reading: each run records the sha256 checksum of the
  exact tensors it used (`Dataset.checksum`), and an unreadable file is a `DataError` naming it.
  The CIFAR-10 pickles are read with an unpickler that only builds NumPy arrays, lists, strings
  and numbers (pickle would otherwise run whatever a data file names).

Images: float32 in [0, 1] (value / 255), (N, C, H, W): 1x28x28 for fashion_mnist, 3x32x32 for
cifar10 and svhn (R, G, B), 3 x image_size x image_size for celeba. Labels: the 10 classes of
fashion_mnist and cifar10 (torchvision's numbering); svhn's digits 0-9 (the files' label 10, the
digit 0, is 0, as torchvision maps it). celeba has no single class label: it is unlabeled
(`Dataset.labeled` False, labels all 0; its 40 binary attributes are not used), so class-based
metrics (per-class reconstruction, FID with the classifier extractor) do not apply to it.

CelebA preprocessing (PyTorch-VAE's, AntixK/PyTorch-VAE dataset.py: `CenterCrop(148)`,
`Resize(64)`, `ToTensor()`, on torchvision's `CelebA` split "train" for training and "test" for
validation): each 178x218 aligned image is converted to RGB, center-cropped to `crop` x `crop`
(148: rows 35..182, columns 15..162, torchvision's `center_crop` rounding) and resized to
`image_size` x `image_size` (bilinear, antialiased: torchvision's `resize` on a PIL image). Done with
torchvision.transforms.functional, so the pixels equal that pipeline's. PyTorch-VAE also flips
training images at random; vaebench has no augmentation (the splits are fixed tensors).
Decoding is one JPEG at a time in one thread, for the 182,732 train and test images, in every
process that loads them (there is no decoded cache). The full training split is 8.0 GB as float32 at 64x64 (plus 2 GB of uint8 while
loading). `max_train` / `max_test` take a seeded random subset of the files before decoding.

Options (every one of these datasets): `max_train`, `max_test` (default null: the whole split) —
at most that many images of the official split, a random subset drawn with `subset_seed` (default
0; the chosen indices are sorted, so the subset keeps the split's order; the two splits are drawn
independently). celeba also: `image_size` (default 64), `crop` (default 148).
"""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from pydantic import Field

from ..errors import DataError
from ..options import Options
from .base import DATASETS, Dataset, DatasetSource, dataset_from_arrays, ensure_files
from .builtin import load_idx_dataset


class SubsetOptions(Options):
    """Seeded random subsets of the official splits (all options default to the whole split)."""

    max_train: Optional[int] = Field(
        None, ge=1, description="at most this many training images: a random subset drawn with subset_seed; null: all"
    )
    max_test: Optional[int] = Field(
        None, ge=1, description="at most this many test images: a random subset drawn with subset_seed; null: all"
    )
    subset_seed: int = Field(0, description="seed of the random choice of max_train / max_test images")


def subset_indices(n: int, k: Optional[int], seed: int) -> Optional[np.ndarray]:
    """k of the n indices, chosen at random with `seed` and sorted; None (all) when k is None or >= n."""
    if k is None or k >= n:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def _take(a, idx: Optional[np.ndarray]):
    if idx is None:
        return a
    return a[torch.from_numpy(idx)] if isinstance(a, torch.Tensor) else a[idx]


def _subsets(cfg, x_train, y_train, x_test, y_test) -> tuple:
    tr = subset_indices(len(x_train), cfg.max_train, cfg.subset_seed)
    te = subset_indices(len(x_test), cfg.max_test, cfg.subset_seed)
    return _take(x_train, tr), _take(y_train, tr), _take(x_test, te), _take(y_test, te)


def _unit(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)


# ---------------------------------------------------------------------------------------------
# fashion_mnist: torchvision's FashionMNIST class


def load_fashion_mnist(cfg, root: Path, download: bool = True) -> Dataset:
    """Fashion-MNIST through torchvision's `FashionMNIST` (see the module docstring)."""
    ds = load_idx_dataset("FashionMNIST", "fashion_mnist", "Fashion-MNIST", root, download)
    if cfg.max_train is None and cfg.max_test is None:
        return ds
    return dataset_from_arrays(ds.name, *_subsets(cfg, ds.x_train, ds.y_train, ds.x_test, ds.y_test))


DATASETS.register(
    "fashion_mnist",
    DatasetSource(
        load_fashion_mnist, SubsetOptions, "Fashion-MNIST, 60,000 / 10,000, 1x28x28, torchvision's raw files"
    ),
)


# ---------------------------------------------------------------------------------------------
# cifar10: the "python version" pickles, read as torchvision's CIFAR10 reads them

CIFAR10_FOLDER = "cifar-10-batches-py"  # torchvision's CIFAR10.base_folder
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = ("test_batch",)

# What a CIFAR-10 batch pickle may build: NumPy arrays (the pickles of Python 2's NumPy name
# numpy.core.multiarray, NumPy 2 names numpy._core.multiarray) and, in files pickled under
# Python 3 with bytes, _codecs.encode. Dicts, lists, strings and numbers need no lookup.
_RECONSTRUCT = np.zeros(1).__reduce__()[0]  # NumPy's array-unpickling function, wherever this NumPy keeps it
_CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _CIFAR_GLOBALS:
            return _CIFAR_GLOBALS[(module, name)]
        if (module, name) == ("_codecs", "encode"):
            import codecs

            return codecs.encode
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a CIFAR-10 batch (refused)")


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch pickle -> (uint8 images (N, 3, 32, 32), int64 labels (N,)).

    torchvision's reading: `pickle.load(f, encoding="latin1")` (the files were pickled by Python 2:
    their keys load as str), images from key "data" — uint8 (N, 3072), each row the 1024 red, then
    1024 green, then 1024 blue values of a 32x32 image in row-major order — reshaped to
    (N, 3, 32, 32), labels from key "labels". Keys pickled as bytes (b"data") are accepted too."""
    try:
        with open(path, "rb") as f:
            entry = _BatchUnpickler(f, encoding="latin1").load()
        if not isinstance(entry, dict):
            raise ValueError(f"expected a dict, found {type(entry).__name__}")
        entry = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}
        data = np.asarray(entry["data"])
        labels = np.asarray(entry["labels"], dtype=np.int64)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise ValueError(f"'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
        if labels.shape != (len(data),):
            raise ValueError(f"{labels.shape[0]} labels for {len(data)} images")
    except Exception as e:  # truncated, not a pickle, another layout
        raise DataError(f"cifar10: cannot read {path}: {type(e).__name__}: {e}") from None
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(cfg, root: Path, download: bool = True) -> Dataset:
    """CIFAR-10 (see the module docstring): data_batch_1..5 in order, then test_batch."""
    folder = root / CIFAR10_FOLDER

    def fetch() -> None:
        from torchvision.datasets import CIFAR10

        CIFAR10(str(root), train=True, download=True)  # downloads, checks md5 and extracts the archive

    ensure_files(
        "CIFAR-10",
        folder,
        CIFAR10_TRAIN + CIFAR10_TEST,
        download,
        fetch,
        "the extracted CIFAR-10 python version (cifar-10-python.tar.gz)",
        f"{CIFAR10_FOLDER}/",
    )
    train = [read_cifar_batch(folder / f) for f in CIFAR10_TRAIN]
    x_test, y_test = read_cifar_batch(folder / CIFAR10_TEST[0])
    x_train, y_train = np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])
    x_train, y_train, x_test, y_test = _subsets(cfg, x_train, y_train, x_test, y_test)
    return dataset_from_arrays("cifar10", _unit(x_train), y_train, _unit(x_test), y_test)


DATASETS.register(
    "cifar10",
    DatasetSource(
        load_cifar10, SubsetOptions, "CIFAR-10, 50,000 / 10,000, RGB 32x32, torchvision's python-version pickles"
    ),
)


# ---------------------------------------------------------------------------------------------
# svhn: the cropped-digits .mat files, read as torchvision's SVHN reads them

SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")  # torchvision's SVHN.split_list file names


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One SVHN .mat file -> (uint8 images (N, 3, 32, 32), int64 labels (N,)).

    torchvision's reading: `scipy.io.loadmat`, X uint8 (32, 32, 3, N) transposed by (3, 2, 0, 1)
    to (N, 3, 32, 32), y (N, 1) squeezed, the label 10 (the digit 0) mapped to 0."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path), variable_names=["X", "y"])
        x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).astype(np.int64).reshape(-1)
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
            raise ValueError(f"X is {x.dtype} {x.shape}, expected uint8 (32, 32, 3, N)")
        if len(y) != x.shape[3]:
            raise ValueError(f"{len(y)} labels for {x.shape[3]} images")
    except Exception as e:
        raise DataError(f"svhn: cannot read {path}: {type(e).__name__}: {e}") from None
    y[y == 10] = 0
    return np.transpose(x, (3, 2, 0, 1)), y


def load_svhn(cfg, root: Path, download: bool = True) -> Dataset:
    """SVHN cropped digits (see the module docstring)."""

    def fetch() -> None:
        from torchvision.datasets import SVHN

        for split in ("train", "test"):
            SVHN(str(root), split=split, download=True)  # downloads and checks md5

    ensure_files(
        "SVHN",
        root,
        SVHN_FILES,
        download,
        fetch,
        "SVHN's cropped-digit files (train_32x32.mat, test_32x32.mat)",
        "them",
    )
    (x_train, y_train), (x_test, y_test) = (read_svhn_mat(root / f) for f in SVHN_FILES)
    x_train, y_train, x_test, y_test = _subsets(cfg, x_train, y_train, x_test, y_test)
    return dataset_from_arrays("svhn", _unit(x_train), y_train, _unit(x_test), y_test)


DATASETS.register(
    "svhn",
    DatasetSource(
        load_svhn, SubsetOptions, "SVHN cropped digits, 73,257 / 26,032, RGB 32x32, torchvision's .mat files"
    ),
)


# ---------------------------------------------------------------------------------------------
# celeba: aligned faces, center-cropped and resized (PyTorch-VAE's convention), unlabeled

CELEBA_FOLDER = "celeba"  # torchvision's CelebA.base_folder
CELEBA_IMAGES = "img_align_celeba"
CELEBA_PARTITION = "list_eval_partition.txt"
CELEBA_TRAIN, CELEBA_VALID, CELEBA_TEST = 0, 1, 2  # the official partition numbers


class CelebAOptions(SubsetOptions):
    """Aligned CelebA faces: center crop, then resize (PyTorch-VAE's CenterCrop(148), Resize(64))."""

    image_size: int = Field(64, ge=4, le=178, description="side in pixels after the crop is resized (PyTorch-VAE: 64)")
    crop: int = Field(148, ge=1, le=178, description="side of the center crop of the 178x218 image (PyTorch-VAE: 148)")


def read_celeba_partition(path: Path) -> list[tuple[str, int]]:
    """list_eval_partition.txt -> [(image file name, partition 0 / 1 / 2)], in file order."""
    out = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise DataError(
                    f"celeba: {path}, line {number}: expected '<image file> <0, 1 or 2>', found {line.strip()!r}"
                )
            out.append((parts[0], int(parts[1])))
    return out


def decode_celeba(file: Path, crop: int, size: int) -> np.ndarray:
    """One aligned image -> uint8 (3, size, size): RGB, center crop `crop`, resize to `size`
    (torchvision's center_crop and resize on the PIL image: PyTorch-VAE's pipeline)."""
    import torchvision.transforms.functional as TF
    from PIL import Image

    try:
        with Image.open(file) as img:
            img = img.convert("RGB")
    except Exception as e:
        raise DataError(f"celeba: cannot read image {file}: {type(e).__name__}: {e}") from None
    img = TF.resize(TF.center_crop(img, [crop, crop]), [size, size], antialias=True)
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def load_celeba(cfg, root: Path, download: bool = True) -> Dataset:
    """CelebA aligned faces, unlabeled (see the module docstring): train = partition 0,
    test = partition 2; `max_train` / `max_test` subsets chosen before decoding."""
    folder = root / CELEBA_FOLDER

    def fetch() -> None:
        from torchvision.datasets import CelebA

        CelebA(str(root), split="all", target_type=[], download=True)  # Google Drive (needs gdown), md5, unzip

    ensure_files(
        "CelebA",
        folder,
        (f"{CELEBA_IMAGES}/", CELEBA_PARTITION),
        download,
        fetch,
        f"the aligned images (img_align_celeba.zip, extracted to {CELEBA_IMAGES}/) and {CELEBA_PARTITION}",
        f"{CELEBA_FOLDER}/",
    )
    partition = read_celeba_partition(folder / CELEBA_PARTITION)

    def split(number: int, limit: Optional[int]) -> np.ndarray:
        names = [name for name, p in partition if p == number]
        if not names:
            raise DataError(f"celeba: {folder / CELEBA_PARTITION} lists no image of partition {number}")
        idx = subset_indices(len(names), limit, cfg.subset_seed)
        names = names if idx is None else [names[i] for i in idx]
        files = [folder / CELEBA_IMAGES / name for name in names]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            shown = ", ".join(missing[:5]) + (f" (and {len(missing) - 5} more)" if len(missing) > 5 else "")
            raise DataError(
                f"celeba: {len(missing)} image(s) listed in {CELEBA_PARTITION} are not in "
                f"{(folder / CELEBA_IMAGES).resolve()}: {shown}"
            )
        images = np.empty((len(files), 3, cfg.image_size, cfg.image_size), dtype=np.uint8)
        for k, file in enumerate(files):
            images[k] = decode_celeba(file, cfg.crop, cfg.image_size)
        return images

    x_train, x_test = split(CELEBA_TRAIN, cfg.max_train), split(CELEBA_TEST, cfg.max_test)
    ds = dataset_from_arrays(
        "celeba", _unit(x_train), np.zeros(len(x_train), np.int64), _unit(x_test), np.zeros(len(x_test), np.int64)
    )
    return replace(ds, labeled=False)


DATASETS.register(
    "celeba",
    DatasetSource(
        load_celeba,
        CelebAOptions,
        "CelebA aligned faces, partition 0 / 2, RGB, center crop 148 resized to 64, unlabeled",
    ),
)
