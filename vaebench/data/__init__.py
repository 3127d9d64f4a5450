"""Dataset sources behind one registry: name -> `DatasetSource` (a loader returning in-memory
tensors, and the pydantic `Options` model of the options it reads; see vaebench/options.py).

Every source returns a `Dataset`: float32 images in [0, 1] shaped (N, C, H, W), int64 labels, the
official (or a fixed, seeded) train/test split, and a checksum of exactly the tensors used. A source
with ground-truth factors of variation (`shapes`) also returns each image's factor indices. The
trainer slices these tensors by index; there is no DataLoader in the training path.

This package's names (`__all__`) are what a user or a source of their own imports: `load_dataset`,
and from base.py `Dataset`, `DatasetSource`, `Factor`, the `DATASETS` registry, `dataset_from_arrays`
(a `Dataset` with its checksum from arrays), `checksum`, `ensure_files`, `resolve_data_root`,
`without_config`. A source's own names (e.g. `SHAPES`, `load_mnist`) are imported from its module:
builtin.py (mnist, digits, synthetic), shapes.py (shapes), image_folder.py (image_folder: a
user-style source in its own module) and torchvision_sets.py (fashion_mnist, cifar10, svhn, celeba).
Importing any of them runs this `__init__` first, which registers every built-in source, each as a
plugin would (`DATASETS.register`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from . import (
    builtin,  # noqa: F401  (registers mnist, digits, synthetic)
    image_folder,  # noqa: F401  (registers image_folder)
    shapes,  # noqa: F401  (registers shapes)
    torchvision_sets,  # noqa: F401  (registers fashion_mnist, cifar10, svhn, celeba)
)
from .base import (
    DATA_ROOT_ENV,
    DATASET_COMMON_FIELDS,
    DATASETS,
    Dataset,
    DatasetSource,
    Factor,
    checksum,
    dataset_from_arrays,
    ensure_files,
    hold_out_validation,
    resolve_data_root,
    without_config,
)

__all__ = [
    "DATASETS",
    "DATASET_COMMON_FIELDS",
    "DATA_ROOT_ENV",
    "Dataset",
    "DatasetSource",
    "Factor",
    "checksum",
    "dataset_from_arrays",
    "ensure_files",
    "hold_out_validation",
    "load_dataset",
    "resolve_data_root",
    "without_config",
]

BINARIZE_TEST_SEED = 0


def load_dataset(cfg, data_root: str | Path | None = None, download: bool = True) -> Dataset:
    """Load the dataset a `DatasetConfig` names. With `cfg.validation`, that many training examples
    are held out (`hold_out_validation`): the trainer never sees them; they are what pruners, search
    targets and early stopping read. With `binarize`, the test split (and the validation split) is
    one fixed Bernoulli draw (seed 0) so that every run is evaluated on the same binary images; the
    training split stays grayscale and the trainer draws a fresh binarization per batch."""
    ds = DATASETS.get(cfg.name).load(cfg, resolve_data_root(data_root), download)
    if cfg.binarize:
        g = torch.Generator().manual_seed(BINARIZE_TEST_SEED)
        x_test = torch.bernoulli(ds.x_test, generator=g)
        ds = replace(
            dataset_from_arrays(
                ds.name, ds.x_train, ds.y_train, x_test, ds.y_test, ds.factors_train, ds.factors_test, ds.factors
            ),
            labeled=ds.labeled,
        )
    ds = hold_out_validation(ds, cfg.validation)
    if cfg.binarize and ds.x_val is not None:  # its own fixed draw, after the test split's
        ds = replace(ds, x_val=torch.bernoulli(ds.x_val, generator=g))
    return ds
