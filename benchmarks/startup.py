"""Start-up of a sweep on this machine: where a worker process's seconds go before its first trial,
how long the 4-run smoke sweep takes, and the harness overhead of a 2-epoch 4-run MNIST sweep.

    python benchmarks/startup.py --label after [--repeats 3] [--out benchmarks/results/startup.json]
    python benchmarks/startup.py --label before --vaebench /path/to/older/checkout

`--vaebench DIR` measures the vaebench package in DIR (put first on PYTHONPATH of every process it
starts) instead of the installed one: that is how the "before" column was measured, on a `git archive`
of the commit before the start-up work. Each label's numbers are stored under its name in the JSON,
so one file holds before and after. Needs MNIST under $VAEBENCH_DATA_ROOT. Every number is a median
over `--repeats` repetitions (min and max beside it), with warm caches (the FID classifier and its
reference features trained or computed once, untimed, before); the smoke sweep is also timed once
with an empty cache (`smoke_cold`: the digits classifier is trained inside the sweep, as on CI).

1. `phases`: one fresh `python` process per repetition, timing in order: `import torch`; the
   modules a worker imports (`vaebench.cli`, `vaebench.worker`); loading MNIST (reading the IDX
   files, scaling, the SHA-256 checksum); loading digits; loading the cached MNIST classifier; the
   first `torch.optim.Adam` (torch imports torch._dynamo there, once per process); importing
   torch-fidelity (the first FID). Seconds each.
2. `smoke`: `vaebench run sweeps/smoke.yaml` (2 workers x 1 thread on 2 cores): wall seconds of the
   whole command and seconds from the command to the first trial's start (Optuna's record).
3. `sweep_<layout>`: `benchmarks/worker_layout.py`'s MLP MNIST sweep, 4 runs x 2 epochs, full
   evaluation, for `--workers 2 --threads 1` (the default here) and `--workers 1 --threads 2`: wall
   seconds, start-up (command to first trial start), and harness overhead = 1 - sum over trials of
   (train + eval seconds) / (workers x wall).
4. `--scaling E1 E2 ...` (stored under its own --label): instead of the above, the 2 x 1 sweep at
   each epoch count (the fixed start-up cost amortized over longer runs) and the seconds one
   journal attribute write takes (a trial writes one per scalar metric, `m.*`).
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

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # worker_layout.py beside this file

from worker_layout import overhead_phases_of  # noqa: E402
from worker_layout import spec as layout_spec  # noqa: E402

PHASES = r"""
import json, time
t0 = time.perf_counter(); out = {}
def lap(name):
    global t0
    t = time.perf_counter(); out[name] = t - t0; t0 = t
import torch; lap("import_torch")
import importlib, importlib.util
for m in ("vaebench.cli.commands", "vaebench.sweep.study", "vaebench.sweep.worker"):  # (worker.py exists from the split on)
    if importlib.util.find_spec(m):
        importlib.import_module(m)
