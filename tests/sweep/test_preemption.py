"""Preemption with real processes: a worker SIGKILLed mid-epoch, during a checkpoint write or between
its checkpoint and its row is resumed from the checkpoint by the next `vaebench run`; a worker sent
SIGTERM writes a checkpoint, hands its trial back at once and exits 3, and `vaebench run` passes
SIGTERM on to its workers; on PostgreSQL with two results folders the other folder's checkpoint is
not found and the run restarts, with the reason. Every resumed row equals an uninterrupted run's.

The SIGKILL points are the test hook of runtime/stop.py ($VAEBENCH_TEST_KILL_AT)."""

import math
import os
import signal
import subprocess
import sys
import time
import uuid

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tests.conftest import REPO
from tests.sweep.test_distributed import pg_url  # noqa: F401  (the PostgreSQL fixture, skipped without a server)
from vaebench.data import load_dataset
from vaebench.engine.checkpoint import checkpoint_path, checkpoints_dir
from vaebench.engine.execute import Reporter, Setting, execute_run
from vaebench.errors import PREEMPTED_EXIT_CODE
from vaebench.results.rows import load_results, metric_types
from vaebench.runtime.stop import KILL_AT_ENV
from vaebench.spec.sweep_spec import parse_spec
from vaebench.sweep.leases import ATTR_FAIL
from vaebench.sweep.storage import StudyStore

# 2 runs of 4 epochs, 12 steps each (1,437 digits training examples, batches of 128), a checkpoint
# at the end of every epoch
SPEC = {
    "dataset": {"name": "digits"},
    "model": {"name": "mlp", "hidden_dim": 32, "latent_dim": 4},
    "train": {"epochs": 4, "batch_size": 128, "checkpoint_every": 1},
    "eval": {"fid_extractor": None, "nll_examples": 50, "nll_k": 10},
    "seeds": [0, 1],
}


def _write(tmp_path, spec: dict, name: str):
    parsed = parse_spec({**spec, "study": name})
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(parsed.model_dump(mode="json", exclude_defaults=True)))
    return parsed, path


def _cli(*args, results, storage=None, env=None, popen=False):
    argv = [sys.executable, "-m", "vaebench", *args, "--results", str(results)]
    if storage:
        argv += ["--storage", storage]
    full_env = {**os.environ, **(env or {})}
    full_env.pop("VAEBENCH_WORKERS", None)
    kw = dict(stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env, cwd=REPO)
    if popen:  # a process to signal: Ctrl-C must reach it even when pytest runs as a background job
        return subprocess.Popen(argv, preexec_fn=_default_sigint, **kw)
    return subprocess.run(argv, timeout=600, **kw)


def _default_sigint() -> None:
    """In the child before exec: SIGINT's default action. A shell starts background jobs (CI's
    `.ci/run &`) with SIGINT ignored, children inherit that, and Python then installs no
    KeyboardInterrupt handler, so the Ctrl-C tests' signal would be ignored, as `nohup` users want."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _references(spec) -> dict[str, dict]:
    """Each run's row trained without interruption, in this process (no results folder: no checkpoint)."""
    data = load_dataset(spec.dataset, None)
    setting = Setting(spec, data, __import__("torch").device("cpu"), None)
    return {run.run_id: execute_run(run, setting, Reporter()) for run in spec.runs()}


def _same(a, b) -> bool:
    missing = lambda v: v is None or (isinstance(v, float) and math.isnan(v))  # noqa: E731
    if missing(a) or missing(b):
        return missing(a) and missing(b)
    if hasattr(a, "tolist"):
        a = a.tolist()
    if hasattr(b, "tolist"):
        b = b.tolist()
    return a == b


