"""The cost of the experiment trackers (vaebench/tracking/) on real MNIST MLP runs, local backends.

    python benchmarks/tracking.py [--threads 1] [--epochs 3] [--runs 2]
                                  [--out benchmarks/results/tracking.json]

Needs MNIST under $VAEBENCH_DATA_ROOT. Each of `--runs` runs (perf.py's MLP 784-256-256-32, latent 32,
batch 128, Bernoulli; seeds 0, 1, ...) is executed by the engine (`execute_run`: training with the
per-epoch test -ELBO, evaluation, the weights and figure arrays saved) exactly as a worker does, with
both trackers on: MLflow on a SQLite file and TensorBoard event files, in a temporary folder. Timed
apart, in the same process:

1. per epoch: `TrackedRun.epoch(record)` (one MLflow `log_batch`, TensorBoard's scalars), in seconds,
   against the epoch's training time;
2. per run: starting the tracked run (the MLflow run found or made, its params, the TensorBoard
   folder) and finishing it (the row's scalars, `row.json`, the weights as an artifact, the hparams
   summary), against the run's training time (`train_seconds`).
The first run also pays for the SQLite database's creation and the experiment: reported apart
(`first_start_seconds`), not in the per-run share.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # perf.py beside this file

from perf import MLP, _cpu_name  # noqa: E402

from vaebench.data import load_dataset, resolve_data_root  # noqa: E402
from vaebench.engine.execute import Reporter, Setting, execute_run  # noqa: E402
from vaebench.spec.sweep_spec import parse_spec  # noqa: E402
from vaebench.tracking import RunInfo, open_trackers  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "tracking.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out: dict = {
        "command": "python benchmarks/tracking.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "cores": len(os.sched_getaffinity(0)),
            "cpu": _cpu_name(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "load_average_at_start": os.getloadavg(),
        },
        "threads": args.threads,
        "backends": "mlflow (sqlite file) + tensorboard (event files)",
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec = parse_spec(
            {
                "study": "tracking_bench",
                "dataset": {"name": "mnist"},
                "model": MLP,
                "train": {"epochs": args.epochs, "batch_size": 128},
                "eval": {"fid_extractor": None, "nll_examples": 500, "nll_k": 10},  # evaluation is not timed
                "seeds": list(range(args.runs)),
                "tracking": {
                    "mlflow": {"tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}"},
                    "tensorboard": {"dir": str(tmp / "tb")},
                },
            }
        )
        data = load_dataset(spec.dataset, resolve_data_root())
        setting = Setting(spec, data, torch.device("cpu"), tmp / "results")
        os.chdir(tmp)  # MLflow keeps a sqlite URI's artifacts in ./mlruns: here, not in the checkout
        trackers = open_trackers(spec.tracking)
        per_epoch, epoch_train, starts, finishes, trains, errors = [], [], [], [], [], []
        for run in spec.runs():
            t0 = time.perf_counter()
            tracked = trackers.start(RunInfo.of(run, spec, setting.results_root))
            starts.append(time.perf_counter() - t0)
            last = [0.0]

            def on_epoch(record: dict) -> None:
                epoch_train.append(record["seconds"] - last[0])
                last[0] = record["seconds"]
                t = time.perf_counter()
                tracked.epoch(record)
                per_epoch.append(time.perf_counter() - t)

            row = execute_run(run, setting, Reporter(), stop_check=on_epoch)
            t0 = time.perf_counter()
            row = tracked.finish(row)
            finishes.append(time.perf_counter() - t0)
            trains.append(row["train_seconds"])
            errors.append(row["tracking_error"])
        later_starts = starts[1:] or starts
        per_run = [s + f for s, f in zip(later_starts, finishes[-len(later_starts) :])]
        run_train = statistics.median(trains)
        out["errors"] = errors
        out["epoch_train_seconds"] = {"median": statistics.median(epoch_train), "all": epoch_train}
        out["epoch_tracking_seconds"] = {"median": statistics.median(per_epoch), "all": per_epoch}
        out["first_start_seconds"] = starts[0]
        out["start_seconds"] = later_starts
        out["finish_seconds"] = finishes
        out["run_train_seconds"] = {"median": run_train, "all": trains}
        out["share_per_epoch"] = statistics.median(per_epoch) / statistics.median(epoch_train)
        out["share_per_run"] = (statistics.median(per_run) + statistics.median(per_epoch) * args.epochs) / run_train
    out["machine"]["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(
        f"per epoch: tracking {out['epoch_tracking_seconds']['median'] * 1000:.1f} ms vs training "
        f"{out['epoch_train_seconds']['median']:.2f} s ({out['share_per_epoch']:.3%}); per run (start + epochs + "
        f"finish): {out['share_per_run']:.3%} of {run_train:.1f} s training; first start (database created) "
        f"{out['first_start_seconds']:.2f} s; errors {errors}"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
