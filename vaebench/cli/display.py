"""The terminal displays of a sweep (the `SweepDisplay` interface of sweep/display.py), on a rich
Console: `RunDisplay` for `vaebench run` and `vaebench.run` (progress bars and worker lines on an
interactive terminal; plain lines when piped, nothing when quiet), `WorkerDisplay` for `vaebench
worker` (plain lines: `vaebench run` relays them). Also what `vaebench run` says when its sweep is
not finished (`unfinished_message`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from typing import Iterator, Optional

from rich.console import Console
from rich.progress import Progress

from ..runtime.device import CUDA_VISIBLE_ENV
from ..sweep.launch import WORKER_LABEL_ENV
from .progress import RichReporter, WorkerLines, duration, print_status, sweep_progress


class _WorkersView:
    """The runs task of a `vaebench run` with worker processes (its totals from the storage), one
    line per worker (WorkerLines), and the workers' relayed output lines as they are."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("runs", total=None, eta=None)
        self.lines = WorkerLines(progress)

    def line(self, text: str) -> None:
        self.lines.note(text)
        self.progress.console.print(text, highlight=False, markup=False)

    def status(self, status) -> None:
        self.progress.update(
            self.task,
            total=status.total,
            completed=status.done,
            eta=status.eta_seconds,
            description=f"runs ({len(status.running)} running, {status.waiting} waiting)",
        )
        self.lines.update(status)


def live(console: Console) -> bool:
    """Whether `console` can show live progress bars: an interactive terminal, or a Jupyter notebook
    with ipywidgets installed (rich draws its bars in a widget there; without one it would only warn)."""
    if console.is_terminal:
        return True
    return console.is_jupyter and importlib.util.find_spec("ipywidgets") is not None


class RunDisplay:
    """`vaebench run` on `console`: progress bars only where they can be live (`live`: an
    interactive terminal, a notebook with ipywidgets) and not `quiet`; the lines (each finished run,
    the summaries) wherever the console writes."""

    def __init__(self, console: Console, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.live = not quiet and live(console)
        self.reads_storage = self.live

    def note(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def study(self, name: str, text: str) -> None:
        self.console.print(f"study [bold]{name}[/]: {text}", highlight=False)

    def joined(self, study: str, storage: str, threads: int, device) -> None: ...

    @contextlib.contextmanager
    def worker_here(self, total: int, done: int) -> Iterator[RichReporter]:
        with sweep_progress(self.console, disable=not self.live) as progress:
            yield RichReporter(progress, total, done)

    def worker_done(self, summary) -> None:
        self.console.print(
            f"this worker: {len(summary.complete)} complete, {len(summary.pruned)} pruned, "
            f"{len(summary.failed)} failed (diverged), {len(summary.crashed)} crashed"
        )
        for err in summary.crashed:
            self.console.print(
                f"[red]error in run {err}[/] (will be retried by the next `vaebench run`)", highlight=False
            )

    @contextlib.contextmanager
    def workers(self) -> Iterator[_WorkersView]:
        with sweep_progress(self.console, disable=not self.reads_storage) as progress:
            yield _WorkersView(progress)

    def worker_ended(self, label: str, code: int) -> None:
        why = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        self.console.print(f"[yellow]worker {label} ended abnormally ({why})[/]", highlight=False)

    def finished(self, status, seconds: float) -> None:
        print_status(status, self.console)
        self.console.print(f"wall time {duration(seconds)}", highlight=False)


class WorkerDisplay(RunDisplay):
    """`vaebench worker`: plain lines only (its start, each finished run, its summary)."""

    def __init__(self, console: Console) -> None:
        super().__init__(console, quiet=True)

    def joined(self, study: str, storage: str, threads: int, device) -> None:
        label = os.environ.get(WORKER_LABEL_ENV, "")
        gpu = (
            f" ({CUDA_VISIBLE_ENV}={os.environ[CUDA_VISIBLE_ENV]})"
            if device.type == "cuda" and CUDA_VISIBLE_ENV in os.environ
            else ""
        )
        self.console.print(
            f"worker {label} pid {os.getpid()} on study {study} ({storage}), {threads} torch thread(s), "
            f"device {device}{gpu}",
            highlight=False,
        )

    @contextlib.contextmanager
    def worker_here(self, total: int, done: int) -> Iterator[RichReporter]:
        with Progress(console=self.console, disable=True) as progress:
            yield RichReporter(progress, 0, 0)

    def worker_done(self, summary) -> None:
        self.console.print(
            f"worker done: {len(summary.complete)} complete, {len(summary.pruned)} pruned, "
            f"{len(summary.failed)} failed (diverged), {len(summary.crashed)} crashed"
        )
        for err in summary.crashed:
            self.console.print(f"error in run {err}", highlight=False)


def unfinished_message(final, ok: bool) -> Optional[str]:
    """What `vaebench run` says when its sweep is not finished (None: it is): that the rest is in
    other workers' hands (a joined `vaebench worker` still runs it), or how to resume."""
    if ok and final.done >= final.total:
        return None
    if ok and final.running and final.waiting == 0 and final.done + len(final.running) >= final.total:
        n = len(final.running)  # this command's workers found nothing left to claim
        return (
            f"[yellow]the sweep is not finished[/]: {n} run{'s' * (n > 1)} still running in other workers "
            f"(`vaebench status --study {final.study}` follows {'them' if n > 1 else 'it'})"
        )
    return (
        "[yellow]the sweep is not finished[/]: `vaebench run` it again to resume "
        "(finished runs are kept, crashed ones are retried)"
    )
