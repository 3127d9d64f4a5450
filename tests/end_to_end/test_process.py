"""What a `vaebench` process pays for besides its work: which modules it imports, and how it exits."""

import os
import subprocess
import sys

import pytest

from vaebench.registry import Registry


def test_a_registry_runs_its_loader_once_at_the_first_lookup_or_registration():
    calls = []
    reg = Registry("thing", load=lambda: (calls.append(1), reg.register("b", 2), reg.register("a", 1)))
    assert calls == []  # creating the registry does not load
    assert reg.names() == ["a", "b"] and calls == [1]
    reg.register("c", 3)
    assert reg.names() == ["a", "b", "c"] and calls == [1]
    assert reg.get("a") == 1 and "b" in reg and list(reg) == ["a", "b", "c"]
    assert calls == [1]  # once
    lazy = Registry("thing", load=lambda: lazy.register("alpha", 1))
    with pytest.raises(Exception, match="Did you mean 'alpha'"):  # an unknown name is checked after loading
        lazy.get("alpah")
    taken = Registry("thing", load=lambda: taken.register("builtin", 1))
    with pytest.raises(ValueError, match="'builtin' is already registered"):  # a plugin registering first
        taken.register("builtin", 2)  # still meets the built-in of that name: the built-ins load first
    assert taken.get("builtin") == 1


def _python(code: str, *args: str, env_update: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_update or {})}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)


def test_the_metric_declarations_load_without_torch_fidelity_which_the_first_fid_imports(tmp_path):
    """A sweep's parent and `status`/`results`/`report` import the study and results modules and read
    the metric declarations (row schema, objectives, the report's columns): that loads every metric
    module, but torch-fidelity (and torchvision) stay out until an evaluation computes an FID."""
    p = _python(
        "import sys, vaebench.cli.commands, vaebench.sweep.study, vaebench.results.rows\n"
        "print('imported', 'torch_fidelity' in sys.modules, 'vaebench.metrics.fid' in sys.modules)\n"
        "from vaebench.metrics import METRICS\n"
        "from vaebench.metrics import numeric_metric_columns\nfrom vaebench.results.rows import metric_types\n"
        "from vaebench.reporting.columns import metric_columns\n"
        "types, objectives, names = metric_types(), numeric_metric_columns(), METRICS.names()\n"
        "headers = [c.header for c in metric_columns()]\n"
        "print('declared', 'torch_fidelity' in sys.modules, 'torchvision' in sys.modules,\n"
        "      'vaebench.metrics.fid' in sys.modules, str(types['fid']), 'fid' in objectives, 'FID samples ↓' in headers,\n"
        "      sorted(names))\n"
        # a first evaluation with FID, on an untrained classifier (no training here: the checkpoint is saved as is)
        "import torch\n"
        "from vaebench.metrics import classifier\n"
        "from vaebench.metrics import evaluate, fid\n"
        "from vaebench.data import load_dataset\n"
        "from vaebench.models import build_model\n"
        "from vaebench.objectives import Bernoulli\n"
        "from vaebench.spec.sweep_spec import RunConfig\n"
        "path = classifier.cache_dir() / 'untrained.pt'\n"
        "path.parent.mkdir(parents=True, exist_ok=True)\n"
        "torch.save({'state_dict': classifier.DigitClassifier(1, 10).state_dict(), 'in_channels': 1,\n"
        "            'num_classes': 10, 'info': {}}, path)\n"
        "fid.cached_classifier = lambda data, device=None: classifier.ClassifierInfo(path, 'untrained', 0.1, 0.0)\n"
        "cfg = RunConfig.model_validate({'dataset': {'name': 'digits'}, 'eval': {'fid_samples': 40}})\n"
        "data = load_dataset(cfg.dataset)\n"
        "model = build_model(cfg.model, (1, 8, 8), Bernoulli())\n"
        "out = evaluate(model, data, cfg, seed=0, names=['fid'])\n"
        "print('evaluated', 'torch_fidelity' in sys.modules, out['fid'] > 0, out['fid_samples'], out['metrics_skipped'])\n",
        env_update={"VAEBENCH_CACHE": str(tmp_path)},
    )
    assert p.returncode == 0, p.stderr
    imported, declared, evaluated = p.stdout.splitlines()
    assert imported == "imported False False"
    assert declared.startswith("declared False False True double True True [")
    assert "'fid'" in declared and "'disentanglement'" in declared and "'ssim'" in declared
    assert evaluated == "evaluated True True 40 []"


@pytest.mark.parametrize(
    "argv, code, says",
    [
        (["--help"], 0, "Benchmark and sweep harness for VAEs"),
        (["report", "--results", "{tmp}/empty"], 1, "no results under"),
        (["run", "{tmp}/missing.yaml", "--results", "{tmp}/r"], 2, "missing.yaml"),
    ],
)
def test_the_command_exits_with_its_code_after_its_output_and_exit_handlers(tmp_path, argv, code, says):
    """`cli.main` ends the process itself (no interpreter teardown): the exit code, everything the
    command printed and the atexit handlers must all survive that."""
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    p = _python(
        "import atexit, sys\n"
        "atexit.register(lambda: print('exit handler ran', flush=True))\n"
        "sys.argv = ['vaebench', *sys.argv[1:]]\n"
        "from vaebench.cli.commands import main\n"
        "main()\n"
        "print('not reached')",
        *argv,
    )
    assert p.returncode == code, p.stderr
    assert says in p.stdout + p.stderr
    assert p.stdout.rstrip().endswith("exit handler ran") and "not reached" not in p.stdout
    assert "Traceback" not in p.stderr
    assert not (tmp_path / "r").exists()  # bad input: nothing written


def test_abandoned_temp_files_of_killed_writers_are_removed_and_live_ones_kept(tmp_path):
    from vaebench.runtime.files import remove_abandoned_temp_files

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid, live_pid = int(dead.stdout), os.getpid()
    files = {
        name: tmp_path / name
        for name in (
            f".a.parquet.{dead_pid}.tmp",
            f".b.parquet.{live_pid}.tmp",
            f".c.parquet.{dead_pid}.tmp",
            f".d.parquet.{live_pid}.tmp",
            "e.parquet",
        )
    }
    for p in files.values():
        p.write_bytes(b"x")
    old = os.path.getmtime(files["e.parquet"]) - 30
    for name in (f".a.parquet.{dead_pid}.tmp", f".b.parquet.{live_pid}.tmp", "e.parquet"):
        os.utime(files[name], (old, old))
    ancient = old - 3600
    os.utime(files[f".d.parquet.{live_pid}.tmp"], (ancient, ancient))
    removed = {p.name for p in remove_abandoned_temp_files(tmp_path)}
    # a dead writer's old temp file, and any file older than max_age; not a live writer's recent one,
    # not a dead writer's file of the last seconds (its process id may be another host's), not a result
    assert removed == {f".a.parquet.{dead_pid}.tmp", f".d.parquet.{live_pid}.tmp"}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f".b.parquet.{live_pid}.tmp", f".c.parquet.{dead_pid}.tmp", "e.parquet"]
    )
