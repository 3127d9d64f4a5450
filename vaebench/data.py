"""Dataset sources behind one registry: name -> loader returning in-memory tensors.

Every source returns a `Dataset`: float32 images in [0, 1] shaped (N, C, H, W), int64 labels, the
official (or a fixed, seeded) train/test split, and a checksum of exactly the tensors used. The
trainer slices these tensors by index; there is no DataLoader in the training path.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .errors import DataError
from .registry import Registry

DATA_ROOT_ENV = "VAEBENCH_DATA_ROOT"


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: torch.Tensor  # (N, C, H, W) float32 in [0, 1]
    y_train: torch.Tensor  # (N,) int64
    x_test: torch.Tensor
    y_test: torch.Tensor
    checksum: str = ""  # sha256 (first 16 hex) of the four tensors' bytes

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    def to(self, device: torch.device | str) -> "Dataset":
        return replace(
            self,
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_test=self.x_test.to(device),
            y_test=self.y_test.to(device),
        )


Loader = Callable[[Path, bool], Dataset]
DATASETS: Registry[Loader] = Registry("dataset")


def resolve_data_root(data_root: str | Path | None = None) -> Path:
    """--data-root, else $VAEBENCH_DATA_ROOT, else ./data."""
    return Path(data_root or os.environ.get(DATA_ROOT_ENV) or "data")


def checksum(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


def _finish(name: str, x_train, y_train, x_test, y_test) -> Dataset:
    tensors = [torch.as_tensor(a) for a in (x_train, y_train, x_test, y_test)]
    tensors[0], tensors[2] = tensors[0].float().contiguous(), tensors[2].float().contiguous()
    tensors[1], tensors[3] = tensors[1].long(), tensors[3].long()
    return Dataset(name, *tensors, checksum=checksum(*tensors))


MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@DATASETS.register("mnist")
def load_mnist(root: Path, download: bool = True) -> Dataset:
    """MNIST, official split (60,000 train / 10,000 test), torchvision's raw layout under `root`.

    Reads root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte. Downloads through
    torchvision when they are missing and `download` is set; otherwise, or when the download fails,
    raises a DataError that names the files, the folder and the environment variable.
    """
    from torchvision.datasets import MNIST

    raw = root / "MNIST" / "raw"
    missing = [f for f in MNIST_FILES if not (raw / f).is_file()]
    if missing and download:
        try:
            MNIST(str(root), train=True, download=True)
            MNIST(str(root), train=False, download=True)
        except Exception as e:  # network down, read-only folder, bad mirror: say what we need
            missing = [f for f in MNIST_FILES if not (raw / f).is_file()]
            reason = f" (download failed: {type(e).__name__}: {str(e)[:200]})"
        else:
            missing, reason = [], ""
    else:
        reason = "" if not missing else " (download disabled)"
    if missing:
        raise DataError(
            f"MNIST not found: expected {', '.join(missing)} in {raw.resolve()}{reason}. "
            f"Put torchvision's raw MNIST files there, or point --data-root / ${DATA_ROOT_ENV} "
            f"at the folder that contains MNIST/raw/."
        )
    try:
        train, test = MNIST(str(root), train=True), MNIST(str(root), train=False)
    except Exception as e:
        raise DataError(f"MNIST files in {raw.resolve()} cannot be read: {e}") from None
    return _finish(
        "mnist",
        train.data.unsqueeze(1).float() / 255.0,
        train.targets,
        test.data.unsqueeze(1).float() / 255.0,
        test.targets,
    )


DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


@DATASETS.register("digits")
def load_digits(root: Path, download: bool = True) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 images, no download); pixels 0..16 scaled to [0, 1].

    Fixed split: a permutation with seed 0, the last 20% (359 images) as the test split.
    """
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = d.images.astype(np.float32)[:, None] / 16.0
    perm = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(x))
    n_test = int(round(len(x) * DIGITS_TEST_FRACTION))
    tr, te = perm[:-n_test], perm[-n_test:]
    return _finish("digits", x[tr], d.target[tr], x[te], d.target[te])


@DATASETS.register("synthetic")
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
    return _finish("synthetic", x[:512], y[:512], x[512:], y[512:])


BINARIZE_TEST_SEED = 0


def load_dataset(cfg, data_root: str | Path | None = None, download: bool = True) -> Dataset:
    """Load the dataset a `DatasetConfig` names. With `binarize`, the test split is one fixed
    Bernoulli draw (seed 0) so that every run is evaluated on the same binary images; the training
    split stays grayscale and the trainer draws a fresh binarization per batch."""
    ds = DATASETS.get(cfg.name)(resolve_data_root(data_root), download)
    if cfg.binarize:
        g = torch.Generator().manual_seed(BINARIZE_TEST_SEED)
        x_test = torch.bernoulli(ds.x_test, generator=g)
        ds = _finish(ds.name, ds.x_train, ds.y_train, x_test, ds.y_test)
    return ds
