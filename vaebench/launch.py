"""Several worker processes on this machine: the thread layout and the process launcher.

`vaebench run --workers N` creates the study once, then starts N `vaebench worker` processes on the
same storage; each claims trials until none is left. Torch threads per worker are chosen so that
workers x threads fits the cores (on this 2-core machine two 1-thread workers finish MLP trials
faster than one 2-thread worker: see benchmarks/worker_layout.py and its JSON).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

WORKERS_ENV = "VAEBENCH_WORKERS"
WORKER_LABEL_ENV = "VAEBENCH_WORKER_LABEL"
WAIT_SECONDS = 0.1  # how often the launcher looks whether a worker has ended


def cpu_cores() -> int:
    """Cores this process may use (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Layout:
    workers: int
    threads: int  # torch threads per worker

    def __str__(self) -> str:
        return f"{self.workers} worker{'s' * (self.workers > 1)} x {self.threads} thread{'s' * (self.threads > 1)}"


def plan_layout(workers: Optional[int], threads: Optional[int], pending: int, device_type: str,
                cores: Optional[int] = None) -> Layout:
    """The default (workers None): on CPU one single-thread worker per core, never more workers than
    pending runs; on a GPU one worker (trials would share the device). Threads default to the cores
    divided among the workers."""
    cores = cores or cpu_cores()
    if workers is None:
        workers = 1 if device_type == "cuda" else max(1, min(cores, pending))
    if threads is None:
        threads = max(1, cores // workers)
    return Layout(workers, threads)


def launch(argv: list[str], layout: Layout, emit: Callable[[str], None],
           poll: Optional[Callable[[], None]] = None, poll_seconds: float = 2.0,
           env: Optional[dict[str, str]] = None) -> list[int]:
    """Start `layout.workers` processes running `python -m vaebench.cli <argv>`, each with
    `layout.threads` threads and `env` added to this environment; pass their output lines to
    `emit`, prefixed with the worker's label; call `poll` every `poll_seconds` while they run.
    Returns their exit codes (negative: the signal that killed it) within ~0.1 s of the last one's end."""
    procs, readers = [], []
    for i in range(layout.workers):
        label = f"w{i + 1}"
        env_i = {**os.environ, **(env or {}), "OMP_NUM_THREADS": str(layout.threads), "MKL_NUM_THREADS": str(layout.threads),
               WORKER_LABEL_ENV: label, "PYTHONUNBUFFERED": "1"}
        p = subprocess.Popen([sys.executable, "-m", "vaebench.cli", *argv, "--threads", str(layout.threads)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env_i)
        procs.append(p)
        t = threading.Thread(target=_relay, args=(p, label, emit), daemon=True)
        t.start()
        readers.append(t)
    try:
        next_poll = 0.0
        while running := [p for p in procs if p.poll() is None]:  # one snapshot: a worker may end any time
            if poll is not None and time.monotonic() >= next_poll:
                poll()
                next_poll = time.monotonic() + poll_seconds
            try:
                running[0].wait(timeout=WAIT_SECONDS)  # short: any worker, not only this one, may end first
            except subprocess.TimeoutExpired:
                pass
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            p.wait()
        raise
    finally:
        for t in readers:
            t.join(timeout=5)
    if poll is not None:
        poll()
    return [p.returncode for p in procs]


def _relay(p: subprocess.Popen, label: str, emit: Callable[[str], None]) -> None:
    for line in p.stdout:
        emit(f"[{label} pid {p.pid}] {line.rstrip()}")