def _assert_rows_equal_references(results, spec, references) -> "dict":
    """Exactly one row per run, every metric column and the history (but its seconds) equal to the
    uninterrupted reference's, bit for bit. Returns the rows by run id."""
    df = load_results(results, spec.study)
    assert sorted(df["run_id"]) == sorted(references), df["run_id"].tolist()
    rows = {r["run_id"]: r for r in df.to_dict("records")}
    for run_id, ref in references.items():
        row = rows[run_id]
        differ = [k for k in metric_types() if not _same(row[k], ref[k])]
        assert not differ, {k: (row[k], ref[k]) for k in differ}
        # the history but its seconds (Parquet gives every record every field: null where absent)
        history = [{k: v for k, v in e.items() if k != "seconds" and v is not None} for e in row["history"]]
        assert history == [{k: v for k, v in e.items() if k != "seconds"} for e in ref["history"]]
        assert _same(row["objective_values"], ref["objective_values"])
    assert not list(checkpoints_dir(results, spec.study).glob("*.pt"))  # removed once the rows were written
    return rows


def _trials(study, results, storage=None):
    return optuna.load_study(study_name=study, storage=StudyStore(storage, results, study).open()).get_trials()


@pytest.mark.slow
@pytest.mark.parametrize(
    "kill_at, resumed_from",
    [
        ("step:30", 3),  # mid-epoch: step 6 of epoch 3, after the checkpoint at the end of epoch 2
        ("checkpoint-write:2", 2),  # while writing epoch 2's checkpoint: epoch 1's is intact
        ("before-row:1", 4),  # trained and evaluated, the row not written: epoch 3's checkpoint
    ],
)
def test_a_sigkilled_run_resumes_from_its_checkpoint_and_writes_the_uninterrupted_row(tmp_path, kill_at, resumed_from):
    spec, path = _write(tmp_path, SPEC, f"k{uuid.uuid4().hex[:8]}")
    references = _references(spec)
    results = tmp_path / "results"
    first = spec.runs()[0].run_id
    p = _cli("run", str(path), "--workers", "1", "--threads", "1", "-q", results=results, env={KILL_AT_ENV: kill_at})
    assert p.returncode == -signal.SIGKILL, p.stdout
    assert checkpoint_path(results, spec.study, first).is_file()
    if kill_at.startswith("checkpoint-write"):  # the temporary file the kill left beside the intact checkpoint
        assert list(checkpoints_dir(results, spec.study).glob(f".{first}.pt.*.tmp"))
    p = _cli("run", str(path), "--workers", "1", "--threads", "1", results=results)
    assert p.returncode == 0, p.stdout
    assert f"run {first}: resumed from its checkpoint at epoch {resumed_from}" in p.stdout, p.stdout
    rows = _assert_rows_equal_references(results, spec, references)
    assert (rows[first]["resumed_from_epoch"], rows[first]["attempts"]) == (resumed_from, 2)
    second = spec.runs()[1].run_id
    assert rows[second]["resumed_from_epoch"] is None or math.isnan(rows[second]["resumed_from_epoch"])
    assert rows[second]["attempts"] == 1


def _wait_for(condition, what: str, seconds: float = 300):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            found = condition()
        except Exception:  # the study is not there yet
            found = None
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


LONG = {**SPEC, "train": {**SPEC["train"], "epochs": 40}}  # ~0.1 s per epoch: time to be signalled mid-run


