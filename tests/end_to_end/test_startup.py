"""Start-up of a sweep: the worker processes of a new study start before it exists and wait for it;
a failure before the study is made stops them and writes nothing. (The seconds this saves are
measured by benchmarks/startup.py, not asserted here.)"""

import threading
import time

import pytest

from vaebench import api
from vaebench.errors import DataError, StudyError
from vaebench.spec.sweep_spec import parse_spec
from vaebench.sweep import launch as launch_mod
from vaebench.sweep import run as sweep_run
from vaebench.sweep.storage import JOURNAL_FILE, StudyStore
from vaebench.sweep.study import open_study, wait_for_study

SPEC = {
    "study": "early",
    "dataset": {"name": "digits"},
    "model": {"name": "mlp", "hidden_dim": 16, "latent_dim": 2},
    "train": {"epochs": 1},
    "eval": {"fid_extractor": None, "nll_examples": 20, "nll_k": 4},
    "grid": {"objective.beta": [1, 2]},
    "seeds": [0],
}


def fake_launcher(monkeypatch, tmp_path):
    """start_workers / supervise / stop_workers replaced: each call is recorded with whether the
    study's journal existed at that moment; no process starts and no trial runs."""
    calls = []
    journal = tmp_path / SPEC["study"] / JOURNAL_FILE

    def start(argv, layout, env=None):
        calls.append(("start", list(argv), layout.workers, journal.is_file()))
        return [f"w{i}" for i in range(layout.workers)]

    monkeypatch.setattr(launch_mod, "start_workers", start)
    monkeypatch.setattr(launch_mod, "supervise", lambda procs, emit, poll=None, poll_seconds=2.0: [0] * len(procs))
    monkeypatch.setattr(launch_mod, "stop_workers", lambda procs: calls.append(("stop", list(procs))))
    return calls


def test_new_study_starts_its_workers_before_making_it(monkeypatch, tmp_path):
    calls = fake_launcher(monkeypatch, tmp_path)
    api.run(SPEC, results=tmp_path, workers=2, threads=1)
    assert len(calls) == 1
    kind, argv, n, journal_existed = calls[0]
    assert kind == "start" and n == 2 and not journal_existed  # started before the study was made
    assert argv[argv.index("--wait-for-study") + 1] == str(sweep_run.WAIT_FOR_STUDY_SECONDS)

    calls.clear()  # the study exists now (nothing ran): its pending runs decide the layout first
    api.run(SPEC, results=tmp_path, workers=2, threads=1)
    kind, argv, n, journal_existed = calls[0]
    assert kind == "start" and n == 2 and journal_existed and "--wait-for-study" not in argv


def test_failure_before_the_study_stops_the_early_workers(monkeypatch, tmp_path):
    calls = fake_launcher(monkeypatch, tmp_path)
    spec = {**SPEC, "dataset": {"name": "mnist"}}
    monkeypatch.setenv("VAEBENCH_DATA_ROOT", str(tmp_path / "no-data"))
    with pytest.raises(DataError, match="MNIST not found"):
        api.run(spec, results=tmp_path, workers=2, threads=1, download=False)
    assert [c[0] for c in calls] == ["start", "stop"] and calls[1][1] == ["w0", "w1"]
    assert not (tmp_path / SPEC["study"]).exists()  # nothing written


def test_one_worker_layout_starts_no_process(monkeypatch, tmp_path):
    calls = fake_launcher(monkeypatch, tmp_path)
    status = api.run(SPEC, results=tmp_path, workers=1)
    assert calls == [] and status.done == status.total == 2  # ran here


def test_wait_for_study_returns_once_it_is_made(tmp_path):
    spec = parse_spec(SPEC, "test")
    store = StudyStore(None, tmp_path, spec.study)
    with pytest.raises(StudyError, match="no study 'early'"):
        wait_for_study(store, 0.2)
    maker = threading.Timer(0.3, lambda: open_study(spec, store, "abc"))
    maker.start()
    t0 = time.monotonic()
    try:
        got = wait_for_study(store, 30, poll=0.02)
    finally:
        maker.join()
    assert got.fingerprint() == spec.fingerprint()
    assert time.monotonic() - t0 < 25  # it returned when the study appeared, not at the deadline
