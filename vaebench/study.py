"""Optuna: one study per spec, its trials, and the worker loop that runs them.

The study lives in the storage of a `StudyStore` (storage.py): the embedded journal by default,
PostgreSQL for many machines. It remembers the spec (and its fingerprint); resuming with a different
spec is refused. What must happen once per study runs under the store's lock: creating the study,
enqueueing every grid cell x seed, failing and retrying stale trials, and drawing a sampled trial
within the budget.

A worker claims trials one at a time. Grid trials are enqueued WAITING and claimed through the
storage's atomic WAITING -> RUNNING step, so no two workers ever run the same cell; a sampled search
(random, tpe, nsga2) asks its sampler for a new trial while the budget lasts. The worker trains,
evaluates, writes the run's results row (atomically) and stores the row in the trial, and only then
tells the trial COMPLETE, PRUNED or FAIL. A crash in one trial never stops the worker.

Stale trials: on PostgreSQL every running trial sends Optuna heartbeats; a silent one is failed and
re-enqueued by Optuna's heartbeat machinery (`retry_stale_trial`). The journal has no heartbeat, so
each RUNNING trial carries a lease (host:pid:process start time); a lease whose process on this host
is gone is failed and re-enqueued the same way. A retried run whose row already exists is never
trained again.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import math
import os
import platform
import socket
import threading
import warnings
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import optuna
import torch
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from . import __version__
from .artifacts import save_trial_artifacts
from .data import Dataset
from .errors import StudyError
from .metrics import METRICS, evaluate
from .models import count_parameters
from .plugins import loaded_plugins
from .results import has_row, metric_types, param_columns, read_row, write_row
from .runtime import remove_abandoned_temp_files, resolve_device, tf32
from .search import build_pruner, build_sampler, suggest
from .spec import Run, RunConfig, SweepSpec, apply_params, parse_spec
from .storage import StudyStore
from .train import train

ATTR_RUN_ID, ATTR_CONFIG, ATTR_SEED = "run_id", "config", "seed"
ATTR_LABELS, ATTR_CELL = "labels", "cell_index"
ATTR_WORKER, ATTR_FAIL, ATTR_ROW = "worker", "fail_reason", "row"
STUDY_SPEC, STUDY_FINGERPRINT, STUDY_CHECKSUM = "spec", "spec_fingerprint", "dataset_checksum"

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeat API, stable in practice


def _spec_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += _spec_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {json.dumps(a)} -> {json.dumps(b)}")
    return out


def _load(spec: SweepSpec, storage) -> optuna.Study:
    return optuna.load_study(
        study_name=spec.study, storage=storage, sampler=build_sampler(spec.search),
        pruner=build_pruner(spec.search, spec.train.epochs),
    )


def _name_objectives(study: optuna.Study, spec: SweepSpec) -> None:
    """The objectives' metric names (neg_elbo, ...) on the study: optuna-dashboard and Optuna's plots
    label the values with them instead of "Objective 0"."""
    with warnings.catch_warnings():  # marked experimental since Optuna 3.2, stable in practice
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(spec.search.metrics)


def open_study(spec: SweepSpec, store: StudyStore, dataset_checksum: Optional[str] = None) -> optuna.Study:
    """Create the study for `spec` (or load it, if the same spec made it), recover stale trials and
    make sure every grid run has a trial: WAITING, RUNNING, COMPLETE, or finished with a row.
    `dataset_checksum`, when given, must match the one the study was started with."""
    spec_json = spec.model_dump(mode="json", exclude={"description"})
    with store.lock():
        storage = store.open()
        try:
            study = _load(spec, storage)
        except KeyError:
            optuna.create_study(study_name=spec.study, storage=storage, directions=spec.search.directions)
            study = _load(spec, storage)
            study.set_user_attr(STUDY_SPEC, spec_json)
            study.set_user_attr(STUDY_FINGERPRINT, spec.fingerprint())
            study.set_user_attr("vaebench_version", __version__)
            _name_objectives(study, spec)
            store.folder.mkdir(parents=True, exist_ok=True)
            (store.folder / "spec.json").write_text(json.dumps(spec.model_dump(mode="json"), indent=2) + "\n")
        if study.user_attrs.get(STUDY_FINGERPRINT) != spec.fingerprint():
            changes = _spec_diff(study.user_attrs.get(STUDY_SPEC, {}), spec_json)
            raise StudyError(
                f"study {spec.study!r} in {store.describe()} was made from a different spec; refusing to mix "
                f"results. Changed: {'; '.join(changes[:8]) or '(unknown)'}. Restore the spec, run it "
                f"under a new name (--study NEW_NAME), or delete the study to start over."
            )
        if study.metric_names is None:  # a study made before vaebench named its objectives
            _name_objectives(study, spec)
        if dataset_checksum is not None:
            known = study.user_attrs.get(STUDY_CHECKSUM)
            if known is None:
                study.set_user_attr(STUDY_CHECKSUM, dataset_checksum)
            elif known != dataset_checksum:
                raise StudyError(
                    f"study {spec.study!r}: this machine's {spec.dataset.name} data (checksum {dataset_checksum}) "
                    f"differs from the data the study started with ({known}); check --data-root"
                )
        recover_stale_trials(study)
        for sub in ("runs", "models", "artifacts"):  # files a killed worker was writing
            remove_abandoned_temp_files(Path(store.results_root) / spec.study / sub)
        _enqueue_missing(study, spec, store)
    return study


def stored_spec(store: StudyStore) -> SweepSpec:
    """The spec an existing study was created from (what `vaebench worker` runs)."""
    storage = store.open(create=False)
    try:
        summary = optuna.load_study(study_name=store.study, storage=storage)
    except KeyError:
        raise StudyError(
            f"no study {store.study!r} in {store.describe()}; create it with `vaebench run SPEC.yaml"
            f"{'' if store.url is None else ' --storage URL'}` first"
        ) from None
    if STUDY_SPEC not in summary.user_attrs:
        raise StudyError(f"study {store.study!r} in {store.describe()} was not made by vaebench (no spec stored)")
    return parse_spec({**summary.user_attrs[STUDY_SPEC], "study": store.study}, f"study {store.study!r} in {store.describe()}")


def wait_for_study(store: StudyStore, seconds: float, poll: float = 0.05) -> SweepSpec:
    """`stored_spec`, asked again every `poll` seconds for up to `seconds` while the study is not
    made yet: a worker started beside the `vaebench run` that is creating it. Gives up at once when
    that parent process has ended (this process was re-parented)."""
    parent, deadline = os.getppid(), time.monotonic() + seconds
    while True:
        try:
            return stored_spec(store)
        except StudyError:  # not there yet, or made but its spec not yet stored
            if time.monotonic() >= deadline or os.getppid() != parent:
                raise
            time.sleep(poll)


def _covered_run_ids(study: optuna.Study, store: StudyStore) -> set[str]:
    """Runs that need no new trial: queued, running, complete, or finished with a results row."""
    covered = set()
    for t in study.get_trials(deepcopy=False):
        run_id = t.user_attrs.get(ATTR_RUN_ID)
        if t.state in (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED):
            covered.add(run_id)
        elif ATTR_ROW in t.user_attrs or has_row(store.results_root, study.study_name, run_id):
            covered.add(run_id)
    return covered


def _enqueue_missing(study: optuna.Study, spec: SweepSpec, store: StudyStore) -> None:
    covered = _covered_run_ids(study, store)
    for run in spec.runs():  # empty for a sampled search
        if run.run_id in covered:
            continue
        # params: the swept grid values only. The seed replicates a cell; it is not a searched
        # dimension, so it stays out of Optuna's importance, slice and contour plots. Two seeds of a
        # cell are two trials with equal params (no skip_if_exists, which would merge them): what
        # identifies a run is its run id user attribute, never the params.
        study.enqueue_trial(
            params=dict(run.labels),
            user_attrs={ATTR_RUN_ID: run.run_id, ATTR_CONFIG: run.config.model_dump(mode="json"), ATTR_SEED: run.seed,
                        ATTR_LABELS: run.labels, ATTR_CELL: run.cell_index},
        )


# ---------------------------------------------------------------------------------------------
# stale trials: heartbeats (RDB) and leases (journal)


class _Retry(RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a stale trial (a WAITING copy with the same params and run), minus the
    dead worker's lease and failure note."""

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        trial = copy.copy(trial)
        trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in (ATTR_WORKER, ATTR_FAIL)}
        super().__call__(study, trial)


