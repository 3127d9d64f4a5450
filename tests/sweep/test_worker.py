"""The worker loop (sweep/worker.py) and joining a study (sweep/join.py) on Optuna's in-memory
storage, with the run itself (engine.execute_run) replaced by a stub: what a trial records for each
outcome, a crash that does not stop the worker, a row that is reused instead of retrained."""

import contextlib

import pytest
import torch
from optuna.trial import TrialState

from tests.conftest import TINY_SPEC
from tests.sweep.test_study import SPEC, row_for
from vaebench.errors import DeviceError, Preempted
from vaebench.results.rows import has_row, read_row, write_row
from vaebench.results.status import RunStatus
from vaebench.spec.sweep_spec import parse_spec
from vaebench.sweep import worker as worker_mod
from vaebench.sweep.display import NoDisplay
from vaebench.sweep.join import join_study
from vaebench.sweep.leases import ATTR_FAIL
from vaebench.sweep.study import open_study
from vaebench.sweep.trials import ATTR_ROW, decode_run
from vaebench.sweep.worker import run_worker

CPU = torch.device("cpu")


class _Calls(list):
    outcome: dict


@pytest.fixture
def executed(monkeypatch):
    """Replace execute_run: each run's outcome is `outcome[(beta, seed)]` (default ok); returns the
    run ids executed, in order."""
    calls, outcome = _Calls(), {}
    calls.attempts = []  # the row's `attempts` of each call: the study's trials that carried the run so far

    def execute_run(run, setting, reporter, trial_number, stop_check, attempt):
        calls.append(run.run_id)
        calls.attempts.append(attempt.number)
        kind = outcome.get((run.config.objective.beta, run.seed), "ok")
        if kind == "crash":
            raise RuntimeError("boom")
        if kind == "preempt":  # what the training loop raises after a SIGTERM's checkpoint
            raise Preempted("stopped by SIGTERM at epoch 1, step 3/12")
        assert stop_check({"epoch": 1, "test_loss": 100.0}) is None  # no pruner: never stops
        return row_for(run, setting.spec.study, kind)

    monkeypatch.setattr(worker_mod, "execute_run", execute_run)
    calls.outcome = outcome
    return calls


def test_every_trial_runs_once_and_records_its_row_then_its_state(memory_store, executed):
    store = memory_store("tiny")
    study = open_study(SPEC, store)
    summary = run_worker(study, SPEC, None, store, CPU)
    assert sorted(executed) == sorted(run.run_id for run in SPEC.runs())
    assert sorted(summary.complete) == sorted(executed) and not (summary.pruned or summary.failed or summary.crashed)
    for t in study.get_trials():
        run = decode_run(t.user_attrs)
        assert t.state == TrialState.COMPLETE and t.values == [90.0]
        assert t.user_attrs[ATTR_ROW]["run_id"] == run.run_id and t.user_attrs["m.neg_elbo"] == 90.0
        assert t.intermediate_values == {1: 100.0}  # the epoch, reported to the trial
        assert read_row(store.results_root, "tiny", run.run_id)["status"] == "ok"
    again = run_worker(study, SPEC, None, store, CPU)  # nothing left
    assert len(executed) == 4 and again.complete == []


def test_each_outcome_is_the_trials_state_and_a_crash_does_not_stop_the_worker(memory_store, executed):
    executed.outcome.update({(0.5, 1): "pruned", (2.0, 0): "failed", (2.0, 1): "crash"})
    store = memory_store("tiny")
    study = open_study(SPEC, store)
    summary = run_worker(study, SPEC, None, store, CPU)
    assert len(executed) == 4  # the crash did not stop it
    states = {(t.params["objective.beta"], t.user_attrs["seed"]): t for t in study.get_trials()}
    assert {k: t.state for k, t in states.items()} == {
        (0.5, 0): TrialState.COMPLETE,
        (0.5, 1): TrialState.PRUNED,
        (2.0, 0): TrialState.FAIL,
        (2.0, 1): TrialState.FAIL,
    }
    assert states[2.0, 0].user_attrs[ATTR_FAIL] == "failed here" and ATTR_ROW in states[2.0, 0].user_attrs
    assert states[2.0, 1].user_attrs[ATTR_FAIL] == "RuntimeError: boom" and ATTR_ROW not in states[2.0, 1].user_attrs
    crashed_run = states[2.0, 1].user_attrs["run_id"]
    assert not has_row(store.results_root, "tiny", crashed_run)
    assert (len(summary.complete), len(summary.pruned), len(summary.failed)) == (1, 1, 1)
    assert summary.crashed == [f"{crashed_run}: RuntimeError: boom"]
    assert [RunStatus(read_row(store.results_root, "tiny", states[k].user_attrs["run_id"])["status"]) for k in
            [(0.5, 0), (0.5, 1), (2.0, 0)]] == [RunStatus.OK, RunStatus.PRUNED, RunStatus.FAILED]  # fmt: skip


