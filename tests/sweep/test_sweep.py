"""The pipeline end to end through the CLI: spec -> study -> runs -> Parquet -> report, and resume."""

import os
import subprocess
import sys

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState
from scipy import stats
from typer.testing import CliRunner

from tests.conftest import REPO, TINY_SPEC
from vaebench.cli.commands import app
from vaebench.results.rows import load_results, read_row, row_path, write_row
from vaebench.spec.sweep_spec import load_spec
from vaebench.sweep.leases import ATTR_WORKER
from vaebench.sweep.storage import StudyStore
from vaebench.sweep.study import open_study
from vaebench.sweep.trials import encode_run

runner = CliRunner()


def vaebench(*args, results=None):
    argv = [*args] + (["--results", str(results)] if results is not None else [])
    return runner.invoke(app, argv, catch_exceptions=False)


def study_of(results, study):
    return optuna.load_study(study_name=study, storage=StudyStore(None, results, study).open())


def _trials(results, study):
    return study_of(results, study).get_trials()


def test_smoke_sweep_end_to_end(tmp_path):
    results, reports = tmp_path / "results", tmp_path / "reports"
    r = vaebench("run", str(REPO / "sweeps" / "smoke.yaml"), "-q", results=results)
    assert r.exit_code == 0, r.output
    # one call loads every row; one row per run, all finished
    df = pd.read_parquet(results / "smoke" / "runs")
    spec = load_spec(REPO / "sweeps" / "smoke.yaml")
    assert len(df) == len(spec.runs()) == 4
    assert set(df["run_id"]) == {run.run_id for run in spec.runs()}
    assert (df["status"] == "ok").all()
    for col in [
        "param.objective.beta",
        "seed",
        "recon_mse",
        "kl",
        "neg_elbo",
        "ssim",
        "active_units",
        "kl_per_dim",
        "train_seconds",
        "eval_seconds",
        "history",
        "torch_version",
        "device",
        "dataset",
        "dataset_checksum",
        "vaebench_version",
        "n_params",
    ]:
        assert col in df.columns, col
    assert df["dataset"].eq("digits").all() and df["dataset_checksum"].nunique() == 1
    assert all(len(h) == spec.train.epochs for h in df["history"])
    # the KL regularizer does its job: more beta, less KL
    by_beta = df.groupby("param.objective.beta")["kl"].mean()
    assert by_beta[4.0] < by_beta[0.5]
    # the trials are COMPLETE with the run's -ELBO as their value
    trials = _trials(results, "smoke")
    assert sorted(t.state for t in trials) == [TrialState.COMPLETE] * 4
    assert sorted(t.value for t in trials) == pytest.approx(sorted(df["neg_elbo"]))
    assert {(t.params["objective.beta"], t.user_attrs["seed"]) for t in trials} == {(0.5, 0), (0.5, 1), (4, 0), (4, 1)}
    assert all(set(t.params) == {"objective.beta"} for t in trials)  # the seed is not a searched parameter
    assert study_of(results, "smoke").metric_names == ["neg_elbo"]

    r = vaebench("report", "--out", str(reports), results=results)
    assert r.exit_code == 0, r.output
    text = (reports / "smoke.md").read_text()
    assert "# β-VAE trade-offs — study `smoke`" in text
    assert "| β | Recon MSE (per pixel) ↓ | KL (nats) |" in text
    kl = df[df["param.objective.beta"] == 0.5]["kl"]  # mean ± 95% CI half-width (Student t) over seeds
    half = stats.t.ppf(0.975, len(kl) - 1) * kl.std() / len(kl) ** 0.5
    assert "| 0.5 | " in text and f"{kl.mean():.2f} ± {half:.2f}" in text
    assert "## Published versus measured" not in text  # the tutorial's numbers are for MNIST, not digits
    r = vaebench("results", results=results)
    assert r.exit_code == 0 and "smoke" in r.output


def test_resume_adds_no_trials_and_keeps_rows(tmp_path, write_spec):
    results, spec_path = tmp_path / "results", write_spec(TINY_SPEC)
    assert vaebench("run", str(spec_path), "-q", results=results).exit_code == 0
    first = load_results(results, "tiny")
    r = vaebench("run", str(spec_path), "-q", results=results)
    assert r.exit_code == 0 and "4 already done" in r.output
    assert len(_trials(results, "tiny")) == 4
    again = load_results(results, "tiny")
    assert again["created_at"].tolist() == first["created_at"].tolist()  # not re-run


def test_changed_spec_is_refused_unless_renamed(tmp_path, write_spec):
    results = tmp_path / "results"
    assert vaebench("run", str(write_spec(TINY_SPEC)), "-q", results=results).exit_code == 0
    changed = write_spec({**TINY_SPEC, "train": {"epochs": 3, "batch_size": 128}}, "changed.yaml")
    r = vaebench("run", str(changed), "-q", results=results)
    assert r.exit_code == 2
    assert "made from a different spec" in r.output and "train.epochs: 2 -> 3" in r.output
    assert len(_trials(results, "tiny")) == 4
    r = vaebench("run", str(changed), "--study", "tiny-3ep", "-q", results=results)
    assert r.exit_code == 0, r.output
    assert len(load_results(results, "tiny-3ep")) == 4


