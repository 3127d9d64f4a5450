"""The worker loop: claim a trial, run it, store its row, tell its final state; until none is left.

A worker claims trials one at a time (`study.claim_next`). It trains and evaluates the run
(`execute.execute_run`), writes the run's results row (atomically) and stores the row in the trial,
and only then tells the trial COMPLETE, PRUNED or FAIL. Every epoch is reported to the trial as an
intermediate value (the learning curves; what a pruner decides on). A crash in one trial never stops
the worker. A retried run whose row already exists is never trained again. While a trial runs, its
heartbeat (RDB storages) is recorded from a thread (leases.py).

A run in progress writes checkpoints to the results folder (engine/checkpoint.py); a retried trial
resumes from its run's checkpoint. After a stop request (SIGTERM: runtime/stop.py) the running trial
writes one, is failed and re-enqueued at once (`leases.release_trial`, as a stale trial is), and the
worker raises `errors.Preempted` instead of claiming another trial.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Optional

import optuna
import torch
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from ..data import Dataset
from ..engine.checkpoint import remove_checkpoint
from ..engine.execute import Attempt, Reporter, Setting, execute_run
from ..engine.train import EpochCallback
from ..errors import Preempted
from ..metrics import METRICS
from ..results.fields import selection_loss
from ..results.rows import has_row, plain_json, read_row, scalar_columns, write_row
from ..results.status import RunStatus
from ..runtime import stop
from ..spec.samplers import grid_distribution, suggest, suggest_distribution
from ..spec.sweep_spec import Run, SweepSpec, apply_params
from ..spec.tracking import TrackingConfig
from ..tracking import RunInfo, TrackedRun, Trackers, open_trackers
from .leases import ATTR_FAIL, Heartbeat, TrialStorage, recover_stale_trials, release_trial
from .storage import StudyStore
from .study import STUDY_OVERRIDES, claim_next
from .trials import ATTR_EVALUATING, ATTR_LABELS, ATTR_ROW, ATTR_RUN_ID, decode_run, encode_run, has_run

ATTR_CHECKPOINT = "checkpoint"  # the last checkpoint the run's trial wrote: {"path", "host", "epoch", "step"}
ATTR_SCALAR_PREFIX = "m."  # m.recon_mse, m.fid, ...: one short user attribute per scalar of the row


@dataclass
class WorkerSummary:
    """The trials one worker ran, by outcome (results/status.py)."""

    complete: list[str] = field(default_factory=list)  # run ids with status ok (row written)
    pruned: list[str] = field(default_factory=list)  # run ids stopped by the pruner (row written)
    failed: list[str] = field(default_factory=list)  # run ids whose training diverged (row written)
    crashed: list[str] = field(default_factory=list)  # "<run id>: <error>" of trials that raised; no row, retried

    def add(self, status: RunStatus, entry: str) -> None:
        {
            RunStatus.OK: self.complete,
            RunStatus.PRUNED: self.pruned,
            RunStatus.FAILED: self.failed,
            RunStatus.CRASHED: self.crashed,
        }[status].append(entry)


def run_worker(
    study: optuna.Study,
    spec: SweepSpec,
    data: Dataset,
    store: StudyStore,
    device: torch.device,
    reporter: Reporter | None = None,
    command: str = "",
    tracking: Optional[TrackingConfig] = None,
) -> WorkerSummary:
    """Claim and run trials until none is left, on `device` (checked by the caller, with the spec's
    precisions: join.py). One trial's failure never stops the worker. `command` (the invoking
    command line) is stored with each row as provenance. Each run executed here is mirrored to the
    trackers of `tracking` (default: the spec's `tracking:` section; vaebench/tracking/)."""
    reporter = reporter or Reporter()
    summary = WorkerSummary()
    overrides = tuple(study.user_attrs.get(STUDY_OVERRIDES, []))  # as the study's spec was made
    setting = Setting(spec, data, device, store.results_root, command, overrides)
    trackers = open_trackers(spec.tracking if tracking is None else tracking, store.lock)
    METRICS.names()  # import the metric modules now, not inside the first trial's evaluation
    while True:
        if stop.requested():  # SIGTERM between trials (or during an evaluation): take no other
            raise Preempted("stopped by SIGTERM before claiming another trial")
        trial = claim_next(study, spec, store)
        if trial is None:
            with store.lock():  # before leaving: take over the trials of workers that died
                if recover_stale_trials(study):
                    continue
            break
        with Heartbeat.of(study, trial):
            _run_trial(study, trial, setting, store, reporter, summary, trackers)
    return summary


def _run_trial(
    study: optuna.Study,
    trial: optuna.Trial,
    setting: Setting,
    store: StudyStore,
    reporter: Reporter,
    summary: WorkerSummary,
    trackers: Trackers,
) -> None:
    spec, run_id, tracked = setting.spec, None, TrackedRun()
    try:
        run = _run_of(study, trial, spec)
        run_id = run.run_id
        row = _existing_row(study, trial, store, run_id)
        if row is not None:  # finished before a crash, or by another trial: keep it, do not retrain
            if not has_row(store.results_root, spec.study, run_id):
                write_row(store.results_root, spec.study, row)
            for record in row.get("history") or []:  # this trial's learning curve, from the row
                report_epoch(trial, record)
        else:
            reporter.trial_start(trial.number, run_id, run.config, run.seed, labels=run.labels)
            tracked = trackers.start(RunInfo.of(run, spec, store.results_root))
            row = execute_run(
                run,
                setting,
                reporter,
                trial.number,
                _epoch_check(trial, spec, tracked),
                _attempt(study, trial, tracked),
            )
            row = tracked.finish(row)  # never raises: a tracker's failure is recorded in the row
            write_row(store.results_root, spec.study, row)  # the row lands before the trial's final state
        remove_checkpoint(store.results_root, spec.study, run_id)  # the row is written: nothing to resume
        tell_result(study, trial, row, spec)
        reporter.trial_end(row)
        summary.add(RunStatus(row["status"]), run_id)
    except KeyboardInterrupt:
        tracked.abort("interrupted")
        _fail_quietly(study, trial, "interrupted")
        raise
    except Preempted as e:  # SIGTERM: the checkpoint is written; hand the run to another worker at once
        tracked.abort(f"preempted: {e}")
        release_trial(study, trial, f"preempted: {e}")
        raise
    except UpdateFinishedTrialError:  # declared stale while it ran (heartbeats lost): its retry owns the run
        summary.add(
            RunStatus.CRASHED, f"{run_id}: trial {trial.number} was failed as stale while running; its row is kept"
        )
    except Exception as e:  # a crash in one trial must not take the worker down
        reason = f"{type(e).__name__}: {e}"
        tracked.abort(reason)
        _fail_quietly(study, trial, reason)
        summary.add(RunStatus.CRASHED, f"{run_id or f'trial {trial.number}'}: {reason}")


def _attempt(study: optuna.Study, trial: optuna.Trial, tracked: TrackedRun) -> Attempt:
    """This trial as an attempt of its run: the study's trials that have carried the run so far
    (this one included), the checkpoint an earlier one announced (the attribute a retry inherits),
    and the hooks that report a resumed history (to the trial and the trackers), record each checkpoint
    on the trial and the metric its run is being evaluated on (what `vaebench status` and the worker
    lines of `vaebench run` show)."""
    run_id = trial.user_attrs.get(ATTR_RUN_ID)
    number = sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get(ATTR_RUN_ID) == run_id and t.number <= trial.number
    )

    def resumed(history: list[dict]) -> None:  # the restored epochs: this trial's learning curve so far
        for record in history:
            report_epoch(trial, record)
            tracked.epoch(record)

    return Attempt(
        number=max(number, 1),
        earlier_checkpoint=trial.user_attrs.get(ATTR_CHECKPOINT),
        resumed=resumed,
        checkpointed=lambda info: trial.set_user_attr(ATTR_CHECKPOINT, info),
        evaluating=lambda metric: trial.set_user_attr(ATTR_EVALUATING, {"trial": trial.number, "metric": metric}),
    )


