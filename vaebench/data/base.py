"""What every dataset source shares: the `Dataset` it returns (built by `dataset_from_arrays`), the
`DatasetSource` it registers as, the `DATASETS` registry, the checksum, and the check of a source's
files (`ensure_files`).

Every source module (built-in or plugin) imports these and registers itself with
`DATASETS.register(name, DatasetSource(load, options))`. The package's `__init__` imports every
built-in source module, and Python runs it before any module of the package: the built-ins come
first, whichever module is imported first.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..errors import DataError
from ..options import NoOptions, Options, check_entry
from ..registry import Registry

DATA_ROOT_ENV = "VAEBENCH_DATA_ROOT"


@dataclass(frozen=True)
class Factor:
    """A ground-truth factor of variation: its values are the indices 0 .. size - 1."""

    name: str
    size: int
    categorical: bool  # True: unordered classes (e.g. shape); False: ordered values (scale, position, ...)


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: torch.Tensor  # (N, C, H, W) float32 in [0, 1]
    y_train: torch.Tensor  # (N,) int64
    x_test: torch.Tensor
    y_test: torch.Tensor
    checksum: str = ""  # sha256 (first 16 hex) of the tensors' bytes (the factor tensors too, when present)
    # Ground-truth factors of variation (datasets rendered from known factors; None / () otherwise):
    factors_train: Optional[torch.Tensor] = None  # (N, K) int64: factor k's value index of each image
    factors_test: Optional[torch.Tensor] = None
    factors: tuple[Factor, ...] = ()  # the K factors, in column order
    labeled: bool = True  # False: y_* are all 0 placeholders (class-based metrics and models do not apply)
    # The validation split (`dataset.validation`, see `hold_out_validation`): the sorted indices into
    # the training split of the examples held out from training (None: no validation split), and
    # those examples (binarized once with a fixed seed when the spec binarizes, like the test split).
    validation_index: Optional[torch.Tensor] = None
    x_val: Optional[torch.Tensor] = None
    y_val: Optional[torch.Tensor] = None
    factors_val: Optional[torch.Tensor] = None

    @property
    def validation_size(self) -> int:
        """How many training examples are held out for validation (0: no validation split)."""
        return 0 if self.validation_index is None else len(self.validation_index)

    @property
    def validation_checksum(self) -> Optional[str]:
        """sha256 (first 16 hex) of the validation indices (None without a validation split): with
        `checksum`, what identifies the examples a run validates on."""
        return None if self.validation_index is None else checksum(self.validation_index)

    def training_examples(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The (images, labels) a model trains on: the training split without its validation part
        (order kept)."""
        if self.validation_index is None:
            return self.x_train, self.y_train
        keep = torch.ones(len(self.x_train), dtype=torch.bool)
        keep[self.validation_index] = False
        return self.x_train[keep], self.y_train[keep]

    def validation_split(self) -> "Dataset":
        """This dataset with the validation examples as its held-out split (`x_test`, `y_test`,
        `factors_test`), for evaluating a metric on validation instead of test. Raises ValueError
        without a validation split."""
        if self.validation_index is None:
            raise ValueError(f"dataset {self.name!r} has no validation split (set dataset.validation)")
        return replace(self, x_test=self.x_val, y_test=self.y_val, factors_test=self.factors_val)

    @property
    def has_factors(self) -> bool:
        return self.factors_test is not None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


DATASET_COMMON_FIELDS = (
    "name",
    "binarize",
    "validation",
)  # what every dataset section has besides its source's options


@dataclass(frozen=True)
class DatasetSource:
    """A registry entry: `load(cfg, root, download) -> Dataset`, with `cfg` the run's DatasetConfig
    (its source's options as attributes, e.g. `cfg.image_size`), `root` the data root and `download`
    whether fetching missing files is allowed; and the pydantic model of those options."""

    load: Callable[..., Dataset]
    options: type[Options] = NoOptions
    doc: str = ""


def _check_source(name: str, source: DatasetSource) -> None:
    check_entry(
        "dataset",
        name,
        source,
        DatasetSource,
        "load",
        "a vaebench.data.DatasetSource(load, options)",
        DATASET_COMMON_FIELDS,
    )


DATASETS: Registry[DatasetSource] = Registry("dataset", check=_check_source)


def without_config(loader: Callable[[Path, bool], Dataset], doc: str = "") -> DatasetSource:
    """A source with no options of its own: `loader(root, download)`."""
    return DatasetSource(lambda cfg, root, download: loader(root, download), NoOptions, doc)


