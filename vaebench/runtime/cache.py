"""The one folder where vaebench caches what it computes once and reuses: trained FID classifiers,
FID reference features, rendered datasets."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "VAEBENCH_CACHE"


def cache_dir() -> Path:
    """$VAEBENCH_CACHE, else ~/.cache/vaebench."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "vaebench")
