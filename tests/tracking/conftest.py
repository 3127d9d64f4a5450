"""Helpers of the tracking tests: a tiny digits spec written as YAML, `vaebench` as a real process,
the rows read back, and a real `mlflow server` on 127.0.0.1 that a test starts and stops."""

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

from tests.conftest import REPO
from vaebench.results.rows import load_results_table
from vaebench.spec.sweep_spec import parse_spec

# 2 cells x 2 seeds of a tiny MLP on the 8x8 digits, 3 epochs; FID without its classifier, a small NLL
SPEC = {
    "dataset": {"name": "digits"},
    "model": {"name": "mlp", "hidden_dim": 32, "latent_dim": 4},
    "train": {"epochs": 3, "batch_size": 128},
    "eval": {"fid_extractor": None, "nll_examples": 50, "nll_k": 10},
    "grid": {"objective.beta": [0.5, 4]},
    "seeds": [0, 1],
}


def write_spec(folder, study: str, **changes):
    """(the parsed spec, its YAML file) of SPEC named `study`, with top-level `changes`."""
    data = {**SPEC, "study": study, **changes}
    spec = parse_spec(data)
    path = folder / f"{study}.yaml"
    path.write_text(yaml.safe_dump(data))
    return spec, path


def vaebench(*args, cwd, env=None, timeout=900):
    """`python -m vaebench ARGS` in `cwd` (a real process, its own MLflow client), output merged."""
    full = {**os.environ, **(env or {})}
    full.pop("VAEBENCH_WORKERS", None)
    full["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), full.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", "vaebench", *map(str, args)],
        cwd=cwd,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def rows(results, study) -> dict[str, dict]:
    """The study's rows by run id, as Python values (a null is None)."""
    return {r["run_id"]: r for r in load_results_table(results, study).to_pylist()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` on 127.0.0.1 (a free port, a SQLite backend, artifacts served by it);
    yields {"uri", "stop"}; stopped at the end of the test if the test did not stop it."""
    port = free_port()
    folder = tmp_path / "mlflow-server"
    folder.mkdir()
    log = open(folder / "server.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server",
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination", str(folder / "artifacts"),
        ],
        cwd=folder, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"

    def stop():
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    try:
        for _ in range(240):  # the server imports MLflow and migrates its database first
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited {proc.returncode}: {(folder / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"mlflow server did not answer: {(folder / 'server.log').read_text()[-2000:]}")
        yield {"uri": uri, "stop": stop, "port": port}
    finally:
        stop()
        log.close()
