"""A finished study as optuna-dashboard shows it: its JSON API, served in-process by the dashboard's
own WSGI app on the study's journal file (what `optuna-dashboard results/<study>/journal.log` opens).

optuna-dashboard is the optional extra `dashboard` (`pip install -e ".[dashboard]"`; .ci/run installs
it, so there this test runs).
"""

import io
import json
import wsgiref.util

import pytest
from typer.testing import CliRunner

from tests.conftest import TINY_SPEC
from vaebench.cli.commands import app
from vaebench.results.rows import load_results
from vaebench.sweep.storage import JOURNAL_FILE

optuna_dashboard = pytest.importorskip("optuna_dashboard")

FAST_EVAL = {"fid_extractor": None, "nll_examples": 50, "nll_k": 10}


def _get(wsgi_app, path: str):
    """GET `path` from a WSGI app; (status code, decoded JSON body)."""
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "wsgi.input": io.BytesIO()}
    wsgiref.util.setup_testing_defaults(environ)
    status = []
    body = b"".join(wsgi_app(environ, lambda s, headers, exc_info=None: status.append(s)))
    return int(status[0].split()[0]), json.loads(body)


def _attrs(trial: dict) -> dict:
    return {a["key"]: a["value"] for a in trial["user_attrs"]}


# (objectives, grid values, seeds): different trial counts, because the dashboard caches parameter
# importances per study id and trial count in the process, and every journal file's study has id 0
@pytest.mark.parametrize(
    "objectives,betas,seeds",
    [
        (["neg_elbo"], [0.5, 2.0], [0, 1]),
        (["recon_mse", "kl"], [0.5, 1.0, 2.0], [0]),  # multi-objective: intermediate values all the same
    ],
)
def test_the_dashboard_shows_names_swept_params_metrics_and_curves(tmp_path, write_spec, objectives, betas, seeds):
    spec = {
        **TINY_SPEC,
        "eval": FAST_EVAL,
        "grid": {"objective.beta": betas},
        "seeds": seeds,
        "search": {"objectives": [{"metric": m} for m in objectives]},
    }
    results = tmp_path / "results"
    r = CliRunner().invoke(app, ["run", str(write_spec(spec)), "-q", "--results", str(results)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    rows = load_results(results, "tiny").set_index("run_id")
    journal = results / "tiny" / JOURNAL_FILE

    dashboard = optuna_dashboard.wsgi(str(journal))  # a path: the journal file storage, as its CLI opens it
    code, listing = _get(dashboard, "/api/studies")
    assert code == 200
    [summary] = listing["study_summaries"]
    assert summary["study_name"] == "tiny"
    code, study = _get(dashboard, f"/api/studies/{summary['study_id']}")
    assert code == 200

    # the objectives are named, not "Objective 0"
    assert study["objective_names"] == objectives
    # the params are the swept grid key only: the seed replicates a cell, it is not searched
    assert [p["name"] for p in study["union_search_space"]] == ["objective.beta"]
    assert [p["name"] for p in study["intersection_search_space"]] == ["objective.beta"]
    # beta is a number on a numeric axis spanning the grid (not a categorical of mixed 0.5 and 4)
    for t in study["trials"]:
        dist = t["params"][0]["distribution"]
        assert (dist["type"], dist["low"], dist["high"], dist["log"]) == (
            "FloatDistribution",
            min(betas),
            max(betas),
            False,
        )
    trials = study["trials"]
    assert len(trials) == len(betas) * len(seeds) == len(rows)
    for t in trials:
        assert [p["name"] for p in t["params"]] == ["objective.beta"]
    # two seeds of one cell: two trials with the same params, each its own run
    by_params = {}
    for t in trials:
        by_params.setdefault(t["params"][0]["param_external_value"], set()).add(_attrs(t)["run_id"])
    assert all(len(ids) == len(seeds) for ids in by_params.values()), by_params

    # every scalar metric is its own short, sortable attribute, equal to the row's value
    sortable = {a["key"]: a["sortable"] for a in study["union_user_attrs"]}
    for key in (
        "m.neg_elbo",
        "m.recon_mse",
        "m.kl",
        "m.ssim",
        "m.active_units",
        "m.nll_is",
        "m.train_seconds",
        "m.eval_seconds",
        "m.n_params",
        "m.epochs_completed",
    ):
        assert sortable.get(key) is True, (key, sortable)
    assert "m.fid" not in sortable  # FID off (fid_extractor: null): a null metric has no attribute
    for t in trials:
        attrs = _attrs(t)
        row = rows.loc[attrs["run_id"]]
        for column in ("neg_elbo", "recon_mse", "kl", "ssim", "train_seconds"):
            assert float(attrs[f"m.{column}"]) == pytest.approx(row[column], rel=1e-12), column
        assert int(attrs["m.n_params"]) == row["n_params"]
        assert len(attrs["m.recon_mse"]) < 30
        assert "row" in attrs  # the full row is kept (pull and resume read it)
        # the objective values are the named metrics of the row
        assert [float(v) for v in t["values"]] == pytest.approx([row[m] for m in objectives])
        # the per-epoch test -ELBO is each trial's learning curve (no pruner in this study)
        curve = t["intermediate_values"]
        assert [v["step"] for v in curve] == [h["epoch"] for h in row["history"]] == [1, 2]
        assert [v["value"] for v in curve] == pytest.approx([h["test_loss"] for h in row["history"]])
    assert study["has_intermediate_values"] is True

    # the importance panel ranks the swept parameter only
    code, importances = _get(dashboard, f"/api/studies/{summary['study_id']}/param_importances")
    assert code == 200 and len(importances["param_importances"]) == len(objectives)
    for per_objective in importances["param_importances"]:
        assert [p["name"] for p in per_objective] == ["objective.beta"]
