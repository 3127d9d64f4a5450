"""Several worker processes on this machine: the layout (workers, threads, GPUs) and the launcher.

`vaebench run --workers N` starts N `vaebench worker` processes on the study's storage (for a new
study, while it creates the study: they wait for it); each claims trials until none is left. Torch
threads per worker are chosen so that workers x threads fits the cores (benchmarks/perf.py measures
the layouts: benchmarks/results/perf.json, key "layout"; see benchmarks/README.md). On CUDA each worker sees only its own GPU (CUDA_VISIBLE_DEVICES set per process,
mapped onto an existing list): one worker per GPU, or `--workers-per-gpu K` sharing each GPU
between K workers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence

import torch

from ..runtime import stop
from ..runtime.device import CUDA_VISIBLE_ENV, cpu_cores, gpu_slots

WORKERS_ENV = "VAEBENCH_WORKERS"  # what `vaebench run --workers` defaults to
# the tracking settings (JSON) `vaebench run` resolved from its spec and --track, for its worker
# processes: they take it instead of the stored spec's `tracking:` (join.worker_tracking)
TRACKING_ENV = "VAEBENCH_TRACKING"
WORKER_LABEL_ENV = "VAEBENCH_WORKER_LABEL"  # w1, w2, ...: each worker process's label (`worker_env`)
COMMAND_ENV = "VAEBENCH_COMMAND"  # set by `vaebench run --workers N` for its worker processes: the rows' command
WAIT_SECONDS = 0.1  # how often the launcher looks whether a worker has ended


@dataclass(frozen=True)
class Layout:
    workers: int
    threads: int  # torch threads per worker
    gpus: tuple[str, ...] = ()  # CUDA: each worker's CUDA_VISIBLE_DEVICES entry, in worker order; CPU: ()

    def __str__(self) -> str:
        text = f"{self.workers} worker{'s' * (self.workers > 1)} x {self.threads} thread{'s' * (self.threads > 1)}"
        if self.gpus:
            distinct = list(dict.fromkeys(self.gpus))
            per = -(-self.workers // len(distinct))
            text += (
                f" on {len(distinct)} GPU{'s' * (len(distinct) > 1)} ({CUDA_VISIBLE_ENV} {','.join(distinct)}; "
                f"{'up to ' * (self.workers % len(distinct) != 0)}{per} per GPU)"
            )
        return text


def plan_layout(
    workers: Optional[int],
    threads: Optional[int],
    pending: int,
    device,
    cores: Optional[int] = None,
    workers_per_gpu: Optional[int] = None,
    gpus: Optional[Sequence[str]] = None,
) -> Layout:
    """The worker processes of a sweep on `device` (a torch.device or a device type string).

    CPU: by default one single-thread worker per core. CUDA: the GPUs are `gpus` (default: the ones
    the device names, `runtime.gpu_slots`: every visible GPU for `cuda`, one for `cuda:N`); by default
    `workers_per_gpu` (1) workers per GPU, worker i on GPU i mod G (so fewer workers than slots still
    spread over the GPUs). Either way never more workers than pending runs (at least one); an
    explicit `workers` overrides the count. Threads default to the cores divided among the workers."""
    cores = cores or cpu_cores()
    device = torch.device(device)
    if device.type == "cuda":
        gpus = list(gpu_slots(device) if gpus is None else gpus)
        if workers is None:  # (no GPU listed: one worker, as CUDA_VISIBLE_DEVICES stands)
            workers = max(1, min(max(len(gpus), 1) * (workers_per_gpu or 1), pending))
        assigned = tuple(gpus[i % len(gpus)] for i in range(workers)) if gpus else ()
    else:
        if workers is None:
            workers = max(1, min(cores, pending))
        assigned = ()
    if threads is None:
        threads = max(1, cores // workers)
    return Layout(workers, threads, assigned)


def worker_env(layout: Layout, index: int, base: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The environment of worker `index` (0-based) of `layout`: `base` (default: this process's),
    its thread counts, its label, unbuffered output and, on a GPU layout, CUDA_VISIBLE_DEVICES naming
    only its own GPU (so that its `cuda` device is that GPU)."""
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "OMP_NUM_THREADS": str(layout.threads),
            "MKL_NUM_THREADS": str(layout.threads),
            WORKER_LABEL_ENV: f"w{index + 1}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if layout.gpus:
        env[CUDA_VISIBLE_ENV] = layout.gpus[index]
    return env


def start_workers(argv: list[str], layout: Layout, env: Optional[dict[str, str]] = None) -> list[subprocess.Popen]:
    """Start `layout.workers` processes running `python -m vaebench.cli <argv>`, each with
    `layout.threads` threads (and its GPU) and `env` added to this environment (`worker_env`). Their
    output waits in its pipe until `supervise` relays it."""
    procs = []
    try:
        for i in range(layout.workers):
            env_i = worker_env(layout, i, {**os.environ, **(env or {})})
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "vaebench.cli.commands", *argv, "--threads", str(layout.threads)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    env=env_i,
                )
            )
    except BaseException:
        stop_workers(procs)
        raise
    for p in procs:  # a stop request (SIGTERM) to this process is passed on to its workers
        stop.forward_to(id(p), lambda signum, p=p: p.poll() is None and p.send_signal(signum))
    return procs


def stop_workers(procs: Sequence[subprocess.Popen]) -> None:
    """Terminate the workers still running and wait for them (the caller gave up on the sweep)."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        p.wait()
        stop.stop_forwarding(id(p))
        if p.stdout is not None:
            p.stdout.close()


def supervise(
    procs: Sequence[subprocess.Popen],
    emit: Callable[[str], None],
    poll: Optional[Callable[[], None]] = None,
    poll_seconds: float = 2.0,
) -> list[int]:
    """Pass the output lines of the worker processes `procs` (from `start_workers`) to `emit`,
    prefixed with each worker's label, and call `poll` every `poll_seconds` while they run. Returns
    their exit codes (negative: the signal that killed it) within ~0.1 s of the last one's end."""
    readers = []
    for i, p in enumerate(procs):
        t = threading.Thread(target=_relay, args=(p, f"w{i + 1}", emit), daemon=True)
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
        stop_workers(procs)
        raise
    finally:
        for t in readers:
            t.join(timeout=5)
    for p in procs:
        stop.stop_forwarding(id(p))
    if poll is not None:
        poll()
    return [p.returncode for p in procs]


def _relay(p: subprocess.Popen, label: str, emit: Callable[[str], None]) -> None:
    for line in p.stdout:
        emit(f"[{label} pid {p.pid}] {line.rstrip()}")
