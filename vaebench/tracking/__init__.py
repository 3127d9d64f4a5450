"""Experiment trackers: each vaebench run mirrored to MLflow and/or TensorBoard, fed one way.

The worker (sweep/worker.py) opens the trackers the spec's `tracking:` section (or `--track`) names
(`open_trackers`), starts one `TrackedRun` per run it executes, hands it every epoch record the
trainer produces (the restored ones of a resumed run included) and finally the run's row, which
comes back with its `tracking_error` column set. The trainer and the engine know nothing of it.

    Trackers ── start(run) ──► TrackedRun ── epoch(record) ... finish(row) ──► row + tracking_error
                                  └─ one RunTracker per backend (mlflow_backend.py, tensorboard_backend.py)

A backend is a `TRACKERS` entry (`TrackerEntry`: the pip extra it needs, the modules that must
import, and the factory of its `Tracker`); the `tracking:` section has one key per entry. A backend
that is not installed is a `TrackingError` (exit 2) before anything is written, naming the pip
command. Once runs train, a backend's failure (a server down mid-sweep) is never fatal: it is
logged to the `vaebench` logger, that backend is skipped for the rest of that run, the next run
tries again, and the row records what failed. A row is never lost to a tracker.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Callable, Optional

from ..registry import Registry
from ..spec.tracking import TrackingConfig
from .base import RunInfo, RunTracker, Tracker, TrackerEntry

__all__ = ["TRACKERS", "RunInfo", "RunTracker", "TrackedRun", "Tracker", "TrackerEntry", "Trackers", "open_trackers"]

LOG = logging.getLogger("vaebench")
TRACKING_ERROR = "tracking_error"  # the row column (results/rows.py)


def _mlflow(settings, lock) -> Tracker:
    from .mlflow_backend import MlflowTracker

    return MlflowTracker(settings, lock)


def _tensorboard(settings, lock) -> Tracker:
    from .tensorboard_backend import TensorboardTracker

    return TensorboardTracker(settings)


TRACKERS: Registry[TrackerEntry] = Registry("tracker")
TRACKERS.register("mlflow", TrackerEntry(_mlflow, ("mlflow",), "mlflow"))
TRACKERS.register("tensorboard", TrackerEntry(_tensorboard, ("tensorboard", "torch.utils.tensorboard"), "tensorboard"))


def check_trackers(tracking: TrackingConfig) -> None:
    """Every backend `tracking` names is registered and installed (else TrackingError, exit 2)."""
    for name in tracking.backends():
        TRACKERS.get(name).check_installed(name)


@dataclass
class TrackedRun:
    """One run on every backend; never raises. `errors`: what failed, by backend."""

    trackers: dict[str, Optional[RunTracker]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def _call(self, name: str, what: str, call: Callable[[RunTracker], None]) -> None:
        tracker = self.trackers.get(name)
        if tracker is None:
            return
        try:
            call(tracker)
        except Exception as e:  # a tracker never takes a run down: record it, skip the backend for this run
            message = f"{what}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")
            LOG.warning("tracking.%s failed (%s); the run goes on without it", name, message)
            self.errors[name] = message
            self.trackers[name] = None

    def epoch(self, record: dict) -> None:
        for name in list(self.trackers):
            self._call(name, f"epoch {record.get('epoch')}", lambda t: t.epoch(record))

    def abort(self, reason: str) -> None:
        for name in list(self.trackers):
            self._call(name, "abort", lambda t: t.abort(reason))

    def finish(self, row: dict) -> dict:
        """The row with its `tracking_error` (null when every backend took the run); without
        trackers the row unchanged."""
        if not self.trackers and not self.errors:
            return row
        for name in list(self.trackers):
            self._call(name, "finish", lambda t: t.finish({**row, TRACKING_ERROR: self._error()}))
        return {**row, TRACKING_ERROR: self._error()}

    def _error(self) -> Optional[str]:
        return "; ".join(f"{name}: {message}" for name, message in self.errors.items()) or None


class Trackers:
    """The backends of one worker process. A backend whose setup fails (its server unreachable) is
    tried again at the next run; meanwhile the runs' rows record the failure."""

    def __init__(self, tracking: TrackingConfig, lock: Callable[[], AbstractContextManager] = nullcontext) -> None:
        check_trackers(tracking)
        self._settings = {name: getattr(tracking, name) for name in tracking.backends()}
        self._lock = lock
        self._made: dict[str, Tracker] = {}

    def __bool__(self) -> bool:
        return bool(self._settings)

    def start(self, info: RunInfo) -> TrackedRun:
        tracked = TrackedRun()
        for name, settings in self._settings.items():
            try:
                if name not in self._made:
                    self._made[name] = TRACKERS.get(name).make(settings, self._lock)
                tracked.trackers[name] = self._made[name].start(info)
            except Exception as e:
                tracked.trackers[name] = None
                tracked.errors[name] = f"start: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                LOG.warning("tracking.%s could not start run %s (%s)", name, info.run_id, tracked.errors[name])
        return tracked


def open_trackers(tracking: TrackingConfig, lock: Callable[[], AbstractContextManager] = nullcontext) -> Trackers:
    """The worker's trackers for `tracking` (checked: TrackingError when one is not installed)."""
    return Trackers(tracking, lock)
