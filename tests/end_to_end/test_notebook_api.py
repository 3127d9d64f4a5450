"""The Python API as a notebook user meets it: errors that say what to do, keywords checked against
the public function, the report's format words, progress in a notebook, `sample_grid`,
`load_history`, `evaluate` under a row's thread count, and a docstring for every exported function."""

import builtins
import importlib.util
import inspect
import io
import math
import pydoc
import re

import numpy as np
import pytest
import torch
from rich.console import Console

import vaebench
from tests.conftest import TINY_SPEC
from vaebench.cli.display import RunDisplay
from vaebench.errors import StudyError, VaebenchError
from vaebench.metrics import Column, register_metric, unregister_metric
from vaebench.reporting.formats import REPORT_FORMATS

FAST = {"fid_extractor": None, "nll_k": 4, "nll_examples": 50}
SPEC = {**TINY_SPEC, "study": "nb_api", "eval": FAST}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    results = tmp_path_factory.mktemp("nb_api") / "results"
    status = vaebench.run(SPEC, workers=1, results=results)
    assert status.done == status.total == 4
    return results


# --- errors that say what to do ---------------------------------------------------------------------


def test_load_results_of_a_missing_study_names_the_studies_that_exist(finished, tmp_path):
    with pytest.raises(StudyError, match=r"no study 'nb_apii' under .*Did you mean 'nb_api'\? Studies there: nb_api"):
        vaebench.load_results("nb_apii", results=finished)
    with pytest.raises(VaebenchError, match=r"no results rows under .*Pass results= the folder"):
        vaebench.load_results(results=tmp_path / "empty")
    with pytest.raises(StudyError, match="holds no results rows"):
        vaebench.load_results("nb_api", results=tmp_path / "empty")
    with pytest.raises(StudyError, match="Studies there: nb_api"):
        vaebench.report("nb_apii", results=finished, out=tmp_path / "reports")
    with pytest.raises(StudyError, match="Studies there: nb_api"):
        vaebench.load_history("nb_apii", results=finished)
    assert not (tmp_path / "reports").exists()


def test_load_model_without_its_weights_says_why_and_how_to_get_them(finished, tmp_path):
    import shutil

    shutil.copytree(finished, tmp_path / "results")
    df = vaebench.load_results("nb_api", results=tmp_path / "results")
    row = df.iloc[0]
    (tmp_path / "results" / "nb_api" / row["model_path"]).unlink()  # as `vaebench pull` leaves a row: no weights
    with pytest.raises(StudyError) as e:
        vaebench.load_model(row["run_id"], results=tmp_path / "results")
    msg = str(e.value)
    assert f"weights file {tmp_path / 'results' / 'nb_api' / row['model_path']} is missing" in msg
    assert f"vaebench train SPEC.yaml --cell {row['cell_index']} --seed {row['seed']} --results DIR" in msg
    with pytest.raises(StudyError, match=r"no run 'nope' under .* in the studies there \(nb_api\)"):
        vaebench.load_model("nope", results=tmp_path / "results")


# --- keywords and words -------------------------------------------------------------------------------


def test_a_misspelled_keyword_is_reported_against_vaebench_run_with_its_keywords(tmp_path):
    with pytest.raises(TypeError) as e:
        vaebench.run(sepc=SPEC, results=tmp_path)
    msg = str(e.value)
    assert msg.startswith("vaebench.run() got an unexpected keyword argument 'sepc'. Did you mean 'spec'?")
    assert "run_sweep" not in msg and "Its keywords: spec, workers, results, storage, study, threads" in msg
    with pytest.raises(TypeError, match=r"'wokers'. Did you mean 'workers'\?"):
        vaebench.run(SPEC, wokers=1, results=tmp_path)
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_report_takes_the_commands_format_words(finished, tmp_path):
    assert REPORT_FORMATS == ("md", "html", "both")  # `vaebench report --format`'s choices
    suffixes = {
        fmt: {p.suffix for p in vaebench.report("nb_api", results=finished, out=tmp_path / fmt, format=fmt)}
        for fmt in REPORT_FORMATS
    }
    assert suffixes == {"md": {".md"}, "html": {".html"}, "both": {".md", ".html"}}
    with pytest.raises(ValueError, match="format must be one of md, html, both, got 'markdown'"):
        vaebench.report("nb_api", results=finished, out=tmp_path / "x", format="markdown")
    assert not (tmp_path / "x").exists()


# --- progress in a notebook ---------------------------------------------------------------------------


