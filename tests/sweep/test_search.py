"""Samplers, search spaces, pruning and multi-objective studies, run for real on the digits data."""

import random

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from tests.conftest import TINY_SPEC
from vaebench.cli.commands import app
from vaebench.errors import SpecError
from vaebench.reporting.stats import pareto_mask
from vaebench.reporting.tables import pareto_front
from vaebench.results.rows import load_results
from vaebench.spec.sweep_spec import parse_spec
from vaebench.sweep.launch import plan_layout
from vaebench.sweep.storage import StudyStore

runner = CliRunner()
FAST_EVAL = {"fid_extractor": None, "nll_examples": 50, "nll_k": 10}


def vaebench(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


def _study(results, name):
    return optuna.load_study(study_name=name, storage=StudyStore(None, results, name).open())


@pytest.mark.slow  # 8 trials of 6 epochs, a report and a resume per pruner: 1-16 s each (hyperband 13-16 s)
@pytest.mark.parametrize(
    "pruner,min_bad_pruned",
    [
        ({"name": "median", "n_startup_trials": 2, "n_warmup_steps": 1}, 4),
        ({"name": "successive_halving", "reduction_factor": 2}, 4),
        # Hyperband splits trials into brackets; the first trial of a bracket has nobody to lose to
        ({"name": "hyperband", "reduction_factor": 2}, 2),
    ],
)
def test_pruners_stop_a_bad_configuration_early(tmp_path, write_spec, pruner, min_bad_pruned):
    # lr 1e-6 barely moves the loss: after the good runs, its trials must be stopped
    spec = {
        **TINY_SPEC,
        "train": {"epochs": 6, "batch_size": 128},
        "eval": FAST_EVAL,
        "dataset": {"name": "digits", "validation": 300},  # the pruners compare validation losses
        "grid": {"train.lr": [0.003, 1e-6]},
        "seeds": [0, 1, 2, 3],
        "search": {"pruner": pruner},
    }
    results, reports = tmp_path / "results", tmp_path / "reports"
    r = vaebench("run", str(write_spec(spec)), "-q", "--results", str(results))
    assert r.exit_code == 0, r.output
    df = load_results(results, "tiny")
    bad = df[(df["param.train.lr"] == 1e-6) & (df["status"] == "pruned")]
    assert len(bad) >= min_bad_pruned, df[["param.train.lr", "status", "reason"]]
    assert (df[df["status"] == "pruned"]["epochs_completed"] < 6).all()  # stopped early, the epoch recorded
    assert all(f"at epoch {e}" in why for e, why in zip(bad["epochs_completed"], bad["reason"]))
    assert bad["neg_elbo"].isna().all()  # no evaluation of a pruned trial
    assert all(len(h) == e for h, e in zip(bad["history"], bad["epochs_completed"]))
    assert (df["status"] == "ok").sum() >= 1
    # Optuna agrees: PRUNED trials with their last reported epoch
    trials = {t.user_attrs["run_id"]: t for t in _study(results, "tiny").get_trials()}
    for _, row in bad.iterrows():
        t = trials[row["run_id"]]
        assert t.state == TrialState.PRUNED and t.last_step == row["epochs_completed"]
    # reports count finished runs only and list the pruned ones apart
    assert vaebench("report", "--out", str(reports), "--results", str(results)).exit_code == 0
    text = (reports / "tiny.md").read_text()
    assert f"{len(df[df.status == 'pruned'])} pruned (not in the table)" in text and "## Pruned runs" in text
    n_ok_bad = int(((df["param.train.lr"] == 1e-6) & (df["status"] == "ok")).sum())
    table_rows = [line for line in text.splitlines() if line.startswith("| 1e-06 |")]
    assert [row.rsplit("|", 2)[1].strip() for row in table_rows] == ([str(n_ok_bad)] if n_ok_bad else [])
    # a resume does not rerun pruned trials
    assert vaebench("run", str(write_spec(spec)), "-q", "--results", str(results)).exit_code == 0
    assert len(_study(results, "tiny").get_trials()) == 8


def test_multi_objective_grid_stores_and_reports_the_pareto_front(tmp_path, write_spec):
    spec = {
        **TINY_SPEC,
        "train": {"epochs": 3, "batch_size": 128},
        "eval": FAST_EVAL,
        "grid": {"objective.beta": [0.1, 1.0, 8.0]},
        "seeds": [0],
        "search": {"objectives": [{"metric": "recon_mse"}, {"metric": "kl"}]},
    }
    results, reports = tmp_path / "results", tmp_path / "reports"
    assert vaebench("run", str(write_spec(spec)), "-q", "--results", str(results)).exit_code == 0
    study = _study(results, "tiny")
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    df = load_results(results, "tiny")
    for t in study.get_trials():  # each trial holds (recon MSE, KL) of its row
        row = df[df.run_id == t.user_attrs["run_id"]].iloc[0]
        assert t.values == pytest.approx([row["recon_mse"], row["kl"]])
    # our front (from the Parquet rows) is Optuna's best_trials (from the storage)
    front = pareto_front(df)
    assert set(front["run_id"]) == {t.user_attrs["run_id"] for t in study.best_trials}
    assert len(front) >= 2  # beta trades reconstruction against KL: no single winner
    assert vaebench("report", "--out", str(reports), "--results", str(results)).exit_code == 0
    text = (reports / "tiny.md").read_text()
    assert "## Pareto front (recon_mse ↓, kl ↓)" in text
    for run_id in front["run_id"]:
        assert f"`{run_id}`" in text


@pytest.mark.parametrize("sampler", ["random", "tpe", "nsga2"])
def test_sampled_search_runs_its_budget_from_the_space(tmp_path, write_spec, sampler):
    spec = {
        "study": "sampled",
        "dataset": {"name": "digits", "validation": 300},
        "model": {"name": "mlp", "hidden_dim": 32},
        "train": {"epochs": 2, "batch_size": 128},
        "eval": FAST_EVAL,
        "seeds": [3],
        "search": {
            "sampler": sampler,
            "n_trials": 5,
            "seed": 7,
            "space": {
                "objective.beta": {"type": "float", "low": 0.1, "high": 10.0, "log": True},
                "model.latent_dim": {"type": "int", "low": 2, "high": 8},
                "objective.likelihood": {"type": "categorical", "choices": ["bernoulli", "gaussian"]},
            },
            "objectives": [{"metric": "neg_elbo"}] if sampler == "tpe" else [{"metric": "recon_mse"}, {"metric": "kl"}],
        },
    }
    results = tmp_path / "results"
    path = write_spec(spec)
    assert vaebench("run", str(path), "-q", "--results", str(results)).exit_code == 0
    trials = _study(results, "sampled").get_trials()
    assert len(trials) == 5 and all(t.state == TrialState.COMPLETE for t in trials)
    df = load_results(results, "sampled")
    assert len(df) == len(set(df["run_id"])) == 5 and (df["seed"] == 3).all()
    for t in trials:  # each row has the sampled values, inside the declared space
        row = df[df.run_id == t.user_attrs["run_id"]].iloc[0]
        assert 0.1 <= t.params["objective.beta"] <= 10 and row["param.objective.beta"] == t.params["objective.beta"]
        assert row["param.model.latent_dim"] == t.params["model.latent_dim"] in range(2, 9)
        assert row["param.objective.likelihood"] == t.params["objective.likelihood"]
        # the trial was told the targets measured on the validation split, not the row's test columns
        assert row["objective_split"] == "validation" and t.values == pytest.approx(list(row["objective_values"]))
        assert t.values != pytest.approx([row[m] for m in row["objective_metrics"]])
    assert list(df["grid_keys"].iloc[0]) == ["objective.beta", "model.latent_dim", "objective.likelihood"]
    # the budget is spent: a rerun draws nothing new
    r = vaebench("run", str(path), "-q", "--results", str(results))
    assert r.exit_code == 0 and "5 already done" in r.output
    assert len(_study(results, "sampled").get_trials()) == 5


def test_pareto_mask_matches_brute_force():
    rng = random.Random(0)
    for _ in range(50):
        pts = [[rng.randint(0, 4), rng.randint(0, 4)] for _ in range(8)]
        dirs = [rng.choice(["minimize", "maximize"]) for _ in range(2)]
        sign = [1 if d == "minimize" else -1 for d in dirs]
        expected = []
        for i, p in enumerate(pts):
            beaten = any(
                all(s * q[k] <= s * p[k] for k, s in enumerate(sign))
                and any(s * q[k] < s * p[k] for k, s in enumerate(sign))
                for j, q in enumerate(pts)
                if j != i
            )
            expected.append(not beaten)
        assert pareto_mask(pts, dirs) == expected


@pytest.mark.parametrize(
    "search,message",
    [
        ({"sampler": "tpee"}, "unknown sampler 'tpee'. Did you mean 'tpe'?"),
        ({"sampler": "tpe", "n_trials": 3}, "needs a search.space"),
        (
            {"sampler": "tpe", "space": {"objective.beta": {"type": "float", "low": 0.1, "high": 1}}},
            "needs a trial budget",
        ),
        (
            {"space": {"objective.beta": {"type": "float", "low": 0.1, "high": 1}}},
            "sampler 'grid' takes its cells from `grid`",
        ),
        (
            {"sampler": "random", "n_trials": 3, "space": {"objective.betta": {"type": "float", "low": 0, "high": 1}}},
            "objective has no field 'betta'",
        ),
        (
            {"sampler": "random", "n_trials": 3, "space": {"objective.beta": {"type": "float", "low": 2, "high": 1}}},
            "low (2.0) must be <= high (1.0)",
        ),
        (
            {"sampler": "random", "n_trials": 3, "space": {"model.latent_dim": {"type": "int", "low": 0, "high": 4}}},
            "model.latent_dim = 0",
        ),
        (
            {"sampler": "random", "n_trials": 3, "space": {"objective.beta": {"type": "normal", "low": 0, "high": 1}}},
            "search.space.objective.beta",
        ),
        ({"objectives": [{"metric": "recon_ms"}]}, "unknown metric 'recon_ms'. Did you mean 'recon_mse'?"),
        (
            {"objectives": [{"metric": "kl"}, {"metric": "recon_mse"}], "pruner": {"name": "median"}},
            "pruning needs a single objective",
        ),
        (
            {"objectives": [{"metric": "ssim", "direction": "maximize"}], "pruner": {"name": "median"}},
            "must be minimized",
        ),
        ({"pruner": {"name": "median", "reduction_factor": 2}}, "'reduction_factor' is not used by pruner 'median'"),
        ({"pruner": {"name": "hyperbnd"}}, "Did you mean 'hyperband'?"),
    ],
)
def test_bad_search_sections_name_the_field(search, message):
    with pytest.raises(SpecError) as e:
        parse_spec({**TINY_SPEC, "grid": {}, "seeds": [0], "search": search}, "sweeps/x.yaml")
    assert "sweeps/x.yaml" in str(e.value) and message in str(e.value)


def test_a_sampled_search_takes_one_seed_and_no_grid():
    space = {"objective.beta": {"type": "float", "low": 0.1, "high": 1}}
    with pytest.raises(SpecError, match="give one seed"):
        parse_spec(
            {**TINY_SPEC, "grid": {}, "seeds": [0, 1], "search": {"sampler": "tpe", "n_trials": 2, "space": space}}
        )
    with pytest.raises(SpecError, match="remove `grid`"):
        parse_spec({**TINY_SPEC, "seeds": [0], "search": {"sampler": "tpe", "n_trials": 2, "space": space}})


def test_default_search_leaves_fingerprints_unchanged():
    # studies made before `search` existed resume: the default section is not part of the identity
    spec = parse_spec(TINY_SPEC)
    assert "search" not in spec.model_dump(mode="json", exclude_defaults=True)
    same = parse_spec({**TINY_SPEC, "search": {"sampler": "grid", "objectives": [{"metric": "neg_elbo"}]}})
    assert same.fingerprint() == spec.fingerprint()


@pytest.mark.parametrize(
    "workers,threads,pending,device,cores,expected",
    [
        (None, None, 10, "cpu", 2, (2, 1)),  # the measured faster layout on CPU: one 1-thread worker per core
        (None, None, 1, "cpu", 2, (1, 2)),  # one run left: one worker with both cores
        (None, None, 10, "cpu", 8, (8, 1)),
        (None, None, 10, "cuda", 8, (1, 8)),  # a GPU is shared by one worker
        (1, None, 10, "cpu", 2, (1, 2)),
        (3, None, 10, "cpu", 2, (3, 1)),  # more workers than cores: one thread each
        (2, 4, 10, "cpu", 2, (2, 4)),  # explicit settings win
    ],
)
def test_thread_layout(workers, threads, pending, device, cores, expected):
    layout = plan_layout(workers, threads, pending, device, cores)
    assert (layout.workers, layout.threads) == expected
