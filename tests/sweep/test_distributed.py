"""Several worker processes on one study, on the embedded journal and on the real PostgreSQL server:
every grid cell x seed runs exactly once, a SIGKILLed worker's trial is run again, nothing is lost or
duplicated. These tests start real `vaebench` processes.

PostgreSQL: $VAEBENCH_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test). Where no
server answers the PostgreSQL cases skip with the reason, unless $VAEBENCH_REQUIRE_POSTGRES=1 (set
by .ci/run), which turns the skip into a failure.
"""

import collections
import os
import signal
import subprocess
import sys
import time
import uuid

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import REPO
from vaebench.results.rows import load_results, runs_dir
from vaebench.spec.sweep_spec import parse_spec
from vaebench.sweep.leases import ATTR_FAIL, ATTR_WORKER, Heartbeat, lease_pid, recover_stale_trials
from vaebench.sweep.storage import StudyStore
from vaebench.sweep.study import claim_next, open_study, study_status
from vaebench.sweep.trials import ATTR_ROW, ATTR_RUN_ID

PG_URL = os.environ.get("VAEBENCH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("VAEBENCH_REQUIRE_POSTGRES") == "1"

# About 1.5 s of training per run on one thread: long enough for several workers to overlap.
SPEC = {
    "dataset": {"name": "digits"},
    "model": {"name": "mlp", "hidden_dim": 256, "latent_dim": 8},
    "train": {"epochs": 8, "batch_size": 64},
    "eval": {"fid_extractor": None, "nll_examples": 50, "nll_k": 10},
    "grid": {"objective.beta": [0.25, 0.5, 1.0, 2.0]},
    "seeds": [0, 1],
}


def _postgres_problem():
    try:
        import psycopg

        psycopg.connect(PG_URL.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=3).close()
        return None
    except Exception as e:  # no driver, no server, no database
        return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"


@pytest.fixture
def pg_url():
    """The PostgreSQL URL; skipped with the reason where no server answers (failed under CI)."""
    problem = _postgres_problem()
    if problem:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL required ($VAEBENCH_REQUIRE_POSTGRES=1) but {PG_URL} is unreachable: {problem}")
        pytest.skip(f"no PostgreSQL server at {PG_URL} ({problem}); set VAEBENCH_TEST_POSTGRES_URL")
    return PG_URL


@pytest.fixture(params=["journal", "postgresql"])
def storage_url(request):
    """None for the embedded journal, else the PostgreSQL URL."""
    return None if request.param == "journal" else request.getfixturevalue("pg_url")


@pytest.fixture
def study_name(request):
    """A fresh study name; its PostgreSQL study is deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    yield name
    url = request.node.funcargs.get("storage_url") or request.node.funcargs.get("pg_url")
    if url is not None:
        try:
            optuna.delete_study(study_name=name, storage=url)
        except KeyError:
            pass


def _cli(*args, results, storage_url, env_extra=None, popen=False):
    argv = [sys.executable, "-m", "vaebench", *args, "--results", str(results)]
    if storage_url:
        argv += ["--storage", storage_url]
    env = {**os.environ, **(env_extra or {})}
    env.pop("VAEBENCH_WORKERS", None)
    if popen:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)


def _trials(store):
    return optuna.load_study(study_name=store.study, storage=store.open()).get_trials()


def _assert_each_run_exactly_once(store, spec):
    trials = _trials(store)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    counts = collections.Counter(t.user_attrs[ATTR_RUN_ID] for t in complete)
    expected = {run.run_id for run in spec.runs()}
    assert set(counts) == expected and set(counts.values()) == {1}, counts  # every run, once
    cells = collections.Counter((t.params["objective.beta"], t.user_attrs["seed"]) for t in complete)
    assert all(set(t.params) == {"objective.beta"} for t in complete)  # the seed is not a param
    assert len(cells) == len(expected) and set(cells.values()) == {1}
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    df = load_results(store.results_root, store.study)
    assert sorted(df["run_id"]) == sorted(expected) and (df["status"] == "ok").all()  # every row, once
    assert not [p for p in runs_dir(store.results_root, store.study).iterdir() if p.suffix != ".parquet"]
    return trials, df


@pytest.mark.slow
def test_several_workers_run_every_cell_exactly_once(tmp_path, storage_url, study_name):
    # ~4 s per run: long enough that every worker has started before the queue runs dry
    spec = parse_spec({**SPEC, "study": study_name, "train": {"epochs": 20, "batch_size": 64}})
    path = tmp_path / "spec.yaml"
    path.write_text(__import__("yaml").safe_dump(spec.model_dump(mode="json", exclude_defaults=True)))
    results = tmp_path / "results"
    p = _cli("run", str(path), "--workers", "3", "-q", results=results, storage_url=storage_url)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "layout 3 workers x 1 thread" in p.stderr
    store = StudyStore(storage_url, results, study_name)
    trials, df = _assert_each_run_exactly_once(store, spec)
    assert len(trials) == 8  # no stray trials: cells were claimed, never asked for
    workers = {t.user_attrs[ATTR_WORKER] for t in trials}
    assert len(workers) >= 2, workers  # the work was shared
    assert set(df["torch_threads"]) == {1}
    assert all(c.startswith(f"vaebench run {path} --workers 3") for c in df["command"])  # the rows' provenance
    # a worker joining the finished study (on PostgreSQL: as if from another machine) has nothing to do
    other = results if storage_url is None else tmp_path / "elsewhere"
    p = _cli("worker", "--study", study_name, results=other, storage_url=storage_url)
    assert p.returncode == 0 and "worker done: 0 complete" in p.stderr, p.stderr
    if storage_url is not None:  # ... and `pull` brings every row over from the storage
        p = _cli("pull", "--study", study_name, results=other, storage_url=storage_url)
        assert p.returncode == 0 and "wrote 8 row(s)" in p.stderr, p.stderr
        pulled = load_results(other, study_name).set_index("run_id").sort_index()
        assert pulled["neg_elbo"].tolist() == df.set_index("run_id").sort_index()["neg_elbo"].tolist()
        assert [len(h) for h in pulled["history"]] == [20] * 8
    status = _cli("status", "--study", study_name, results=results, storage_url=storage_url)
    assert status.returncode == 0 and "8/8 done — 8 complete, 0 pruned" in status.stdout, status.stdout + status.stderr


@pytest.mark.slow
def test_a_sigkilled_worker_loses_nothing_and_its_cell_runs_once(tmp_path, storage_url, study_name):
    spec = parse_spec({**SPEC, "study": study_name, "train": {"epochs": 16, "batch_size": 64}})
    path = tmp_path / "spec.yaml"
    path.write_text(__import__("yaml").safe_dump(spec.model_dump(mode="json", exclude_defaults=True)))
    results = tmp_path / "results"
    # The SIGKILL is found through the dead process's lease (same host), not through heartbeats: a long
    # heartbeat keeps a live worker on a loaded machine from being declared stale (3 missed beats),
    # which would add a FAIL trial this test does not expect.
    store = StudyStore(storage_url, results, study_name, heartbeat=10)
    parent = _cli(
        "run",
        str(path),
        "--workers",
        "2",
        "--heartbeat",
        "10",
        "-q",
        results=results,
        storage_url=storage_url,
        popen=True,
    )
    killed = None
    deadline = time.time() + 300
    while killed is None and time.time() < deadline:  # wait for a worker in the middle of a trial
        time.sleep(0.3)
        try:
            trials = _trials(store)
        except (KeyError, Exception):
            continue
        done = sum(t.state == TrialState.COMPLETE for t in trials)
        for t in trials:
            if (
                t.state == TrialState.RUNNING
                and done >= 1
                and t.datetime_start
                and (time.time() - t.datetime_start.timestamp()) > 0.5
            ):
                pid = lease_pid(t.user_attrs.get(ATTR_WORKER))
                if pid and pid != parent.pid:
                    os.kill(pid, signal.SIGKILL)
                    killed = (t.number, t.user_attrs[ATTR_RUN_ID], time.time())
                    break
    assert killed is not None, "no running trial seen to kill"
    out, _ = parent.communicate(timeout=600)
    assert "killed by signal 9" in out, out
    # resume: whatever the first run left, the next one finishes it and changes nothing else
    p = _cli("run", str(path), "--heartbeat", "10", "-q", results=results, storage_url=storage_url)
    assert p.returncode == 0, p.stdout + p.stderr
    trials, df = _assert_each_run_exactly_once(store, spec)
    number, run_id, killed_at = killed
    same_run = [t for t in trials if t.user_attrs[ATTR_RUN_ID] == run_id]
    states = sorted(t.state.name for t in same_run)
    assert states == ["COMPLETE", "FAIL"], states  # the killed attempt, then one complete retry
    dead = next(t for t in same_run if t.state == TrialState.FAIL)
    assert dead.number == number and "died" in dead.user_attrs.get(ATTR_FAIL, ""), (
        number,
        dead.number,
        dead.user_attrs,
    )
    row = df[df.run_id == run_id].iloc[0]
    created = time.mktime(time.strptime(row["created_at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    if created < killed_at - 1:
        # the killed attempt had written its row and was killed before telling the trial's state (the
        # row lands first, then the m.* attributes, the row attribute and the state): the retry kept
        # that row and did not train again. It is the killed attempt's, not an older one.
        assert created >= dead.datetime_start.timestamp() - 1, (row["created_at"], dead.datetime_start)
        complete = next(t for t in same_run if t.state == TrialState.COMPLETE)
        assert complete.user_attrs[ATTR_ROW]["created_at"] == row["created_at"]
    # a third run has nothing to do
    p = _cli("run", str(path), "-q", results=results, storage_url=storage_url)
    assert p.returncode == 0 and "8 already done" in p.stderr
    assert len(_trials(store)) == len(trials)


@pytest.mark.slow
def test_a_sampled_budget_is_exact_under_parallel_workers(tmp_path, storage_url, study_name):
    spec = parse_spec(
        {
            **{k: v for k, v in SPEC.items() if k != "grid"},
            "study": study_name,
            "dataset": {"name": "digits", "validation": 200},
            "seeds": [0],
            "search": {
                "sampler": "tpe",
                "n_trials": 7,
                "space": {"objective.beta": {"type": "float", "low": 0.1, "high": 4.0, "log": True}},
            },
        }
    )
    path = tmp_path / "spec.yaml"
    path.write_text(__import__("yaml").safe_dump(spec.model_dump(mode="json", exclude_defaults=True)))
    results = tmp_path / "results"
    p = _cli("run", str(path), "--workers", "3", "-q", results=results, storage_url=storage_url)
    assert p.returncode == 0, p.stdout + p.stderr
    trials = _trials(StudyStore(storage_url, results, study_name))
    assert len(trials) == 7 and all(t.state == TrialState.COMPLETE for t in trials)
    df = load_results(results, study_name)
    assert len(df) == len({t.user_attrs[ATTR_RUN_ID] for t in trials})  # one row per distinct run


def test_heartbeats_keep_a_trial_alive_and_silence_gets_it_retried(tmp_path, pg_url, study_name):
    # (the journal has no heartbeat: its leases are covered by the SIGKILL test)
    spec = parse_spec({**SPEC, "study": study_name})
    store = StudyStore(pg_url, tmp_path / "results", study_name, heartbeat=1)
    study = open_study(spec, store)
    alive, silent = claim_next(study, spec, store), claim_next(study, spec, store)
    for trial in (alive, silent):  # leases of another machine: only the heartbeat can tell
        study._storage.set_trial_user_attr(trial._trial_id, ATTR_WORKER, "another-host:1234:1")
    with Heartbeat(study, alive._trial_id):
        study._storage.record_heartbeat(silent._trial_id)
        time.sleep(4.5)  # past the grace period of 3 heartbeats
        with store.lock():
            recovered = recover_stale_trials(study)
    assert recovered == [silent.number]
    trials = {t.number: t for t in study.get_trials()}
    assert trials[alive.number].state == TrialState.RUNNING
    assert trials[silent.number].state == TrialState.FAIL
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == silent.number]
    assert len(retries) == 1 and retries[0].state == TrialState.WAITING
    assert retries[0].user_attrs[ATTR_RUN_ID] == silent.user_attrs[ATTR_RUN_ID]
    assert ATTR_WORKER not in retries[0].user_attrs  # the dead lease is not inherited


def test_status_estimates_the_time_left(tmp_path, storage_url, study_name):
    spec = parse_spec({**SPEC, "study": study_name})
    store = StudyStore(storage_url, tmp_path / "results", study_name)
    study = open_study(spec, store)
    s = study_status(study)
    assert (s.total, s.done, s.waiting, s.eta_seconds) == (8, 0, 8, None)  # nothing finished: unknown
    running = claim_next(study, spec, store)
    done = claim_next(study, spec, store)
    time.sleep(0.2)
    study.tell(done, 100.0)
    s = study_status(study)
    assert (s.complete, len(s.running), s.waiting) == (1, 1, 6)
    assert s.running[0][0] == running.number
    mean, secs = s.mean_trial_seconds, s.running[0][3]
    assert s.eta_seconds == pytest.approx(6 * mean + max(mean - secs, 0.0))  # 6 waiting + the rest of the running one


def test_worker_for_an_unknown_study_exits_2(tmp_path, storage_url, study_name):
    p = _cli("worker", "--study", study_name, results=tmp_path / "results", storage_url=storage_url)
    assert p.returncode == 2 and f"no study '{study_name}'" in p.stderr, p.stderr


def test_unreachable_or_unsupported_storage_is_a_clear_error(tmp_path, write_spec):
    spec = write_spec({**SPEC, "study": "x"})
    p = _cli("run", str(spec), results=tmp_path / "r", storage_url="postgresql://nobody@127.0.0.1:1/none")
    assert p.returncode == 2 and "cannot open the study storage" in p.stderr and "Traceback" not in p.stderr
    p = _cli("run", str(spec), results=tmp_path / "r", storage_url="mysql://root@127.0.0.1/test")
    assert p.returncode == 2 and "unsupported storage" in p.stderr
    assert not (tmp_path / "r").exists()  # nothing written
    p = _cli("run", str(spec), "--workers", "2", results=tmp_path / "r", storage_url=f"sqlite:///{tmp_path}/s.db")
    assert p.returncode == 2 and "SQLite is unsafe for several writers" in p.stderr
