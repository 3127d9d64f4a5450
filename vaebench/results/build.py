"""The one builder of a results row (the columns are listed in rows.py): a run's identity, its
search and parameters, its sizes and times, every declared metric column, its history, and the
provenance (command, versions, device and machine, precision, data, plugins, time). A run a worker
executes (engine/execute.py) and a result added from outside the sweep (`vaebench.add_result`)
both get their row here, so both have every column, in the same order.
"""

from __future__ import annotations

import datetime as _dt
import platform
import socket
from importlib.metadata import version
from typing import Any, Optional

import torch

from .._version import __version__
from ..metrics import METRICS
from ..plugins import loaded_plugins
from ..runtime.device import machine_description
from ..spec.sections import RunConfig
from .rows import metric_types, param_columns
from .status import RunStatus


def utc_now() -> str:
    """The time a row records as `created_at`: UTC, ISO 8601, to the second."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def metric_columns(measured: dict[str, Any]) -> dict[str, Any]:
    """Every declared metric column (null unless measured), `metrics_skipped` and every metric's
    `eval_seconds_<metric>`, updated with the `measured` columns (what `metrics.evaluate` returned)."""
    columns: dict[str, Any] = {k: None for k in metric_types()}
    columns.update({f"eval_seconds_{n}": None for n in METRICS.names()})
    columns.update(measured)
    return columns


def build_row(
    *,
    run_id: str,
    study: str,
    seed: int,
    status: RunStatus | str,
    reason: Optional[str],
    variant: Optional[str],
    cell_index: int,
    trial_number: int,
    config: Optional[RunConfig],
    params: Optional[dict[str, Any]] = None,
    grid_keys: list[str],
    sampler: Optional[str],
    objective_metrics: list[str],
    objective_directions: list[str],
    objective_values: Optional[list[float]] = None,
    objective_split: Optional[str] = None,
    allow_test_selection: Optional[bool] = None,
    n_params: Optional[int],
    epochs_completed: Optional[int],
    stop_reason: Optional[str] = None,
    best_epoch: Optional[int] = None,
    resumed_from_epoch: Optional[int] = None,
    attempts: Optional[int] = None,
    train_seconds: Optional[float],
    eval_seconds: Optional[float],
    model_path: Optional[str] = None,
    artifacts_path: Optional[str] = None,
    metrics: dict[str, Any],
    history: list[dict],
    precision: Optional[str],
    tf32: Optional[bool],
    command: str,
    overrides: Optional[list[str]] = None,
    device: Optional[torch.device],
    dataset: str,
    dataset_checksum: Optional[str],
    validation_size: Optional[int] = None,
    validation_checksum: Optional[str] = None,
    spec_fingerprint: Optional[str],
    created_at: Optional[str] = None,
    note: Optional[str] = None,
) -> dict[str, Any]:
    """One results row. `params` (the `param.*` columns) defaults to those of `config` (none without
        one: a result made elsewhere, its parameters unknown); `metrics`
        are the measured metric columns (the others are null); seconds are wall-clock seconds. `device`
        None: a result made elsewhere (its device and torch threads are unknown; `machine` describes
        this machine's CPU). `objective_values`: the values the trial told Optuna (the objective metrics',
        in order), measured on `objective_split`; null when not told (a failed or pruned run, a result made
        elsewhere). `resumed_from_epoch`: the epoch a checkpoint resumed the run in (null: never interrupted,
    or a result made elsewhere); `attempts`: the study's trials that carried the run, the row's included
    (1 for `vaebench train`; null: made elsewhere). `note` becomes the `provenance_note` column (only rows that have one)."""
    row = {
        "run_id": run_id,
        "study": study,
        "seed": int(seed),
        "status": RunStatus(status).value,
        "reason": reason,
        "variant": variant,
        "cell_index": int(cell_index),
        "trial_number": int(trial_number),
        **(params if params is not None else param_columns(config) if config is not None else {}),
        "config": config.model_dump_json() if config is not None else None,
        "grid_keys": list(grid_keys),
        "sampler": sampler,
        "objective_metrics": list(objective_metrics),
        "objective_directions": list(objective_directions),
        "objective_values": None if objective_values is None else [float(v) for v in objective_values],
        "objective_split": objective_split,
        "allow_test_selection": allow_test_selection,
        "n_params": n_params,
        "epochs_completed": epochs_completed,
        "stop_reason": stop_reason,
        "best_epoch": best_epoch,
        "resumed_from_epoch": resumed_from_epoch,
        "attempts": attempts,
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "model_path": model_path,
        "artifacts_path": artifacts_path,
        **metric_columns(metrics),
        "history": history,
        "precision": precision,
        "tf32": tf32,
        "command": command,
        "overrides": list(overrides or []),
        "vaebench_version": __version__,
        "torch_version": torch.__version__,
        "optuna_version": version("optuna"),
        "python_version": platform.python_version(),
        "device": str(device) if device is not None else None,
        "torch_threads": torch.get_num_threads() if device is not None else None,
        "hostname": socket.gethostname(),
        "machine": machine_description(device if device is not None else torch.device("cpu")),
        "dataset": dataset,
        "dataset_checksum": dataset_checksum,
        "validation_size": validation_size,
        "validation_checksum": validation_checksum,
        "spec_fingerprint": spec_fingerprint,
        "created_at": created_at or utc_now(),
        "plugins": loaded_plugins(),
    }
    if note is not None:
        row["provenance_note"] = note
    return row
