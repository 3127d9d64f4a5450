"""`vaebench train SPEC --cell I --seed S`: one run of a spec's grid cell in this process, no study:
it prints the run id and metrics, writes nothing without --results, and with it the same row (and
files) a sweep's worker writes for that run; bad input exits 2 naming the option."""

import math
import os

import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import REPO
from vaebench.cli.commands import app
from vaebench.results.rows import read_row
from vaebench.spec.sweep_spec import load_spec

SMOKE = REPO / "sweeps" / "smoke.yaml"  # 2 cells (objective.beta 0.5, 4) x seeds 0, 1
runner = CliRunner()
# what differs between two executions of one run: when and how it was made
PROVENANCE = {"trial_number", "train_seconds", "eval_seconds", "command", "created_at"}


def vaebench(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_one_run_writes_nothing_without_results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VAEBENCH_RESULTS", raising=False)
    r = vaebench("train", SMOKE, "--cell", 1, "--seed", 0)
    assert r.exit_code == 0, r.output
    run_id = load_spec(SMOKE).runs()[2].run_id  # cell 1, seed 0: the third run of the grid
    assert f"run {run_id}: study smoke, cell 1 of 2 (objective.beta=4), seed 0" in r.output
    assert f"run {run_id} ok: -ELBO " in r.output and " nats, KL " in r.output
    assert os.listdir(tmp_path) == []


def test_with_results_it_writes_the_row_a_sweeps_worker_writes(tmp_path):
    sweep, alone = tmp_path / "sweep", tmp_path / "alone"
    assert vaebench("run", SMOKE, "-q", "--results", sweep).exit_code == 0
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a caller's own thread count is not the run's: both take a one-worker layout
    try:
        r = vaebench("train", SMOKE, "--cell", 0, "--seed", 1, "--results", alone)
        assert torch.get_num_threads() == 1  # and the caller gets its own back
    finally:
        torch.set_num_threads(before)
    assert r.exit_code == 0, r.output
    run = load_spec(SMOKE).runs()[1]  # cell 0, seed 1
    assert f"wrote {alone / 'smoke' / 'runs' / (run.run_id + '.parquet')}" in r.output
    ours, theirs = read_row(alone, "smoke", run.run_id), read_row(sweep, "smoke", run.run_id)
    assert list(ours) == list(theirs)  # the same columns, in the same order
    assert ours["command"] == f"vaebench train {SMOKE} --cell 0 --seed 1" and ours["trial_number"] == -1
    for key in set(ours) - PROVENANCE - {"history"}:
        a, b = ours[key], theirs[key]
        if key.startswith("eval_seconds_"):
            continue
        if isinstance(a, float) and isinstance(b, float):
            assert a == pytest.approx(b, rel=1e-6, nan_ok=True), key
        else:
            assert a == b, key
    strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]  # noqa: E731
    assert strip(ours["history"]) == strip(theirs["history"]) and math.isfinite(ours["neg_elbo"])
    for column in ("model_path", "artifacts_path"):
        assert (alone / "smoke" / ours[column]).is_file()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--cell", 2, "--seed", 0], "--cell 2: "),
        (["--cell", -1, "--seed", 0], "--cell -1: "),
    ],
)
def test_a_cell_out_of_range_exits_2_naming_the_option(tmp_path, monkeypatch, args, expected):
    monkeypatch.chdir(tmp_path)
    r = vaebench("train", SMOKE, *args, "--results", tmp_path / "results")
    assert r.exit_code == 2 and expected in r.output and "--cell 0 to 1" in r.output, r.output
    assert os.listdir(tmp_path) == []


def test_a_bad_spec_or_a_sampled_search_exits_2(tmp_path, write_spec):
    r = vaebench("train", tmp_path / "missing.yaml", "--cell", 0, "--seed", 0)
    assert r.exit_code == 2 and "missing.yaml: cannot read sweep spec" in r.output
    sampled = write_spec(
        {
            "study": "s",
            "dataset": {"name": "digits", "validation": 200},
            "seeds": [0],
            "search": {
                "sampler": "random",
                "n_trials": 2,
                "space": {"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2}},
            },
        }
    )
    r = vaebench("train", sampled, "--cell", 0, "--seed", 0)
    assert r.exit_code == 2 and "--cell: " in r.output and "sampled search" in r.output, r.output


def test_with_results_it_resumes_the_runs_checkpoint_there_and_removes_it(tmp_path, write_spec):
    import torch

    from vaebench.data import load_dataset
    from vaebench.engine.checkpoint import checkpoint_path
    from vaebench.engine.execute import Reporter, Setting, execute_run

    spec_path = write_spec(
        {
            "study": "resume",
            "dataset": {"name": "digits"},
            "model": {"name": "mlp", "hidden_dim": 32, "latent_dim": 4},
            "train": {"epochs": 4, "batch_size": 128, "checkpoint_every": 1},
            "eval": {"fid_extractor": None, "nll_examples": 50, "nll_k": 10},
        }
    )
    spec, results = load_spec(spec_path), tmp_path / "results"
    run = spec.runs()[0]

    def killed_in_epoch_3(record):  # a sweep's worker dies in epoch 3: epoch 2's checkpoint is left
        if record["epoch"] == 3:
            raise KeyboardInterrupt

    setting = Setting(spec, load_dataset(spec.dataset, None), torch.device("cpu"), results)
    with pytest.raises(KeyboardInterrupt):
        execute_run(run, setting, Reporter(), stop_check=killed_in_epoch_3)
    assert checkpoint_path(results, "resume", run.run_id).is_file()
    r = vaebench("train", spec_path, "--cell", 0, "--seed", 0, "--results", results)
    assert r.exit_code == 0, r.output
    assert f"run {run.run_id}: resumed from its checkpoint at epoch 3" in r.output
    row = read_row(results, "resume", run.run_id)
    assert (row["resumed_from_epoch"], row["attempts"], row["epochs_completed"]) == (3, 1, 4)
    assert not checkpoint_path(results, "resume", run.run_id).exists()  # the row is written: removed