class ZMQInteractiveShell:  # the class name rich (and IPython's users) detect a Jupyter kernel by
    pass


def test_vaebench_run_shows_its_progress_by_default_in_a_notebook_only(monkeypatch):
    assert not vaebench.api.in_notebook()
    assert vaebench.api._run_display(None, None).quiet  # a script: nothing by default
    monkeypatch.setattr(builtins, "get_ipython", lambda: ZMQInteractiveShell(), raising=False)
    assert vaebench.api.in_notebook()
    display = vaebench.api._run_display(None, None)
    assert not display.quiet and display.console.is_jupyter  # on the notebook's output
    assert vaebench.api._run_display(True, None).quiet


def test_what_vaebench_run_shows_in_a_notebook(tmp_path, monkeypatch):
    spec = {**SPEC, "study": "nb_progress", "seeds": [0], "grid": {}, "train": {"epochs": 1}}
    monkeypatch.setattr(builtins, "get_ipython", lambda: ZMQInteractiveShell(), raising=False)
    shown = io.StringIO()
    vaebench.run(spec, results=tmp_path / "quiet", quiet=True, console=Console(file=shown, force_jupyter=False))
    assert shown.getvalue() == ""
    vaebench.run(spec, results=tmp_path / "shown", console=Console(file=shown, force_jupyter=False, width=200))
    text = shown.getvalue()
    assert "study nb_progress: 1 runs" in text and re.search(r"\[1/1\] trial 0 run \w+ .*-ELBO", text)
    assert "1/1 done" in text and "\x1b" not in text  # plain lines: not a terminal, no ipywidgets here


def test_the_display_draws_live_bars_where_they_can_be_live():
    has_widgets = importlib.util.find_spec("ipywidgets") is not None
    assert RunDisplay(Console(file=io.StringIO(), force_terminal=True)).live
    assert not RunDisplay(Console(file=io.StringIO(), force_terminal=True), quiet=True).live
    assert not RunDisplay(Console(file=io.StringIO(), force_terminal=False, force_jupyter=False)).live  # piped
    # a notebook: bars in an ipywidgets widget; without ipywidgets rich could only warn, so plain lines
    assert RunDisplay(Console(file=io.StringIO(), force_jupyter=True)).live == has_widgets


# --- sample_grid and load_history ----------------------------------------------------------------------


def test_sample_grid_is_an_imshow_image_of_n_prior_samples(finished):
    df = vaebench.load_results("nb_api", results=finished)
    model, _ = vaebench.load_model(df.run_id[0], results=finished)
    model.train()
    grid = vaebench.sample_grid(model, 10, seed=3)
    assert model.training  # its mode is given back
    assert grid.dtype == np.float32 and grid.shape == (3 * 9 - 1, 4 * 9 - 1)  # 8x8 digits, 4 per row, 1-px gaps
    assert grid.min() >= 0 and grid.max() <= 1
    np.testing.assert_array_equal(grid, vaebench.sample_grid(model, 10, seed=3))
    assert not np.array_equal(grid, vaebench.sample_grid(model, 10, seed=4))
    with torch.no_grad():  # the prior's draws under the seed, decoded: tile k is draw k
        z = torch.randn(10, model.latent_dim, generator=torch.Generator().manual_seed(3))
        first = model.likelihood.mean(model.decode(z))
    np.testing.assert_allclose(grid[:8, :8], first[0, 0].numpy(), atol=1e-6)  # the first tile: the first draw
    assert vaebench.sample_grid(model, 6, cols=6).shape == (8, 6 * 9 - 1)
    with pytest.raises(ValueError, match="n must be at least 1"):
        vaebench.sample_grid(model, 0)


def test_load_history_is_one_row_per_run_and_epoch_with_the_runs_grid_values(finished):
    df = vaebench.load_results("nb_api", results=finished).set_index("run_id")
    h = vaebench.load_history("nb_api", results=finished)
    assert len(h) == 4 * 2 and list(h.columns[:6]) == [
        "study",
        "run_id",
        "seed",
        "status",
        "cell_index",
        "param.objective.beta",
    ]
    assert {"epoch", "train_loss", "test_loss", "kl_weight", "seconds"} <= set(h.columns)
    for (run_id, epoch), r in h.set_index(["run_id", "epoch"]).iterrows():
        stored = [e for e in df.loc[run_id, "history"] if e["epoch"] == epoch]
        assert len(stored) == 1 and r["test_loss"] == stored[0]["test_loss"]
        assert (
            r["param.objective.beta"] == df.loc[run_id, "param.objective.beta"] and r["seed"] == df.loc[run_id, "seed"]
        )
    curves = h.groupby(["param.objective.beta", "epoch"])["test_loss"].mean().unstack(0)
    assert list(curves.columns) == [0.5, 2.0] and list(curves.index) == [1, 2]


