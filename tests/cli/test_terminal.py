"""The terminal: progress with the time left (one line per worker process on an interactive terminal,
plain lines when piped), `status`'s estimate before any trial completes, `results` exports that
pandas (DuckDB, polars) read back, `--version` and shell completion, and spec values that must be
finite numbers."""

import importlib.metadata
import io
import json
import os
import re
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml
from rich.console import Console
from rich.progress import Progress
from typer.testing import CliRunner

import vaebench
from tests.conftest import REPO, TINY_SPEC
from vaebench.cli.commands import app
from vaebench.cli.progress import RichReporter, RunClock, TimeLeftColumn, WorkerLines
from vaebench.errors import SpecError
from vaebench.results.rows import load_results
from vaebench.spec.sweep_spec import RunConfig, load_spec
from vaebench.sweep.storage import StudyStore
from vaebench.sweep.study import claim_next, open_study, study_status
from vaebench.sweep.worker import _attempt, report_epoch
from vaebench.tracking import TrackedRun

runner = CliRunner()
FAST_EVAL = {"fid_extractor": None, "nll_examples": 50, "nll_k": 10}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>78]")


def cli(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


# --------------------------------------------------------------------------- version, completion


def test_version_and_shell_completion():
    r = cli("--version")
    assert r.exit_code == 0 and r.output.strip() == f"vaebench {vaebench.__version__}"
    assert vaebench.__version__ == importlib.metadata.version("vaebench")
    p = subprocess.run([sys.executable, "-m", "vaebench", "--version"], capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 0 and p.stdout.strip() == f"vaebench {vaebench.__version__}", p.stderr
    help_text = cli("--help").output
    for option in ("--version", "--install-completion", "--show-completion"):
        assert option in help_text, help_text


# --------------------------------------------------------------------------- results exports


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny study (2 cells x 2 seeds) under a results folder."""
    tmp = tmp_path_factory.mktemp("finished")
    path = tmp / "spec.yaml"
    path.write_text(yaml.safe_dump({**TINY_SPEC, "eval": FAST_EVAL}))
    results = tmp / "results"
    r = cli("run", str(path), "-q", "--results", str(results))
    assert r.exit_code == 0, r.output
    return results


def test_results_csv_to_a_file_and_stdout_one_line_per_row_lists_as_json(finished, tmp_path):
    rows = load_results(finished, "tiny").set_index("run_id")
    out = tmp_path / "rows.csv"
    r = cli("results", "--results", str(finished), "--csv", "--out", str(out))
    assert r.exit_code == 0, r.output
    text = out.read_text()
    assert len(text.splitlines()) == 1 + len(rows)  # a header, then one line per row: no embedded newlines
    df = pd.read_csv(out).set_index("run_id")
    assert set(df.index) == set(rows.index)
    for run_id, row in rows.iterrows():
        assert json.loads(df.loc[run_id, "kl_per_dim"]) == pytest.approx(list(row["kl_per_dim"]))
        assert json.loads(df.loc[run_id, "grid_keys"]) == ["objective.beta"]
        history = json.loads(df.loc[run_id, "history"])
        assert [h["test_loss"] for h in history] == pytest.approx([h["test_loss"] for h in row["history"]])
        assert df.loc[run_id, "neg_elbo"] == pytest.approx(row["neg_elbo"], rel=1e-12)
    assert "[" in text and "\n [" not in text and "array(" not in text
    # the same CSV on standard output, and `--format csv` is `--csv`
    assert cli("results", "--results", str(finished), "--csv").output == text
    assert cli("results", "--results", str(finished), "--format", "csv").output == text


def test_results_json_lines_and_parquet_read_back(finished, tmp_path):
    rows = load_results(finished, "tiny").set_index("run_id")
    jsonl, parquet = tmp_path / "rows.jsonl", tmp_path / "rows.parquet"
    assert cli("results", "--results", str(finished), "--format", "json", "--out", str(jsonl)).exit_code == 0
    assert cli("results", "--results", str(finished), "--format", "parquet", "--out", str(parquet)).exit_code == 0
    assert len(jsonl.read_text().splitlines()) == len(rows)
    for df in (pd.read_json(jsonl, lines=True), pd.read_parquet(parquet)):
        df = df.set_index("run_id")
        assert set(df.index) == set(rows.index)
        for run_id, row in rows.iterrows():
            assert df.loc[run_id, "neg_elbo"] == pytest.approx(row["neg_elbo"], rel=1e-12)
            assert list(df.loc[run_id, "kl_per_dim"]) == pytest.approx(list(row["kl_per_dim"]))
            assert [h["epoch"] for h in df.loc[run_id, "history"]] == [1, 2]
    # DuckDB and polars, where installed (not dependencies of vaebench)
    try:
        import duckdb
    except ImportError:
        duckdb = None
    if duckdb is not None:
        for source in (
            f"read_parquet('{parquet}')",
            f"read_json_auto('{jsonl}')",
            f"read_csv_auto('{tmp_path / 'r.csv'}')",
        ):
            if "read_csv" in source:
                cli("results", "--results", str(finished), "--csv", "--out", str(tmp_path / "r.csv"))
            n, mean = duckdb.sql(f"SELECT count(*), avg(neg_elbo) FROM {source}").fetchone()
            assert n == len(rows) and mean == pytest.approx(rows["neg_elbo"].mean())
    try:
        import polars
    except ImportError:
        polars = None
    if polars is not None:
        for df in (polars.read_parquet(parquet), polars.read_ndjson(jsonl)):
            assert df.height == len(rows) and df["neg_elbo"].mean() == pytest.approx(rows["neg_elbo"].mean())


def test_results_export_needs_a_file_for_parquet(finished):
    r = cli("results", "--results", str(finished), "--format", "parquet")
    assert r.exit_code == 2 and "--out FILE" in r.output
    r = cli("results", "--results", str(finished), "--out", "x.csv")
    assert r.exit_code == 2 and "--csv or --format" in r.output


def test_results_table_shows_fid_and_its_extractor_when_the_rows_have_it(finished):
    """The committed beta study's rows have an FID (a vaebench classifier's features): the table shows
    it and names the extractor; the tiny study's rows (fid_extractor null) get no FID column."""
    rows = load_results(REPO / "results", "beta")
    r = cli("results", "--results", str(REPO / "results"), "--study", "beta")
    assert r.exit_code == 0, r.output
    header = next(line for line in r.stdout.splitlines() if "run_id" in line)
    assert header.rstrip(" ┃").endswith("FID")  # the last column
    first = rows.sort_values("run_id").iloc[0]
    line = next(line for line in r.stdout.splitlines() if first["run_id"] in line)
    assert f"{first['fid']:.4g}" in line
    assert f"FID on the features of {first['fid_extractor']}" in r.stdout
    r = cli("results", "--results", str(finished))
    assert r.exit_code == 0 and "run_id" in r.stdout and "FID" not in r.stdout


# --------------------------------------------------------------------------- spec values: finite numbers


@pytest.mark.parametrize(
    "section,field",
    [
        ({"objective": {"beta": float("inf")}}, "field objective.beta"),
        ({"train": {"lr": float("nan")}}, "field train.lr"),
        ({"eval": {"active_threshold": float("-inf")}}, "field eval.active_threshold"),
        ({"schedule": {"name": "linear", "warmup": float("inf")}}, "field schedule.warmup"),
        ({"grid": {"objective.beta": [0.5, float("inf")]}}, "grid key 'objective.beta'"),
        ({"grid": {"variant": [{"name": "a", "objective": {"beta": float("nan")}}]}}, "grid key 'variant'"),
        (
            {"dataset": {"name": "shapes", "test_fraction": float("nan")}},
            "field dataset.test_fraction",
        ),  # a family option
        (
            {
                "grid": {},
                "search": {
                    "sampler": "random",
                    "n_trials": 2,
                    "space": {"objective.beta": {"type": "float", "low": 0.1, "high": float("inf")}},
                },
            },
            "search.space.objective.beta",
        ),
        (
            {
                "grid": {},
                "search": {
                    "sampler": "random",
                    "n_trials": 2,
                    "space": {"train.lr": {"type": "categorical", "choices": [1e-3, float("nan")]}},
                },
            },
            "search.space.train.lr",
        ),
    ],
)
def test_nan_and_infinite_spec_values_are_refused_with_the_field_named(write_spec, section, field):
    path = write_spec({**TINY_SPEC, "seeds": [0], **section})
    assert (".inf" in path.read_text()) or (".nan" in path.read_text())  # as YAML writes them
    with pytest.raises(SpecError) as e:
        load_spec(path)
    assert str(path) in str(e.value) and field in str(e.value) and "finite number" in str(e.value), str(e.value)


def test_a_family_options_model_refuses_nan_and_infinities():
    from pydantic import Field, ValidationError

    from vaebench.options import Options

    class PluginOptions(Options):
        temperature: float = Field(1.0, ge=0.0)

    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValidationError, match="finite number"):
            PluginOptions(temperature=bad)
    assert PluginOptions(temperature=2.0).temperature == 2.0
    with pytest.raises(Exception, match="finite number"):
        RunConfig.model_validate({"objective": {"beta": float("inf")}})


