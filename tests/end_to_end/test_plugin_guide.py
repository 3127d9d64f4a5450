"""docs/plugins.md runs as written: its code blocks that name a file (```python file=tanh_vae/model.py)
are written to a folder, the spec it shows runs as a real one-run digits sweep with the plugin as a
local module, and the row and the report hold what the page says (the family, the metric's columns,
the likelihood, the plugin's provenance)."""

import os
import re
import subprocess
import sys

import pandas as pd
import pytest
import tomllib

from tests.conftest import REPO

pytestmark = pytest.mark.slow  # a real sweep and report in `vaebench` processes

GUIDE = REPO / "docs" / "plugins.md"
BLOCK = re.compile(r"^```(\w+) file=(\S+)\n(.*?)^```$", re.M | re.S)


def guide_files() -> dict[str, str]:
    return {path: body for _, path, body in BLOCK.findall(GUIDE.read_text())}


def test_the_guide_names_its_files():
    assert set(guide_files()) == {
        "tanh_vae/model.py",
        "tanh_vae/metric.py",
        "tanh_vae/likelihood.py",
        "tanh_vae/dataset.py",
        "tanh_vae/__init__.py",
        "tanh.yaml",
        "pyproject.toml",
    }
    # the entry point's value is the package the page writes
    project = tomllib.loads(guide_files()["pyproject.toml"])
    assert project["project"]["entry-points"]["vaebench.plugins"] == {"tanh_vae": "tanh_vae"}


def _vaebench(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VAEBENCH_WORKERS")}
    return subprocess.run(
        [sys.executable, "-m", "vaebench", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )


def test_the_guides_plugin_runs_a_sweep_and_reports(tmp_path):
    for path, body in guide_files().items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(body)
    results = tmp_path / "results"
    r = _vaebench("run", "tanh.yaml", "--workers", "1", "--results", str(results), "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    [row] = pd.read_parquet(results / "tanh" / "runs").to_dict("records")
    assert row["status"] == "ok"
    assert row["param.model.name"] == "tanh_mlp" and row["param.model.hidden_dim"] == 32
    assert row["param.objective.likelihood"] == "gaussian01"
    assert 0 <= row["bright_fraction"] <= 1 and row["bright_threshold"] == 0.3
    assert row["param.eval.bright_pixels.threshold"] == 0.3
    assert row["eval_seconds_bright_pixels"] >= 0
    [plugin] = [p for p in row["plugins"] if p["module"] == "tanh_vae"]
    assert plugin["distribution"] == "" and len(plugin["source_sha256"]) == 64  # a local module
    out = tmp_path / "reports"
    r = _vaebench(
        "report", "--study", "tanh", "--results", str(results), "--out", str(out), "--format", "md", cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    text = " ".join((out / "tanh.md").read_text().split())
    assert "Bright pixels ↑" in text  # the All-metrics table has the plugin's ranked column
    assert "`bright_threshold` (metric `bright_pixels` of plugin `tanh_vae`)" in text  # and names the other
    assert "`tanh_vae` (a local module, source sha256" in text
    # the guide's dataset, with its option, through the spec's validation and the loader
    code = (
        "from vaebench import parse_spec; from vaebench.data import load_dataset; "
        "spec = parse_spec({'study': 's', 'plugins': ['tanh_vae'], 'dataset': {'name': 'stripes', 'size': 6}}); "
        "d = load_dataset(spec.runs()[0].config.dataset, None, download=False); "
        "print(tuple(d.x_train.shape), tuple(d.x_test.shape), int(d.y_train.max()), float(d.x_train.sum()))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split(") ")[:2] == ["(500, 1, 6, 6", "(100, 1, 6, 6"] and p.stdout.split()[-1] == "3000.0"