retry_stale_trial = _Retry()


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


def lease_pid(token: Optional[str]) -> Optional[int]:
    """The pid of a lease token held on this host, else None."""
    if not token:
        return None
    host, pid, _ = token.rsplit(":", 2)
    return int(pid) if host == socket.gethostname() else None


def _lease_is_dead(token: Optional[str]) -> bool:
    """True when the token names a process on this host that no longer runs. Leases of other
    hosts cannot be checked from here (they rely on heartbeats)."""
    pid = lease_pid(token)
    if pid is None:
        return False
    start = token.rsplit(":", 1)[1]
    now = _process_start(pid)
    return now is None or (start not in ("?", "None") and now != start)


def recover_stale_trials(study: optuna.Study) -> list[int]:
    """Fail every RUNNING trial whose worker is gone and enqueue a retry of its run: trials leased by
    a dead process on this host (every storage; these get a fail_reason), then trials silent past the
    heartbeat grace period (RDB storages: workers on any machine). Returns the failed trials'
    numbers. Call under the store's lock."""
    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    storage, recovered = study._storage, []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not _lease_is_dead(t.user_attrs.get(ATTR_WORKER)):
            continue
        try:
            storage.set_trial_user_attr(t._trial_id, ATTR_FAIL, f"worker {t.user_attrs.get(ATTR_WORKER)} died")
            if not storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:
            continue
        retry_stale_trial(study, storage.get_trial(t._trial_id))
        recovered.append(t.number)
    with warnings.catch_warnings():  # the heartbeat API is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        fail_stale_trials(study)  # heartbeat storages: fails silent trials, runs retry_stale_trial
    still = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    return sorted((before - still) | set(recovered))