# --------------------------------------------------------------------------- time left


def test_status_estimates_the_time_left_from_epochs_before_any_trial_completes(tmp_path, write_spec):
    spec = load_spec(write_spec({**TINY_SPEC, "train": {"epochs": 4, "batch_size": 128}}))
    results = tmp_path / "results"
    store = StudyStore(None, results, spec.study)
    study = open_study(spec, store)
    trial = claim_next(study, spec, store)
    s = study_status(study)
    assert (s.eta_seconds, s.eta_basis, s.running_epochs) == (None, None, [(0, None)])  # no epoch yet
    time.sleep(0.3)
    report_epoch(trial, {"epoch": 1, "test_loss": 50.0})
    s = study_status(study)
    assert s.running_epochs == [(1, 50.0)] and s.epochs_per_trial == 4 and s.eta_basis == "epochs"
    secs = s.running[0][3]
    assert secs >= 0.3
    per_trial = secs * 4 / 1  # one epoch of four in `secs`
    assert s.projected_trial_seconds == pytest.approx(per_trial)
    assert s.eta_seconds == pytest.approx(3 * per_trial + (per_trial - secs))  # 3 waiting + the rest of this one
    r = cli("status", "--results", str(results), "--study", "tiny")
    assert r.exit_code == 0, r.output
    # the answer goes to standard output (a pipe or `> file` gets it), nothing to standard error
    assert "time left ≈ " in r.stdout and "(from the epochs done so far" in r.stdout and r.stderr == ""
    assert f"trial {trial.number} run " in r.stdout and "epoch 1/4 (test -ELBO 50.00)" in r.stdout
    run = spec.runs()[trial.number]
    assert f"run {run.run_id} (beta={run.labels['objective.beta']:g}, seed {run.seed}) on " in r.stdout
    # trained: the worker's hook records the metric being evaluated on the trial; status shows the phase
    _attempt(study, trial, TrackedRun()).evaluating("likelihood")
    assert study_status(study).running_evaluating == ["likelihood"]
    r = cli("status", "--results", str(results), "--study", "tiny")
    assert "evaluating likelihood" in r.stdout and "epoch 1/4" not in r.stdout, r.stdout
    bad = cli("status", "--results", str(tmp_path / "nothing"))
    assert bad.exit_code != 0 and bad.stdout == "" and "error:" in bad.stderr  # errors stay on standard error
    # once a trial has completed, its mean time is the basis
    study.tell(trial, 100.0)
    assert study_status(study).eta_basis == "trials"


