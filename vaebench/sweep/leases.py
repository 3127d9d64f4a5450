"""Who runs a trial, and what happens when it stops answering: leases, heartbeats, stale trials.

Stale trials: on PostgreSQL every running trial sends Optuna heartbeats (`Heartbeat`); a silent one
is failed and re-enqueued by Optuna's heartbeat machinery (`retry_stale_trial`, the callback the
storage is opened with). The journal has no heartbeat, so each RUNNING trial carries a lease
(host:pid:process start time, `worker_token`); a lease whose process on this host is gone is failed
and re-enqueued the same way (`recover_stale_trials`).

This is the one module that reaches below Optuna's public API, and only through `TrialStorage`:
the atomic WAITING -> RUNNING claim, failing a trial another process may finish first, heartbeats,
intermediate values of a multi-objective study.
"""

from __future__ import annotations

import copy
import os
import socket
import threading
import warnings
from typing import Optional

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

ATTR_WORKER, ATTR_FAIL = "worker", "fail_reason"  # the trial's lease, and why it failed

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeat API, stable in practice


class TrialStorage:
    """The study's storage (`study._storage`) for the trial updates Optuna's public API lacks,
    addressing trials by their storage id (`_trial_id`)."""

    def __init__(self, study: optuna.Study) -> None:
        self.study, self.storage = study, study._storage

    def claim(self, trial: FrozenTrial) -> Optional[optuna.Trial]:
        """Atomically move the WAITING `trial` to RUNNING, leased by this process; None when another
        process took it first."""
        try:
            if not self.storage.set_trial_state_values(trial._trial_id, TrialState.RUNNING):
                return None
        except UpdateFinishedTrialError:
            return None
        self.storage.set_trial_user_attr(trial._trial_id, ATTR_WORKER, worker_token())
        return optuna.Trial(self.study, trial._trial_id)

    def fail(self, trial: FrozenTrial, reason: str) -> Optional[FrozenTrial]:
        """Fail the RUNNING `trial` with `reason`; its new state, or None when it finished first."""
        try:
            self.storage.set_trial_user_attr(trial._trial_id, ATTR_FAIL, reason)
            if not self.storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                return None
        except UpdateFinishedTrialError:
            return None
        return self.storage.get_trial(trial._trial_id)

    def set_intermediate_value(self, trial: optuna.Trial, step: int, value: float) -> None:
        """What `Trial.report` stores, for a multi-objective study (where `report` refuses)."""
        self.storage.set_trial_intermediate_value(trial._trial_id, step, value)

    def heartbeat_interval(self) -> Optional[int]:
        """Seconds between heartbeats (RDB storages), or None: the storage has none."""
        get = getattr(self.storage, "get_heartbeat_interval", None)
        return get() if get is not None else None

    def record_heartbeat(self, trial_id: int) -> None:
        self.storage.record_heartbeat(trial_id)


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


def claim_waiting(study: optuna.Study) -> Optional[optuna.Trial]:
    """Atomically move one WAITING trial to RUNNING for this process, or None if none is left."""
    storage = TrialStorage(study)
    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        trial = storage.claim(t)
        if trial is not None:
            return trial
    return None


def recover_stale_trials(study: optuna.Study) -> list[int]:
    """Fail every RUNNING trial whose worker is gone and enqueue a retry of its run: trials leased by
    a dead process on this host (every storage; these get a fail_reason), then trials silent past the
    heartbeat grace period (RDB storages: workers on any machine). Returns the failed trials'
    numbers. Call under the store's lock."""
    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    storage, recovered = TrialStorage(study), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not _lease_is_dead(t.user_attrs.get(ATTR_WORKER)):
            continue
        if _fail_and_retry(study, storage, t, f"worker {t.user_attrs.get(ATTR_WORKER)} died"):
            recovered.append(t.number)
    with warnings.catch_warnings():  # the heartbeat API is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        fail_stale_trials(study)  # heartbeat storages: fails silent trials, runs retry_stale_trial
    still = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    return sorted((before - still) | set(recovered))


def _fail_and_retry(study: optuna.Study, storage: TrialStorage, trial: FrozenTrial, reason: str) -> bool:
    """Fail the RUNNING `trial` with `reason` and enqueue a retry of its run (`retry_stale_trial`);
    False when it had finished first."""
    failed = storage.fail(trial, reason)
    if failed is None:
        return False
    retry_stale_trial(study, failed)
    return True


def release_trial(study: optuna.Study, trial: optuna.Trial, reason: str) -> bool:
    """Hand this worker's running `trial` back to the study at once, as a stale trial is handed back
    (failed with `reason`, its run enqueued again): a worker stopped by SIGTERM, whose run's
    checkpoint the retry resumes from. False when the trial had finished (or failed) first."""
    try:
        return _fail_and_retry(study, TrialStorage(study), study._storage.get_trial(trial._trial_id), reason)
    except Exception:  # the storage is gone: the lease (same host) or the heartbeat finds it stale later
        return False


class Heartbeat:
    """Record Optuna heartbeats for a running trial from a thread (RDB storages; a no-op else)."""

    def __init__(self, study: optuna.Study, trial_id: int) -> None:
        self.storage = TrialStorage(study)
        self.interval = self.storage.heartbeat_interval()
        self.trial_id = trial_id
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True, name=f"heartbeat-{trial_id}")

    @classmethod
    def of(cls, study: optuna.Study, trial: optuna.Trial) -> "Heartbeat":
        return cls(study, trial._trial_id)

    def _beat(self) -> None:
        while True:
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # a transient database error must not kill the trial; the next beat retries
                pass
            if self.stop.wait(self.interval):
                return

    def __enter__(self) -> "Heartbeat":
        if self.interval:
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.interval:
            self.stop.set()
            self.thread.join()