class _Heartbeat:
    """Record Optuna heartbeats for a running trial from a thread (RDB storages; a no-op else)."""

    def __init__(self, study: optuna.Study, trial_id: int) -> None:
        storage = study._storage
        self.interval = storage.get_heartbeat_interval() if hasattr(storage, "get_heartbeat_interval") else None
        self.storage, self.trial_id = storage, trial_id
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True, name=f"heartbeat-{trial_id}")

    def _beat(self) -> None:
        while True:
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # a transient database error must not kill the trial; the next beat retries
                pass
            if self.stop.wait(self.interval):
                return

    def __enter__(self) -> "_Heartbeat":
        if self.interval:
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.interval:
            self.stop.set()
            self.thread.join()


# ---------------------------------------------------------------------------------------------
# claiming trials


def _claim_waiting(study: optuna.Study) -> Optional[optuna.Trial]:
    """Atomically move one WAITING trial to RUNNING for this process, or None if none is left."""
    storage = study._storage
    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if not storage.set_trial_state_values(t._trial_id, TrialState.RUNNING):
                continue
        except UpdateFinishedTrialError:
            continue
        storage.set_trial_user_attr(t._trial_id, ATTR_WORKER, worker_token())
        return optuna.Trial(study, t._trial_id)
    return None


def budget_used(study: optuna.Study) -> int:
    """Trials that count against a sampled search's budget: all but the crashed ones (a crash is
    retried or replaced; a diverged run is a result and counts)."""
    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.state != TrialState.FAIL or ATTR_ROW in t.user_attrs)


def claim_next(study: optuna.Study, spec: SweepSpec, store: StudyStore) -> Optional[optuna.Trial]:
    """The next trial for this worker: a WAITING one (grid cells, retries), else for a sampled
    search a new trial from the sampler while the budget lasts; None when there is nothing left."""
    trial = _claim_waiting(study)
    if trial is not None or not spec.search.sampled:
        return trial
    with store.lock():
        if budget_used(study) >= spec.search.n_trials:
            return None
        trial = study.ask()
        trial.set_user_attr(ATTR_WORKER, worker_token())
        return trial