def test_run_clock_and_the_time_left_column(monkeypatch):
    from vaebench.cli import progress

    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    clock = RunClock()
    assert clock.eta(3) is None and clock.eta(0) == 0.0
    clock.trial_start(epochs=10)
    assert clock.eta(3) is None  # no epoch done yet
    now[0] = 5.0
    clock.epoch()  # 5 s per epoch: a 50-s trial, 45 s of it left, then 2 more
    assert clock.eta(3) == pytest.approx(45 + 2 * 50)
    now[0] = 40.0
    clock.trial_end()  # it took 40 s in all
    assert clock.eta(2) == pytest.approx(2 * 40)
    clock.trial_start(epochs=10)
    now[0] = 50.0
    assert clock.eta(2) == pytest.approx((40 - 10) + 40)

    progress_ = Progress(console=Console(file=io.StringIO()))
    task = progress_.add_task("runs", total=4, eta=80.0)
    assert TimeLeftColumn().render(progress_.tasks[task]).plain == "≈ 1 min 20 s left"
    progress_.update(task, eta=None)
    assert TimeLeftColumn().render(progress_.tasks[task]).plain == "time left ?"


def test_the_reporter_of_a_worker_in_this_process_sets_the_time_left():
    progress = Progress(console=Console(file=io.StringIO()))
    reporter = RichReporter(progress, total_runs=3, done=1)
    runs = progress.tasks[reporter.runs]
    assert runs.fields["eta"] is None
    reporter.trial_start(0, "abc", RunConfig.model_validate({"train": {"epochs": 2}}), 1, {"objective.beta": 4.0})
    epochs = progress.tasks[reporter.epochs]
    assert epochs.description == "run abc beta=4, seed 1"  # the cell, not only the run id
    time.sleep(0.05)
    reporter.epoch({"epoch": 1, "test_loss": 10.0})
    eta = progress.tasks[reporter.runs].fields["eta"]
    assert eta is not None and eta > 0  # 2 runs left, projected from one epoch of two
    assert epochs.description == "beta=4, seed 1: epoch 1 test loss 10.00"
    reporter.epoch({"epoch": 2, "test_loss": 9.0})
    reporter.evaluating("fid")
    # not "epoch 2/2, 0 s left": the phase, and no estimate until an evaluation has been timed
    assert epochs.description == "beta=4, seed 1: evaluating fid"
    assert epochs.fields["eta"] is None and progress.tasks[reporter.runs].fields["eta"] is None
    reporter.trial_end({"grid_keys": [], "run_id": "abc", "seed": 1, "status": "pruned", "reason": "r"})
    reporter.trial_start(1, "def", RunConfig.model_validate({"train": {"epochs": 2}}), 0, {"objective.beta": 4.0})
    reporter.evaluating("likelihood")
    # the first trial's whole time (its evaluation included) is the estimate now
    assert progress.tasks[reporter.runs].fields["eta"] == pytest.approx(reporter.clock.trial_seconds[0], abs=0.05)


