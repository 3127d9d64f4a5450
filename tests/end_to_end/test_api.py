"""The public Python API: what `import vaebench` offers, run -> load_results -> load_model ->
evaluate reproducing a row exactly, a model trained in the user's own loop scored and joined to a
study's report, and `python -m vaebench`."""

import importlib
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import vaebench
from tests.conftest import REPO
from vaebench.errors import StudyError

SPEC = {
    "study": "api",
    "dataset": {"name": "digits"},
    "model": {"name": "mlp", "hidden_dim": 32, "latent_dim": 4},
    "train": {"epochs": 2, "batch_size": 128},
    "eval": {"nll_k": 8, "nll_examples": 100, "fid_samples": 200},
    "grid": {
        "variant": [{"name": "small", "model": {"hidden_dim": 32}}, {"name": "wide", "model": {"hidden_dim": 64}}]
    },
    "seeds": [0],
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    results = tmp_path_factory.mktemp("api") / "results"
    status = vaebench.run(SPEC, workers=1, results=results)
    return results, status


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _same(a, b) -> bool:
    if _missing(a) or _missing(b):  # a null column: None from evaluate, NaN once in a DataFrame
        return _missing(a) and _missing(b)
    if isinstance(a, (list, np.ndarray)) or isinstance(b, (list, np.ndarray)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(list(a), list(b)))
    return a == b


def test_run_returns_the_status_and_load_results_the_rows(finished):
    results, status = finished
    assert status.total == status.done == status.complete == 2
    df = vaebench.load_results("api", results=results)
    assert len(df) == 2 and set(df["variant"]) == {"small", "wide"} and (df["status"] == "ok").all()
    assert df["neg_elbo"].between(5, 200).all()  # nats per example on 8x8 digits


def test_load_model_then_evaluate_reproduces_the_stored_row_exactly(finished):
    results, _ = finished
    df = vaebench.load_results("api", results=results)
    row = df[df["variant"] == "wide"].iloc[0]
    model, config = vaebench.load_model(row["run_id"], results=results)
    assert config.model.hidden_dim == 64 and not model.training
    # at the row's thread count: floating-point sums (FID's statistics) depend on it
    out = vaebench.evaluate(model, config=config, seed=int(row["seed"]), threads=int(row["torch_threads"]))
    compared = [k for k in out if not k.startswith("eval_seconds")]
    assert {"neg_elbo", "kl", "recon_mse", "ssim", "fid", "nll_is", "active_units"} <= set(compared)
    different = {
        k: (out[k], row[k])
        for k in compared
        if not _same(out[k], row[k] if not isinstance(row[k], np.ndarray) else row[k].tolist())
    }
    assert different == {}
    # another seed draws other samples: the stochastic metrics move, so the equality above is not vacuous
    other = vaebench.evaluate(model, config=config, seed=int(row["seed"]) + 1, threads=int(row["torch_threads"]))
    assert other["neg_elbo"] != out["neg_elbo"] and other["recon_mse"] == out["recon_mse"]


def test_a_model_trained_in_your_own_loop_is_scored_and_joins_the_report(finished, tmp_path):
    from vaebench.data import load_dataset
    from vaebench.models.mlp import MLPVAE
    from vaebench.objectives.bounds import elbo_terms
    from vaebench.objectives.likelihoods import Bernoulli

    results, _ = finished
    data = load_dataset(vaebench.parse_spec(SPEC).dataset)
    torch.manual_seed(0)
    model = MLPVAE(data.shape, 4, 48, 1, Bernoulli())
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):  # the user's own loop
        t = elbo_terms(model, model.likelihood, data.x_train[:256])
        loss = (t.recon + t.kl.sum(1)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = vaebench.evaluate(model.eval(), {"name": "digits"}, metrics=["elbo", "recon_mse", "latent"])
    assert set(out) >= {"neg_elbo", "recon_mse", "active_units"} and 5 < out["neg_elbo"] < 200
    assert "fid" not in out  # only the metrics asked for
    run_id = vaebench.add_result("api", out, "my loop", results=results, model=model, note="60 Adam steps, own loop")
    assert run_id.startswith("ext-")
    df = vaebench.load_results("api", results=results)
    assert len(df) == 3 and df.set_index("run_id").loc[run_id, "n_params"] == sum(p.numel() for p in model.parameters())
    importlib.import_module("vaebench.reporting.figures")  # importing the report package leaves the API function
    assert callable(vaebench.report) and vaebench.report.__module__ == "vaebench.api"

    [path] = [
        p for p in vaebench.report("api", results=results, out=tmp_path / "reports", format="md") if p.suffix == ".md"
    ]
    text = path.read_text()
    assert "my loop (external)" in text and "60 Adam steps, own loop" in text
    assert "2 finished run(s)" in text  # the sweep's own runs; the outside row is listed apart
    with pytest.raises(StudyError, match="not named variants"):
        vaebench.run({**SPEC, "study": "beta_api", "grid": {"objective.beta": [1.0]}}, workers=1, results=results)
        vaebench.add_result("beta_api", out, "x", results=results)


def test_import_vaebench_is_cheap_and_exports_the_api():
    code = (
        "import sys, vaebench; assert 'torch' not in sys.modules, 'torch imported';"
        "names = {'load_spec', 'run', 'load_results', 'load_model', 'evaluate', 'report', 'add_result',"
        " 'MODELS', 'DATASETS', 'METRICS', 'Options', 'ModelFamily', 'DatasetSource', 'VAE'};"
        "missing = names - set(dir(vaebench)); assert not missing, missing;"
        "assert callable(vaebench.evaluate) and 'mlp' in vaebench.MODELS; print('ok')"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr


def test_python_dash_m_vaebench_is_the_command(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "vaebench", "run", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ},
    )
    assert p.returncode == 2 and "missing.yaml: cannot read sweep spec" in p.stderr
    p = subprocess.run([sys.executable, "-m", "vaebench", "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "report" in p.stdout


def test_a_family_registered_in_a_notebook_runs_in_process_and_is_refused_for_worker_processes(tmp_path):
    from vaebench.models import MODELS, ModelFamily
    from vaebench.models.mlp import MLPVAE

    def build(cfg, data_shape, likelihood, num_classes):
        return MLPVAE(data_shape, cfg.latent_dim, 16, 1, likelihood)

    build.__module__ = "__main__"  # as defined in a notebook cell
    MODELS.register("notebook_vae", ModelFamily(build))
    try:
        spec = {
            **SPEC,
            "study": "nb",
            "model": {"name": "notebook_vae", "latent_dim": 2},
            "grid": {},
            "eval": {"fid_extractor": None, "nll_k": 2, "nll_examples": 10},
            "train": {"epochs": 1},
        }
        with pytest.raises(StudyError, match="registered in __main__ .* worker processes cannot import it"):
            vaebench.run(spec, workers=2, results=tmp_path / "results")
        assert not (tmp_path / "results").exists()
        status = vaebench.run(spec, results=tmp_path / "results")  # the default layout: one in-process worker
        assert status.complete == 1
    finally:
        MODELS.unregister("notebook_vae")


def test_an_added_result_has_every_column_of_an_executed_run(finished, tmp_path):
    import shutil

    from vaebench.api import row_config
    from vaebench.results.rows import read_row, runs_dir

    results, _ = finished
    shutil.copytree(runs_dir(results, "api"), runs_dir(tmp_path, "api"))  # this test's own copy of the study
    executed = read_row(tmp_path, "api", sorted(p.stem for p in runs_dir(tmp_path, "api").glob("*.parquet"))[0])
    out = {"neg_elbo": 90.0, "recon_mse": 0.05}
    run_id = vaebench.add_result("api", out, "x", results=tmp_path, config=row_config(executed))
    added = read_row(tmp_path, "api", run_id)
    assert set(executed) - set(added) == set()
    assert set(added) - set(executed) == {"provenance_note"}
    assert list(added)[: len(executed)] == list(executed)  # the same columns in the same order
    assert added["machine"] == executed["machine"] and added["machine"]  # this machine
    assert added["precision"] is None and added["tf32"] is None  # trained elsewhere: unknown
    assert (added["neg_elbo"], added["recon_mse"], added["fid"]) == (90.0, 0.05, None)
    assert (
        added["config"] == executed["config"] and added["param.model.hidden_dim"] == executed["param.model.hidden_dim"]
    )