def _run_of(trial: optuna.Trial, spec: SweepSpec) -> Run:
    """The run a claimed trial stands for; records its parameters as Optuna params."""
    attrs = trial.user_attrs
    if spec.search.sampled:
        params = {k: suggest(trial, k, p) for k, p in spec.search.space.items()}
        if ATTR_CONFIG not in attrs:  # a fresh draw
            run = Run(apply_params(spec.base(), params), spec.seeds[0], params, trial.number)
            for key, value in ((ATTR_RUN_ID, run.run_id), (ATTR_CONFIG, run.config.model_dump(mode="json")),
                               (ATTR_SEED, run.seed), (ATTR_LABELS, run.labels), (ATTR_CELL, run.cell_index)):
                trial.set_user_attr(key, value)
            return run
    else:
        # The grid values become the trial's params (a study made before the seed left the params
        # had it enqueued too; it is simply not asked for any more, and its run id is unchanged).
        for key in spec.grid:
            trial.suggest_categorical(key, spec.grid_choices(key))
    return Run(RunConfig.model_validate(attrs[ATTR_CONFIG]), attrs[ATTR_SEED], attrs.get(ATTR_LABELS, {}),
               attrs.get(ATTR_CELL, 0))


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
    pruned: list[str] = field(default_factory=list)  # run ids stopped by the pruner (row written)
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
        "plugins": loaded_plugins(),
    }


@dataclass(frozen=True)
class Setting:
    """What every run of one worker shares."""

    spec: SweepSpec
    data: Dataset
    device: torch.device
    results_root: Path
    command: str = ""


# Called after every epoch with its history record; returns a reason to stop training, or None.
StopCheck = Callable[[dict], Optional[str]]


def execute_run(run: Run, run_id: str, setting: Setting, reporter: Reporter, trial_number: int = -1,
                stop_check: Optional[StopCheck] = None) -> dict[str, Any]:
    """Train and evaluate one run; return its results row (status 'ok', 'failed' or 'pruned')."""
    spec, data = setting.spec, setting.data

    def on_epoch(record: dict) -> Optional[str]:
        reporter.epoch(record)
        return stop_check(record) if stop_check is not None else None

    result = train(run.config, data, run.seed, setting.device, on_epoch=on_epoch)
    metrics: dict[str, Any] = {k: None for k in metric_types()}
    metrics.update({f"eval_seconds_{n}": None for n in METRICS.names()})
    eval_seconds, paths = None, {"model_path": None, "artifacts_path": None}
    if result.status == "ok":
        t0 = time.perf_counter()
        with tf32(setting.device, False):  # evaluation in full float32, whatever the training precision
            metrics.update(evaluate(result.model, data, run.config, run.seed))
            eval_seconds = time.perf_counter() - t0
            paths = save_trial_artifacts(result.model, data, run.seed, setting.results_root, spec.study, run_id)
    status = {"ok": "ok", "stopped": "pruned"}.get(result.status, "failed")
    return {
        "run_id": run_id,
        "study": spec.study,
        "seed": run.seed,
        "status": status,
        "reason": result.reason,
        "variant": run.variant,
        "cell_index": run.cell_index,
        "trial_number": trial_number,
        **param_columns(run.config),
        "config": run.config.model_dump_json(),
        "grid_keys": list(spec.search.space) if spec.search.sampled else list(spec.grid),
        "sampler": spec.search.sampler,
        "objective_metrics": spec.search.metrics,
        "objective_directions": spec.search.directions,
        "n_params": count_parameters(result.model),
        "epochs_completed": len(result.history),
        "train_seconds": result.seconds,
        "eval_seconds": eval_seconds,
        **paths,
        **metrics,
        "history": result.history,
        "precision": result.precision,
        "tf32": result.tf32,
        **_provenance(setting.device, data, spec.fingerprint(), setting.command),
    }


