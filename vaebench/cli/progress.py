"""What a sweep shows on an interactive terminal: rich progress columns and lines, fed by the worker
in this process or, for `vaebench run --workers N`, by the study storage. Piped or redirected output
gets none of this (the Progress is disabled there): only plain lines, with no control characters.

- `TimeLeftColumn`: the estimated time left of a task, from its `eta` field (seconds), which the
  code that knows sets: `RunClock` for the worker in this process, the storage poll
  (`StudyStatus.eta_seconds`) for worker processes. Rich's own TimeRemainingColumn divides by the
  speed of the last 30 s, which has no sample while a trial of several minutes runs.
- `RunClock`: the time left of one worker's runs, from its mean trial time, or before its first
  trial ends, from the epochs of the current one.
- `RichReporter`: the progress of the worker in this process (runs done, the current run's epochs)
  and one line per finished run.
- `WorkerLines`: one line per worker process (its running trial's epochs and last test -ELBO, read
  from the trial's intermediate values in the storage), labelled as the relayed output is (w1, w2, ...).
"""

from __future__ import annotations

import re
import time
from typing import Optional

from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from ..results.fields import selection_loss
from ..results.rows import grid_column
from ..results.status import RunStatus
from ..sweep.eta import projected_seconds, time_left


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s" if m else f"{s} s"


class TimeLeftColumn(ProgressColumn):
    """'≈ 3 min 20 s left' from the task's `eta` field (seconds); 'time left ?' while unknown."""

    def render(self, task: Task) -> Text:
        if task.finished:
            return Text("")
        eta = task.fields.get("eta")
        text = "time left ?" if eta is None else f"≈ {duration(eta)} left"
        return Text(text, style="progress.remaining")


