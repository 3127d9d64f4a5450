"""Figures and the self-contained HTML report, from a real tiny sweep; the page is opened in a real
headless Chromium (skipped, with the reason, only where no browser is installed; .ci/run installs
Debian's chromium and sets VAEBENCH_REQUIRE_BROWSER=1 so it cannot skip there)."""

import os
import re
import shutil
import subprocess

import matplotlib.image
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import TINY_SPEC
from vaebench.cli.commands import app
from vaebench.data import load_dataset
from vaebench.models import build_model
from vaebench.objectives.likelihoods import build_likelihood
from vaebench.results.artifacts import load_arrays
from vaebench.results.rows import load_results
from vaebench.spec.sweep_spec import RunConfig, parse_spec

runner = CliRunner()
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
REQUIRE_BROWSER = os.environ.get("VAEBENCH_REQUIRE_BROWSER") == "1"
SPEC = {
    **TINY_SPEC,
    "train": {"epochs": 3, "batch_size": 128},
    "eval": {"fid_extractor": None, "nll_examples": 50, "nll_k": 10},
    "grid": {"model.latent_dim": [2, 6]},
}


@pytest.fixture(scope="module")
def swept(tmp_path_factory, request):
    """A real 2-cell x 2-seed sweep on digits and its reports in both formats."""
    tmp = tmp_path_factory.mktemp("html")
    spec = tmp / "spec.yaml"
    spec.write_text(__import__("yaml").safe_dump(SPEC))
    results, reports = tmp / "results", tmp / "reports"
    r = runner.invoke(app, ["run", str(spec), "-q", "--results", str(results)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app, ["report", "--results", str(results), "--out", str(reports), "--format", "both"], catch_exceptions=False
    )
    assert r.exit_code == 0, r.output
    return results, reports


def test_each_run_saves_its_model_and_figure_arrays(swept):
    results, _ = swept
    df = load_results(results, "tiny")
    data = load_dataset(RunConfig().dataset.model_copy(update={"name": "digits"}))
    for _, row in df.iterrows():
        arrays = load_arrays(results, "tiny", row["artifacts_path"])
        assert arrays["samples"].shape == (64, 1, 8, 8) and arrays["interpolation"].shape == (10, 1, 8, 8)
        assert np.array_equal(arrays["originals"], data.x_test[:8].numpy())
        assert ("latent_mu" in arrays) == (row["param.model.latent_dim"] == 2)
        # the saved weights rebuild the same model: its reconstructions are the stored ones
        cfg = next(c for c in parse_spec(SPEC).cells() if c.model.latent_dim == row["param.model.latent_dim"])
        model = build_model(cfg.model, data.shape, build_likelihood(cfg.objective), data.num_classes)
        model.load_state_dict(torch.load(results / "tiny" / row["model_path"]))
        model.eval()
        assert np.allclose(model.reconstruct(data.x_test[:8]).numpy(), arrays["reconstructions"], atol=1e-6)


def test_markdown_links_real_figures(swept):
    _, reports = swept
    text = (reports / "tiny.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    assert {os.path.basename(p) for p in links} == {
        "training_curves.png",
        "rate_distortion.png",
        "metric_vs_param.png",
        "images.png",
        "latent_scatter.png",
    }
    for link in links:
        img = matplotlib.image.imread(reports / link)
        assert img.shape[0] > 100 and img.shape[1] > 100
        assert img[..., :3].std() > 0.05  # drawn, not blank


def test_html_is_self_contained(swept):
    _, reports = swept
    page = (reports / "tiny.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page
    srcs = re.findall(r'<img[^>]*src="([^"]*)"', page)
    assert len(srcs) == 5 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(src|href)="(https?:|//|file:)', page) and "<script" not in page and "<link" not in page


PROBE = """<script>
window.addEventListener('load', () => {
  const tables = [...document.querySelectorAll('table')];
  const imgs = [...document.images];
  document.title = 'PROBE tables=' + tables.length +
    ' rows=' + tables.reduce((n, t) => n + t.rows.length, 0) +
    ' minheight=' + Math.min(...tables.map(t => t.getBoundingClientRect().height)) +
    ' images=' + imgs.filter(i => i.complete && i.naturalWidth > 0).length + '/' + imgs.length;
});
</script>"""


def _chromium(*args, profile):
    return subprocess.run(
        [
            BROWSER,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_html_renders_in_headless_chromium(swept, tmp_path):
    if BROWSER is None:
        if REQUIRE_BROWSER:
            pytest.fail("VAEBENCH_REQUIRE_BROWSER=1 but no chromium on PATH")
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium); .ci/run installs it")
    _, reports = swept
    page = reports / "tiny.html"
    shot = tmp_path / "shot.png"
    p = _chromium(f"--screenshot={shot}", "--window-size=1400,2000", page.as_uri(), profile=tmp_path / "p1")
    assert shot.is_file(), p.stderr
    img = matplotlib.image.imread(shot)[..., :3]
    assert img.std() > 0.05 and (img < 0.5).mean() > 0.005  # text and lines drawn on a light page
    # the tables laid out with rows and height, and every embedded image decoded
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    p = _chromium("--dump-dom", probe.as_uri(), profile=tmp_path / "p2")
    m = re.search(r"PROBE tables=(\d+) rows=(\d+) minheight=([\d.]+) images=(\d+)/(\d+)", p.stdout)
    assert m, p.stdout[:500] + p.stderr[-2000:]
    tables, rows, height, loaded, images = int(m[1]), int(m[2]), float(m[3]), int(m[4]), int(m[5])
    assert tables >= 1 and rows >= 3 and height > 20
    assert images == 5 and loaded == images


def test_index_names_the_sweep_for_every_missing_table(swept):
    results, reports = swept
    text = (reports / "index.md").read_text()
    # tiny runs on digits: its latent-dimension table is listed apart, not as measuring the tutorial's
    assert "[tiny](tiny.md) (Latent dimension impact, dataset `digits`)" in text
    for title, sweep in [
        ("β-VAE trade-offs", "beta"),
        ("Architecture comparison", "architecture"),
        ("Latent dimension impact", "latent_dim"),
        ("Loss comparison", "loss"),
        ("Annealing schedules", "schedule"),
    ]:
        assert f"| {title} | not measured yet: run `vaebench run sweeps/{sweep}.yaml && vaebench report` |" in text
    assert 'href="tiny.html"' in (reports / "index.html").read_text()
