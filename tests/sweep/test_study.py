"""The study (sweep/study.py) on Optuna's in-memory storage: creating and resuming it, claiming its
trials, its status by outcome, exporting the rows its trials hold, and parsing its stored spec once."""

import socket
import subprocess
import sys

import pytest
from optuna.trial import TrialState

from tests.conftest import TINY_SPEC
from vaebench.errors import StudyError
from vaebench.results.build import build_row
from vaebench.results.rows import has_row, read_row
from vaebench.spec import sweep_spec
from vaebench.spec.sweep_spec import parse_spec
from vaebench.sweep import study as study_mod
from vaebench.sweep.leases import ATTR_FAIL, ATTR_WORKER, TrialStorage
from vaebench.sweep.study import budget_used, claim_next, export_rows, open_study, stored_spec, study_status
from vaebench.sweep.trials import ATTR_ROW, ATTR_RUN_ID, decode_run

SPEC = parse_spec(TINY_SPEC)  # 2 cells x 2 seeds
SAMPLED = parse_spec(
    {
        **TINY_SPEC,
        "study": "sampled",
        "dataset": {"name": "digits", "validation": 200},
        "grid": {},
        "seeds": [0],
        "search": {
            "sampler": "random",
            "n_trials": 3,
            "space": {"objective.beta": {"type": "float", "low": 0.5, "high": 2.0}},
        },
    }
)


def row_for(run, study: str, status: str = "ok", neg_elbo: float | None = 90.0) -> dict:
    """A results row for `run` as a worker would make it (no training)."""
    return build_row(
        run_id=run.run_id,
        study=study,
        seed=run.seed,
        status=status,
        reason=None if status == "ok" else f"{status} here",
        variant=run.variant,
        cell_index=run.cell_index,
        trial_number=0,
        config=run.config,
        grid_keys=["objective.beta"],
        sampler="grid",
        objective_metrics=["neg_elbo"],
        objective_directions=["minimize"],
        n_params=10,
        epochs_completed=1,
        train_seconds=1.0,
        eval_seconds=None,
        metrics={"neg_elbo": neg_elbo} if status == "ok" else {},
        history=[],
        precision="fp32",
        tf32=False,
        command="test",
        device=None,
        dataset="digits",
        dataset_checksum=None,
        spec_fingerprint=None,
    )


def test_a_new_study_holds_every_grid_run_once_and_resumes_without_new_trials(memory_store):
    store = memory_store("tiny")
    study = open_study(SPEC, store, "sum1")
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.WAITING] * 4
    assert [decode_run(t.user_attrs) for t in trials] == SPEC.runs()
    # the grid values are the params (the seed is not: it replicates a cell)
    assert [t.system_attrs["fixed_params"] for t in trials] == [run.labels for run in SPEC.runs()]
    assert [run.labels for run in SPEC.runs()][:2] == [{"objective.beta": 0.5}, {"objective.beta": 0.5}]
    assert study.metric_names == ["neg_elbo"]
    assert stored_spec(store) == SPEC and (store.folder / "spec.json").is_file()
    open_study(SPEC, store, "sum1")  # the same spec and data again: nothing new
    assert len(study.get_trials()) == 4


def test_a_study_refuses_another_spec_or_other_data(memory_store):
    store = memory_store("tiny")
    open_study(SPEC, store, "sum1")
    changed = parse_spec({**TINY_SPEC, "train": {"epochs": 3, "batch_size": 128}})
    with pytest.raises(StudyError, match=r"different spec.*train\.epochs: 2 -> 3"):
        open_study(changed, store)
    with pytest.raises(StudyError, match="differs from the data the study started with"):
        open_study(SPEC, store, "sum2")


def test_claims_hand_out_each_trial_once_then_none(memory_store):
    store = memory_store("tiny")
    study = open_study(SPEC, store)
    claimed = [claim_next(study, SPEC, store) for _ in range(4)]
    assert len({t.number for t in claimed}) == 4
    assert all(t.user_attrs[ATTR_WORKER].startswith(socket.gethostname() + ":") for t in claimed)
    assert claim_next(study, SPEC, store) is None
    assert [t.state for t in study.get_trials()] == [TrialState.RUNNING] * 4


