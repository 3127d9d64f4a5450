"""A broken installed plugin: a real distribution, pip-installed into the running environment, whose
`vaebench.plugins` entry point raises on import or registers a name that is taken. Every command
exits 2 naming the distribution and its entry point, writes nothing, and `--help` / `--version` still
work (the registries, which import the installed plugins, are not touched at import time).

The package breaks only where `VAEBENCH_TEST_BROKEN_PLUGIN` says so (the commands this test runs):
between its install and its uninstall (in the fixture's teardown, which runs even when a test fails)
any other vaebench process on this environment imports it harmlessly."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow  # pip install / uninstall and real `vaebench` processes

DIST, VERSION, MODULE, ENTRY = "vaebench-test-broken-plugin", "0.0.1", "vaebench_test_broken_plugin", "broken"
SWITCH = "VAEBENCH_TEST_BROKEN_PLUGIN"

PYPROJECT = f"""
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "{DIST}"
version = "{VERSION}"

[project.entry-points."vaebench.plugins"]
{ENTRY} = "{MODULE}"

[tool.setuptools]
packages = ["{MODULE}"]
"""

SOURCE = f'''
import os

how = os.environ.get("{SWITCH}", "")
if how == "raise":
    raise RuntimeError("broken on purpose")
if how == "taken":
    from vaebench.models import MODELS, ModelFamily
    from vaebench.models.mlp import MLPOptions, MLPVAE, build_mlp

    MODELS.register("mlp", ModelFamily(build_mlp, MLPOptions, "takes the built-in's name", model=MLPVAE))
'''


def _pip(*args):
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    src = tmp_path_factory.mktemp("broken_dist")
    (src / "pyproject.toml").write_text(PYPROJECT)
    (src / MODULE).mkdir()
    (src / MODULE / "__init__.py").write_text(SOURCE)
    try:
        p = _pip("install", "-q", "--no-deps", "--no-build-isolation", "--no-index", str(src))
        assert p.returncode == 0, p.stdout + p.stderr
        yield
    finally:
        _pip("uninstall", "-y", "-q", DIST)
        assert _pip("show", DIST).returncode != 0, f"{DIST} is still installed: `pip uninstall {DIST}`"


def _vaebench(*args, cwd, how):
    env = {**os.environ, SWITCH: how}
    env.pop("VAEBENCH_WORKERS", None)
    return subprocess.run(
        [sys.executable, "-m", "vaebench", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )


@pytest.mark.parametrize(
    "how,cause",
    [
        ("raise", "RuntimeError: broken on purpose at __init__.py:"),
        ("taken", "ValueError: model 'mlp' is already registered"),
    ],
)
def test_a_broken_installed_plugin_exits_2_naming_its_distribution(installed, tmp_path, how, cause):
    results = tmp_path / "results"
    for args in (["--version"], ["--help"], ["run", "--help"]):
        r = _vaebench(*args, cwd=tmp_path, how=how)
        assert r.returncode == 0, (args, r.stderr)
    assert r.stdout.startswith("\n Usage: python -m vaebench run") or "Usage:" in r.stdout
    for args in (
        ["run", str(REPO / "sweeps" / "smoke.yaml"), "--results", str(results), "-q"],
        ["status", "--results", str(results)],
        ["results", "--results", str(results)],
        ["report", "--results", str(results), "--out", str(tmp_path / "reports")],
    ):
        r = _vaebench(*args, cwd=tmp_path, how=how)
        message = " ".join(r.stderr.split())
        assert r.returncode == 2, (args, message)
        assert "Traceback" not in r.stderr, message
        assert f"plugin '{MODULE}'" in message and cause in message, message
        assert f"entry point '{ENTRY} = {MODULE}' of vaebench.plugins" in message, message
        assert f"installed distribution {DIST} {VERSION}" in message and f"pip uninstall {DIST}" in message
    assert not results.exists() and not (tmp_path / "reports").exists()  # nothing written
    # installed but not broken here: every command works with it
    r = _vaebench("status", "--results", str(results), cwd=tmp_path, how="")
    assert r.returncode == 2 and "no studies" in r.stderr, r.stderr