@pytest.mark.slow
def test_sigterm_checkpoints_hands_the_trial_back_at_once_and_exits_3(tmp_path):
    spec, path = _write(tmp_path, {**LONG, "seeds": [0]}, f"t{uuid.uuid4().hex[:8]}")
    results = tmp_path / "results"
    assert _cli("run", str(path), "--workers", "0", results=results).returncode == 0  # the study, no worker
    worker = _cli("worker", "--study", spec.study, "--threads", "1", results=results, popen=True)
    _wait_for(
        lambda: [t for t in _trials(spec.study, results) if len(t.intermediate_values) >= 3],
        "a trial with 3 epochs done",
    )
    worker.send_signal(signal.SIGTERM)
    out, _ = worker.communicate(timeout=120)
    assert worker.returncode == PREEMPTED_EXIT_CODE == 3, out
    assert "preempted: stopped by SIGTERM at epoch" in out, out
    run_id = spec.runs()[0].run_id
    assert checkpoint_path(results, spec.study, run_id).is_file()
    # handed back at once: no stale-trial recovery has run (no other process opened the study)
    trials = _trials(spec.study, results)
    assert sorted(t.state.name for t in trials) == ["FAIL", "WAITING"]
    stopped = next(t for t in trials if t.state == TrialState.FAIL)
    assert stopped.user_attrs[ATTR_FAIL].startswith("preempted: stopped by SIGTERM")
    assert stopped.user_attrs["checkpoint"]["path"] == str(checkpoint_path(results, spec.study, run_id))
    # another worker takes it and finishes the run from the checkpoint
    p = _cli("worker", "--study", spec.study, "--threads", "1", results=results)
    assert p.returncode == 0, p.stdout
    assert f"run {run_id}: resumed from its checkpoint at epoch" in p.stdout
    rows = _assert_rows_equal_references(results, spec, _references(spec))
    assert rows[run_id]["resumed_from_epoch"] >= 3 and rows[run_id]["attempts"] == 2


@pytest.mark.slow
def test_vaebench_run_passes_sigterm_on_to_its_workers_and_exits_3(tmp_path):
    spec, path = _write(tmp_path, LONG, f"r{uuid.uuid4().hex[:8]}")
    results = tmp_path / "results"
    parent = _cli("run", str(path), "--workers", "2", "--threads", "1", "-q", results=results, popen=True)
    _wait_for(
        lambda: len([t for t in _trials(spec.study, results) if len(t.intermediate_values) >= 2]) == 2,
        "both workers 2 epochs into their runs",
    )
    parent.send_signal(signal.SIGTERM)  # the parent only, as Kubernetes signals a container's PID 1
    out, _ = parent.communicate(timeout=120)
    assert parent.returncode == 3, out
    assert "ended abnormally" not in out, out  # the workers exited 3 as asked, not killed
    trials = _trials(spec.study, results)
    assert sorted(t.state.name for t in trials) == ["FAIL", "FAIL", "WAITING", "WAITING"], out
    assert all(t.user_attrs[ATTR_FAIL].startswith("preempted:") for t in trials if t.state == TrialState.FAIL)
    for run in spec.runs():
        assert checkpoint_path(results, spec.study, run.run_id).is_file()
    p = _cli("run", str(path), "--workers", "1", "--threads", "1", results=results)
    assert p.returncode == 0, p.stdout
    rows = _assert_rows_equal_references(results, spec, _references(spec))
    assert all(r["resumed_from_epoch"] >= 2 and r["attempts"] == 2 for r in rows.values())


@pytest.mark.slow
def test_on_postgresql_another_results_folder_does_not_find_the_checkpoint_and_restarts(tmp_path, pg_url):  # noqa: F811
    spec, path = _write(tmp_path, {**SPEC, "seeds": [0]}, f"p{uuid.uuid4().hex[:8]}")
    try:
        here, there = tmp_path / "machine-a", tmp_path / "machine-b"
        p = _cli(
            "run", str(path), "--workers", "1", "--threads", "1", "-q",
            results=here, storage=pg_url, env={KILL_AT_ENV: "step:30"},
        )  # fmt: skip
        assert p.returncode == -signal.SIGKILL, p.stdout
        run_id = spec.runs()[0].run_id
        assert checkpoint_path(here, spec.study, run_id).is_file()
        # a worker with another results folder (another machine, no shared folder) takes the retried trial
        p = _cli("worker", "--study", spec.study, "--threads", "1", results=there, storage=pg_url)
        assert p.returncode == 0, p.stdout
        assert (
            f"run {run_id}: the checkpoint of epoch 3 written by {os.uname().nodename} at "
            f"{checkpoint_path(here, spec.study, run_id)} is not in this results folder" in p.stdout
        ), p.stdout
        assert "starting from epoch 1" in p.stdout
        rows = _assert_rows_equal_references(there, spec, _references(spec))
        assert math.isnan(rows[run_id]["resumed_from_epoch"]) or rows[run_id]["resumed_from_epoch"] is None
        assert rows[run_id]["attempts"] == 2
        # the first folder keeps its orphaned checkpoint; `vaebench pull` brings the row there
        p = _cli("pull", "--study", spec.study, results=here, storage=pg_url)
        assert p.returncode == 0 and len(load_results(here, spec.study)) == 1
    finally:
        try:
            optuna.delete_study(study_name=spec.study, storage=pg_url)
        except KeyError:
            pass


