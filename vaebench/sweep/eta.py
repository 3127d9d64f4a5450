"""The one model of a sweep's time left, for the storage's view of a study (`StudyStatus`) and for
the worker in this process (cli/progress.py's `RunClock`). Imports nothing: the terminal display
uses it without loading Optuna.

A trial takes `per_trial` seconds: the mean of the trials finished so far, or before any has
finished, a running trial's training projected from its epochs (`projected_seconds`; evaluation
is not in it). The time left is what remains of each running trial, plus `per_trial` for every
run not started, shared among the workers.
"""

from __future__ import annotations

from typing import Optional, Sequence


def projected_seconds(seconds: float, epochs_done: int, epochs: int) -> Optional[float]:
    """A trial's training time projected from `epochs_done` of its `epochs` taking `seconds`; None
    before its first epoch."""
    return seconds * epochs / epochs_done if epochs_done > 0 and epochs else None


def time_left(
    remaining: int, per_trial: Optional[float], running_seconds: Sequence[float], workers: int = 1
) -> Optional[float]:
    """Seconds until `remaining` runs are done (the running ones among them, each running for
    `running_seconds` so far) by `workers` parallel workers (at least one), a trial taking
    `per_trial` seconds. 0 when nothing remains; None without an estimate of a trial's time."""
    if remaining <= 0:
        return 0.0
    if per_trial is None:
        return None
    left_running = sum(max(per_trial - secs, 0.0) for secs in running_seconds)
    return (max(remaining - len(running_seconds), 0) * per_trial + left_running) / max(workers, 1)
