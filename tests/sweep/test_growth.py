"""Command-line overrides on a real sweep, studies that grow by seeds and grid values (every finished
run kept, never rerun), the refusal of a changed fixed setting, and `vaebench delete --study` on the
embedded journal and on the real PostgreSQL server. Through the CLI, in this process."""

import json
import uuid

import optuna
import pytest
import yaml
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState
from typer.testing import CliRunner

from tests.conftest import TINY_SPEC
from tests.sweep.test_distributed import pg_url  # noqa: F401 - the fixture
from vaebench.cli.commands import app
from vaebench.results.rows import load_results
from vaebench.spec.sweep_spec import load_spec
from vaebench.sweep.storage import StudyStore
from vaebench.sweep.study import STUDY_FINGERPRINT, STUDY_HISTORY, claim_next, open_study

runner = CliRunner()
# 2 cells x 1 seed, a few seconds per run; FID and a long NLL left out
SPEC = {**TINY_SPEC, "seeds": [0], "eval": {"fid_extractor": None, "nll_examples": 50, "nll_k": 10}}


def vaebench(*args, results, input=None):
    return runner.invoke(app, [*args, "--results", str(results)], catch_exceptions=False, input=input)


def _study(results, name="tiny", url=None):
    return optuna.load_study(study_name=name, storage=StudyStore(url, results, name).open(create=False))


def test_a_finished_study_grows_by_a_seed_and_by_a_grid_value(tmp_path, write_spec):
    results, path = tmp_path / "results", str(write_spec(SPEC))
    r = vaebench("run", path, "--workers", "1", "-q", results=results)
    assert r.exit_code == 0, r.output
    first = load_results(results, "tiny").set_index("run_id")
    assert len(first) == 2 and first["overrides"].map(list).tolist() == [[], []]

    # a seed more: the two finished runs are kept, two new ones run
    r = vaebench("run", path, "seeds=[0,1]", "--workers", "1", "-q", results=results)
    assert r.exit_code == 0, r.output
    assert "study tiny grows from 2 to 4 runs: 2 new run(s) enqueued" in r.output and "2 already done" in r.output
    df = load_results(results, "tiny").set_index("run_id")
    assert len(df) == 4 and sorted(df["seed"]) == [0, 0, 1, 1]
    assert df.loc[first.index, "created_at"].tolist() == first["created_at"].tolist()  # not rerun
    grown = df.drop(first.index)
    assert grown["overrides"].map(list).tolist() == [["seeds=[0,1]"]] * 2
    assert grown["command"].str.contains(r"vaebench run \S+spec.yaml 'seeds=\[0,1\]' --workers 1", regex=True).all()

    # a grid value more (and the same seeds again): 2 more runs, the 4 finished ones kept
    grow = ["seeds=[0,1]", "grid.objective.beta=[0.5,2.0,8.0]"]
    r = vaebench("run", path, *grow, "--workers", "1", "-q", results=results)
    assert r.exit_code == 0, r.output
    assert "grows from 4 to 6 runs" in r.output
    df6 = load_results(results, "tiny").set_index("run_id")
    assert len(df6) == 6 and sorted(df6["param.objective.beta"].unique()) == [0.5, 2.0, 8.0]
    assert df6.loc[df.index, "created_at"].tolist() == df["created_at"].tolist()
    expected = {run.run_id for run in load_spec(path, grow).runs()}
    assert set(df6.index) == expected

    study = _study(results)
    trials = study.get_trials()
    assert len(trials) == 6 and {t.state for t in trials} == {TrialState.COMPLETE}  # one trial per run
    assert sorted(t.params["objective.beta"] for t in trials) == [0.5, 0.5, 2.0, 2.0, 8.0, 8.0]
    # beta on a numeric axis: the first trials' range, widened for the new value, on the same (linear) scale
    assert trials[0].distributions["objective.beta"] == FloatDistribution(0.5, 2.0)
    assert trials[-1].distributions["objective.beta"] == FloatDistribution(0.5, 8.0)
    assert [h["runs"] for h in study.user_attrs[STUDY_HISTORY]] == [2, 4, 6]
    assert json.loads((results / "tiny" / "spec.json").read_text())["grid"]["objective.beta"] == [0.5, 2.0, 8.0]

    # status counts the grown study; the same spec resumes with nothing to do; the report has the new cell
    r = runner.invoke(app, ["status", "--study", "tiny", "--results", str(results)])
    assert r.exit_code == 0 and "6/6 done" in r.output, r.output
    r = vaebench("run", path, *grow, "--workers", "1", "-q", results=results)
    assert r.exit_code == 0 and "6 already done" in r.output and len(_study(results).trials) == 6
    r = runner.invoke(app, ["report", "--format", "md", "--out", str(tmp_path / "rep"), "--results", str(results)])
    assert r.exit_code == 0, r.output
    text = (tmp_path / "rep" / "tiny.md").read_text()
    assert "| 8 | " in text and "'grid.objective.beta=[0.5,2.0,8.0]'" in text  # the cell, the command


