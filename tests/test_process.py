"""What a `vaebench` process pays for besides its work: which modules it imports, and how it exits."""

import subprocess
import sys

import pytest

from vaebench.registry import Registry


def test_a_registry_runs_its_loader_once_at_the_first_lookup():
    calls = []
    reg = Registry("thing", load=lambda: (calls.append(1), reg.register("b", 2), reg.register("a", 1)))
    reg.register("c", 3)  # registering does not load
    assert calls == []
    assert reg.names() == ["a", "b", "c"] and calls == [1]
    assert reg.get("a") == 1 and "b" in reg and list(reg) == ["a", "b", "c"]
    assert calls == [1]  # once
    lazy = Registry("thing", load=lambda: lazy.register("alpha", 1))
    with pytest.raises(Exception, match="Did you mean 'alpha'"):  # an unknown name is checked after loading
        lazy.get("alpah")


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)


def test_the_metric_modules_are_imported_only_when_a_metric_is_looked_up():
    """A sweep's parent and `status`/`results`/`report` import the study and results modules but no
    metric module: torch-fidelity (and torchvision) stay out until a metric is looked up."""
    p = _python("import sys, vaebench.cli, vaebench.study, vaebench.results\n"
                "print('before', 'torch_fidelity' in sys.modules, 'vaebench.metrics.fid' in sys.modules)\n"
                "from vaebench.metrics import METRICS\n"
                "names = METRICS.names()\n"
                "print('after', 'torch_fidelity' in sys.modules, sorted(names))")
    assert p.returncode == 0, p.stderr
    before, after = p.stdout.splitlines()
    assert before == "before False False"
    assert after.startswith("after True") and "'fid'" in after and "'disentanglement'" in after and "'ssim'" in after


@pytest.mark.parametrize("argv, code, says", [
    (["--help"], 0, "Benchmark and sweep harness for VAEs"),
    (["report", "--results", "{tmp}/empty"], 1, "no results under"),
    (["run", "{tmp}/missing.yaml", "--results", "{tmp}/r"], 2, "missing.yaml"),
])
def test_the_command_exits_with_its_code_after_its_output_and_exit_handlers(tmp_path, argv, code, says):
    """`cli.main` ends the process itself (no interpreter teardown): the exit code, everything the
    command printed and the atexit handlers must all survive that."""
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    p = _python("import atexit, sys\n"
                "atexit.register(lambda: print('exit handler ran', flush=True))\n"
                "sys.argv = ['vaebench', *sys.argv[1:]]\n"
                "from vaebench.cli import main\n"
                "main()\n"
                "print('not reached')", *argv)
    assert p.returncode == code, p.stderr
    assert says in p.stdout + p.stderr
    assert p.stdout.rstrip().endswith("exit handler ran") and "not reached" not in p.stdout
    assert "Traceback" not in p.stderr
    assert not (tmp_path / "r").exists()  # bad input: nothing written
