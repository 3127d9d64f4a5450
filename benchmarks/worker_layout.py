"""Trials per hour of the MLP MNIST sweep under two thread layouts on this machine.

    python benchmarks/worker_layout.py [--runs 4] [--epochs 2] [--out benchmarks/results/worker_layout.json]

(`benchmarks/perf.py` runs the same comparison as part of the performance benchmark.)

Layout A: one worker process with 2 torch threads (`vaebench run --workers 1 --threads 2`).
Layout B: two worker processes with 1 thread each (`vaebench run --workers 2 --threads 1`).
Same spec (the β sweep's model: MLP 784-256-256-32, Bernoulli, batch 128, full evaluation incl.
FID and NLL), same runs, fresh results folder each time, layouts alternated `--repeats` times.
Wall time is the whole `vaebench run` command (process start, data loading, training, evaluation).
The FID classifier is trained once before timing (it is cached). Needs MNIST under
$VAEBENCH_DATA_ROOT (on this project's machines: ../shared/data).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

LAYOUTS = {"1x2": ["--workers", "1", "--threads", "2"], "2x1": ["--workers", "2", "--threads", "1"]}


def spec(runs: int, epochs: int) -> dict:
    betas = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 0.25, 0.125][:runs]
    return {
        "study": "layout",
        "dataset": {"name": "mnist"},
        "train": {"epochs": epochs, "batch_size": 128},
        "grid": {"objective.beta": betas},
        "seeds": [0],
    }


def run_layout(name: str, spec_path: Path, workdir: Path) -> dict:
    results = workdir / f"results-{name}-{time.time_ns()}"
    env = {k: v for k, v in os.environ.items() if k not in ("VAEBENCH_WORKERS", "OMP_NUM_THREADS")}
    t0, started = time.perf_counter(), time.time()
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "vaebench.cli.commands",
            "run",
            str(spec_path),
            "--results",
            str(results),
            "-q",
            *LAYOUTS[name],
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"layout {name} failed:\n{p.stderr}")
    df = pd.read_parquet(results / "layout" / "runs")
    phases = overhead_phases(results / "layout" / "journal.log", df, started, started + wall)
    return {
        "layout": name,
        "wall_seconds": wall,
        "trials": len(df),
        "trials_per_hour": len(df) / wall * 3600,
        "train_seconds_per_epoch": float((df["train_seconds"] / df["epochs_completed"]).mean()),
        "eval_seconds_per_run": float(df["eval_seconds"].mean()),
        "trial_seconds_sum": float((df["train_seconds"] + df["eval_seconds"]).sum()),
        "torch_threads": sorted(set(int(t) for t in df["torch_threads"])),
        **phases,
    }


def overhead_phases(journal: Path, df: pd.DataFrame, started: float, ended: float) -> dict:
    """`overhead_phases_of` the trials of the study in `journal` (Optuna records when a worker
    claims a trial and when it tells its final state)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="layout", storage=JournalStorage(JournalFileBackend(str(journal))))
    return overhead_phases_of(study.trials, df, started, ended)


def overhead_phases_of(trials, df: pd.DataFrame, started: float, ended: float) -> dict:
    """Where a sweep's time outside training and evaluation goes, from its trials' start and end
    times and its rows: `startup_seconds` from the command's start (`started`, epoch seconds) to
    the first trial's start (interpreter, imports, study creation, worker processes, data loading);
    `shutdown_seconds` from the last trial's end to the command's exit (`ended`);
    `in_trial_harness_seconds`, summed over trials, the part of each trial that is neither training
    nor evaluation (claiming, model and artifact files, the row, the storage updates)."""
    done = [t for t in trials if t.datetime_start and t.datetime_complete]
    first = min(t.datetime_start.timestamp() for t in done)
    last = max(t.datetime_complete.timestamp() for t in done)
    in_trials = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in done)
    return {
        "startup_seconds": first - started,
        "shutdown_seconds": ended - last,
        "in_trial_harness_seconds": in_trials - float((df["train_seconds"] + df["eval_seconds"]).sum()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "worker_layout.json")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        spec_path = workdir / "layout.yaml"
        spec_path.write_text(yaml.safe_dump(spec(args.runs, args.epochs)))
        from vaebench.data import load_dataset
        from vaebench.metrics.classifier import cached_classifier  # warm the FID classifier cache, untimed
        from vaebench.spec.sweep_spec import load_spec

        cached_classifier(load_dataset(load_spec(spec_path).dataset))
        measurements = []
        for i in range(args.repeats):
            for name in LAYOUTS if i % 2 == 0 else reversed(list(LAYOUTS)):
                m = run_layout(name, spec_path, workdir)
                print(
                    f"{name}: {m['trials']} trials in {m['wall_seconds']:.1f} s = {m['trials_per_hour']:.0f} trials/h "
                    f"({m['train_seconds_per_epoch']:.2f} s/epoch, eval {m['eval_seconds_per_run']:.1f} s/run)",
                    flush=True,
                )
                measurements.append(m)

    summary = {}
    for name in LAYOUTS:
        ms = [m for m in measurements if m["layout"] == name]
        summary[name] = {
            "trials_per_hour_median": statistics.median(m["trials_per_hour"] for m in ms),
            "wall_seconds_median": statistics.median(m["wall_seconds"] for m in ms),
        }
    faster = max(summary, key=lambda k: summary[k]["trials_per_hour_median"])
    out = {
        "command": "python benchmarks/worker_layout.py " + " ".join(sys.argv[1:]),
        "machine": {
            "cores": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "spec": spec(args.runs, args.epochs),
        "measurements": measurements,
        "summary": summary,
        "faster": faster,
        "speedup": summary[faster]["trials_per_hour_median"]
        / min(s["trials_per_hour_median"] for s in summary.values()),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    import torch

    out["machine"]["torch"] = torch.__version__
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"faster: {faster} ({out['speedup']:.2f}x trials per hour); wrote {args.out}")


if __name__ == "__main__":
    main()
