"""The cost of checkpoints inside a run (engine/checkpoint.py) on the MNIST MLP and conv runs.

    python benchmarks/checkpoint.py [--threads 1] [--epochs 3] [--writes 10] [--conv-images 3840]
                                    [--out benchmarks/results/checkpoint.json]

Needs MNIST under $VAEBENCH_DATA_ROOT. For each model (perf.py's MLP 784-256-256-32 and conv
32-64-128-256, latent 32, batch 128, Bernoulli):

1. Seconds per epoch of the real training loop (`engine.train.train`, with the per-epoch test
   -ELBO), median over `--epochs`; the conv VAE is timed on the first `--conv-images` training images
   (and a sixth as many test images) and scaled to 60,000, as perf.py does.
2. Seconds per checkpoint: the epoch-boundary writes of that training (`checkpoint_every: 1`), then
   `--writes` more writes of the same state (torch.save of the loop's whole state to a temporary
   file, fsync, rename: `Checkpoints.save`); median, min, max. Bytes on disk of the file.
3. The per-step cost when no checkpoint is written (every run shorter than the default 10 minutes,
   e.g. the smoke sweep): the step boundary's checks (the test hook, the stop flag, the time policy's
   clock), in nanoseconds, against a training step's time.
4. The share of training time: at the default ("10min": one write per 600 s of training, plus the
   per-step checks) and at `checkpoint_every: 1` (one write per epoch).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # perf.py beside this file

from perf import CONV, MLP, _cpu_name, subset  # noqa: E402

from vaebench.data import load_dataset, resolve_data_root  # noqa: E402
from vaebench.engine.checkpoint import Checkpoints, run_identity  # noqa: E402
from vaebench.engine.train import train  # noqa: E402
from vaebench.runtime import stop  # noqa: E402
from vaebench.spec.sweep_spec import RunConfig  # noqa: E402

DEFAULT_SECONDS = 600.0  # train.checkpoint_every's default, "10min"
BATCH = 128
FULL_TRAIN = 60_000


def _stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def boundary_ns(n: int = 1_000_000) -> float:
    """Nanoseconds of one step boundary's checks when no checkpoint is due (the time policy)."""
    ck = Checkpoints(Path(tempfile.gettempdir()) / "unused.pt", {"run_id": "x"}, every_seconds=DEFAULT_SECONDS)
    t0 = time.perf_counter()
    for _ in range(n):
        stop.kill_point("step")
        if stop.requested() or ck.due():
            raise AssertionError("no checkpoint is due")
    return (time.perf_counter() - t0) / n * 1e9


def measure(name: str, model_cfg: dict, data, scale: float, epochs: int, writes: int, folder: Path) -> dict:
    cfg = RunConfig(dataset={"name": "mnist"}, model=model_cfg, train={"epochs": epochs, "batch_size": BATCH})
    path = folder / f"{name}.pt"
    ck = Checkpoints(path, run_identity(name, cfg, data, torch.device("cpu")), every_epochs=1)
    result = train(cfg, data, seed=0, device="cpu", checkpoints=ck)
    ends = [0.0] + [r["seconds"] for r in result.history]
    epoch_seconds = [(b - a) * scale for a, b in zip(ends, ends[1:])]
    state = torch.load(path, map_location="cpu", weights_only=True)
    state.pop("identity")
    for _ in range(writes):
        ck.save(state, state["epoch"], state["step"])
    per_write = _stats(ck.write_seconds)
    epoch = statistics.median(epoch_seconds)
    steps = math.ceil(FULL_TRAIN / BATCH)
    ns = boundary_ns()
    out = {
        "epoch_seconds": _stats(epoch_seconds),
        "checkpoint_seconds": per_write,
        "checkpoint_bytes": path.stat().st_size,
        "parameters": sum(p.numel() for p in result.model.parameters()),
        "steps_per_epoch": steps,
        "step_seconds": epoch / steps,
        "boundary_check_ns": ns,
        "share_per_step_checks": ns * 1e-9 * steps / epoch,
        "share_at_default": per_write["median"] / DEFAULT_SECONDS + ns * 1e-9 * steps / epoch,
        "share_every_epoch": per_write["median"] / epoch,
    }
    print(
        f"{name}: epoch {epoch:.2f} s, checkpoint {per_write['median'] * 1e3:.1f} ms "
        f"[{per_write['min'] * 1e3:.1f}, {per_write['max'] * 1e3:.1f}], {out['checkpoint_bytes'] / 1e6:.2f} MB; "
        f"step checks {ns:.0f} ns ({out['share_per_step_checks']:.5%} of training); share at the default "
        f"{out['share_at_default']:.4%}, every epoch {out['share_every_epoch']:.3%}",
        flush=True,
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=3, help="epochs trained per model (epochs - 1 boundary writes)")
    ap.add_argument("--writes", type=int, default=10, help="further writes of the same state, timed")
    ap.add_argument("--conv-images", type=int, default=3840, help="training images a conv epoch is timed on")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "checkpoint.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(RunConfig(dataset={"name": "mnist"}).dataset, resolve_data_root())
    out: dict = {
        "command": "python benchmarks/checkpoint.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "cores": len(os.sched_getaffinity(0)),
            "cpu": _cpu_name(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "load_average_at_start": os.getloadavg(),
        },
        "threads": args.threads,
        "default_seconds": DEFAULT_SECONDS,
    }
    with tempfile.TemporaryDirectory() as tmp:
        out["mlp"] = measure("mlp", MLP, data, 1.0, args.epochs, args.writes, Path(tmp))
        n = args.conv_images
        out["conv"] = measure(
            "conv", CONV, subset(data, n, n // 6), FULL_TRAIN / n, args.epochs, args.writes, Path(tmp)
        )
    out["machine"]["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
