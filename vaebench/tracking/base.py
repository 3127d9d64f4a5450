"""The tracker interface: what a backend is told of a run (`RunInfo`), one run on one backend
(`RunTracker`), a backend (`Tracker`) and its registry entry (`TrackerEntry`). tracking/__init__.py
holds the registry and feeds the backends."""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import TrackingError
from ..spec.sweep_spec import Run, SweepSpec


@dataclass(frozen=True)
class RunInfo:
    """What a tracker is told of a run when it starts. `params`: the run's resolved config flattened
    (`model.latent_dim`, ...); `swept`: the values that distinguish its cell (the grid's keys, or a
    sampled search's params) and its seed; `results_folder`: results/<study>/ (the row's `model_path`
    is relative to it; None when nothing is saved)."""

    study: str
    run_id: str
    seed: int
    cell: int
    params: dict[str, Any]
    swept: dict[str, Any]
    spec_fingerprint: str
    results_folder: Optional[Path] = None

    @classmethod
    def of(cls, run: Run, spec: SweepSpec, results_root: Optional[Path]) -> "RunInfo":
        return cls(
            study=spec.study,
            run_id=run.run_id,
            seed=run.seed,
            cell=run.cell_index,
            params=run.config.flat(),
            swept={**run.labels, "seed": run.seed},
            spec_fingerprint=spec.fingerprint(),
            results_folder=None if results_root is None else Path(results_root) / spec.study,
        )


class RunTracker(ABC):
    """One run on one backend. Any method may raise: `TrackedRun` catches, logs and records it."""

    @abstractmethod
    def epoch(self, record: dict) -> None:
        """One epoch's history record (results/fields.py): its losses at step = record["epoch"]."""

    @abstractmethod
    def finish(self, row: dict) -> None:
        """The run's row: its final scalar metrics, artifacts, final state."""

    def abort(self, reason: str) -> None:
        """The run crashed or was preempted (its trial is retried): no row comes."""


class Tracker(ABC):
    """One backend for one worker process: starts its runs."""

    @abstractmethod
    def start(self, info: RunInfo) -> RunTracker:
        """The tracker of one vaebench run; a run tracked before (a retried or resumed trial) is
        continued, never created twice."""


@dataclass(frozen=True)
class TrackerEntry:
    """A backend: `make(settings, lock)` builds its `Tracker` from its `tracking:` settings (`lock`:
    the study's cross-process lock, for what must happen once per study); `requires`: the modules
    that must import; `extra`: vaebench's pip extra that installs them."""

    make: Callable[[Any, Callable[[], AbstractContextManager]], Tracker]
    requires: tuple[str, ...]
    extra: str

    def check_installed(self, name: str) -> None:
        for module in self.requires:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                raise TrackingError(
                    f"tracking.{name} needs the {module.split('.')[0]!r} package, which is not installed: "
                    f"pip install 'vaebench[{self.extra}]'"
                )
