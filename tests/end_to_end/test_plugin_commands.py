"""A local-module plugin (a file beside the spec, named in its `plugins:`) through every command that
reads what a sweep made: `status`, `results`, `report` and `vaebench.load_results` import it and
agree. Where it is importable all four work and the report shows the plugin's metric column; where it
is not, all four fail the same way (exit 2 / PluginError) naming it and how to make it importable."""

import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow  # real `vaebench` processes: a one-run sweep and eight commands

LOCAL_PLUGIN = '''
"""A model family and a metric, one file, not installed."""
from vaebench.metrics import Column, register_metric
from vaebench.models import MODELS, ModelFamily
from vaebench.models.mlp import MLPOptions, MLPVAE, build_mlp


@register_metric("toy_mean_pixel", columns=[
    Column("toy_mean_pixel", "float", unit="per pixel", direction="lower", label="Toy mean pixel"),
    Column("toy_pixels", "int", label="Pixels per image"),  # no direction: not a ranked metric
])
def toy_mean_pixel(ctx) -> dict:
    return {"toy_mean_pixel": float(ctx.reconstructions.mean()), "toy_pixels": int(ctx.x[0].numel())}


MODELS.register("toy_local", ModelFamily(build_mlp, MLPOptions, "the mlp, under a plugin's name", model=MLPVAE))
'''


def _vaebench(*args, cwd, pythonpath=None):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VAEBENCH_WORKERS")}
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [sys.executable, "-m", "vaebench", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )


def _load_results(results, cwd, pythonpath=None):
    code = textwrap.dedent(f"""
        import vaebench
        from vaebench.plugins import PluginError
        try:
            df = vaebench.load_results("loc", results={str(results)!r})
        except PluginError as e:
            print("PluginError:", e)
        else:
            print("columns:", " ".join(df.columns))
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A finished one-run study made with the local plugin: (project folder, results, another folder)."""
    tmp = tmp_path_factory.mktemp("local_plugin")
    proj, results, elsewhere = tmp / "proj", tmp / "results", tmp / "elsewhere"
    proj.mkdir()
    elsewhere.mkdir()
    (proj / "toy_local_plugin.py").write_text(LOCAL_PLUGIN)
    spec = {
        "study": "loc",
        "plugins": ["toy_local_plugin"],
        "dataset": {"name": "digits"},
        "model": {"name": "toy_local", "hidden_dim": 16, "latent_dim": 2},
        "train": {"epochs": 1, "batch_size": 128},
        "eval": {"fid_extractor": None, "nll_k": 2, "nll_examples": 10},
        "seeds": [0],
    }
    (proj / "loc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    r = _vaebench("run", "loc.yaml", "--workers", "1", "--results", str(results), "-q", cwd=proj)
    assert r.returncode == 0, r.stderr
    df = pd.read_parquet(results / "loc" / "runs")
    assert len(df) == 1 and df["toy_mean_pixel"].notna().all()
    return proj, results, elsewhere


def test_where_the_plugin_is_importable_every_command_loads_it(swept, tmp_path):
    proj, results, elsewhere = swept
    for cwd, pythonpath in ((proj, None), (elsewhere, proj)):  # its folder, or PYTHONPATH
        out = tmp_path / f"reports-{cwd.name}"
        for args in (["status", "--study", "loc"], ["results", "--study", "loc"]):
            r = _vaebench(*args, "--results", str(results), cwd=cwd, pythonpath=pythonpath)
            assert r.returncode == 0, (args, r.stderr)
        r = _vaebench(
            "report", "--study", "loc", "--results", str(results), "--out", str(out), "--format", "md",
            cwd=cwd, pythonpath=pythonpath,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        # the plugin's metric is in the All-metrics table (it was dropped when `report` did not import it)
        text = " ".join((out / "loc.md").read_text().split())
        assert "Toy mean pixel (per pixel) ↓" in text
        # the report names the plugin that made the rows, and the column its table leaves out
        assert "`toy_local_plugin` (a local module, source sha256 " in text
        assert "no `direction` (which way is better): `toy_pixels` (metric `toy_mean_pixel` of plugin" in text
        assert "toy_mean_pixel" in _load_results(results, cwd, pythonpath).split()


def test_where_the_plugin_is_not_importable_every_command_says_so(swept, tmp_path):
    _, results, elsewhere = swept
    out = tmp_path / "reports"
    for args in (
        ["status", "--study", "loc"],
        ["results", "--study", "loc"],
        ["report", "--study", "loc", "--out", str(out)],
    ):
        r = _vaebench(*args, "--results", str(results), cwd=elsewhere)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        message = " ".join(r.stderr.split())
        assert "plugin 'toy_local_plugin'" in message and "cannot be imported" in message, (args, message)
        assert "add that folder to PYTHONPATH" in message, (args, message)
    assert not out.exists()  # nothing written
    said = _load_results(results, elsewhere)
    assert said.startswith("PluginError:") and "plugin 'toy_local_plugin'" in said and "model 'toy_local'" in said