def sweep_progress(console, disable: bool) -> Progress:
    """The Progress of `vaebench run`: description, bar, done/total, elapsed, estimated time left."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeLeftColumn(),
        console=console,
        disable=disable,
    )


class RunClock:
    """Time left of one worker's runs: its mean trial time (trials it trained, from start to end),
    or before its first trial ends, the current trial's epochs so far projected to its epochs
    (training only: the evaluation is not known yet); what is left of the current trial plus that
    for each run after it."""

    def __init__(self) -> None:
        self.trial_seconds: list[float] = []
        self.started: Optional[float] = None
        self.epochs = 0  # of the current trial
        self.done = 0  # its epochs finished

    def trial_start(self, epochs: int) -> None:
        self.started, self.epochs, self.done = time.monotonic(), epochs, 0

    def epoch(self) -> None:
        self.done += 1

    def trial_end(self) -> None:
        if self.started is not None:
            self.trial_seconds.append(time.monotonic() - self.started)
        self.started = None

    def eta(self, runs_left: int) -> Optional[float]:
        """Seconds left for `runs_left` runs (the running one included), or None while unknown
        (sweep/eta.py: the model the storage's view of a study uses too)."""
        running = [time.monotonic() - self.started] if self.started is not None else []
        if self.trial_seconds:
            per_trial = sum(self.trial_seconds) / len(self.trial_seconds)
        else:
            per_trial = projected_seconds(running[0], self.done, self.epochs) if running else None
        return time_left(runs_left, per_trial, running)


class RichReporter:
    """Shows runs done / total with the estimated time left, and the epochs of the current run."""

    def __init__(self, progress: Progress, total_runs: int, done: int) -> None:
        self.p = progress
        self.clock = RunClock()
        self.runs = progress.add_task("runs", total=total_runs, completed=done, eta=None)
        self.epochs = progress.add_task("epochs", total=1, visible=False, eta=None)

    def _update_eta(self) -> None:
        task = self.p.tasks[self.runs]
        self.p.update(self.runs, eta=self.clock.eta(int((task.total or 0) - task.completed)))

    def trial_start(self, number, run_id, config, seed) -> None:
        desc = f"run {run_id} seed {seed}"
        self.clock.trial_start(config.train.epochs)
        self.p.reset(self.epochs, total=config.train.epochs, description=desc, visible=True, eta=None)

    def epoch(self, record: dict) -> None:
        self.clock.epoch()
        self.p.update(
            self.epochs,
            advance=1,
            description="epoch {} {} loss {:.2f}".format(record["epoch"], *selection_loss(record)),
            eta=self.clock.eta(1),
        )
        self._update_eta()

    def note(self, text: str) -> None:
        """A checkpoint resumed from or ignored (and why): one plain line."""
        self.p.console.print(text, highlight=False, markup=False)

    def trial_end(self, row: dict) -> None:
        self.clock.trial_end()
        self.p.update(self.runs, advance=1)
        self._update_eta()
        done, total = int(self.p.tasks[self.runs].completed), int(self.p.tasks[self.runs].total or 0)
        cell = " ".join(f"{k}={row[grid_column(k)]}" for k in row["grid_keys"])
        count = f"[{done}/{total}] " if total else ""
        head = f"{count}trial {row.get('trial_number', '?')} run {row['run_id']} {cell} seed {row['seed']}:"
        if row["status"] == RunStatus.OK:
            self.p.console.print(
                f"{head} -ELBO {row['neg_elbo']:.2f} nats, KL {row['kl']:.2f}, recon MSE {row['recon_mse']:.4f}; "
                f"train {row['train_seconds']:.0f} s, eval {row['eval_seconds']:.1f} s",
                highlight=False,
            )
        else:
            self.p.console.print(f"{head} [yellow]{row['status']}:[/] {row['reason']}", highlight=False)


def print_status(st, console) -> None:
    """One line of a `StudyStatus`'s progress counts plus the estimate of the time left."""
    eta = st.eta_seconds
    eta_text = "unknown until a trial has finished an epoch" if eta is None else duration(eta)
    if eta and st.eta_basis == "epochs":
        eta_text += " (from the epochs done so far, training only: no trial has completed yet)"
    console.print(
        f"study [bold]{st.study}[/] ({st.sampler}): {st.done}/{st.total} done — {st.complete} complete, "
        f"{st.pruned} pruned, {st.failed} failed (diverged); {len(st.running)} running, {st.waiting} waiting, "
        f"{st.crashed} crashed/stale (retried); time left ≈ {eta_text}",
        highlight=False,
    )


_RELAYED = re.compile(r"^\[(?P<label>[^\] ]+) pid (?P<pid>\d+)\] ")


class WorkerLines:
    """One progress line per worker process, updated from a `StudyStatus` of the study: the running
    trial of each worker (the one its lease names), its epochs done of the spec's epochs, its last
    test -ELBO and the projected time left of that trial. Workers are labelled as in their relayed
    output ("[w1 pid 1234] ..." -> w1; `note` reads those lines); a worker of another machine by its
    lease (host:pid)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.labels: dict[int, str] = {}  # pid -> label
        self.tasks: dict[str, int] = {}  # label -> task id
        self.trial: dict[str, int] = {}  # label -> the trial number its line shows

    def note(self, line: str) -> None:
        """Learn a worker's label from one relayed output line."""
        m = _RELAYED.match(line)
        if m:
            self.labels.setdefault(int(m["pid"]), m["label"])

    def _label(self, lease: str) -> str:
        from ..sweep.leases import lease_pid

        try:
            pid = lease_pid(lease)
        except ValueError:  # not a lease token
            pid = None
        if pid is None:
            return lease
        return self.labels.get(pid, f"pid {pid}")

    def update(self, status) -> None:
        seen = set()
        epochs = status.epochs_per_trial or None
        for (number, run_id, lease, secs), (done, loss) in zip(status.running, status.running_epochs):
            label = self._label(lease)
            seen.add(label)
            desc = f"  {label}: trial {number} run {run_id} epoch {done}/{epochs or '?'}"
            if loss is not None:
                desc += f", test -ELBO {loss:.2f}"
            eta = secs * (epochs - done) / done if done and epochs else None
            if label not in self.tasks:
                self.tasks[label] = self.progress.add_task(desc, total=epochs, completed=done, eta=eta)
            elif self.trial.get(label) != number:
                self.progress.reset(
                    self.tasks[label], total=epochs, completed=done, description=desc, visible=True, eta=eta
                )
            else:
                self.progress.update(
                    self.tasks[label], total=epochs, completed=done, description=desc, visible=True, eta=eta
                )
            self.trial[label] = number
        for label, task in self.tasks.items():
            if label not in seen:  # between trials, or finished
                self.progress.update(task, visible=False)
                self.trial.pop(label, None)