def test_a_sampled_search_draws_its_budget_and_replaces_crashes(memory_store):
    store = memory_store("sampled")
    study = open_study(SAMPLED, store)
    assert study.get_trials() == []  # nothing enqueued: trials are drawn
    first = claim_next(study, SAMPLED, store)
    study.tell(first, state=TrialState.FAIL)  # a crash: no row, does not count
    assert budget_used(study) == 0
    drawn = [claim_next(study, SAMPLED, store) for _ in range(3)]
    assert None not in drawn and claim_next(study, SAMPLED, store) is None
    assert budget_used(study) == 3 and study_status(study).waiting == 0


def test_the_status_counts_each_outcome_once(memory_store):
    store = memory_store("tiny")
    study = open_study(SPEC, store)
    runs = SPEC.runs()
    t_ok, t_pruned, t_failed, t_crashed = [claim_next(study, SPEC, store) for _ in range(4)]
    s = study_status(study)
    assert (s.done, len(s.running), s.waiting, s.eta_seconds) == (0, 4, 0, None)
    study.tell(t_ok, 90.0)
    study.tell(t_pruned, state=TrialState.PRUNED)
    t_failed.set_user_attr(ATTR_ROW, row_for(runs[2], "tiny", "failed"))
    study.tell(t_failed, state=TrialState.FAIL)
    t_crashed.set_user_attr(ATTR_FAIL, "RuntimeError: boom")
    study.tell(t_crashed, state=TrialState.FAIL)
    s = study_status(study)
    assert (s.complete, s.pruned, s.failed, s.crashed, s.done, s.total) == (1, 1, 1, 1, 3, 4)
    assert s.crashes == [(t_crashed.number, "RuntimeError: boom")]
    # a worker that stored its row and died before telling COMPLETE: its run, done by a retry, counts once
    study.enqueue_trial(params=dict(runs[3].labels), user_attrs={**t_crashed.user_attrs})
    retry = claim_next(study, SPEC, store)
    retry.set_user_attr(ATTR_ROW, row_for(runs[3], "tiny"))
    study.tell(retry, 91.0)
    s = study_status(study)
    assert (s.complete, s.failed, s.crashed, s.done) == (2, 1, 1, 4)


def test_a_trial_whose_worker_died_is_run_again(memory_store):
    store = memory_store("tiny")
    study = open_study(SPEC, store)
    trial = claim_next(study, SPEC, store)
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    TrialStorage(study).storage.set_trial_user_attr(trial._trial_id, ATTR_WORKER, f"{socket.gethostname()}:{p.pid}:1")
    open_study(SPEC, store)  # the next process to open the study takes the dead worker's trial over
    dead, *_ = [t for t in study.get_trials() if t.number == trial.number]
    assert dead.state == TrialState.FAIL and "died" in dead.user_attrs[ATTR_FAIL]
    retry = study.get_trials()[-1]
    assert retry.state == TrialState.WAITING and retry.user_attrs[ATTR_RUN_ID] == trial.user_attrs[ATTR_RUN_ID]
    assert ATTR_WORKER not in retry.user_attrs and ATTR_FAIL not in retry.user_attrs
    assert study_status(study).waiting == 4


def test_export_writes_the_rows_this_folder_lacks(memory_store):
    store = memory_store("tiny")
    study = open_study(SPEC, store)
    for run in SPEC.runs()[:2]:
        trial = claim_next(study, SPEC, store)
        trial.set_user_attr(ATTR_ROW, row_for(decode_run(trial.user_attrs), "tiny"))
        study.tell(trial, 90.0)
    first = SPEC.runs()[0].run_id
    assert export_rows(study, store) == (2, 0)
    assert (
        has_row(store.results_root, "tiny", first) and read_row(store.results_root, "tiny", first)["neg_elbo"] == 90.0
    )
    assert export_rows(study, store) == (0, 2)


def test_the_stored_spec_is_parsed_once_per_process(memory_store, monkeypatch):
    store = memory_store("tiny")
    study = open_study(SPEC, store)
    calls = []
    real = sweep_spec.parse_spec

    def counting(data, where):
        calls.append(where)
        return real(data, where)

    monkeypatch.setattr(study_mod, "parse_spec", counting)
    monkeypatch.setattr(study_mod, "_PARSED", {})
    for _ in range(5):  # the status poll, every 2 s
        assert study_status(study).total == 4
    assert stored_spec(store) == SPEC  # the worker's read of the same stored text
    assert len(calls) == 1
    other = parse_spec({**TINY_SPEC, "study": "other", "seeds": [0]})
    assert study_status(open_study(other, memory_store("other"))).total == 2  # another study: its own entry
    assert len(calls) == 2