# --- evaluate under a row's thread count -----------------------------------------------------------------


@pytest.fixture
def thread_probe():
    """A metric that records the torch threads it ran on (registered for the test, then removed)."""
    seen = []

    def probe(ctx):
        seen.append(torch.get_num_threads())
        return {"probe_threads": torch.get_num_threads()}

    register_metric("probe_threads", columns=[Column("probe_threads", "int", doc="torch threads")])(probe)
    try:
        yield seen
    finally:
        unregister_metric("probe_threads")


def test_evaluate_runs_under_the_given_threads_and_gives_the_callers_back(finished, thread_probe):
    df = vaebench.load_results("nb_api", results=finished)
    row = df.iloc[0]
    model, config = vaebench.load_model(row["run_id"], results=finished)
    before = torch.get_num_threads()
    out = vaebench.evaluate(model, config=config, metrics=["probe_threads"], threads=3)
    assert thread_probe == [3] and out["probe_threads"] == 3 and torch.get_num_threads() == before
    vaebench.evaluate(model, config=config, metrics=["probe_threads"])
    assert thread_probe == [3, before]  # default: as the caller has them


def test_evaluate_at_the_rows_thread_count_reproduces_the_row_exactly(finished):
    df = vaebench.load_results("nb_api", results=finished)
    row = df.iloc[0]
    model, config = vaebench.load_model(row["run_id"], results=finished)
    assert row["torch_threads"] >= 1
    before = torch.get_num_threads()
    torch.set_num_threads(row["torch_threads"] + 1)  # the caller at another count than the row's
    try:
        out = vaebench.evaluate(model, config=config, seed=int(row["seed"]), threads=int(row["torch_threads"]))
        assert torch.get_num_threads() == row["torch_threads"] + 1
    finally:
        torch.set_num_threads(before)
    for k in ("neg_elbo", "kl", "recon_mse", "nll_is", "active_units", "ssim"):
        assert out[k] == row[k] or (math.isnan(out[k]) and math.isnan(row[k])), k


# --- docstrings -----------------------------------------------------------------------------------------


def _exported_functions():
    return [(name, getattr(vaebench, name)) for name in vaebench.__all__ if inspect.isfunction(getattr(vaebench, name))]


def test_every_exported_function_documents_its_parameters_return_and_an_example():
    functions = _exported_functions()
    assert {"run", "load_results", "load_history", "load_model", "sample_grid", "evaluate", "report"} <= {
        n for n, _ in functions
    }
    problems = []
    for name, fn in functions:
        doc = inspect.getdoc(fn) or ""
        params = [
            p.name for p in inspect.signature(fn).parameters.values() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ]
        missing = [p for p in params if not re.search(rf"\b{p}\b", doc)]
        if missing:
            problems.append(f"{name}: parameters {missing} not documented")
        if "Returns:" not in doc:
            problems.append(f"{name}: no Returns section")
        if "Example:" not in doc or ">>> " not in doc.split("Example:")[-1] or name not in doc.split("Example:")[-1]:
            problems.append(f"{name}: no example calling it")
    assert problems == []


def test_help_vaebench_lists_every_export():
    text = pydoc.render_doc(vaebench, renderer=pydoc.plaintext)
    missing = [name for name in vaebench.__all__ if name != "__version__" and not re.search(rf"\b{name}\b", text)]
    assert missing == []


def test_writing_a_report_leaves_the_notebooks_matplotlib_backend_alone(finished, tmp_path):
    """A report draws without pyplot: a notebook's inline plots still show after `vaebench.report`
    (it used to switch the process to Agg when the figures module was imported)."""
    import subprocess
    import sys

    code = (
        "import matplotlib; matplotlib.use('svg'); import matplotlib.pyplot as plt; import vaebench;"
        f"vaebench.report('nb_api', results={str(finished)!r}, out={str(tmp_path)!r}, format='md');"
        "print(matplotlib.get_backend(), len(plt.get_fignums()))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["svg", "0"]  # the backend the user chose; no figure left open in pyplot
    assert list((tmp_path / "nb_api" / "figures").glob("*.png"))
