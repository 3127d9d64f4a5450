"""Seeding: every random generator a run draws from, seeded from its run seed."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (CPU and CUDA) from the run seed."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
