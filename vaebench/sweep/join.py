"""Joining a study as a worker in this process: what `vaebench worker` does, and what `vaebench run`
does with its one in-process worker (sweep/run.py), through one function, `join_study`.

A worker that opens the study itself (`vaebench worker`, on this or another machine) is a boundary:
it reads the spec from the storage, checks the spec's training precisions on its device, loads the
data and opens the study before its first trial; bad input is a VaebenchError then. `vaebench run`
has done all of that already and hands over the opened study.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence

from .display import SweepDisplay
from .launch import TRACKING_ENV

if TYPE_CHECKING:
    import optuna
    import torch

    from ..data import Dataset
    from ..spec.sweep_spec import SweepSpec
    from ..spec.tracking import TrackingConfig
    from .storage import StudyStore
    from .worker import WorkerSummary


@dataclass(frozen=True)
class OpenedStudy:
    """A study opened for its workers: the Optuna study, its spec and its data."""

    study: "optuna.Study"
    spec: "SweepSpec"
    data: "Dataset"


def check_precisions(spec: "SweepSpec", device: "torch.device") -> None:
    """Refuse (DeviceError, exit code 2), before anything is written, a `train.precision` of the
    spec's cells (or of its search space) that this torch cannot train in on `device`."""
    from ..runtime.device import check_precision
    from ..spec.sweep_spec import CategoricalParam

    precisions = {cfg.train.precision for cfg in spec.cells()}
    space = spec.search.space.get("train.precision")
    if isinstance(space, CategoricalParam):
        precisions |= set(space.values())
    for precision in sorted(precisions):
        check_precision(precision, device)


def resolve_tracking(tracking: "TrackingConfig", track: Sequence[str], option: str = "--track") -> "TrackingConfig":
    """`tracking` with the `--track URI`s applied, every backend checked installed: a TrackingError
    (exit 2) before anything is written otherwise."""
    from ..errors import TrackingError
    from ..spec.tracking import with_track_uris
    from ..tracking import check_trackers

    try:
        tracking = with_track_uris(tracking, list(track), option)
    except ValueError as e:
        raise TrackingError(str(e)) from None
    check_trackers(tracking)
    return tracking


def worker_tracking(spec: "SweepSpec", track: Sequence[str] = ()) -> "TrackingConfig":
    """Where a joining worker mirrors its runs: the tracking `vaebench run` resolved for its worker
    processes (`TRACKING_ENV`), else the stored spec's `tracking:` section; then its own `--track`."""
    from ..spec.tracking import TrackingConfig

    given = os.environ.get(TRACKING_ENV)
    base = TrackingConfig.model_validate_json(given) if given else spec.tracking
    return resolve_tracking(base, track)


def open_for_worker(
    store: "StudyStore",
    device: "torch.device",
    data_root=None,
    download: bool = True,
    wait_seconds: float = 0.0,
    track: Sequence[str] = (),
) -> OpenedStudy:
    """The study of `store` as a joining worker opens it: its stored spec (waiting up to
    `wait_seconds` for the study to be made) with the worker's tracking (`worker_tracking`: checked
    installed), the spec's precisions checked on `device` (checked already: `runtime.check_device`),
    its data, then the study itself."""
    from ..data import load_dataset
    from .study import open_study, wait_for_study

    spec = wait_for_study(store, wait_seconds)
    spec = spec.model_copy(update={"tracking": worker_tracking(spec, track)})
    check_precisions(spec, device)
    data = load_dataset(spec.dataset, data_root, download=download)
    return OpenedStudy(open_study(spec, store, data.checksum, data.validation_checksum), spec, data)


def join_study(
    store: "StudyStore",
    device: "torch.device",
    display: SweepDisplay,
    *,
    opened: Optional[OpenedStudy] = None,
    threads: Optional[int] = None,
    data_root=None,
    download: bool = True,
    wait_seconds: float = 0.0,
    command: str = "",
    track: Sequence[str] = (),
) -> "WorkerSummary":
    """Join the study of `store` as one worker in this process, on the checked `device` with
    `threads` torch threads (default: as they are), and run its trials until none is left; returns
    what it ran. `opened`: the study as the caller opened it (else `open_for_worker` opens it, with
    `data_root`, `download` and `wait_seconds`). `command` is the rows' provenance; `display` shows
    the worker's start, its runs and its summary. `track`: the worker's `--track` URIs (on top of the
    stored spec's `tracking:`; not with `opened`, whose spec carries its tracking already)."""
    import torch

    from .study import study_status
    from .worker import run_worker

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:  # the caller's thread count comes back after: `vaebench.run` may join in the caller's process
        if opened is None:
            opened = open_for_worker(store, device, data_root, download, wait_seconds, track)
        display.joined(store.study, store.describe(), torch.get_num_threads(), device)
        status = study_status(opened.study)
        with display.worker_here(status.total, status.done) as reporter:
            summary = run_worker(opened.study, opened.spec, opened.data, store, device, reporter, command)
        display.worker_done(summary)
        return summary
    finally:
        torch.set_num_threads(before)
