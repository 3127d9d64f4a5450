"""Process-level settings every stage shares: the device and the seeding of random generators."""

from __future__ import annotations

import os
import random

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
