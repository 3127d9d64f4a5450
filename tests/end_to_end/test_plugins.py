"""Plugins: a user's model family, from a local module or an installed distribution, through every
vaebench process (the `run` parent, its worker processes, a joining `vaebench worker`, status,
results, report), with its provenance in every row; bad plugins exit 2 with nothing written."""

import hashlib
import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import REPO
from vaebench.cli.commands import app

runner = CliRunner()

TOY_PLUGIN = '''
"""A user's model family, as a user writes it: one file, registered through the public mechanism."""
from pydantic import Field

from vaebench.options import Options
from vaebench.models import MODELS, ModelFamily
from vaebench.models.mlp import MLPVAE


class ToyOptions(Options):
    width: int = Field(16, ge=1, description="hidden width")
    layers: int = Field(1, ge=1, description="hidden layers")


def build(cfg, data_shape, likelihood, num_classes):
    return MLPVAE(data_shape, cfg.latent_dim, cfg.width, cfg.layers, likelihood)


MODELS.register("{name}", ModelFamily(build, ToyOptions, "a test plugin"))
'''


def _spec(study: str, model: str, plugins: list[str]) -> dict:
    return {
        "study": study,
        "plugins": plugins,
        "dataset": {"name": "digits"},
        "model": {"name": model, "width": 24, "latent_dim": 4},
        "train": {"epochs": 1, "batch_size": 128},
        "eval": {"fid_extractor": None, "nll_k": 4, "nll_examples": 20},
        "grid": {"objective.beta": [1.0, 2.0]},
        "seeds": [0],
    }


def _project(tmp_path, module: str, model: str, study: str):
    """A folder with the plugin module and a spec that names it; returns (folder, spec path)."""
    proj = tmp_path / "proj"
    proj.mkdir(exist_ok=True)
    (proj / f"{module}.py").write_text(TOY_PLUGIN.format(name=model))
    spec = proj / f"{study}.yaml"
    spec.write_text(yaml.safe_dump(_spec(study, model, [module]), sort_keys=False))
    return proj, spec


