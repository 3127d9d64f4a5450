"""Optuna: one study per spec, one enqueued trial per run (cell x seed), and the worker loop.

Storage: an Optuna JournalStorage in results/<study>/journal.log, safe for several processes on one
machine. The study remembers the spec's fingerprint; resuming with a different spec is refused.

A worker claims WAITING trials one at a time (the WAITING -> RUNNING transition is atomic in every
Optuna storage, so no two workers ever run the same trial), trains, evaluates, writes the run's
results row, and only then tells the trial COMPLETE. On every start, trials left RUNNING by a dead
process on this host (killed, crashed, interrupted) are failed and their runs enqueued again; a run
whose row already exists is never trained again.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import optuna
import torch
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from . import __version__
from .data import Dataset
from .errors import StudyError
from .metrics import METRICS, evaluate
from .metrics.columns import NEG_ELBO
from .models import count_parameters
from .results import METRIC_TYPES, has_row, param_columns, read_row, write_row
from .runtime import file_lock, resolve_device
from .spec import Run, RunConfig, SweepSpec
from .train import train

JOURNAL_FILE = "journal.log"
ATTR_RUN_ID, ATTR_CONFIG, ATTR_SEED = "run_id", "config", "seed"
ATTR_LABELS, ATTR_CELL = "labels", "cell_index"
ATTR_WORKER, ATTR_FAIL = "worker", "fail_reason"

optuna.logging.set_verbosity(optuna.logging.WARNING)


def study_dir(results_root: Path, name: str) -> Path:
    return Path(results_root) / name


def journal_storage(results_root: Path, name: str) -> JournalStorage:
    path = study_dir(results_root, name) / JOURNAL_FILE
    return JournalStorage(JournalFileBackend(str(path)))


def _spec_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += _spec_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {json.dumps(a)} -> {json.dumps(b)}")
    return out


def open_study(spec: SweepSpec, results_root: Path) -> optuna.Study:
    """Create the study for `spec` (or load it, if the same spec made it) and make sure every run
    has a trial: WAITING, RUNNING, COMPLETE, or FAILED with a results row."""
    folder = study_dir(results_root, spec.study)
    spec_json = spec.model_dump(mode="json", exclude={"description"})
    with file_lock(folder / ".lock"):
        storage = journal_storage(results_root, spec.study)
        try:
            study = optuna.load_study(study_name=spec.study, storage=storage)
        except KeyError:
            study = optuna.create_study(study_name=spec.study, storage=storage, direction="minimize")
            study.set_user_attr("spec", spec_json)
            study.set_user_attr("spec_fingerprint", spec.fingerprint())
            study.set_user_attr("vaebench_version", __version__)
            (folder / "spec.json").write_text(json.dumps(spec.model_dump(mode="json"), indent=2) + "\n")
        if study.user_attrs.get("spec_fingerprint") != spec.fingerprint():
            changes = _spec_diff(study.user_attrs.get("spec", {}), spec_json)
            raise StudyError(
                f"study {spec.study!r} in {folder} was made from a different spec; refusing to mix "
                f"results. Changed: {'; '.join(changes[:8]) or '(unknown)'}. Restore the spec, run it "
                f"under a new name (--study NEW_NAME), or delete {folder} to start over."
            )
        recover_stale_trials(study, results_root)
        _enqueue_missing(study, spec, results_root)
    return study


def _covered_run_ids(study: optuna.Study, results_root: Path) -> set[str]:
    """Runs that need no new trial: queued, running, complete, or failed with a results row."""
    covered = set()
    for t in study.get_trials(deepcopy=False):
        run_id = t.user_attrs.get(ATTR_RUN_ID)
        if t.state in (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE):
            covered.add(run_id)
        elif has_row(results_root, study.study_name, run_id):
            covered.add(run_id)
    return covered


def _enqueue_missing(study: optuna.Study, spec: SweepSpec, results_root: Path) -> None:
    covered = _covered_run_ids(study, results_root)
    for run in spec.runs():
        if run.run_id in covered:
            continue
        study.enqueue_trial(
            params={**run.labels, "seed": run.seed},
            user_attrs={ATTR_RUN_ID: run.run_id, ATTR_CONFIG: run.config.model_dump(mode="json"), ATTR_SEED: run.seed,
                        ATTR_LABELS: run.labels, ATTR_CELL: run.cell_index},
        )


# ---------------------------------------------------------------------------------------------
# leases: which process holds a RUNNING trial


def _process_start(pid: int) -> Optional[str]:
    """The kernel's start time of `pid` (guards against pid reuse), or None if it is not running."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return "?"


def worker_token() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_process_start(pid)}"


def _lease_is_dead(token: Optional[str]) -> bool:
    """True when the token names a process on this host that no longer runs. Leases of other
    hosts cannot be checked from here and are left alone."""
    if not token:
        return False
    host, pid, start = token.rsplit(":", 2)
    if host != socket.gethostname():
        return False
    now = _process_start(int(pid))
    return now is None or (start not in ("?", "None") and now != start)


def recover_stale_trials(study: optuna.Study, results_root: Path) -> list[int]:
    """Fail every RUNNING trial whose worker on this host is gone, so its run is enqueued again.
    A run that had already written its row keeps it; it is never trained twice."""
    storage, recovered = study._storage, []
    study_id = storage.get_study_id_from_name(study.study_name)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not _lease_is_dead(t.user_attrs.get(ATTR_WORKER)):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        storage.set_trial_user_attr(trial_id, ATTR_FAIL, f"worker {t.user_attrs.get(ATTR_WORKER)} died")
        try:
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue
        recovered.append(t.number)
    return recovered


