"""MLflow against real backends: a SQLite tracking URI written by two worker processes at once, and a
real `mlflow server` process (started and stopped by the test). Everything is read back through
`MlflowClient`: the nesting (tag mlflow.parentRunId), params, metric histories with their steps,
tags, artifacts. A retried run continues its MLflow run; a tracker that is down never costs a row."""

import json
import signal

import pytest

mlflow = pytest.importorskip("mlflow")  # CI installs the extra (.ci/run checks the import): never skipped there

from mlflow import MlflowClient  # noqa: E402

from tests.tracking.conftest import rows, vaebench, write_spec  # noqa: E402
from vaebench._version import __version__  # noqa: E402
from vaebench.runtime.stop import KILL_AT_ENV  # noqa: E402
from vaebench.spec.sweep_spec import SweepSpec  # noqa: E402

pytestmark = pytest.mark.slow

HISTORY = ("train_loss", "test_loss", "kl_weight")  # per-epoch fields every epoch record has


def _runs(client: MlflowClient, experiment: str):
    """(the study's parent run, {vaebench run id: MLflow run}) of `experiment`."""
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, [e.name for e in client.search_experiments()]
    found = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in found if r.data.tags.get("vaebench.kind") == "study"]
    children = [r for r in found if r.data.tags.get("vaebench.kind") == "run"]
    assert len(parents) == 1, [r.data.tags for r in parents]
    by_run = {}
    for r in children:
        assert r.data.tags["vaebench.run_id"] not in by_run, "a vaebench run has two MLflow runs"
        by_run[r.data.tags["vaebench.run_id"]] = r
    return parents[0], by_run


def _check_mirrors(client: MlflowClient, spec: SweepSpec, results, experiment=None, artifacts=True):
    """Every row of the study has one MLflow run under the study's parent, holding what the row holds."""
    parent, by_run = _runs(client, experiment or spec.study)
    got = rows(results, spec.study)
    assert sorted(by_run) == sorted(got) == sorted(r.run_id for r in spec.runs())
    assert parent.data.tags["vaebench.study"] == spec.study
    for run in spec.runs():
        row, mirrored = got[run.run_id], by_run[run.run_id]
        tags, params, metrics = mirrored.data.tags, mirrored.data.params, mirrored.data.metrics
        assert row["tracking_error"] is None
        assert tags["mlflow.parentRunId"] == parent.info.run_id  # nested under the study's run
        assert (tags["vaebench.study"], tags["vaebench.cell"], tags["vaebench.seed"]) == (
            spec.study,
            str(run.cell_index),
            str(run.seed),
        )
        assert tags["vaebench.version"] == __version__
        assert tags["vaebench.spec_fingerprint"] == row["spec_fingerprint"] == spec.fingerprint()
        assert tags["vaebench.status"] == "ok" and mirrored.info.status == "FINISHED"
        # params: the resolved config, flattened
        assert params["model.latent_dim"] == "4" and params["model.hidden_dim"] == "32"
        assert params["objective.beta"] == str(run.config.objective.beta)
        assert params["train.epochs"] == "3" and params["dataset.name"] == "digits"
        assert set(params) == set(run.config.flat())
        # per-epoch losses with step = epoch, once each, equal to the row's history
        for key in HISTORY:
            history = client.get_metric_history(mirrored.info.run_id, key)
            assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [
                (e["epoch"], pytest.approx(e[key])) for e in row["history"]
            ]
        # every scalar metric column of the row, at the end
        for column in ("neg_elbo", "recon_mse", "kl", "active_units", "n_params", "train_seconds"):
            assert metrics[column] == pytest.approx(row[column]), column
        if artifacts:
            listed = {a.path for a in client.list_artifacts(mirrored.info.run_id)}
            assert "row.json" in listed and "model" in listed, listed
            weights = {a.path for a in client.list_artifacts(mirrored.info.run_id, "model")}
            assert weights == {f"model/{run.run_id}.pt"}
            path = client.download_artifacts(mirrored.info.run_id, "row.json")
            stored = json.loads(open(path).read())
            assert stored["run_id"] == run.run_id and stored["neg_elbo"] == pytest.approx(row["neg_elbo"])


def test_two_worker_processes_write_one_sqlite_backend_at_once(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec, path = write_spec(tmp_path, "mlf_two", tracking={"mlflow": {"tracking_uri": uri, "experiment": "vae"}})
    p = vaebench("run", path, "--workers", 2, "--threads", 1, "--results", tmp_path / "results", cwd=tmp_path)
    assert p.returncode == 0, p.stdout
    assert "[w1 pid" in p.stdout and "[w2 pid" in p.stdout, p.stdout  # two worker processes ran
    _check_mirrors(MlflowClient(uri), spec, tmp_path / "results", experiment="vae")


def test_a_retried_run_continues_its_mlflow_run_instead_of_making_a_second(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec, path = write_spec(tmp_path, "mlf_retry", grid={}, seeds=[0, 1])
    first = spec.runs()[0].run_id
    args = ("run", path, "--workers", 1, "--threads", 1, "--track", uri, "--results", tmp_path / "results")
    # the first run is trained and mirrored, then the process is killed before its row is written
    p = vaebench(*args, cwd=tmp_path, env={KILL_AT_ENV: "before-row:1"})
    assert p.returncode == -signal.SIGKILL, p.stdout
    client = MlflowClient(uri)
    _, before = _runs(client, spec.study)
    assert list(before) == [first] and before[first].info.status == "RUNNING"
    assert [m.step for m in client.get_metric_history(before[first].info.run_id, "train_loss")] == [1, 2, 3]
    p = vaebench(*args, cwd=tmp_path)  # the stale trial is retried: trained again, same vaebench run
    assert p.returncode == 0, p.stdout
    _check_mirrors(client, spec, tmp_path / "results")  # one MLflow run per vaebench run, every epoch once
    _, after = _runs(client, spec.study)
    assert after[first].info.run_id == before[first].info.run_id
    assert after[first].data.tags["vaebench.resumed"] == "true"
    assert rows(tmp_path / "results", spec.study)[first]["attempts"] == 2


def test_a_real_mlflow_server_then_the_server_down(tmp_path, mlflow_server):
    spec, path = write_spec(tmp_path, "mlf_server", seeds=[0])
    results = tmp_path / "results"
    p = vaebench("run", path, "--track", mlflow_server["uri"], "--results", results, cwd=tmp_path)
    assert p.returncode == 0, p.stdout
    _check_mirrors(MlflowClient(mlflow_server["uri"]), spec, results)

    # the server is gone: the sweep still writes every row, and each row says that tracking failed
    mlflow_server["stop"]()
    down, down_path = write_spec(tmp_path, "mlf_down", seeds=[0])
    p = vaebench(
        "run", down_path, "--track", mlflow_server["uri"], "--results", results, cwd=tmp_path,
        env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"},
    )  # fmt: skip
    assert p.returncode == 0, p.stdout
    got = rows(results, down.study)
    assert sorted(got) == sorted(r.run_id for r in down.runs())
    for row in got.values():
        assert row["status"] == "ok" and row["neg_elbo"] > 0
        assert row["tracking_error"].startswith("mlflow: start: "), row["tracking_error"]
    assert "tracking.mlflow could not start run" in p.stdout
