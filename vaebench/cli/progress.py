"""What a sweep shows on an interactive terminal: rich progress columns and lines, fed by the worker
in this process or, for `vaebench run --workers N`, by the study storage. Piped or redirected output
gets none of this (the Progress is disabled there): only plain lines, with no control characters.

- `TimeLeftColumn`: the estimated time left of a task, from its `eta` field (seconds), which the
  code that knows sets: `RunClock` for the worker in this process, the storage poll
  (`StudyStatus.eta_seconds`) for worker processes. Rich's own TimeRemainingColumn divides by the
  speed of the last 30 s, which has no sample while a trial of several minutes runs.
- `RunClock`: the time left of one worker's runs, from its mean trial time, or before its first
  trial ends, from the epochs of the current one.
- `RichReporter`: the progress of the worker in this process (runs done, the current run's cell and
  epochs, then the metric it is being evaluated on) and one line per finished run.
- `WorkerLines`: one line per worker process (its running trial's cell, epochs and last test -ELBO,
  read from the trial's intermediate values in the storage, or the metric its run is being evaluated
  on), labelled as the relayed output is (w1, w2, ...).
- `cell_label`: how a run's cell is named on every line ("beta=4, seed 1").
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


def cell_label(labels: Optional[dict], seed: Optional[int]) -> str:
    """A run's cell as the terminal names it: its grid values by the last part of their key (the
    whole key where two would read the same), then its seed: "beta=4, seed 1"."""
    labels = labels or {}
    short = [k.rsplit(".", 1)[-1] for k in labels]
    names = short if len(set(short)) == len(short) else list(labels)
    parts = [f"{n}={v:g}" if isinstance(v, float) else f"{n}={v}" for n, v in zip(names, labels.values())]
    if seed is not None:
        parts.append(f"seed {seed}")
    return ", ".join(parts)


def evaluating_text(metric: str) -> str:
    """What a run's line says while its trained model is evaluated on `metric` (a registered metric)."""
    return f"evaluating {metric}"


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
    """Time left of one worker's runs: its mean trial time (trials it trained and evaluated, from
    start to end), or before its first trial ends, the current trial's epochs so far projected to its
    epochs (training only: no evaluation has been timed yet); what is left of the current trial plus
    that for each run after it. While the first trial is evaluated, its own time left is unknown."""

    def __init__(self) -> None:
        self.trial_seconds: list[float] = []
        self.started: Optional[float] = None
        self.epochs = 0  # of the current trial
        self.done = 0  # its epochs finished
        self.evaluating = False  # the current trial's training is over

    def trial_start(self, epochs: int) -> None:
        self.started, self.epochs, self.done, self.evaluating = time.monotonic(), epochs, 0, False

    def epoch(self) -> None:
        self.done += 1

    def evaluation(self) -> None:
        """The current trial's model is being evaluated (its training is over)."""
        self.evaluating = True

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
        elif self.evaluating:  # training is timed, its evaluation not yet: no estimate that counts it
            per_trial = None
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

    def trial_start(self, number, run_id, config, seed, labels=None) -> None:
        self.cell = cell_label(labels, seed)
        self.clock.trial_start(config.train.epochs)
        self.p.reset(
            self.epochs, total=config.train.epochs, description=f"run {run_id} {self.cell}", visible=True, eta=None
        )

    def epoch(self, record: dict) -> None:
        self.clock.epoch()
        self.p.update(
            self.epochs,
            advance=1,
            description="{}: epoch {} {} loss {:.2f}".format(self.cell, record["epoch"], *selection_loss(record)),
            eta=self.clock.eta(1),
        )
        self._update_eta()

    def evaluating(self, metric: str) -> None:
        self.clock.evaluation()
        self.p.update(self.epochs, description=f"{self.cell}: {evaluating_text(metric)}", eta=self.clock.eta(1))
        self._update_eta()

    def note(self, text: str) -> None:
        """A checkpoint resumed from or ignored (and why): one plain line."""
        self.p.console.print(text, highlight=False, markup=False)

    def trial_end(self, row: dict) -> None:
        self.clock.trial_end()
        self.p.update(self.runs, advance=1)
        self._update_eta()
        done, total = int(self.p.tasks[self.runs].completed), int(self.p.tasks[self.runs].total or 0)
        cell = cell_label({k: row[grid_column(k)] for k in row["grid_keys"]}, row["seed"])
        count = f"[{done}/{total}] " if total else ""
        head = f"{count}trial {row.get('trial_number', '?')} run {row['run_id']} {cell}:"
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
    trial of each worker (the one its lease names), its cell, its epochs done of the spec's epochs and
    last test -ELBO, or once trained the metric it is being evaluated on, and the time left of that
    trial (the mean trial time, evaluation included, once a trial has completed; before that its
    training projected from its epochs, and unknown during its evaluation). Workers are labelled as in their relayed
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
        cells = status.running_cells or [({}, None)] * len(status.running)
        metrics = status.running_evaluating or [None] * len(status.running)
        for (number, run_id, lease, secs), (done, loss), (labels, seed), metric in zip(
            status.running, status.running_epochs, cells, metrics
        ):
            label = self._label(lease)
            seen.add(label)
            cell = cell_label(labels, seed)
            desc = f"  {label}: trial {number} run {run_id}" + (f" {cell}" if cell else "")
            if metric is not None:
                desc += f": {evaluating_text(metric)}"
            else:
                desc += f": epoch {done}/{epochs or '?'}" + (f", test -ELBO {loss:.2f}" if loss is not None else "")
            if status.mean_trial_seconds is not None:  # a whole trial's time, its evaluation included
                eta = max(status.mean_trial_seconds - secs, 0.0)
            elif metric is None and done and epochs:  # training only, projected from its epochs
                eta = secs * (epochs - done) / done
            else:
                eta = None
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
