"""What a sweep shows while it runs, as an interface: the sweep says what happens, the display its
caller passes decides how that looks. `vaebench run` and `vaebench worker` pass terminal displays
(cli/display.py), `vaebench.run` a console one (quiet by default); `NoDisplay` shows nothing.

The sweep calls, in order: `note` and `study` (what it is about to do), then either `worker_here`
(one worker in this process: a `Reporter` for its runs) and `worker_done`, or `workers` (worker
processes: their output lines and, when `reads_storage`, the study's status every 2 s) and
`worker_ended` for each that ended abnormally; last `finished`. A joining worker (`join_study`)
calls `joined` before its first trial.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, ContextManager, Iterator, Protocol

if TYPE_CHECKING:
    import torch

    from ..engine.execute import Reporter
    from .study import StudyStatus
    from .worker import WorkerSummary


class WorkersView(Protocol):
    """The display of this machine's worker processes."""

    def line(self, text: str) -> None:
        """One output line of a worker process, labelled ("[w1 pid 1234] ...")."""

    def status(self, status: "StudyStatus") -> None:
        """The study as its storage holds it (read every 2 s while the workers run)."""


class SweepDisplay(Protocol):
    # whether the display shows progress read from the study storage: only then is the storage
    # polled while worker processes run (reading it takes CPU from the workers)
    reads_storage: bool

    def note(self, text: str) -> None:
        """A line of information (a choice the sweep made for the caller)."""

    def study(self, name: str, text: str) -> None:
        """What the sweep found and will do: the study `name`, then `text` (runs, data, storage, layout)."""

    def joined(self, study: str, storage: str, threads: int, device: "torch.device") -> None:
        """A worker in this process joined `study` (in the storage described by `storage`)."""

    def worker_here(self, total: int, done: int) -> ContextManager["Reporter"]:
        """The runs of the one worker in this process: `total` runs, `done` of them already done."""

    def worker_done(self, summary: "WorkerSummary") -> None:
        """What the worker in this process did."""

    def workers(self) -> ContextManager[WorkersView]:
        """While this machine's worker processes run."""

    def worker_ended(self, label: str, code: int) -> None:
        """Worker process `label` (w1, w2, ...) ended with the non-zero exit code `code` (negative:
        killed by that signal)."""

    def finished(self, status: "StudyStatus", seconds: float) -> None:
        """The study's status once the sweep ends, and the sweep's wall time in seconds."""


class _NoWorkersView:
    def line(self, text: str) -> None: ...

    def status(self, status: "StudyStatus") -> None: ...


class NoDisplay:
    """Shows nothing (and never asks for the storage to be polled)."""

    reads_storage = False

    def note(self, text: str) -> None: ...

    def study(self, name: str, text: str) -> None: ...

    def joined(self, study: str, storage: str, threads: int, device: "torch.device") -> None: ...

    @contextlib.contextmanager
    def worker_here(self, total: int, done: int) -> Iterator["Reporter"]:
        from ..engine.execute import Reporter

        yield Reporter()

    def worker_done(self, summary: "WorkerSummary") -> None: ...

    @contextlib.contextmanager
    def workers(self) -> Iterator[WorkersView]:
        yield _NoWorkersView()

    def worker_ended(self, label: str, code: int) -> None: ...

    def finished(self, status: "StudyStatus", seconds: float) -> None: ...
