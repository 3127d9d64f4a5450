"""A graceful stop asked by a signal: SIGTERM, as Slurm (preemption, `--signal`) and Kubernetes (pod
deletion, `terminationGracePeriodSeconds`) send before they kill, or a plain `kill`.

`install()` (in `vaebench run` and `vaebench worker`) replaces SIGTERM's default (die at once) by a
handler that only sets a flag and passes the signal on to the worker processes registered with
`forward_to` (`vaebench run`'s children: Kubernetes signals a container's PID 1 only). The training
loop reads the flag at every step boundary (`requested()`), writes the run's checkpoint and raises
`errors.Preempted`; the worker hands its trial back and the process exits with
`errors.PREEMPTED_EXIT_CODE`.

`kill_point` is a test hook, inert unless `$VAEBENCH_TEST_KILL_AT` is set: "<point>:<n>" SIGKILLs
this process the n-th time it reaches <point> (`step`: a training step boundary; `checkpoint-write`:
a checkpoint's temporary file written, not yet renamed; `before-row`: a run trained and evaluated,
its row not yet written). tests/sweep/test_preemption.py kills workers at those points.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Callable

KILL_AT_ENV = "VAEBENCH_TEST_KILL_AT"

_requested = threading.Event()
_forward: dict[int, Callable[[int], None]] = {}  # id -> send(signum)
_kill_at = os.environ.get(KILL_AT_ENV)
_reached: dict[str, int] = {}


def requested() -> bool:
    """True once this process has been asked to stop (the SIGTERM handler, or `request()`)."""
    return _requested.is_set()


def request(signum: int = signal.SIGTERM) -> None:
    """Ask this process to stop, as the SIGTERM handler does: set the flag and pass `signum` on to
    the registered worker processes."""
    _requested.set()
    for send in list(_forward.values()):
        send(signum)


def reset() -> None:
    """Forget a stop request (tests that request one in-process)."""
    _requested.clear()


def install() -> None:
    """Make SIGTERM set the stop flag (and be passed on) instead of ending the process. Main thread only."""
    signal.signal(signal.SIGTERM, lambda signum, frame: request(signum))


def forward_to(key: int, send: Callable[[int], None]) -> None:
    """Pass every later stop request on with `send(signum)` (until `stop_forwarding(key)`); at once
    if one has been made already."""
    _forward[key] = send
    if requested():
        send(signal.SIGTERM)


def stop_forwarding(key: int) -> None:
    _forward.pop(key, None)


def kill_point(point: str) -> None:
    """Test hook (see the module docstring); a no-op unless $VAEBENCH_TEST_KILL_AT names `point`."""
    if _kill_at is None or not _kill_at.startswith(point + ":"):
        return
    _reached[point] = _reached.get(point, 0) + 1
    if _reached[point] == int(_kill_at.rsplit(":", 1)[1]):
        os.kill(os.getpid(), signal.SIGKILL)