# --------------------------------------------------------------------------- Ctrl-C (SIGINT)


# Runs long enough (~18 s) that the signal surely lands mid-run; a checkpoint every 50 epochs
INTERRUPTIBLE = {**SPEC, "train": {**SPEC["train"], "epochs": 1000, "checkpoint_every": 50}}


def _rows_on_disk(results, study) -> dict:
    """The row files of a study, by name, with their bytes."""
    return {p.name: p.read_bytes() for p in (results / study / "runs").glob("*.parquet")}


@pytest.mark.slow
def test_ctrl_c_on_vaebench_run_keeps_the_finished_rows_says_how_to_resume_and_exits_130(tmp_path):
    spec, path = _write(tmp_path, {**INTERRUPTIBLE, "seeds": [0, 1]}, f"i{uuid.uuid4().hex[:8]}")
    results = tmp_path / "results"
    parent = _cli("run", str(path), "--workers", "1", "--threads", "1", results=results, popen=True)
    finished = _wait_for(lambda: _rows_on_disk(results, spec.study), "a finished row")
    _wait_for(
        lambda: [t for t in _trials(spec.study, results) if t.state == TrialState.RUNNING and t.intermediate_values],
        "the next trial one epoch in",
    )
    parent.send_signal(signal.SIGINT)
    out, _ = parent.communicate(timeout=120)
    assert parent.returncode == 130, out
    command = f"vaebench run {path} --workers 1 --threads 1 --results {results}"
    assert "interrupted: finished runs are kept" in out and f"resume with: {command}" in out, out
    assert "Traceback" not in out and "Aborted" not in out, out
    # nothing half-written: the finished row is there, byte for byte, and no temporary file beside it
    assert _rows_on_disk(results, spec.study) == finished
    assert not [p for p in (results / spec.study / "runs").iterdir() if p.suffix != ".parquet"]
    stopped = [t for t in _trials(spec.study, results) if t.state == TrialState.FAIL]
    assert len(stopped) == 1 and stopped[0].user_attrs[ATTR_FAIL] == "interrupted", out
    # the printed command resumes: the finished run is not trained again, the interrupted one is
    argv = [sys.executable, "-m", *command.split()]
    env = {k: v for k, v in os.environ.items() if k != "VAEBENCH_WORKERS"}
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
    assert p.returncode == 0, p.stdout
    rows = _rows_on_disk(results, spec.study)
    assert len(rows) == len(spec.runs()) and all(rows[name] == data for name, data in finished.items())


@pytest.mark.slow
def test_ctrl_c_on_vaebench_worker_says_how_to_resume_and_exits_130(tmp_path):
    spec, path = _write(tmp_path, {**INTERRUPTIBLE, "seeds": [0]}, f"j{uuid.uuid4().hex[:8]}")
    results = tmp_path / "results"
    assert _cli("run", str(path), "--workers", "0", results=results).returncode == 0  # the study, no worker
    worker = _cli("worker", "--study", spec.study, "--threads", "1", results=results, popen=True)
    _wait_for(lambda: [t for t in _trials(spec.study, results) if t.intermediate_values], "a trial one epoch in")
    worker.send_signal(signal.SIGINT)
    out, _ = worker.communicate(timeout=120)
    assert worker.returncode == 130, out
    assert f"resume with: vaebench worker --study {spec.study} --threads 1 --results {results}" in out, out
    assert "Traceback" not in out, out
    assert not _rows_on_disk(results, spec.study)  # the only run was interrupted: no row, no partial file