@pytest.mark.parametrize(
    "spec,expected",
    [
        ({**TINY_SPEC, "objective": {"beta": -1}}, "field objective.beta"),
        ({**TINY_SPEC, "dataset": {"name": "mnist"}}, "MNIST not found"),
        ({**TINY_SPEC, "extra": 1}, "field extra: unknown key"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, write_spec, monkeypatch, spec, expected):
    monkeypatch.setenv("VAEBENCH_DATA_ROOT", str(tmp_path / "no-data"))
    results = tmp_path / "results"
    r = vaebench("run", str(write_spec(spec)), "--no-download", "-q", results=results)
    assert r.exit_code == 2
    assert expected in r.output
    assert not results.exists()


def test_missing_inception_weights_file_exits_2(tmp_path, write_spec):
    r = vaebench(
        "run",
        str(write_spec(TINY_SPEC)),
        "--inception-weights",
        str(tmp_path / "nope.pth"),
        results=tmp_path / "results",
    )
    assert r.exit_code == 2 and "no such file" in r.output
    assert not (tmp_path / "results").exists()


def test_cli_exit_code_in_a_real_process(tmp_path, write_spec):
    bad = write_spec({**TINY_SPEC, "seeds": "zero"})
    p = subprocess.run(
        [sys.executable, "-m", "vaebench", "run", str(bad), "--results", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert p.returncode == 2
    assert "field seeds" in p.stderr and "Traceback" not in p.stderr


def test_diverging_run_is_recorded_and_the_sweep_goes_on(tmp_path, write_spec):
    spec = {**TINY_SPEC, "train": {"epochs": 3, "grad_clip": None}, "grid": {"train.lr": [1e6, 1e-3]}, "seeds": [0]}
    results, reports = tmp_path / "results", tmp_path / "reports"
    r = vaebench("run", str(write_spec(spec)), "-q", results=results)
    assert r.exit_code == 0, r.output
    # one word for the state, from the row to the counts: failed (its training diverged)
    assert "1 complete, 0 pruned, 1 failed (diverged), 0 crashed" in r.output
    assert "2/2 done — 1 complete, 0 pruned, 1 failed (diverged); 0 running, 0 waiting, 0 crashed/stale" in r.output
    df = load_results(results, "tiny").set_index("param.train.lr")
    assert df.loc[1e6, "status"] == "failed" and "non-finite" in df.loc[1e6, "reason"]
    assert pd.isna(df.loc[1e6, "neg_elbo"])
    assert df.loc[1e-3, "status"] == "ok"
    states = {t.params["train.lr"]: t.state for t in _trials(results, "tiny")}
    assert states == {1e6: TrialState.FAIL, 1e-3: TrialState.COMPLETE}
    # a resume does not retry a diverged run: it is a result, not a crash
    vaebench("run", str(write_spec(spec)), "-q", results=results)
    assert len(_trials(results, "tiny")) == 2
    vaebench("report", "--out", str(reports), results=results)
    text = (reports / "tiny.md").read_text()
    assert "## Failed runs" in text and "non-finite" in text


def _dead_worker_token():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    import socket

    return f"{socket.gethostname()}:{p.pid}:1"


def test_a_run_left_running_by_a_dead_worker_is_run_again(tmp_path, write_spec):
    results = tmp_path / "results"
    spec = load_spec(write_spec(TINY_SPEC))
    study = open_study(spec, StudyStore(None, results, spec.study))
    # simulate a worker that claimed the first trial and was killed
    storage = study._storage
    sid = storage.get_study_id_from_name("tiny")
    tid = storage.get_trial_id_from_study_id_trial_number(sid, 0)
    storage.set_trial_state_values(tid, TrialState.RUNNING)
    storage.set_trial_user_attr(tid, ATTR_WORKER, _dead_worker_token())
    r = vaebench("run", str(write_spec(TINY_SPEC)), "-q", results=results)
    assert r.exit_code == 0, r.output
    trials = _trials(results, "tiny")
    assert [t.state for t in trials].count(TrialState.FAIL) == 1  # the stale one
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 4  # every run once
    assert len({t.user_attrs["run_id"] for t in trials if t.state == TrialState.COMPLETE}) == 4
    assert len(load_results(results, "tiny")) == 4


def test_a_row_written_before_a_crash_is_kept_not_retrained(tmp_path, write_spec):
    results = tmp_path / "results"
    path = write_spec(TINY_SPEC)
    assert vaebench("run", str(path), "-q", results=results).exit_code == 0
    spec = load_spec(path)
    run_id = spec.runs()[0].run_id
    row = read_row(results, "tiny", run_id)
    # crash between "row written" and "trial COMPLETE": the trial is RUNNING, its worker dead
    study = optuna.load_study(study_name="tiny", storage=StudyStore(None, results, "tiny").open())
    storage = study._storage
    sid = storage.get_study_id_from_name("tiny")
    study.enqueue_trial(params=dict(spec.runs()[0].labels), user_attrs=encode_run(spec.runs()[0]))
    tid = storage.get_trial_id_from_study_id_trial_number(sid, 4)
    storage.set_trial_state_values(tid, TrialState.RUNNING)
    storage.set_trial_user_attr(tid, ATTR_WORKER, _dead_worker_token())
    os.utime(row_path(results, "tiny", run_id), (0, 0))
    assert vaebench("run", str(path), "-q", results=results).exit_code == 0
    assert read_row(results, "tiny", run_id)["created_at"] == row["created_at"]
    assert os.stat(row_path(results, "tiny", run_id)).st_mtime == 0  # file untouched
    assert len(load_results(results, "tiny")) == 4


def test_rows_are_written_atomically(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    results = tmp_path / "results"

    def boom(table, where, **kw):
        open(where, "wb").write(b"half a parquet file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", boom)
    with pytest.raises(OSError):
        write_row(results, "s", {"run_id": "abc", "study": "s"})
    assert list((results / "s" / "runs").iterdir()) == []  # no partial file, no temp file left