def claim_next(study: optuna.Study) -> Optional[optuna.Trial]:
    """Atomically move one WAITING trial to RUNNING for this process, or None if none is left."""
    storage = study._storage
    study_id = storage.get_study_id_from_name(study.study_name)
    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        try:
            if not storage.set_trial_state_values(trial_id, TrialState.RUNNING):
                continue
        except UpdateFinishedTrialError:
            continue
        storage.set_trial_user_attr(trial_id, ATTR_WORKER, worker_token())
        return optuna.Trial(study, trial_id)
    return None


# ---------------------------------------------------------------------------------------------
# running trials


class Reporter:
    """Progress hooks a worker calls; the CLI passes a rich-backed one. All no-ops here."""

    def trial_start(self, trial_number: int, run_id: str, config: RunConfig, seed: int) -> None: ...

    def epoch(self, record: dict) -> None: ...

    def trial_end(self, row: dict) -> None: ...


@dataclass
class WorkerSummary:
    finished: list[str] = field(default_factory=list)  # run ids with status ok
    failed: list[str] = field(default_factory=list)  # run ids with status failed (row written)
    errors: list[str] = field(default_factory=list)  # trials that raised; no row, will be retried


def _provenance(device: torch.device, data: Dataset, spec_fingerprint: str, command: str) -> dict[str, Any]:
    return {
        "command": command,
        "vaebench_version": __version__,
        "torch_version": torch.__version__,
        "optuna_version": optuna.__version__,
        "python_version": platform.python_version(),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "hostname": socket.gethostname(),
        "dataset": data.name,
        "dataset_checksum": data.checksum,
        "spec_fingerprint": spec_fingerprint,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


@dataclass(frozen=True)
class Setting:
    """What every run of one worker shares."""

    study: str
    grid_keys: list[str]
    data: Dataset
    device: torch.device
    spec_fingerprint: str
    command: str = ""


def execute_run(run: Run, run_id: str, setting: Setting, reporter: Reporter) -> dict[str, Any]:
    """Train and evaluate one run; return its results row (status 'ok' or 'failed')."""
    data = setting.data
    result = train(run.config, data, run.seed, setting.device, on_epoch=reporter.epoch)
    metrics: dict[str, Any] = {k: None for k in METRIC_TYPES}
    metrics.update({f"eval_seconds_{n}": None for n in METRICS.names()})
    eval_seconds = None
    if result.status == "ok":
        t0 = time.perf_counter()
        metrics.update(evaluate(result.model, data, run.config, run.seed))
        eval_seconds = time.perf_counter() - t0
    return {
        "run_id": run_id,
        "study": setting.study,
        "seed": run.seed,
        "status": "ok" if result.status == "ok" else "failed",
        "reason": result.reason,
        "variant": run.variant,
        "cell_index": run.cell_index,
        **param_columns(run.config),
        "grid_keys": setting.grid_keys,
        "n_params": count_parameters(result.model),
        "epochs_completed": len(result.history),
        "train_seconds": result.seconds,
        "eval_seconds": eval_seconds,
        **metrics,
        "history": result.history,
        **_provenance(setting.device, data, setting.spec_fingerprint, setting.command),
    }


def _tell_from_row(study: optuna.Study, trial: optuna.Trial, row: dict) -> None:
    if row["status"] == "ok":
        study.tell(trial, row[NEG_ELBO])
    else:
        trial.set_user_attr(ATTR_FAIL, row["reason"])
        study.tell(trial, state=TrialState.FAIL)


def run_worker(
    study: optuna.Study,
    spec: SweepSpec,
    data: Dataset,
    results_root: Path,
    device: str | torch.device | None = None,
    reporter: Reporter | None = None,
    command: str = "",
) -> WorkerSummary:
    """Claim and run trials until none is WAITING. One trial's failure never stops the worker.
    `command` (the invoking command line) is stored with each row as provenance."""
    reporter = reporter or Reporter()
    summary = WorkerSummary()
    setting = Setting(spec.study, list(spec.grid), data, resolve_device(device), study.user_attrs["spec_fingerprint"], command)
    while (trial := claim_next(study)) is not None:
        attrs = trial.user_attrs
        run_id, seed = attrs[ATTR_RUN_ID], attrs[ATTR_SEED]
        run = Run(RunConfig.model_validate(attrs[ATTR_CONFIG]), seed, attrs.get(ATTR_LABELS, {}), attrs.get(ATTR_CELL, 0))
        try:
            for key in spec.grid:  # records the cell's values as Optuna params
                trial.suggest_categorical(key, spec.grid_choices(key))
            trial.suggest_categorical("seed", spec.seeds)
            if has_row(results_root, spec.study, run_id):  # finished before a crash: keep it
                row = read_row(results_root, spec.study, run_id)
            else:
                reporter.trial_start(trial.number, run_id, run.config, seed)
                row = execute_run(run, run_id, setting, reporter)
                write_row(results_root, spec.study, row)  # the row lands before COMPLETE
            _tell_from_row(study, trial, row)
            reporter.trial_end(row)
            (summary.finished if row["status"] == "ok" else summary.failed).append(run_id)
        except KeyboardInterrupt:
            trial.set_user_attr(ATTR_FAIL, "interrupted")
            study.tell(trial, state=TrialState.FAIL)
            raise
        except Exception as e:  # a crash in one trial must not take the sweep down
            reason = f"{type(e).__name__}: {e}"
            trial.set_user_attr(ATTR_FAIL, reason)
            study.tell(trial, state=TrialState.FAIL)
            summary.errors.append(f"{run_id}: {reason}")
    return summary