def test_a_preempted_trial_is_handed_back_at_once_and_its_retry_counts_the_attempts(memory_store, executed):
    executed.outcome.update({(2.0, 0): "preempt"})
    store = memory_store("tiny")
    study = open_study(SPEC, store)
    with pytest.raises(Preempted):  # the worker stops: it takes no other trial
        run_worker(study, SPEC, None, store, CPU)
    trials = study.get_trials()
    stopped = next(t for t in trials if t.state == TrialState.FAIL)
    assert (stopped.params["objective.beta"], stopped.user_attrs["seed"]) == (2.0, 0)
    assert stopped.user_attrs[ATTR_FAIL].startswith("preempted: stopped by SIGTERM at epoch 1")
    # handed back without any stale timeout: a WAITING copy of the same run, as a stale trial's retry
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == stopped.number]
    assert len(retry) == 1 and retry[0].state == TrialState.WAITING
    assert retry[0].user_attrs["run_id"] == stopped.user_attrs["run_id"] and "worker" not in retry[0].user_attrs
    executed.outcome.clear()
    summary = run_worker(study, SPEC, None, store, CPU)  # another worker finishes the sweep
    assert len(summary.complete) == 4 - executed.index(stopped.user_attrs["run_id"])
    assert executed.attempts[-len(summary.complete) :].count(2) == 1  # the retried run: its 2nd trial
    by_run = {r: a for r, a in zip(executed, executed.attempts)}
    assert by_run[stopped.user_attrs["run_id"]] == 2 and sorted(by_run.values()).count(1) == 3


def test_a_run_with_a_row_is_not_run_again(memory_store, executed):
    store = memory_store("tiny")
    study = open_study(SPEC, store)
    done = SPEC.runs()[0]
    write_row(store.results_root, "tiny", row_for(done, "tiny", neg_elbo=42.0))  # finished before a crash
    run_worker(study, SPEC, None, store, CPU)
    assert done.run_id not in executed and len(executed) == 3
    [trial] = [t for t in study.get_trials() if t.user_attrs["run_id"] == done.run_id]
    assert trial.state == TrialState.COMPLETE and trial.values == [42.0]


class Shown:
    reads_storage = False

    def __init__(self):
        self.events = []

    def joined(self, study, storage, threads, device):
        self.events.append(("joined", study, threads, str(device)))

    @contextlib.contextmanager
    def worker_here(self, total, done):
        self.events.append(("worker_here", total, done))
        yield worker_mod.Reporter()

    def worker_done(self, summary):
        self.events.append(("worker_done", len(summary.complete)))


def test_joining_reads_the_stored_spec_loads_the_data_and_runs_the_trials(memory_store, executed):
    open_study(SPEC, memory_store("tiny"))  # made by `vaebench run --workers 0`, say
    shown = Shown()
    summary = join_study(memory_store("tiny"), CPU, shown, threads=1, command="vaebench worker --study tiny")
    assert len(summary.complete) == 4 and len(executed) == 4
    assert shown.events == [("joined", "tiny", 1, "cpu"), ("worker_here", 4, 0), ("worker_done", 4)]


def test_joining_refuses_a_precision_the_device_cannot_train_before_any_trial(memory_store, executed):
    fp16 = parse_spec({**TINY_SPEC, "train": {"epochs": 2, "precision": "fp16"}})
    study = open_study(fp16, memory_store("tiny"))
    with pytest.raises(DeviceError, match="fp16 is for CUDA GPUs"):
        join_study(memory_store("tiny"), CPU, NoDisplay())
    assert executed == [] and {t.state for t in study.get_trials()} == {TrialState.WAITING}
