"""The sweep's display interface (sweep/display.py): what `run_sweep` tells the display its caller
passes, in order, for a worker in this process and for `workers=0`; and the terminal display's
lines when output is piped."""

import contextlib
import io

from rich.console import Console

from tests.conftest import TINY_SPEC
from vaebench.cli.display import RunDisplay
from vaebench.sweep.run import run_sweep

SPEC = {
    **TINY_SPEC,
    "study": "shown",
    "grid": {"objective.beta": [1.0]},
    "seeds": [0],
    "train": {"epochs": 2, "batch_size": 128},
    "eval": {"fid_extractor": None, "nll_examples": 20, "nll_k": 2},
}


class Recorder:
    """A SweepDisplay that records what it is told."""

    reads_storage = False

    def __init__(self):
        self.events = []

    def note(self, text):
        self.events.append(("note", text))

    def study(self, name, text):
        self.events.append(("study", name))

    def joined(self, study, storage, threads, device):
        self.events.append(("joined", study))

    @contextlib.contextmanager
    def worker_here(self, total, done):
        self.events.append(("worker_here", total, done))
        events = self.events

        class Reporter:
            def trial_start(self, number, run_id, config, seed, labels=None):
                events.append(("trial_start", run_id, seed, labels))

            def epoch(self, record):
                events.append(("epoch", record["epoch"]))

            def evaluating(self, metric):
                events.append(("evaluating", metric))

            def trial_end(self, row):
                events.append(("trial_end", row["run_id"], row["status"]))

        yield Reporter()

    def worker_done(self, summary):
        self.events.append(("worker_done", len(summary.complete)))

    @contextlib.contextmanager
    def workers(self):
        raise AssertionError("one worker runs in this process")

    def worker_ended(self, label, code):
        self.events.append(("worker_ended", label, code))

    def finished(self, status, seconds):
        self.events.append(("finished", status.done, status.total))


def test_run_sweep_tells_its_display_what_happens(tmp_path):
    """In order: the run's start with its cell, its epochs, then each metric as its evaluation starts
    (every registered metric, in the registry's order), its end."""
    from vaebench.metrics import METRICS

    shown = Recorder()
    final, ok = run_sweep(SPEC, workers=1, results=tmp_path, display=shown, device="cpu")
    assert ok and final.done == final.total == 1
    [run_id] = {e[1] for e in shown.events if e[0] == "trial_start"}
    assert shown.events == [
        ("study", "shown"),
        ("joined", "shown"),
        ("worker_here", 1, 0),
        ("trial_start", run_id, 0, {"objective.beta": 1.0}),
        ("epoch", 1),
        ("epoch", 2),
        *[("evaluating", name) for name in METRICS.names()],
        ("trial_end", run_id, "ok"),
        ("worker_done", 1),
        ("finished", 1, 1),
    ]
    again = Recorder()  # a resume: nothing left to run
    run_sweep(SPEC, workers=1, results=tmp_path, display=again, device="cpu")
    assert again.events == [
        ("study", "shown"),
        ("joined", "shown"),
        ("worker_here", 1, 1),
        ("worker_done", 0),
        ("finished", 1, 1),
    ]
    created = Recorder()
    run_sweep({**SPEC, "study": "other"}, workers=0, results=tmp_path, display=created, device="cpu")
    assert created.events == [("study", "other")]


def test_run_sweep_without_a_display_shows_nothing(tmp_path, capsys):
    final, ok = run_sweep(SPEC, workers=1, results=tmp_path, device="cpu")
    assert ok and final.done == 1
    assert capsys.readouterr() == ("", "")


def test_the_terminal_display_piped_prints_plain_lines(tmp_path):
    out = io.StringIO()
    run_sweep(SPEC, workers=1, results=tmp_path, display=RunDisplay(Console(file=out, soft_wrap=True)), device="cpu")
    text = out.getvalue()
    assert "\x1b" not in text
    lines = text.splitlines()
    assert lines[0].startswith("study shown: 1 runs (1 cells x 1 seeds), 0 already done; dataset digits")
    assert lines[1].startswith("[1/1] trial 0 run ") and " beta=1, seed 0: -ELBO " in lines[1]
    assert lines[2] == "this worker: 1 complete, 0 pruned, 0 failed (diverged), 0 crashed"
    assert lines[3].startswith("study shown (grid): 1/1 done — 1 complete, 0 pruned, 0 failed (diverged); 0 running")
    assert lines[4].startswith("wall time ")
