"""Process-level helpers every stage shares: the device, seeding, file locks and atomic writes."""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

DEVICE_ENV = "VAEBENCH_DEVICE"


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """--device, else $VAEBENCH_DEVICE, else 'auto': CUDA when present, else CPU."""
    if isinstance(device, torch.device):
        return device
    device = device or os.environ.get(DEVICE_ENV) or "auto"
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (CPU and CUDA) from the run seed."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (fcntl) on `path`, shared by all processes on this machine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; once the block has written it, fsync it and rename it
    over `path`. A crash leaves either the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