lap("import_vaebench")
from vaebench.data import load_dataset
from vaebench.spec.sweep_spec import DatasetConfig
lap("_")
mnist = load_dataset(DatasetConfig(name="mnist")); lap("load_mnist")
load_dataset(DatasetConfig(name="digits")); lap("load_digits")
from vaebench.metrics.classifier import cached_classifier
cached_classifier(mnist); lap("load_classifier")
torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))]); lap("first_optimizer")
import torch_fidelity; lap("import_torch_fidelity")
out.pop("_"); out["total"] = sum(out.values())
print(json.dumps(out))
"""


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": values}


def env_for(vaebench: Path | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VAEBENCH_WORKERS", "OMP_NUM_THREADS")}
    if vaebench is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(vaebench), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def phases(repeats: int, vaebench: Path | None) -> dict:
    runs = []
    for _ in range(repeats):
        p = subprocess.run(
            [sys.executable, "-c", PHASES], capture_output=True, text=True, env=env_for(vaebench), check=True
        )
        runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
    return {k: spread([r[k] for r in runs]) for k in runs[0]}


def timed_sweep(spec_path: Path, results: Path, args: list[str], env: dict[str, str]) -> dict:
    """`vaebench run` once: wall seconds, start-up seconds and the harness overhead."""
    import pandas as pd

    t0, started = time.perf_counter(), time.time()
    p = subprocess.run(
        [sys.executable, "-m", "vaebench.cli.commands", "run", str(spec_path), "--results", str(results), "-q", *args],
        capture_output=True,
        text=True,
        env=env,
    )
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"vaebench run {spec_path} {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}")
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    name = yaml.safe_load(spec_path.read_text())["study"]
    study = optuna.load_study(
        study_name=name, storage=JournalStorage(JournalFileBackend(str(results / name / "journal.log")))
    )
    df = pd.read_parquet(results / name / "runs")
    workers = int(args[args.index("--workers") + 1]) if "--workers" in args else 2
    useful = float((df["train_seconds"] + df["eval_seconds"]).sum())
    return {
        "wall_seconds": wall,
        "workers": workers,
        "train_eval_seconds": useful,
        "harness_overhead": 1 - useful / (workers * wall),
        **overhead_phases_of(study.trials, df, started, started + wall),
    }


def summarize(ms: list[dict]) -> dict:
    return {
        k: spread([m[k] for m in ms])
        for k in ("wall_seconds", "startup_seconds", "harness_overhead", "in_trial_harness_seconds", "shutdown_seconds")
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--label", required=True, help="the name these numbers are stored under (before, after)")
    ap.add_argument("--vaebench", type=Path, help="measure the vaebench package in this folder")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "startup.json")
    ap.add_argument(
        "--scaling",
        type=int,
        nargs="+",
        metavar="EPOCHS",
        help="instead: the 2 x 1 layout's 4-run MNIST sweep at each of these epoch counts (the overhead's "
        "fixed part amortized over longer runs) and the cost of one journal attribute write",
    )
    args = ap.parse_args()
    args.t_all = time.perf_counter()
    env = env_for(args.vaebench)
    if args.scaling:
        return store(args, scaling(args.scaling, args.repeats, env))
    smoke_spec = HERE.parent / "sweeps" / "smoke.yaml"
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec_path = tmp / "layout.yaml"
        spec_path.write_text(yaml.safe_dump(layout_spec(4, 2)))
        # warm the caches (MNIST classifier and its reference features, the digits classifier), untimed
        timed_sweep(spec_path, tmp / "warm-mnist", ["--workers", "1"], env)
        timed_sweep(smoke_spec, tmp / "warm-smoke", ["--workers", "1"], env)
        out["phases"] = phases(args.repeats, args.vaebench)
        print("phases:", {k: round(v["median"], 2) for k, v in out["phases"].items()}, flush=True)
        out["smoke_cold"] = timed_sweep(
            smoke_spec, tmp / "smoke-cold", [], {**env, "VAEBENCH_CACHE": str(tmp / "empty-cache")}
        )
        print(f"smoke, empty cache: {out['smoke_cold']['wall_seconds']:.1f} s", flush=True)
        for name, layout_args, spec in (
            ("smoke", [], smoke_spec),
            ("sweep_2x1", ["--workers", "2", "--threads", "1"], spec_path),
            ("sweep_1x2", ["--workers", "1", "--threads", "2"], spec_path),
        ):
            ms = [timed_sweep(spec, tmp / f"{name}-{i}", layout_args, env) for i in range(args.repeats)]
            out[name] = {"args": layout_args, "measurements": ms, "summary": summarize(ms)}
            s = out[name]["summary"]
            print(
                f"{name}: wall {s['wall_seconds']['median']:.1f} s, first trial at "
                f"{s['startup_seconds']['median']:.1f} s, overhead {s['harness_overhead']['median']:.1%}",
                flush=True,
            )
    store(args, out)


def journal_attr_seconds(n: int = 60) -> float:
    """Seconds per `trial.set_user_attr` on a journal file study (each is one appended, fsynced log
    record, under the file lock): what a trial's `m.*` attributes cost (vaebench/sweep/worker.py)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        study = optuna.create_study(storage=JournalStorage(JournalFileBackend(str(Path(tmp) / "j.log"))))
        trial = study.ask()
        t0 = time.perf_counter()
        for i in range(n):
            trial.set_user_attr(f"m.x{i}", float(i))
        return (time.perf_counter() - t0) / n


def scaling(epochs: list[int], repeats: int, env: dict[str, str]) -> dict:
    from vaebench.sweep.worker import scalar_attrs

    out: dict = {"overhead_by_epochs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for e in epochs:
            spec_path = tmp / f"layout-{e}.yaml"
            spec_path.write_text(yaml.safe_dump(layout_spec(4, e)))
            if not out["overhead_by_epochs"]:  # warm the caches, untimed
                timed_sweep(spec_path, tmp / "warm", ["--workers", "1"], env)
            args = ["--workers", "2", "--threads", "1"]
            ms = [timed_sweep(spec_path, tmp / f"e{e}-{i}", args, env) for i in range(repeats)]
            out["overhead_by_epochs"][str(e)] = {"args": args, "measurements": ms, "summary": summarize(ms)}
            s = out["overhead_by_epochs"][str(e)]["summary"]
            print(
                f"{e} epochs: wall {s['wall_seconds']['median']:.1f} s, overhead {s['harness_overhead']['median']:.1%}",
                flush=True,
            )
        import pandas as pd

        row = pd.read_parquet(next((tmp / f"e{epochs[0]}-0").glob("*/runs/*.parquet"))).iloc[0].to_dict()
    out["journal_attr_seconds"] = spread([journal_attr_seconds() for _ in range(repeats)])
    out["scalar_attrs_per_trial"] = len(scalar_attrs(row))
    print(
        f"one journal attribute write: {out['journal_attr_seconds']['median'] * 1000:.1f} ms; "
        f"{out['scalar_attrs_per_trial']} m.* attributes per trial",
        flush=True,
    )
    return out


def store(args, out: dict) -> None:
    import torch

    out.update(
        {
            "command": "python benchmarks/startup.py " + " ".join(sys.argv[1:]),
            "machine": {
                "cores": len(os.sched_getaffinity(0)),
                "python": platform.python_version(),
                "torch": torch.__version__,
                "platform": platform.platform(),
            },
            "benchmark_seconds": time.perf_counter() - args.t_all,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    )
    stored = json.loads(args.out.read_text()) if args.out.is_file() else {}
    stored[args.label] = out
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(stored, indent=2) + "\n")
    print(f"wrote {args.out} [{args.label}]")


if __name__ == "__main__":
    main()