def _vaebench(*args, cwd, env_update=None, timeout=600) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_update or {})}
    env.pop("VAEBENCH_WORKERS", None)  # the default layout unless --workers says otherwise
    return subprocess.run(
        [sys.executable, "-m", "vaebench", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )


@pytest.mark.slow
def test_a_plugin_model_runs_in_a_two_worker_sweep_and_every_command_loads_it(tmp_path):
    proj, spec = _project(tmp_path, "toy_plugin_a", "toy_a", "plug")
    results, elsewhere = tmp_path / "results", tmp_path / "elsewhere"
    elsewhere.mkdir()
    # run from another folder: the spec's folder makes its plugin importable, for the workers too
    r = _vaebench("run", str(spec), "--workers", "2", "--results", str(results), "-q", cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert "[w1 pid" in r.stderr and "[w2 pid" in r.stderr  # two worker processes ran
    df = pd.read_parquet(results / "plug" / "runs")
    assert len(df) == 2 and (df["status"] == "ok").all()
    assert set(df["param.model.name"]) == {"toy_a"} and set(df["param.model.width"]) == {24}
    assert "param.model.hidden_dim" not in df  # mlp's options are not the plugin's
    source = hashlib.sha256(b"toy_plugin_a.py" + (proj / "toy_plugin_a.py").read_bytes()).hexdigest()
    for entries in df["plugins"]:  # (installed plugins, e.g. the VampPrior example, are listed too)
        [toy] = [e for e in entries if e["module"] == "toy_plugin_a"]
        assert toy["source_sha256"] == source and toy["distribution"] == ""  # a local module, not installed
    # status / results / report in fresh processes: the plugin comes from the stored spec or the rows
    env = {"PYTHONPATH": str(proj)}
    for args in (
        ["status", "--study", "plug"],
        ["results", "--study", "plug"],
        ["report", "--study", "plug", "--out", str(tmp_path / "reports"), "--format", "md"],
        ["worker", "--study", "plug"],
        ["pull", "--study", "plug"],
    ):
        r = _vaebench(*args, "--results", str(results), cwd=elsewhere, env_update=env)
        assert r.returncode == 0, (args, r.stderr)
    assert "toy_a" in (tmp_path / "reports" / "plug.md").read_text()
    # the plugin's source changed between runs: visible in the rows
    (proj / "toy_plugin_a.py").write_text(TOY_PLUGIN.format(name="toy_a") + "\n# edited\n")
    r = _vaebench("run", str(spec), "--workers", "1", "--results", str(tmp_path / "results2"), "-q", cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    entries = pd.read_parquet(tmp_path / "results2" / "plug" / "runs")["plugins"].iloc[0]
    after = next(e["source_sha256"] for e in entries if e["module"] == "toy_plugin_a")
    assert after != source


@pytest.mark.slow
def test_a_joining_worker_loads_the_plugin_named_in_the_stored_spec(tmp_path):
    proj, spec = _project(tmp_path, "toy_plugin_b", "toy_b", "plug2")
    results, other = tmp_path / "results", tmp_path / "other-machine"
    other.mkdir()
    create = textwrap.dedent(f"""
        from vaebench.spec.sweep_spec import load_spec
        from vaebench.sweep.storage import StudyStore
        from vaebench.sweep.study import open_study
        spec = load_spec({str(spec)!r})
        open_study(spec, StudyStore(None, {str(results)!r}, spec.study))
    """)
    p = subprocess.run([sys.executable, "-c", create], capture_output=True, text=True, cwd=proj)
    assert p.returncode == 0, p.stderr
    assert not (results / "plug2" / "runs").exists()  # created and enqueued, nothing run
    # another machine: the plugin is installed (importable), but nobody names it on the command line
    r = _vaebench(
        "worker", "--study", "plug2", "--results", str(results), "-q", cwd=other, env_update={"PYTHONPATH": str(proj)}
    )
    assert r.returncode == 0, r.stderr
    df = pd.read_parquet(results / "plug2" / "runs")
    assert len(df) == 2 and set(df["param.model.name"]) == {"toy_b"}
    # a machine without the plugin: a clear error, exit 2
    r = _vaebench("status", "--study", "plug2", "--results", str(results), cwd=other)
    assert r.returncode == 2
    assert "plugin 'toy_plugin_b'" in r.stderr and "cannot be imported" in r.stderr


def test_installed_plugins_are_found_through_their_entry_point(tmp_path):
    site = tmp_path / "site"
    pkg = site / "toy_ep_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(TOY_PLUGIN.format(name="toy_ep"))
    info = site / "toy_ep_dist-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-ep-dist\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text("[vaebench.plugins]\ntoy = toy_ep_pkg\n")
    (info / "top_level.txt").write_text("toy_ep_pkg\n")
    code = textwrap.dedent("""
        from vaebench.models import MODELS
        from vaebench.plugins import loaded_plugins
        assert "toy_ep" in MODELS, MODELS.names()  # no import, no --plugin: the entry point
        [p] = [p for p in loaded_plugins() if p["module"] == "toy_ep_pkg"]  # (other installed plugins too)
        print(p["module"], p["distribution"], p["version"], len(p["source_sha256"]))
    """)
    p = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["toy_ep_pkg", "toy-ep-dist", "1.2.3", "64"]
    # a spec naming the installed family validates in a fresh process with nothing else said
    spec = tmp_path / "ep.yaml"
    spec.write_text(yaml.safe_dump(_spec("ep", "toy_ep", []), sort_keys=False))
    p = subprocess.run(
        [sys.executable, "-c", f"from vaebench import load_spec; print(load_spec({str(spec)!r}).model)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert p.returncode == 0 and "name='toy_ep'" in p.stdout and "width=24" in p.stdout, p.stderr


BAD_PLUGINS = [
    ("", "no_such_plugin_module", "plugin 'no_such_plugin_module'", "cannot be imported"),
    (
        "raise RuntimeError('broken on purpose')\n",
        "toy_raises",
        "plugin 'toy_raises'",
        "RuntimeError: broken on purpose at toy_raises.py:1",
    ),
    (TOY_PLUGIN.format(name="mlp"), "toy_takes_mlp", "plugin 'toy_takes_mlp'", "model 'mlp' is already registered"),
    (
        "from vaebench.models import MODELS, ModelFamily\nMODELS.register('toy_bad', ModelFamily(print, dict))\n",
        "toy_bad_options",
        "plugin 'toy_bad_options'",
        "options must be a pydantic model class",
    ),
]


@pytest.mark.parametrize("source,module,names,cause", BAD_PLUGINS)
@pytest.mark.parametrize("via", ["spec", "option"])
def test_a_bad_plugin_exits_2_naming_it_with_nothing_written(tmp_path, monkeypatch, source, module, names, cause, via):
    monkeypatch.syspath_prepend(str(tmp_path))
    if source:
        (tmp_path / f"{module}.py").write_text(source)
    spec = _spec("bad", "mlp", [module] if via == "spec" else [])
    spec["model"] = {"name": "mlp", "hidden_dim": 8, "latent_dim": 2}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    results = tmp_path / "results"
    args = ["run", str(path), "--results", str(results), "-q"] + (["--plugin", module] if via == "option" else [])
    r = runner.invoke(app, args, catch_exceptions=False)
    assert r.exit_code == 2, r.output
    assert names in r.output and cause in r.output
    assert (str(path) in r.output) if via == "spec" else ("--plugin" in r.output)
    assert not results.exists()


def test_a_plugin_familys_option_errors_name_the_file_and_the_field(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "toy_plugin_c.py").write_text(TOY_PLUGIN.format(name="toy_c"))
    spec = _spec("opts", "toy_c", ["toy_plugin_c"])
    for model, expected in [
        (
            {"name": "toy_c", "widht": 3},
            "field model.widht: unknown key: 'widht' is not an option of model 'toy_c'. Did you mean 'width'?",
        ),
        ({"name": "toy_c", "width": 0}, "field model.width: Input should be greater than or equal to 1"),
        ({"name": "toy_c", "hidden_dim": 3}, "'hidden_dim' is not an option of model 'toy_c' (an option of model"),
    ]:
        path = tmp_path / "opts.yaml"
        path.write_text(yaml.safe_dump({**spec, "model": model}))
        r = runner.invoke(app, ["run", str(path), "--results", str(tmp_path / "results"), "-q"])
        assert r.exit_code == 2 and f"{path}: invalid sweep spec" in r.output, r.output
        assert expected in " ".join(r.output.split()), r.output
    assert not (tmp_path / "results").exists()


def test_the_run_id_follows_a_familys_options_and_not_their_defaults(tmp_path, monkeypatch):
    from vaebench.spec.sweep_spec import parse_spec

    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "toy_plugin_d.py").write_text(TOY_PLUGIN.format(name="toy_d"))

    def run_id(**options):
        spec = {"study": "ids", "plugins": ["toy_plugin_d"], "model": {"name": "toy_d", **options}}
        return parse_spec(spec).runs()[0].run_id

    assert run_id() == run_id(width=16) == run_id(width=16, layers=1)  # defaults, written or not
    assert run_id(width=17) != run_id()
    assert run_id(layers=2) not in (run_id(), run_id(width=17))
    # a built-in family's option at its default is not part of the run id either
    assert (
        parse_spec({"study": "s"}).runs()[0].run_id
        == parse_spec({"study": "s", "model": {"hidden_dim": 256}}).runs()[0].run_id
    )


def test_shipped_sweeps_keep_their_run_ids():
    """The run ids of the shipped sweeps are pinned: existing studies resume and keep their rows."""
    from vaebench.spec.sweep_spec import load_spec

    # (count, sha256 of the sorted run ids) per sweep, computed with the code of 42c4b4e; the architecture
    # and hierarchical sweeps' since issue 24 gave them a validation split and early stopping (their
    # specs changed, so their runs did, and were rerun)
    expected = {
        "architecture.yaml": (12, "9075a3d44dab371b"),
        "hierarchical.yaml": (9, "e9cf28f1af0da614"),
        "beta.yaml": (15, "fb858c5cd56cd9d7"),
        "disentanglement.yaml": (18, "6ba76a9cef8d606f"),
        "latent_dim.yaml": (21, "84926119e87457c0"),
        "loss.yaml": (12, "726bec481466fd5c"),
        "schedule.yaml": (12, "84e996015452b6e7"),
        "smoke.yaml": (4, "75c8a0cf5876ad17"),
    }
    got = {}
    for name in expected:
        ids = sorted(r.run_id for r in load_spec(REPO / "sweeps" / name).runs())
        got[name] = (len(ids), hashlib.sha256(",".join(ids).encode()).hexdigest()[:16])
    assert got == expected


def test_run_hands_its_plugin_modules_to_its_workers_as_plugin_flags(tmp_path):
    """plugins.py's docstring: the workers `vaebench run` starts get its --plugin modules as --plugin
    flags (there is no environment variable for them)."""
    from types import SimpleNamespace

    from vaebench.sweep.run import _worker_argv

    store = SimpleNamespace(results_root=tmp_path, heartbeat=5.0, url=None)
    argv = _worker_argv("s", store, None, None, True, ["toy_one", "pkg.toy_two"], False)
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--plugin"] == ["toy_one", "pkg.toy_two"]


def test_a_plugin_that_registers_nothing_is_named_where_its_family_is_missing(tmp_path, monkeypatch):
    """A folder with the plugin's name in the current folder is imported as an empty namespace
    package: the unknown-model error says so, instead of only "unknown model"."""
    from vaebench import plugins

    for state in ("_loaded", "_origins", "_registered", "_preloaded"):  # this process forgets it afterwards
        monkeypatch.setattr(plugins, state, type(getattr(plugins, state))(getattr(plugins, state)))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "toy_empty_ns").mkdir()  # no __init__.py, no module: Python imports it, empty
    spec = _spec("empty", "toy_empty", ["toy_empty_ns"])
    path = tmp_path / "empty.yaml"
    path.write_text(yaml.safe_dump(spec))
    r = runner.invoke(app, ["run", str(path), "--results", str(tmp_path / "results"), "-q"])
    message = " ".join(r.output.split())
    assert r.exit_code == 2, r.output
    assert "unknown model 'toy_empty'" in message
    assert f"Plugin 'toy_empty_ns' was imported from {tmp_path / 'toy_empty_ns'}" in message
    assert "(a namespace package: a folder without __init__.py) and registered nothing" in message
    assert not (tmp_path / "results").exists()
    monkeypatch.delitem(sys.modules, "toy_empty_ns")