def resolve_data_root(data_root: str | Path | None = None) -> Path:
    """--data-root, else $VAEBENCH_DATA_ROOT, else ./data."""
    return Path(data_root or os.environ.get(DATA_ROOT_ENV) or "data")


def checksum(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.numpy().reshape(-1).view(np.uint8))  # the bytes, not a copy of them
    return h.hexdigest()[:16]


def dataset_from_arrays(
    name: str, x_train, y_train, x_test, y_test, factors_train=None, factors_test=None, factors: tuple[Factor, ...] = ()
) -> Dataset:
    """The `Dataset` of these arrays (numpy or torch), as every source builds its own: images (N, C, H, W)
    in [0, 1] as float32, labels (N,) and factor indices (N, K) as int64, and its checksum (of the
    four tensors, and the factor tensors when given)."""
    tensors = [torch.as_tensor(a) for a in (x_train, y_train, x_test, y_test)]
    tensors[0], tensors[2] = tensors[0].float().contiguous(), tensors[2].float().contiguous()
    tensors[1], tensors[3] = tensors[1].long(), tensors[3].long()
    if factors_train is None:  # the checksum of a dataset without factors is that of its four tensors
        return Dataset(name, *tensors, checksum=checksum(*tensors))
    f_train, f_test = (torch.as_tensor(f).long().contiguous() for f in (factors_train, factors_test))
    return Dataset(
        name,
        *tensors,
        checksum=checksum(*tensors, f_train, f_test),
        factors_train=f_train,
        factors_test=f_test,
        factors=tuple(factors),
    )


VALIDATION_SEED = 0  # the one permutation every study's validation split is cut from


def validation_count(validation: int | float, n_train: int) -> int:
    """How many of `n_train` training examples `dataset.validation` holds out: an int is a count, a
    float in (0, 1) a fraction (rounded to the nearest count). 0 / 0.0: none. Raises DataError when
    that leaves no example to train on or none to validate on."""
    count = validation if isinstance(validation, int) else round(validation * n_train)
    if validation and not 1 <= count < n_train:
        raise DataError(
            f"field dataset.validation: {validation!r} holds out {count} of the {n_train} training examples; "
            f"it must leave at least one to train on and hold out at least one"
        )
    return int(count)


def hold_out_validation(data: Dataset, validation: int | float) -> Dataset:
    """`data` with `validation` training examples held out (`validation_count`): a uniformly random
    subset drawn from one fixed permutation (torch.randperm, seed VALIDATION_SEED) of the training
    split, so that it is the same for every seed, cell, worker and resumed study of the same data
    (`Dataset.validation_checksum` identifies it). The test split is untouched."""
    count = validation_count(validation, len(data.x_train))
    if count == 0:
        return data
    perm = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(VALIDATION_SEED))
    i = perm[:count].sort().values
    return replace(
        data,
        validation_index=i,
        x_val=data.x_train[i],
        y_val=data.y_train[i],
        factors_val=None if data.factors_train is None else data.factors_train[i],
    )


def ensure_files(
    title: str,
    folder: Path,
    files: Sequence[str],
    download: bool,
    fetch: Callable[[], object],
    what: str,
    contains: str,
) -> None:
    """The check every downloadable source makes before reading: `files` (relative to `folder`; a
    name ending in "/" is a folder) must exist. When some are missing and `download` is set,
    `fetch()` (a torchvision download into the data root) is called once and the files are checked
    again. Otherwise, or when the download fails or leaves files missing, raises a DataError (exit
    code 2) naming the missing files, the folder, the reason, and what to put there or where
    --data-root / $VAEBENCH_DATA_ROOT should point (`what`, `contains`: phrases of that sentence)."""

    def absent() -> list[str]:
        return [f for f in files if not ((folder / f).is_dir() if f.endswith("/") else (folder / f).is_file())]

    missing, reason = absent(), ""
    if missing and download:
        try:
            fetch()
        except Exception as e:  # network down, read-only folder, bad mirror: say what we need
            reason = f" (download failed: {type(e).__name__}: {str(e)[:200]})"
        missing = absent()
        if missing and not reason:
            reason = " (still missing after the download)"
    elif missing:
        reason = " (download disabled)"
    if missing:
        raise DataError(
            f"{title} not found: expected {', '.join(missing)} in {folder.resolve()}{reason}. "
            f"Put {what} there, or point --data-root / ${DATA_ROOT_ENV} at the folder that contains {contains}."
        )