def _fail_quietly(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    try:
        trial.set_user_attr(ATTR_FAIL, reason)
        study.tell(trial, state=TrialState.FAIL)
    except Exception:  # already finished elsewhere, or the storage is gone: nothing more to record
        pass


def _run_of(study: optuna.Study, trial: optuna.Trial, spec: SweepSpec) -> Run:
    """The run a claimed trial stands for; records its parameters as Optuna params."""
    if spec.search.sampled:
        params = {k: suggest(trial, k, p) for k, p in spec.search.space.items()}
        if not has_run(trial.user_attrs):  # a fresh draw
            run = Run(apply_params(spec.base(), params), spec.seeds[0], params, trial.number)
            for key, value in encode_run(run).items():
                trial.set_user_attr(key, value)
            return run
    else:  # the grid values become the trial's params: numbers on a numeric axis (grid_distribution)
        labels = trial.user_attrs.get(ATTR_LABELS, {})
        for key in spec.grid:
            # this trial's own value too: a study grown since this worker read its spec has new values
            values = spec.grid_choices(key) + ([labels[key]] if key in labels else [])
            values = list({json.dumps(v): v for v in values}.values())
            distribution = grid_distribution(values, recorded_distribution(study, key))
            if distribution is not None:
                suggest_distribution(trial, key, distribution)
    return decode_run(trial.user_attrs)


def recorded_distribution(study: optuna.Study, key: str):
    """The distribution the study's trials record `key` under (the first trial that has it, the one
    Optuna checks every later one against), or None."""
    for t in study.get_trials(deepcopy=False):
        if key in t.distributions:
            return t.distributions[key]
    return None


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


# ---------------------------------------------------------------------------------------------
# what a trial records: its epochs, its row, its final state


def report_epoch(trial: optuna.Trial, record: dict) -> None:
    """The epoch's held-out -ELBO (nats per example; the validation split's when the dataset has one,
    else the test split's: `selection_loss`) as the trial's intermediate value at step = epoch,
    on every trial, pruner or not: Optuna's and optuna-dashboard's learning curves, and what
    `vaebench status` counts the epochs done by. `Trial.report` refuses multi-objective studies;
    there the value goes to the storage directly (no pruner reads it: pruning needs one objective)."""
    value, step = selection_loss(record)[1], int(record["epoch"])
    if len(trial.study.directions) == 1:
        trial.report(value, step)
    else:
        TrialStorage(trial.study).set_intermediate_value(trial, step, value)


def _epoch_check(trial: optuna.Trial, spec: SweepSpec, tracked: TrackedRun) -> EpochCallback:
    """After every epoch: report it to the trial and the trackers, then (with a pruner) ask whether to stop."""
    pruning = spec.search.pruner.name != "none"

    def check(record: dict) -> Optional[str]:
        report_epoch(trial, record)
        tracked.epoch(record)
        if pruning and trial.should_prune():
            split, loss = selection_loss(record)
            return f"pruned by {spec.search.pruner.name} at epoch {record['epoch']} ({split} -ELBO {loss:.2f} nats)"
        return None

    return check


def scalar_attrs(row: dict) -> dict[str, float | int]:
    """The row's scalar numbers (`results.rows.scalar_columns`) as short trial attributes,
    `m.<column>`. The whole row stays in the `row` attribute (too long for the dashboard, which cuts
    it at 1,024 characters; `vaebench pull` and resumes read it)."""
    return {ATTR_SCALAR_PREFIX + name: value for name, value in scalar_columns(row).items()}


def _objective_values(row: dict, spec: SweepSpec) -> Optional[list[float]]:
    """What the trial tells Optuna: the row's `objective_values` (measured on the split the row's
    `objective_split` names); a row without a split (made before it existed, or elsewhere:
    `vaebench.add_result`) is told its metric columns."""
    values = row.get("objective_values")
    if row.get("objective_split") is None:  # not measured by a worker: the row's metric columns
        values = [row.get(m) for m in spec.search.metrics]
    if values is None or any(v is None or (isinstance(v, float) and not math.isfinite(v)) for v in values):
        return None
    return [float(v) for v in values]


def tell_result(study: optuna.Study, trial: optuna.Trial, row: dict, spec: SweepSpec) -> None:
    """Store the row in the trial, then set its final state (COMPLETE only with the row in place).
    The short `m.*` attributes go first: the row and the state are the last two writes, so a worker
    killed in between (on PostgreSQL each attribute is its own transaction) leaves the smallest window."""
    for key, value in scalar_attrs(row).items():
        trial.set_user_attr(key, value)
    trial.set_user_attr(ATTR_ROW, plain_json(row))
    status = RunStatus(row["status"])
    if status is RunStatus.PRUNED:
        study.tell(trial, state=TrialState.PRUNED)
    elif status is RunStatus.OK and (values := _objective_values(row, spec)) is not None:
        study.tell(trial, values)
    else:
        reason = row["reason"] or f"objective metric missing: {', '.join(spec.search.metrics)}"
        trial.set_user_attr(ATTR_FAIL, reason)
        study.tell(trial, state=TrialState.FAIL)