def test_cell_label_names_the_grid_values_by_their_last_key_part_and_the_seed():
    from vaebench.cli.progress import cell_label

    assert cell_label({"objective.beta": 4.0, "model.latent_dim": 8}, 1) == "beta=4, latent_dim=8, seed 1"
    assert cell_label({"model.dim": 2, "eval.dim": 3}, 0) == "model.dim=2, eval.dim=3, seed 0"  # would read alike
    assert cell_label({}, 2) == "seed 2" and cell_label(None, None) == ""


def test_worker_lines_follow_the_running_trials():
    from vaebench.sweep.study import StudyStatus

    progress = Progress(console=Console(file=io.StringIO()))
    lines = WorkerLines(progress)
    host = __import__("socket").gethostname()
    lines.note("[w2 pid 4242] worker w2 pid 4242 on study tiny")
    status = StudyStatus(
        "tiny",
        "grid",
        4,
        0,
        0,
        0,
        0,
        [(3, "abc", f"{host}:4242:1", 6.0)],
        2,
        None,
        [],
        running_epochs=[(2, 97.5)],
        epochs_per_trial=10,
        running_cells=[({"objective.beta": 4.0}, 1)],
        running_evaluating=[None],
    )
    lines.update(status)
    [task] = progress.tasks
    assert task.description == "  w2: trial 3 run abc beta=4, seed 1: epoch 2/10, test -ELBO 97.50"
    assert (task.completed, task.total, task.fields["eta"]) == (2, 10, pytest.approx(24.0))
    # trained, being evaluated: the phase instead of "epoch 10/10", and no time left before a trial has
    # completed (its evaluation has not been timed); once one has, its whole time counts
    status.running, status.running_epochs, status.running_evaluating = (
        [(3, "abc", f"{host}:4242:1", 30.0)],
        [(10, 90.0)],
        ["fid"],
    )
    lines.update(status)
    assert progress.tasks[0].description == "  w2: trial 3 run abc beta=4, seed 1: evaluating fid"
    assert progress.tasks[0].fields["eta"] is None
    status.mean_trial_seconds = 50.0
    lines.update(status)
    assert progress.tasks[0].fields["eta"] == pytest.approx(20.0)
    status.running, status.running_epochs, status.running_cells, status.running_evaluating = [], [], [], []
    lines.update(status)
    assert not progress.tasks[0].visible  # between trials