def test_a_changed_fixed_setting_is_refused_and_a_new_name_is_a_new_study(tmp_path, write_spec):
    results, path = tmp_path / "results", str(write_spec(SPEC))
    assert vaebench("run", path, "--workers", "0", results=results).exit_code == 0  # the study, no run
    fingerprint = _study(results).user_attrs[STUDY_FINGERPRINT]
    spec_json = (results / "tiny" / "spec.json").read_text()
    for change, said in (
        (["train.epochs=3"], "fixed setting train.epochs: 2 -> 3"),
        (["seeds=[1]"], "seeds: removed [0]"),
        (["model.latent_dim=8", "seeds=[0,1]"], "fixed setting model.latent_dim: 4 -> 8"),
    ):
        r = vaebench("run", path, *change, "--workers", "0", results=results)
        assert r.exit_code == 2, r.output
        assert "was made from a different spec; refusing to mix results" in r.output and said in r.output
        assert "study=NEW" in r.output and "vaebench delete --study tiny" in r.output
    assert _study(results).user_attrs[STUDY_FINGERPRINT] == fingerprint and len(_study(results).trials) == 2
    assert (results / "tiny" / "spec.json").read_text() == spec_json
    r = vaebench("run", path, "train.epochs=3", "study=tiny-3ep", "--workers", "0", results=results)
    assert r.exit_code == 0, r.output
    assert _study(results, "tiny-3ep").user_attrs["overrides"] == ["train.epochs=3", "study=tiny-3ep"]


def test_print_spec_prints_the_resolved_spec_and_writes_nothing(tmp_path, write_spec):
    results, path = tmp_path / "results", write_spec(SPEC)
    r = runner.invoke(app, ["run", str(path), "--print-spec", "train.epochs=3", "study=x", "--results", str(results)])
    assert r.exit_code == 0, r.output
    printed = yaml.safe_load(r.stdout)
    assert printed["study"] == "x" and printed["train"]["epochs"] == 3 and printed["train"]["lr"] == 0.001
    assert (
        load_spec(write_spec(printed, "printed.yaml")).fingerprint()
        == load_spec(path, ["train.epochs=3", "study=x"]).fingerprint()
    )
    assert not results.exists()
    r = runner.invoke(app, ["run", str(path), "--print-spec", "train.epochz=3"])
    assert r.exit_code == 2 and "field train.epochz: unknown key (set on the command line: train.epochz=3)" in r.output


def test_delete_a_journal_study(tmp_path, write_spec):
    results, path = tmp_path / "results", str(write_spec(SPEC))
    assert vaebench("run", path, "--workers", "1", "-q", results=results).exit_code == 0
    assert vaebench("run", path, "study=other", "--workers", "0", results=results).exit_code == 0
    r = vaebench("delete", "--study", "tiny", results=results, input="n\n")
    assert r.exit_code == 1 and "nothing deleted" in r.output and "(2 result row(s)" in r.output
    assert len(load_results(results, "tiny")) == 2
    r = vaebench("delete", "--study", "tiny", results=results, input="y\n")
    assert r.exit_code == 0, r.output
    assert not (results / "tiny").exists() and (results / "other" / "journal.log").is_file()
    r = vaebench("delete", "--study", "tiny", "--yes", results=results)
    assert r.exit_code == 2 and "no study 'tiny'" in r.output and "studies: other" in r.output
    # started over: the same spec makes a new study
    r = vaebench("run", path, "--workers", "0", results=results)
    assert r.exit_code == 0 and "2 runs, 0 done" in r.output, r.output