def _jsonable(value: Any) -> Any:
    """The row as plain JSON values (numpy scalars and arrays become floats, ints and lists)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def report_epoch(trial: optuna.Trial, record: dict) -> None:
    """The epoch's test -ELBO (nats per example) as the trial's intermediate value at step = epoch,
    on every trial, pruner or not: Optuna's and optuna-dashboard's learning curves, and what
    `vaebench status` counts the epochs done by. `Trial.report` refuses multi-objective studies;
    there the value goes to the storage directly (no pruner reads it: pruning needs one objective)."""
    if record.get("test_loss") is None:  # (a row's history from an older format)
        return
    value, step = float(record["test_loss"]), int(record["epoch"])
    if len(trial.study.directions) == 1:
        trial.report(value, step)
    else:
        trial.storage.set_trial_intermediate_value(trial._trial_id, step, value)


def _epoch_check(trial: optuna.Trial, spec: SweepSpec) -> StopCheck:
    """After every epoch: report it to the trial, then (with a pruner) ask whether to stop."""
    pruning = spec.search.pruner.name != "none"

    def check(record: dict) -> Optional[str]:
        report_epoch(trial, record)
        if pruning and trial.should_prune():
            return (f"pruned by {spec.search.pruner.name} at epoch {record['epoch']} "
                    f"(test -ELBO {record['test_loss']:.2f} nats)")
        return None

    return check


ATTR_SCALAR_PREFIX = "m."  # m.recon_mse, m.fid, ...: one short user attribute per scalar of the row
ROW_SCALARS = ("n_params", "epochs_completed", "train_seconds", "eval_seconds")


def scalar_attrs(row: dict) -> dict[str, float | int]:
    """The row's scalar numbers as short trial attributes, `m.<column>`: every declared scalar metric
    column (the values and the settings that qualify them, e.g. fid_samples) and the run's size and
    times. Null and non-finite values are left out (a number column stays sortable in the dashboard).
    The whole row stays in the `row` attribute (too long for the dashboard, which cuts it at 1,024
    characters; `vaebench pull` and resumes read it)."""
    from .metrics import declared_columns

    names = [n for n, (_, c) in declared_columns().items() if c.dtype in ("float", "int")] + list(ROW_SCALARS)
    out: dict[str, float | int] = {}
    for name in names:
        value = _jsonable(row.get(name))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            continue
        out[ATTR_SCALAR_PREFIX + name] = value
    return out


def _objective_values(row: dict, spec: SweepSpec) -> Optional[list[float]]:
    values = [row.get(m) for m in spec.search.metrics]
    if any(v is None or (isinstance(v, float) and not math.isfinite(v)) for v in values):
        return None
    return [float(v) for v in values]


def _finish(study: optuna.Study, trial: optuna.Trial, row: dict, spec: SweepSpec) -> None:
    """Store the row in the trial, then set its final state (COMPLETE only with the row in place).
    The short `m.*` attributes go first: the row and the state are the last two writes, so a worker
    killed in between (on PostgreSQL each attribute is its own transaction) leaves the smallest window."""
    for key, value in scalar_attrs(row).items():
        trial.set_user_attr(key, value)
    trial.set_user_attr(ATTR_ROW, _jsonable(row))
    if row["status"] == "pruned":
        study.tell(trial, state=TrialState.PRUNED)
    elif row["status"] == "ok" and (values := _objective_values(row, spec)) is not None:
        study.tell(trial, values)
    else:
        reason = row["reason"] or f"objective metric missing: {', '.join(spec.search.metrics)}"
        trial.set_user_attr(ATTR_FAIL, reason)
        study.tell(trial, state=TrialState.FAIL)


def _existing_row(study: optuna.Study, trial: optuna.Trial, store: StudyStore, run_id: str) -> Optional[dict]:
    """A row this run already has: in this results folder, or stored in a trial of the study (a
    retried trial carries its predecessor's attributes; another machine may have finished it)."""
    if has_row(store.results_root, study.study_name, run_id):
        return read_row(store.results_root, study.study_name, run_id)
    if ATTR_ROW in trial.user_attrs:
        return trial.user_attrs[ATTR_ROW]
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get(ATTR_RUN_ID) == run_id and ATTR_ROW in t.user_attrs:
            return t.user_attrs[ATTR_ROW]
    return None


def run_worker(
    study: optuna.Study,
    spec: SweepSpec,
    data: Dataset,
    store: StudyStore,
    device: str | torch.device | None = None,
    reporter: Reporter | None = None,
    command: str = "",
) -> WorkerSummary:
    """Claim and run trials until none is left. One trial's failure never stops the worker.
    `command` (the invoking command line) is stored with each row as provenance."""
    reporter = reporter or Reporter()
    summary = WorkerSummary()
    setting = Setting(spec, data, resolve_device(device), store.results_root, command)
    METRICS.names()  # import the metric modules now, not inside the first trial's evaluation
    while True:
        trial = claim_next(study, spec, store)
        if trial is None:
            with store.lock():  # before leaving: take over the trials of workers that died
                if recover_stale_trials(study):
                    continue
            break
        with _Heartbeat(study, trial._trial_id):
            _run_trial(study, trial, setting, store, reporter, summary)
    return summary


def _run_trial(study: optuna.Study, trial: optuna.Trial, setting: Setting, store: StudyStore,
               reporter: Reporter, summary: WorkerSummary) -> None:
    spec, run_id = setting.spec, None
    try:
        run = _run_of(trial, spec)
        run_id = run.run_id
        row = _existing_row(study, trial, store, run_id)
        if row is not None:  # finished before a crash, or by another trial: keep it, do not retrain
            if not has_row(store.results_root, spec.study, run_id):
                write_row(store.results_root, spec.study, row)
            for record in row.get("history") or []:  # this trial's learning curve, from the row
                report_epoch(trial, record)
        else:
            reporter.trial_start(trial.number, run_id, run.config, run.seed)
            row = execute_run(run, run_id, setting, reporter, trial.number, _epoch_check(trial, spec))
            write_row(store.results_root, spec.study, row)  # the row lands before the trial's final state
        _finish(study, trial, row, spec)
        reporter.trial_end(row)
        {"ok": summary.finished, "pruned": summary.pruned}.get(row["status"], summary.failed).append(run_id)
    except KeyboardInterrupt:
        _fail_quietly(study, trial, "interrupted")
        raise
    except UpdateFinishedTrialError:  # declared stale while it ran (heartbeats lost): its retry owns the run
        summary.errors.append(f"{run_id}: trial {trial.number} was failed as stale while running; its row is kept")
    except Exception as e:  # a crash in one trial must not take the worker down
        reason = f"{type(e).__name__}: {e}"
        _fail_quietly(study, trial, reason)
        summary.errors.append(f"{run_id or f'trial {trial.number}'}: {reason}")


def _fail_quietly(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    try:
        trial.set_user_attr(ATTR_FAIL, reason)
        study.tell(trial, state=TrialState.FAIL)
    except Exception:  # already finished elsewhere, or the storage is gone: nothing more to record
        pass


# ---------------------------------------------------------------------------------------------
# progress of a study


@dataclass
class StudyStatus:
    study: str
    sampler: str
    total: int  # runs of the grid, or the sampled search's trial budget
    complete: int
    pruned: int
    diverged: int  # FAIL with a row: a finished run whose training diverged
    failed: int  # FAIL without a row: crashed or stale, retried or replaced
    running: list[tuple[int, str, str, float]]  # (trial number, run id, worker, seconds so far)
    waiting: int  # enqueued and not yet claimed, plus a sampled search's undrawn budget
    mean_trial_seconds: Optional[float]
    failures: list[tuple[int, str]]  # (trial number, reason) of the most recent failures
    # per running trial (same order as `running`): (epochs reported so far, last test -ELBO or None)
    running_epochs: list[tuple[int, Optional[float]]] = field(default_factory=list)
    epochs_per_trial: int = 0  # the spec's train.epochs

    @property
    def done(self) -> int:
        return self.complete + self.pruned + self.diverged

    @property
    def projected_trial_seconds(self) -> Optional[float]:
        """Before any trial has completed: a trial's training time projected from the epochs the
        running trials have done (seconds so far x epochs per trial / epochs done, mean over the
        running trials with at least one epoch); evaluation time is not in it. None without epochs."""
        projections = [secs * self.epochs_per_trial / n for (_, _, _, secs), (n, _) in
                       zip(self.running, self.running_epochs) if n > 0 and self.epochs_per_trial]
        return sum(projections) / len(projections) if projections else None

    @property
    def eta_basis(self) -> Optional[str]:
        """What `eta_seconds` rests on: 'trials' (mean time of the complete ones), 'epochs' (no trial
        has completed yet: the running trials' epochs so far), or None (no estimate yet)."""
        if self.mean_trial_seconds is not None:
            return "trials"
        return "epochs" if self.projected_trial_seconds is not None else None

    @property
    def eta_seconds(self) -> Optional[float]:
        """Remaining runs x mean seconds per finished trial / parallel workers (at least one). Before
        the first trial completes: the projected trial time (training only) for every run not
        started, plus what is left of each running trial's projection, over the running workers."""
        remaining = max(self.total - self.done, 0)
        if remaining == 0:
            return 0.0
        workers = max(len(self.running), 1)
        if self.mean_trial_seconds is not None:
            return remaining * self.mean_trial_seconds / workers
        per_trial = self.projected_trial_seconds
        if per_trial is None:
            return None
        left_running = sum(max(per_trial - secs, 0.0) for (_, _, _, secs) in self.running)
        return (max(remaining - len(self.running), 0) * per_trial + left_running) / workers


def study_status(study: optuna.Study) -> StudyStatus:
    spec = parse_spec({**study.user_attrs[STUDY_SPEC], "study": study.study_name}, study.study_name)
    trials = study.get_trials(deepcopy=False)
    by = {s: [t for t in trials if t.state == s] for s in TrialState}
    now = _dt.datetime.now()
    durations = [(t.datetime_complete - t.datetime_start).total_seconds()
                 for t in by[TrialState.COMPLETE] if t.datetime_start and t.datetime_complete]
    # a FAIL trial with a row is a finished run (diverged) — unless its worker died between storing
    # the row and telling the state: then a retry of the same run completes it, and counts once
    finished_runs = {t.user_attrs.get(ATTR_RUN_ID) for t in by[TrialState.COMPLETE] + by[TrialState.PRUNED]}
    fails = [t for t in by[TrialState.FAIL]
             if not (ATTR_ROW in t.user_attrs and t.user_attrs.get(ATTR_RUN_ID) in finished_runs)]
    total = spec.n_runs()
    waiting = len(by[TrialState.WAITING])
    if spec.search.sampled:
        waiting += max(spec.search.n_trials - budget_used(study), 0)
    return StudyStatus(
        study=study.study_name,
        sampler=spec.search.sampler,
        total=total,
        complete=len(by[TrialState.COMPLETE]),
        pruned=len(by[TrialState.PRUNED]),
        diverged=sum(1 for t in fails if ATTR_ROW in t.user_attrs),
        failed=sum(1 for t in fails if ATTR_ROW not in t.user_attrs),
        running=[(t.number, t.user_attrs.get(ATTR_RUN_ID, "?"), t.user_attrs.get(ATTR_WORKER, "?"),
                  (now - t.datetime_start).total_seconds() if t.datetime_start else 0.0)
                 for t in by[TrialState.RUNNING]],
        waiting=waiting,
        mean_trial_seconds=sum(durations) / len(durations) if durations else None,
        failures=[(t.number, t.user_attrs.get(ATTR_FAIL, "stale: no heartbeat")) for t in fails[-5:]
                  if ATTR_ROW not in t.user_attrs],
        running_epochs=[(len(t.intermediate_values),
                         t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None)
                        for t in by[TrialState.RUNNING]],
        epochs_per_trial=spec.train.epochs,
    )


def export_rows(study: optuna.Study, store: StudyStore) -> tuple[int, int]:
    """Write every row held in the study's trials that this results folder lacks (rows of workers on
    other machines). Returns (rows written, rows already present)."""
    written, present, seen = 0, 0, set()
    for t in study.get_trials(deepcopy=False):
        row = t.user_attrs.get(ATTR_ROW)
        if row is None or row["run_id"] in seen:
            continue
        seen.add(row["run_id"])
        if has_row(store.results_root, study.study_name, row["run_id"]):
            present += 1
        else:
            write_row(store.results_root, study.study_name, row)
            written += 1
    return written, present