# --------------------------------------------------------------------------- several workers: piped and on a terminal


def _sweep_argv(tmp_path, write_spec):
    spec = {
        **TINY_SPEC,
        "model": {"name": "mlp", "hidden_dim": 256, "latent_dim": 8},
        "eval": FAST_EVAL,
        "train": {"epochs": 20, "batch_size": 64},
    }  # ~4 s per run: the workers' trials overlap the polls
    env = {k: v for k, v in os.environ.items() if k != "VAEBENCH_WORKERS"}
    argv = [
        sys.executable,
        "-m",
        "vaebench",
        "run",
        str(write_spec(spec)),
        "--workers",
        "2",
        "--results",
        str(tmp_path / "results"),
    ]
    return argv, env


def test_piped_output_of_several_workers_is_plain_lines(tmp_path, write_spec):
    argv, env = _sweep_argv(tmp_path, write_spec)
    p = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout + p.stderr
    assert "\x1b" not in out and "\r" not in out, repr(out[:2000])  # no colours, no cursor movement
    assert "[w1 pid " in out and "[w2 pid " in out  # the workers' relayed lines
    assert "4/4 done" in out


def test_an_interactive_terminal_shows_each_workers_epochs_and_the_time_left(tmp_path, write_spec):
    import fcntl
    import pty
    import select
    import struct
    import termios

    argv, env = _sweep_argv(tmp_path, write_spec)
    env.update(TERM="xterm-256color", COLUMNS="200", LINES="50")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=tmp_path, close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.time() + 600
    try:
        while time.time() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the terminal's last writer is gone
                    break
                if not data:
                    break
                chunks.append(data)
            elif p.poll() is not None:
                break
    finally:
        os.close(master)
        if p.poll() is None:
            p.kill()
        p.wait(timeout=60)
    assert p.returncode == 0
    screen = ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))
    assert re.search(r"w[12]: trial \d+ run [0-9a-f]{12} beta=[0-9.]+, seed \d: epoch \d+/20", screen), screen[-3000:]
    assert re.search(r"≈ (\d+ min )?\d+ s left", screen), screen[-3000:]  # the time-left column
    assert "4/4 done" in screen


@pytest.mark.parametrize(
    "running, waiting, expected",
    [
        ([(11, "abc", "host:1:1", 60.0)], 0, "1 run still running in other workers"),  # another worker has it
        ([], 1, "`vaebench run` it again to resume"),  # runs left that nobody holds
    ],
)
def test_run_says_whether_the_unfinished_runs_are_in_other_workers_hands(monkeypatch, running, waiting, expected):
    """`vaebench run` whose workers found nothing left to claim while another process (a joined
    `vaebench worker`) still runs the last trial says so, instead of asking for a resume; both exit 1
    (the rows are not all there yet)."""
    from vaebench.sweep import run as sweep
    from vaebench.sweep.study import StudyStatus

    done = 12 - len(running) - waiting
    final = StudyStatus("vq", "grid", 12, done, 0, 0, 0, running, waiting, 150.0, [])
    monkeypatch.setattr(sweep, "run_sweep", lambda *a, **k: (final, True))
    r = CliRunner().invoke(app, ["run", str(TINY_SPEC)])
    assert r.exit_code == 1
    assert "the sweep is not finished" in r.output and expected in r.output
