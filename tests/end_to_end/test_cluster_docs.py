"""The cluster recipes in docs/cluster parse (bash -n, YAML), and every `vaebench ...` command line
in them is a valid invocation of the real command-line app (parsed with click's make_context, not
run), with one GPU per worker and the study's spec valid."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import typer
import yaml

from vaebench.cli.commands import app
from vaebench.errors import PREEMPTED_EXIT_CODE
from vaebench.spec.sweep_spec import parse_spec

CLUSTER = Path(__file__).resolve().parents[2] / "docs" / "cluster"
SLURM = CLUSTER / "slurm_workers.sh"
K8S = CLUSTER / "k8s_workers.yaml"
# click's UsageError, whether typer uses click itself or (recent typer) a vendored copy of it
UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)")


def vaebench_commands(shell: str) -> list[list[str]]:
    """The `vaebench` command lines of a shell script, as argument lists: continuation lines
    joined, comments dropped, split at `&&`, `||`, `;` and newlines; `exec`/`srun` prefixes
    dropped; a shell variable replaced by the value the script assigns it (`NAME=...`, with
    `${NAME:-default}` read as its default), else by its `:-` default, else by `<NAME>`."""
    shell = shell.replace("\\\n", " ")
    assigned: dict[str, str] = {}

    def expand(text: str) -> str:
        def value(m: re.Match) -> str:
            name = m.group(1) or m.group(3)
            return assigned.get(name, m.group(2) if m.group(2) is not None else f"<{name}>")

        return VAR.sub(value, text)

    commands = []
    for line in shell.splitlines():
        if line.lstrip().startswith("#"):
            continue
        if m := re.match(r"\s*(?:export\s+)?(\w+)=(\S+)", line):
            assigned[m.group(1)] = expand(shlex.split(m.group(2))[0])
            continue
        line = expand(line)
        for part in re.split(r"&&|\|\||;", line):
            tokens = shlex.split(part)
            while tokens and tokens[0] in ("exec", "srun"):
                tokens = tokens[1:]
            if tokens and tokens[0] == "vaebench":
                commands.append(tokens[1:])
    return commands


def parse(args: list[str]) -> typer.Context:
    """Parse a command line with the vaebench app as the shell would run it (without running it):
    an unknown command or option, a missing or malformed value raises click's UsageError."""
    group = typer.main.get_command(app)
    with group.make_context("vaebench", list(args), resilient_parsing=False) as ctx:
        name, command, rest = group.resolve_command(ctx, list(args))
        return command.make_context(name, rest, parent=ctx)


def test_parse_rejects_what_the_shell_would_reject():
    assert parse(["worker", "--study", "s", "--device", "cuda"]).params["device"] == "cuda"
    for bad in (["worker", "--studdy", "s"], ["work", "--study", "s"], ["run"], ["worker", "--threads", "four"]):
        with pytest.raises(UsageError):
            parse(bad)


def test_slurm_script_parses_and_starts_one_worker_per_gpu():
    subprocess.run(["bash", "-n", str(SLURM)], check=True)
    text = SLURM.read_text()
    assert "#SBATCH --gres=gpu:1" in text and re.search(r"#SBATCH --array=\d+-\d+", text)
    commands = vaebench_commands(text)
    assert [c[0] for c in commands] == ["run", "worker"]
    create, work = (parse(c).params for c in commands)
    assert create["workers"] == 0 and create["storage"] == "<VAEBENCH_STORAGE>"
    assert work["device"] == "cuda" and work["storage"] == "<VAEBENCH_STORAGE>" and work["threads"] == 4
    spec = parse_spec(yaml.safe_load((Path(__file__).resolve().parents[2] / create["spec_path"]).read_text()))
    assert work["study"] == spec.study  # the workers join the study the spec creates
    # SIGTERM ahead of the time limit, to the batch shell, which the worker replaces (exec): it checkpoints
    assert re.search(r"^#SBATCH --signal=B:TERM@\d+$", text, re.M) and re.search(r"^exec vaebench worker", text, re.M)


def test_k8s_manifest_gives_the_worker_sigterm_and_time_to_checkpoint():
    _, job = yaml.safe_load_all(K8S.read_text())
    pod = job["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= 30
    assert "&& exec vaebench worker" in pod["containers"][0]["args"][0]  # the worker is PID 1: it gets SIGTERM
    ignored = [r for r in job["spec"]["podFailurePolicy"]["rules"] if r["action"] == "Ignore" and "onExitCodes" in r]
    assert [r["onExitCodes"]["values"] for r in ignored] == [[PREEMPTED_EXIT_CODE]]


def test_k8s_manifest_loads_and_starts_one_worker_per_gpu():
    config_map, job = yaml.safe_load_all(K8S.read_text())
    assert (config_map["kind"], job["kind"], job["apiVersion"]) == ("ConfigMap", "Job", "batch/v1")
    spec = parse_spec(yaml.safe_load(config_map["data"]["sweep.yaml"]))
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert job["spec"]["parallelism"] >= 1 and "completions" not in job["spec"]
    assert container["command"] == ["/bin/sh", "-c"]
    commands = vaebench_commands(container["args"][0])
    assert [c[0] for c in commands] == ["run", "worker"]
    create, work = (parse(c).params for c in commands)
    assert create["workers"] == 0 and work["device"] == "cuda" and work["study"] == spec.study
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert str(create["spec_path"]).startswith(mounts["spec"] + "/")
    assert str(create["spec_path"]).endswith(tuple(config_map["data"]))
    assert {e["name"] for e in container["env"]} >= {"VAEBENCH_STORAGE", "VAEBENCH_DATA_ROOT"}