def test_delete_refuses_a_study_with_a_running_trial(tmp_path, write_spec):
    results = tmp_path / "results"
    spec = load_spec(write_spec(SPEC))
    store = StudyStore(None, results, "tiny")
    study = open_study(spec, store)
    assert claim_next(study, spec, store) is not None  # leased by this (live) process
    r = vaebench("delete", "--study", "tiny", "--yes", results=results)
    assert r.exit_code == 2 and "1 running trial(s)" in r.output and "nothing deleted" in r.output
    assert (results / "tiny" / "journal.log").is_file()


def test_delete_a_postgresql_study(tmp_path, write_spec, pg_url):  # noqa: F811
    results, name = tmp_path / "results", f"t-{uuid.uuid4().hex[:10]}"
    path = str(write_spec(SPEC))
    try:
        r = vaebench("run", path, f"study={name}", "--workers", "0", "--storage", pg_url, results=results)
        assert r.exit_code == 0, r.output
        assert name in optuna.get_all_study_names(storage=pg_url)
        r = vaebench("delete", "--study", name, "--storage", pg_url, "--yes", results=results)
        assert r.exit_code == 0, r.output
        assert name not in optuna.get_all_study_names(storage=pg_url) and not (results / name).exists()
        r = vaebench("delete", "--study", name, "--storage", pg_url, "--yes", results=results)
        assert r.exit_code == 2 and f"no study {name!r}" in r.output
    finally:
        if name in optuna.get_all_study_names(storage=pg_url):
            optuna.delete_study(study_name=name, storage=pg_url)


def test_the_python_api_and_train_take_overrides(tmp_path, write_spec):
    import vaebench

    results = tmp_path / "results"
    status = vaebench.run(SPEC, workers=0, results=results, overrides={"train.epochs": 3, "study": "api"})
    assert status.total == 2 and status.study == "api"
    study = _study(results, "api")
    assert study.user_attrs["overrides"] == ["train.epochs=3", "study=api"]
    assert study.user_attrs["spec"]["train"]["epochs"] == 3
    with pytest.raises(vaebench.errors.SpecError, match=r"train.epochz: unknown key \(set on the command line"):
        vaebench.run(SPEC, workers=0, results=results, overrides=["train.epochz=3"])
    # vaebench train: the run of the overridden spec, its row recording the overrides
    path = write_spec(SPEC)
    r = runner.invoke(
        app, ["train", str(path), "train.epochs=1", "--cell", "1", "--seed", "0", "--results", str(results)]
    )
    assert r.exit_code == 0, r.output
    run = load_spec(path, ["train.epochs=1"]).runs()[1]
    row = load_results(results, "tiny").set_index("run_id").loc[run.run_id]
    assert list(row["overrides"]) == ["train.epochs=1"] and row["epochs_completed"] == 1
    assert "vaebench train" in row["command"] and "train.epochs=1 --cell 1 --seed 0" in row["command"]


def test_a_study_made_with_categorical_grid_params_resumes_and_grows(tmp_path, write_spec):
    """Studies made before grid keys were numeric record beta as a categorical: its trials keep it
    (Optuna refuses another kind for the name), and a value the choices lack is left out of the params."""
    from optuna.distributions import CategoricalDistribution

    results, path = tmp_path / "results", str(write_spec(SPEC))
    spec, store = load_spec(path), StudyStore(None, results, "tiny")
    study = open_study(spec, store)
    trial = claim_next(study, spec, store)
    trial.suggest_categorical("objective.beta", [0.5, 2.0])  # as vaebench did before
    study.tell(trial, state=TrialState.FAIL)  # crashed: its run is enqueued again
    r = vaebench("run", path, "--workers", "1", "-q", results=results)
    assert r.exit_code == 0, r.output
    r = vaebench("run", path, "grid.objective.beta=[0.5,2.0,8.0]", "--workers", "1", "-q", results=results)
    assert r.exit_code == 0, r.output
    assert len(load_results(results, "tiny")) == 3
    done = [t for t in _study(results).trials if t.state == TrialState.COMPLETE]
    assert len(done) == 3
    old = CategoricalDistribution([0.5, 2.0])
    assert sorted(t.params.get("objective.beta", -1) for t in done) == [-1, 0.5, 2.0]  # 8.0: no param
    assert all(t.distributions["objective.beta"] == old for t in done if t.params)
    assert [t.user_attrs["labels"]["objective.beta"] for t in done if not t.params] == [8.0]
