"""No selection on the test split: searches, pruners and early stopping need dataset.validation (or
the explicit opt-out), the Optuna journal holds validation losses, and every worker of a study uses
the same split."""

import optuna
import pytest
from typer.testing import CliRunner

from tests.conftest import TINY_SPEC
from vaebench.cli.commands import app
from vaebench.errors import StudyError
from vaebench.results.rows import load_results
from vaebench.spec.sweep_spec import parse_spec
from vaebench.sweep.storage import StudyStore
from vaebench.sweep.study import STUDY_VALIDATION, open_study

runner = CliRunner()
FAST_EVAL = {"fid_extractor": None, "nll_examples": 50, "nll_k": 10}
SPACE = {"objective.beta": {"type": "float", "low": 0.5, "high": 2.0}}


def vaebench(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize(
    "change,named",
    [
        ({"search": {"pruner": {"name": "median"}}}, "search.pruner 'median'"),
        (
            {"grid": {}, "seeds": [0], "search": {"sampler": "tpe", "n_trials": 2, "space": SPACE}},
            "search.sampler 'tpe'",
        ),
        ({"train": {"epochs": 5, "early_stopping": {"patience": 2}}}, "train.early_stopping"),
        # early stopping in one variant of the grid is selection too
        (
            {"grid": {"variant": [{"name": "a"}, {"name": "b", "train": {"early_stopping": {"patience": 2}}}]}},
            "train.early_stopping",
        ),
    ],
)
def test_selection_without_a_validation_split_exits_2_and_writes_nothing(tmp_path, write_spec, change, named):
    results = tmp_path / "results"
    path = write_spec({**TINY_SPEC, **change})
    r = vaebench("run", path, "-q", "--results", results)
    assert r.exit_code == 2, r.output
    text = " ".join(r.output.split())
    assert str(path.name) in text and named in text and "would select on the test split: set dataset.validation" in text
    assert not results.exists()
    # the same spec with a split, or with the explicit opt-out, is valid
    parse_spec({**TINY_SPEC, **change, "dataset": {"name": "digits", "validation": 200}})
    parse_spec({**TINY_SPEC, **change, "search": {**change.get("search", {}), "allow_test_selection": True}})


def test_the_validation_split_cannot_vary_within_a_study(write_spec):
    r = vaebench("run", write_spec({**TINY_SPEC, "grid": {"dataset.validation": [100, 200]}}), "-q")
    assert r.exit_code == 2 and "dataset.validation cannot vary within a study" in " ".join(r.output.split())


def test_the_journal_holds_validation_losses_and_every_worker_uses_one_split(tmp_path, write_spec):
    spec = {
        **TINY_SPEC,
        "dataset": {"name": "digits", "validation": 250},
        "train": {"epochs": 3, "batch_size": 128, "early_stopping": {"patience": 5}},
        "eval": FAST_EVAL,
        "search": {"pruner": {"name": "median", "n_startup_trials": 2}},
    }
    results = tmp_path / "results"
    r = vaebench("run", write_spec(spec), "-q", "--workers", 2, "--threads", 1, "--results", results)
    assert r.exit_code == 0, r.output
    df = load_results(results, "tiny")
    assert (
        len(df) == 4
        and (df["status"] == "ok").sum() >= 2
        and set(df["validation_size"]) == {250}
        and df["validation_checksum"].nunique() == 1
    )
    assert set(df["objective_split"]) == {"validation"} and not df["allow_test_selection"].any()
    storage = StudyStore(None, results, "tiny").open()
    study = optuna.load_study(study_name="tiny", storage=storage)
    assert study.user_attrs[STUDY_VALIDATION] == df["validation_checksum"].iloc[0]
    rows = {row.run_id: row for row in df.itertuples()}
    for t in study.get_trials():
        row = rows[t.user_attrs["run_id"]]
        # the intermediate values in the journal are the epochs' validation -ELBO, not the test split's
        assert t.intermediate_values == {h["epoch"]: h["val_loss"] for h in row.history}
        assert all(h["test_loss"] is None for h in row.history)
        if row.status == "ok":  # told the target measured on validation (a pruned trial is told nothing)
            assert t.values == list(row.objective_values) and t.values[0] != row.neg_elbo
    # the split was written by both worker processes' rows: the same indices' checksum, and the same
    # as a fresh load in this process
    from vaebench.data import load_dataset
    from vaebench.spec.sections import DatasetConfig

    assert (
        df["validation_checksum"].iloc[0]
        == load_dataset(DatasetConfig(name="digits", validation=250)).validation_checksum
    )


def test_the_opt_out_selects_on_test_and_says_so_in_the_rows(tmp_path, write_spec):
    spec = {
        **TINY_SPEC,
        "eval": FAST_EVAL,
        "grid": {},
        "seeds": [0],
        "search": {"sampler": "random", "n_trials": 1, "space": SPACE, "allow_test_selection": True},
    }
    results = tmp_path / "results"
    assert vaebench("run", write_spec(spec), "-q", "--results", results).exit_code == 0
    row = load_results(results, "tiny").iloc[0]
    assert row["allow_test_selection"] and row["objective_split"] == "test" and row["validation_size"] == 0
    assert list(row["objective_values"]) == [row["neg_elbo"]]
    assert row["history"][0]["val_loss"] is None and row["history"][0]["test_loss"] > 0


def test_a_resumed_study_refuses_another_validation_split(memory_store):
    spec = parse_spec({**TINY_SPEC, "dataset": {"name": "digits", "validation": 200}})
    store = memory_store("tiny")
    open_study(spec, store, "data1", "split1")
    open_study(spec, store, "data1", "split1")  # the same split: resumes
    with pytest.raises(StudyError, match=r"validation split .*split2.* differs from the validation split .*split1"):
        open_study(spec, store, "data1", "split2")
