"""The one time-left model (sweep/eta.py), and the two views that use it agreeing: the study's
status from the storage and the clock of the worker in this process."""

import pytest

from vaebench.cli import progress
from vaebench.cli.progress import RunClock
from vaebench.sweep.eta import projected_seconds, time_left
from vaebench.sweep.study import StudyStatus


def test_time_left():
    assert time_left(0, None, []) == 0.0 and time_left(3, None, [5.0]) is None
    assert time_left(3, 10.0, []) == 30.0
    assert time_left(3, 10.0, [4.0]) == 2 * 10 + 6  # the running one's rest, then two more
    assert time_left(3, 10.0, [4.0, 12.0], workers=2) == (10 + 6 + 0) / 2  # an overdue trial: nothing left of it
    assert projected_seconds(6.0, 2, 10) == 30.0 and projected_seconds(6.0, 0, 10) is None


def test_the_study_view_and_the_worker_clock_agree(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    clock = RunClock()
    clock.trial_start(epochs=10)
    now[0] += 8.0
    clock.epoch()
    clock.epoch()  # 2 epochs of 10 in 8 s: a 40-s trial
    status = StudyStatus(
        "s", "grid", 4, 1, 0, 0, 0, [(1, "abc", "host:1:1", 8.0)], 2, None, [], [(2, 50.0)], epochs_per_trial=10
    )
    assert status.eta_basis == "epochs"
    assert clock.eta(3) == status.eta_seconds == pytest.approx(32 + 2 * 40)
