"""Optuna: one study per spec, its trials, and claiming them.

The study lives in the storage of a `StudyStore` (storage.py): the embedded journal by default,
PostgreSQL for many machines. It remembers the spec (and its fingerprint); resuming with a different
spec is refused. What must happen once per study runs under the store's lock: creating the study,
enqueueing every grid cell x seed, failing and retrying stale trials (leases.py), and drawing a
sampled trial within the budget.

Grid trials are enqueued WAITING and claimed through the storage's atomic WAITING -> RUNNING step,
so no two workers ever run the same cell; a sampled search (random, tpe, nsga2) asks its sampler for
a new trial while the budget lasts. The worker loop that runs the claimed trials is worker.py.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import optuna
from optuna.trial import TrialState

from .._version import __version__
from ..errors import Preempted, StudyError, VaebenchError
from ..results.rows import has_row, write_row
from ..results.status import RunStatus
from ..runtime import stop
from ..runtime.files import remove_abandoned_temp_files
from ..spec.samplers import build_pruner, build_sampler
from ..spec.sweep_spec import SweepSpec, parse_spec, spec_diff
from .eta import projected_seconds, time_left
from .leases import ATTR_FAIL, ATTR_WORKER, claim_waiting, recover_stale_trials, worker_token
from .storage import StudyStore
from .trials import ATTR_LABELS, ATTR_ROW, ATTR_RUN_ID, ATTR_SEED, encode_run, evaluating_metric, status_of

STUDY_SPEC, STUDY_FINGERPRINT, STUDY_CHECKSUM = "spec", "spec_fingerprint", "dataset_checksum"
STUDY_VALIDATION = "validation_checksum"
# the command-line overrides the stored spec was made (or last grown) with, and its growth: a list of
# {"fingerprint", "runs", "at"} entries, one per spec the study has had (the first is its creation)
STUDY_OVERRIDES, STUDY_HISTORY = "overrides", "spec_history"

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _load(spec: SweepSpec, storage) -> optuna.Study:
    return optuna.load_study(
        study_name=spec.study,
        storage=storage,
        sampler=build_sampler(spec.search),
        pruner=build_pruner(spec.search, spec.train.epochs),
    )


def _name_objectives(study: optuna.Study, spec: SweepSpec) -> None:
    """The objectives' metric names (neg_elbo, ...) on the study: optuna-dashboard and Optuna's plots
    label the values with them instead of "Objective 0"."""
    with warnings.catch_warnings():  # marked experimental since Optuna 3.2, stable in practice
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(spec.search.metrics)


def open_study(
    spec: SweepSpec,
    store: StudyStore,
    dataset_checksum: Optional[str] = None,
    validation_checksum: Optional[str] = None,
    overrides: Sequence[str] = (),
    note: Callable[[str], None] = lambda message: None,
) -> optuna.Study:
    """Create the study for `spec` (or load it, if the same spec made it, or grow it, if `spec` is its
    spec grown: `SweepSpec.growth_problems`), recover stale trials and make sure every grid run has a
    trial: WAITING, RUNNING, COMPLETE, or finished with a row. Any other spec under the study's name is
    refused (StudyError). `overrides` (the KEY=VALUE strings `spec` was made with) are stored with the
    spec; `note` is told when the study grows. `dataset_checksum` and `validation_checksum` (of the
    held-out indices), when given, are stored with the study by its first process and must match them
    in every later one: every worker trains and validates on the same examples."""
    with store.lock():
        storage = store.open()
        try:
            study = _load(spec, storage)
        except KeyError:
            optuna.create_study(study_name=spec.study, storage=storage, directions=spec.search.directions)
            study = _load(spec, storage)
            study.set_user_attr("vaebench_version", __version__)
            _name_objectives(study, spec)
            _store_spec(study, spec, store, overrides)
        if study.user_attrs.get(STUDY_FINGERPRINT) != spec.fingerprint():
            _grow(study, spec, store, overrides, note)
        for attr, value, what in (
            (STUDY_CHECKSUM, dataset_checksum, "data"),
            (STUDY_VALIDATION, validation_checksum, "validation split (dataset.validation)"),
        ):
            if value is None:
                continue
            known = study.user_attrs.get(attr)
            if known is None:
                study.set_user_attr(attr, value)
            elif known != value:
                raise StudyError(
                    f"study {spec.study!r}: this machine's {spec.dataset.name} {what} (checksum {value}) "
                    f"differs from the {what} the study started with ({known}); check --data-root"
                )
        recover_stale_trials(study)
        for sub in ("runs", "models", "artifacts", "checkpoints"):  # files a killed worker was writing
            remove_abandoned_temp_files(Path(store.results_root) / spec.study / sub)
        _enqueue_missing(study, spec, store)
    return study


def _store_spec(study: optuna.Study, spec: SweepSpec, store: StudyStore, overrides: Sequence[str]) -> None:
    """`spec` as the study's spec: its attributes (the spec, its fingerprint, the overrides, one more
    entry of its history) and results/<study>/spec.json."""
    history = list(study.user_attrs.get(STUDY_HISTORY, []))
    history.append(
        {
            "fingerprint": spec.fingerprint(),
            "runs": spec.n_runs(),
            "at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
    )
    study.set_user_attr(STUDY_SPEC, spec.model_dump(mode="json", exclude={"description"}))
    study.set_user_attr(STUDY_OVERRIDES, list(overrides))
    study.set_user_attr(STUDY_HISTORY, history)
    study.set_user_attr(STUDY_FINGERPRINT, spec.fingerprint())  # last: what a reader compares
    store.folder.mkdir(parents=True, exist_ok=True)
    (store.folder / "spec.json").write_text(json.dumps(spec.model_dump(mode="json"), indent=2) + "\n")


def _grow(
    study: optuna.Study, spec: SweepSpec, store: StudyStore, overrides: Sequence[str], note: Callable[[str], None]
) -> None:
    """Make `spec` the study's spec if it is the stored one grown (more grid values, more seeds; every
    finished run kept, the new runs enqueued by the caller), else refuse with what changed."""
    stored = study.user_attrs.get(STUDY_SPEC)
    where = f"study {spec.study!r} in {store.describe()}"
    try:
        old = _parse_stored(spec.study, stored, where) if stored else None
    except VaebenchError:  # a stored spec this vaebench cannot read: no growth from it
        old = None
    problems = spec.growth_problems(old) if old is not None else spec_diff(stored or {}, spec.model_dump(mode="json"))
    if problems:
        raise StudyError(
            f"{where} was made from a different spec; refusing to mix results. Changed: "
            f"{'; '.join(problems[:8]) or '(unknown)'}. A study can only grow under its name (more grid values, "
            "more seeds); a change of its fixed settings is a new study: give it a new name (study=NEW on the "
            f"command line, or --study NEW), restore the spec, or delete the old study first (`vaebench delete "
            f"--study {spec.study}`)."
        )
    before = {run.run_id for run in old.runs()}
    added = [run for run in spec.runs() if run.run_id not in before]
    _store_spec(study, spec, store, overrides)
    note(
        f"study {spec.study} grows from {len(before)} to {len(before) + len(added)} runs: {len(added)} new "
        f"run(s) enqueued, the finished ones kept"
    )


_PARSED: dict[tuple[str, str], SweepSpec] = {}  # (study, stored spec as JSON text) -> the spec


def _parse_stored(study: str, stored: dict, where: str) -> SweepSpec:
    """The spec stored with `study` (its `spec` attribute), parsed once per process and stored spec:
    the status poll reads it every 2 s, and a stored spec changes only when the study grows (then it
    is a new key; a spec that failed to parse, e.g. before its plugin was imported, is parsed again
    next time). `where` names it in errors."""
    key = (study, json.dumps(stored, sort_keys=True))
    if key not in _PARSED:
        _PARSED[key] = parse_spec({**stored, "study": study}, where)
    return _PARSED[key]


def stored_spec(store: StudyStore) -> SweepSpec:
    """The spec an existing study was created from (what `vaebench worker` runs)."""
    summary = store.load_study(
        missing=f"; create it with `vaebench run SPEC.yaml{'' if store.url is None else ' --storage URL'}` first"
    )
    if STUDY_SPEC not in summary.user_attrs:
        raise StudyError(f"study {store.study!r} in {store.describe()} was not made by vaebench (no spec stored)")
    return _parse_stored(store.study, summary.user_attrs[STUDY_SPEC], f"study {store.study!r} in {store.describe()}")


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
            if stop.requested():  # SIGTERM (the parent gave up, or the job is preempted) before any trial
                raise Preempted("stopped by SIGTERM while waiting for the study") from None
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
        study.enqueue_trial(params=dict(run.labels), user_attrs=encode_run(run))


# ---------------------------------------------------------------------------------------------
# claiming trials


def budget_used(study: optuna.Study) -> int:
    """Trials that count against a sampled search's budget: all but the crashed ones (a crash is
    retried or replaced; a failed run, one that diverged, is a result and counts)."""
    return sum(1 for t in study.get_trials(deepcopy=False) if status_of(t) is not RunStatus.CRASHED)


def claim_next(study: optuna.Study, spec: SweepSpec, store: StudyStore) -> Optional[optuna.Trial]:
    """The next trial for this worker: a WAITING one (grid cells, retries), else for a sampled
    search a new trial from the sampler while the budget lasts; None when there is nothing left."""
    trial = claim_waiting(study)
    if trial is not None or not spec.search.sampled:
        return trial
    with store.lock():
        if budget_used(study) >= spec.search.n_trials:
            return None
        trial = study.ask()
        trial.set_user_attr(ATTR_WORKER, worker_token())
        return trial


# ---------------------------------------------------------------------------------------------
# progress of a study


@dataclass
class StudyStatus:
    study: str
    sampler: str
    total: int  # runs of the grid, or the sampled search's trial budget
    # the trials of each outcome (results/status.py's RunStatus), each run counted once
    complete: int  # ok: COMPLETE
    pruned: int  # pruned: PRUNED
    failed: int  # failed (diverged): FAIL with a row, a finished run
    crashed: int  # crashed or stale: FAIL without a row, retried or replaced
    running: list[tuple[int, str, str, float]]  # (trial number, run id, worker, seconds so far)
    waiting: int  # enqueued and not yet claimed, plus a sampled search's undrawn budget
    mean_trial_seconds: Optional[float]
    crashes: list[tuple[int, str]]  # (trial number, reason) of the most recent crashes
    # per running trial (same order as `running`): (epochs reported so far, last test -ELBO or None)
    running_epochs: list[tuple[int, Optional[float]]] = field(default_factory=list)
    epochs_per_trial: int = 0  # the spec's train.epochs
    # per running trial: its cell's grid values and seed (labels, seed), and the metric its run is
    # being evaluated on (None while it trains)
    running_cells: list[tuple[dict, Optional[int]]] = field(default_factory=list)
    running_evaluating: list[Optional[str]] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.complete + self.pruned + self.failed

    @property
    def projected_trial_seconds(self) -> Optional[float]:
        """Before any trial has completed: a trial's training time projected from the epochs the
        running trials have done (eta.projected_seconds, mean over the running trials with at least
        one epoch); evaluation time is not in it. None without epochs."""
        projections = [
            p
            for (_, _, _, secs), (n, _) in zip(self.running, self.running_epochs)
            if (p := projected_seconds(secs, n, self.epochs_per_trial)) is not None
        ]
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
        """Seconds left (eta.time_left): the runs not done, a trial taking the mean time of the
        complete ones (before any has completed: the projected time), shared among the running
        workers (at least one)."""
        per_trial = self.mean_trial_seconds if self.mean_trial_seconds is not None else self.projected_trial_seconds
        running = [secs for (_, _, _, secs) in self.running]
        return time_left(max(self.total - self.done, 0), per_trial, running, len(self.running))


def study_status(study: optuna.Study) -> StudyStatus:
    spec = _parse_stored(study.study_name, study.user_attrs[STUDY_SPEC], f"study {study.study_name!r}'s stored spec")
    trials = study.get_trials(deepcopy=False)
    by = {s: [t for t in trials if t.state == s] for s in TrialState}
    now = _dt.datetime.now()
    durations = [
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in by[TrialState.COMPLETE]
        if t.datetime_start and t.datetime_complete
    ]
    # a FAIL trial with a row is a failed run (it diverged) — unless its worker died between storing
    # the row and telling the state: then a retry of the same run completes it, and counts once
    finished_runs = {t.user_attrs.get(ATTR_RUN_ID) for t in by[TrialState.COMPLETE] + by[TrialState.PRUNED]}
    fails = [
        t
        for t in by[TrialState.FAIL]
        if not (ATTR_ROW in t.user_attrs and t.user_attrs.get(ATTR_RUN_ID) in finished_runs)
    ]
    outcomes = [status_of(t) for t in fails]
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
        failed=outcomes.count(RunStatus.FAILED),
        crashed=outcomes.count(RunStatus.CRASHED),
        running=[
            (
                t.number,
                t.user_attrs.get(ATTR_RUN_ID, "?"),
                t.user_attrs.get(ATTR_WORKER, "?"),
                (now - t.datetime_start).total_seconds() if t.datetime_start else 0.0,
            )
            for t in by[TrialState.RUNNING]
        ],
        waiting=waiting,
        mean_trial_seconds=sum(durations) / len(durations) if durations else None,
        crashes=[
            (t.number, t.user_attrs.get(ATTR_FAIL, "stale: no heartbeat"))
            for t in fails[-5:]
            if status_of(t) is RunStatus.CRASHED
        ],
        running_epochs=[
            (
                len(t.intermediate_values),
                t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None,
            )
            for t in by[TrialState.RUNNING]
        ],
        epochs_per_trial=spec.train.epochs,
        running_cells=[
            (t.user_attrs.get(ATTR_LABELS) or {}, t.user_attrs.get(ATTR_SEED)) for t in by[TrialState.RUNNING]
        ],
        running_evaluating=[evaluating_metric(t) for t in by[TrialState.RUNNING]],
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
