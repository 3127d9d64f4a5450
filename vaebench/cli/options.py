"""The options the commands share (typer Option declarations with their environment variables and
help) and the error exits: a VaebenchError or a bad combination of options prints one line and
exits with its code (2 for bad input), before anything is written."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ..data import DATA_ROOT_ENV
from ..errors import INTERRUPTED_EXIT_CODE, DataError, VaebenchError
from ..results.rows import RESULTS_ROOT_ENV
from ..runtime.device import DEVICE_ENV
from ..sweep.storage import DEFAULT_HEARTBEAT, GRACE_HEARTBEATS, HEARTBEAT_ENV, STORAGE_ENV

console = Console(stderr=True, soft_wrap=True)  # long lines stay whole in logs

DataRoot = typer.Option(None, "--data-root", help=f"dataset folder (else ${DATA_ROOT_ENV}, else ./data)")
ResultsRoot = typer.Option(None, "--results", help=f"results folder (else ${RESULTS_ROOT_ENV}, else ./results)")


Overrides = typer.Argument(
    None,
    metavar="KEY=VALUE",
    show_default=False,
    help="overrides of the spec's keys, Hydra style, each value YAML: train.epochs=3 seeds=[0] "
    "'grid.objective.beta=[1,4]' study=my_try (they change the study's identity: see docs/commands.md)",
)

Plugins = typer.Option(
    None,
    "--plugin",
    metavar="MODULE",
    help="import this plugin module first (it registers models, datasets or metrics); repeatable",
)


def load_plugin_options(modules: Optional[list[str]]) -> None:
    """The installed plugins and the --plugin modules, imported before anything reads a spec or a
    registry (exit 2 on failure, naming the plugin; an installed one's distribution and entry point):
    the first statement of every command, before its own imports (some modules read a registry
    when they are imported). Nothing at import time loads them, so `--help` and `--version` work
    whatever is installed."""
    from ..plugins import load_installed_plugins, load_plugins

    try:
        load_installed_plugins()
        load_plugins(modules or [], "--plugin")
    except VaebenchError as e:
        fail(e)


def fail(e: VaebenchError) -> None:
    from rich.markup import escape  # the message is plain text: `vaebench[mlflow]` is no markup

    console.print(f"[bold red]error:[/] {escape(str(e))}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(e.exit_code)


def preempted(e: VaebenchError) -> None:
    """A stop request (SIGTERM) was obeyed: say where the run stopped, exit PREEMPTED_EXIT_CODE (3)."""
    console.print(
        f"[yellow]preempted:[/] {e}; `vaebench run` again, or any worker, resumes it", highlight=False, soft_wrap=True
    )
    raise typer.Exit(e.exit_code)


def this_command() -> str:
    """This process's command line as the user can type it again (`vaebench ...`, arguments quoted)."""
    return shlex.join(["vaebench", *sys.argv[1:]])


def interrupted(started_by_run: bool = False) -> None:
    """Ctrl-C (KeyboardInterrupt) in `vaebench run` or `vaebench worker`: the finished rows are
    written (each atomically), the interrupted trial is failed and retried by the next run or worker;
    say so and the command that resumes, and exit INTERRUPTED_EXIT_CODE (130). A worker started by
    `vaebench run` leaves the command to its parent."""
    how = (
        "the `vaebench run` that started this worker says how to resume"
        if started_by_run
        else f"resume with: {this_command()}"
    )
    console.print(
        f"[yellow]interrupted[/]: finished runs are kept; the interrupted ones run again "
        f"(from their last checkpoint, if any); {how}",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(INTERRUPTED_EXIT_CODE)


def bad_usage(message: str) -> None:
    """Options that do not fit together: bad input, exit code 2, nothing written."""
    console.print(f"[bold red]error:[/] {message}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


Track = typer.Option(
    None,
    "--track",
    metavar="URI",
    help="mirror each run to a tracker, over the spec's `tracking:` section: an MLflow tracking URI "
    "(sqlite:///mlflow.db, http://HOST:PORT, mlflow:URI; experiment = the study) or tensorboard:DIR; "
    "repeatable; `none` turns tracking off",
)
StorageUrl = typer.Option(
    None,
    "--storage",
    envvar=STORAGE_ENV,
    help="study storage URL: postgresql://USER@HOST:PORT/DB for many machines, sqlite:///PATH for one "
    "process; default: the embedded journal results/<study>/journal.log",
)
Heartbeat = typer.Option(
    DEFAULT_HEARTBEAT,
    "--heartbeat",
    envvar=HEARTBEAT_ENV,
    min=1,
    help=f"seconds between heartbeats of a running trial on PostgreSQL; a trial silent for {GRACE_HEARTBEATS} is "
    "failed and retried",
)
Threads = typer.Option(None, "--threads", min=1, help="torch threads per worker (default: cores / workers)")
Device = typer.Option(None, help=f"auto | cpu | cuda[:N] (else ${DEVICE_ENV}, else auto)")
Download = typer.Option(True, help="download a missing dataset when the network allows")
InceptionWeights = typer.Option(
    None,
    "--inception-weights",
    help="local Inception-v3 weights for eval.fid_extractor: inception "
    "(else $VAEBENCH_INCEPTION_WEIGHTS, else torch-fidelity downloads them)",
)
LpipsWeights = typer.Option(
    None,
    "--lpips-weights",
    help="local torchvision ImageNet weights of the LPIPS backbone (eval.lpips.net, "
    "e.g. alexnet-owt-7be5be79.pth) (else $VAEBENCH_LPIPS_WEIGHTS, else torchvision's cache; never downloaded)",
)
Quiet = typer.Option(False, "--quiet", "-q", help="no progress bars")


def set_inception_weights(path: Optional[Path]) -> None:
    if path is not None:
        from ..metrics.fid_features import INCEPTION_WEIGHTS_ENV

        if not path.is_file():
            fail(DataError(f"--inception-weights {path}: no such file"))
        os.environ[INCEPTION_WEIGHTS_ENV] = str(path.resolve())


def set_lpips_weights(path: Optional[Path]) -> None:
    if path is not None:
        from ..metrics.perceptual import LPIPS_WEIGHTS_ENV

        if not path.is_file():
            fail(DataError(f"--lpips-weights {path}: no such file"))
        os.environ[LPIPS_WEIGHTS_ENV] = str(path.resolve())
