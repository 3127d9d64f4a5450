"""Training precision on this machine: bf16 (and fp16) autocast against float32, on the CPU.

    VAEBENCH_DATA_ROOT=../shared/data python benchmarks/precision.py      # -> benchmarks/results/precision.json
    python benchmarks/precision.py --precisions fp32,bf16 --seeds 0 --mlp-epochs 2 --conv-images 640   # quicker

Needs MNIST under $VAEBENCH_DATA_ROOT. Everything runs through `vaebench.train.train` with
`train.precision` set, the precisions alternated (the order reversed on every repetition) so that
a change in the shared machine's load falls on all of them alike:

1. MLP (the beta sweep's 784-256-256-32, Bernoulli, batch 128, Adam 1e-3, seed s): `--mlp-epochs`
   full epochs (60,000 training images and the float32 test -ELBO of the 10,000 test images) per
   precision and seed. Seconds per epoch: every epoch but each run's first (warm-up). Test -ELBO:
   the single-sample -ELBO (nats per example, beta = 1) on the test split after the last epoch,
   computed in float32 (no autocast) as every recorded loss is; per seed, so the bf16 - fp32
   difference can be set against the spread between seeds.
2. Conv (channels 32-64-128-256, latent 32): a full epoch takes ~100 s on this CPU, so each run
   trains on the first `--conv-images` training images (and a sixth as many test images, the
   splits' proportion) for `--conv-epochs` epochs; seconds per epoch are those partial epochs
   (every one but the first) times 60,000 / n, i.e. a fixed number of steps scaled to the full
   epoch. Its test -ELBO is on the partial test split after those partial epochs (a check that
   bf16 trains the same, not a converged model), repeated `--conv-repeats` times (seed 0).
3. fp16, which vaebench refuses on CPU (`runtime.check_precision`), is timed the same way through
   the private `vaebench.train._train` (the loop without that check: autocast to float16 and a
   gradient scaler), to document why it is refused.

The machine is shared: the 1-, 5- and 15-minute load averages (/proc/loadavg) before and after are
stored with the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from perf import CONV, MLP, _cpu_name, spread, subset  # noqa: E402

from vaebench.data import load_dataset, resolve_data_root  # noqa: E402
from vaebench.engine.train import _train, train  # noqa: E402
from vaebench.spec.sweep_spec import RunConfig  # noqa: E402


def load() -> dict:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return {
        "load_1min": float(one),
        "load_5min": float(five),
        "load_15min": float(fifteen),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def run(model: dict, data, precision: str, epochs: int, seed: int) -> dict:
    cfg = RunConfig(
        dataset={"name": "mnist"}, model=model, train={"epochs": epochs, "batch_size": 128, "precision": precision}
    )
    if precision == "fp16":  # refused on CPU by train(); timed through the loop itself
        result = _train(cfg, data, seed, torch.device("cpu"), None)
    else:
        result = train(cfg, data, seed=seed, device="cpu")
    assert result.status == "ok", result.reason
    stamps = [0.0] + [h["seconds"] for h in result.history]
    return {
        "precision": precision,
        "seed": seed,
        "epoch_seconds": [b - a for a, b in zip(stamps, stamps[1:])],
        "test_neg_elbo": [h["test_loss"] for h in result.history],
        "train_loss": [h["train_loss"] for h in result.history],
    }


def alternated(precisions: list[str], i: int) -> list[str]:
    return precisions if i % 2 == 0 else list(reversed(precisions))


def summarize(runs: list[dict], precisions: list[str], scale: float) -> dict:
    out = {}
    for p in precisions:
        mine = [r for r in runs if r["precision"] == p]
        secs = [s * scale for r in mine for s in r["epoch_seconds"][1:]]
        out[p] = {
            "seconds_per_epoch": spread(secs),
            "final_test_neg_elbo": {str(r["seed"]): r["test_neg_elbo"][-1] for r in mine},
        }
    base = out[precisions[0]]["seconds_per_epoch"]["median"]
    for p in precisions:
        out[p]["speedup_vs_" + precisions[0]] = base / out[p]["seconds_per_epoch"]["median"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--precisions", default="fp32,bf16,fp16", help="the first is the baseline")
    ap.add_argument("--seeds", default="0,1", help="MLP seeds")
    ap.add_argument("--mlp-epochs", type=int, default=3)
    ap.add_argument("--conv-images", type=int, default=1920, help="training images of a conv run (steps = n / 128)")
    ap.add_argument("--conv-epochs", type=int, default=3)
    ap.add_argument("--conv-repeats", type=int, default=2)
    ap.add_argument("--only", default="mlp,conv")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "precision.json")
    args = ap.parse_args()
    precisions, seeds, parts = args.precisions.split(","), [int(s) for s in args.seeds.split(",")], args.only.split(",")
    torch.set_num_threads(args.threads)
    data = load_dataset(RunConfig(dataset={"name": "mnist"}).dataset, resolve_data_root())
    out: dict = {
        "command": "python benchmarks/precision.py " + " ".join(sys.argv[1:]),
        "machine": {
            "cores": len(os.sched_getaffinity(0)),
            "cpu": _cpu_name(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "platform": platform.platform(),
        },
        "threads": args.threads,
        "device": "cpu",
        "load_before": load(),
    }
    t0 = time.perf_counter()
    if "mlp" in parts:
        runs = []
        for i, seed in enumerate(seeds):
            for p in alternated(precisions, i):
                r = run(MLP, data, p, args.mlp_epochs, seed)
                runs.append(r)
                print(
                    f"MLP {p} seed {seed}: s/epoch {[round(s, 2) for s in r['epoch_seconds']]}, test -ELBO "
                    f"{[round(v, 2) for v in r['test_neg_elbo']]}",
                    flush=True,
                )
        out["mlp"] = {
            "model": MLP,
            "epochs": args.mlp_epochs,
            "seeds": seeds,
            "timed_epochs": "all but each run's first",
            "summary": summarize(runs, precisions, 1.0),
            "runs": runs,
        }
    if "conv" in parts:
        part = subset(data, args.conv_images, args.conv_images // 6)
        scale = len(data.x_train) / len(part.x_train)
        runs = []
        for i in range(args.conv_repeats):
            for p in alternated(precisions, i):
                r = run(CONV, part, p, args.conv_epochs, 0)
                r["repeat"] = i
                runs.append(r)
                print(
                    f"Conv {p} repeat {i}: s/partial epoch {[round(s, 2) for s in r['epoch_seconds']]} "
                    f"(x{scale:.1f} -> full), test -ELBO {[round(v, 2) for v in r['test_neg_elbo']]}",
                    flush=True,
                )
        summary = summarize(runs, precisions, scale)
        for p in precisions:  # the same seed every repeat: one value per precision (equal across repeats)
            summary[p]["final_test_neg_elbo"] = [r["test_neg_elbo"][-1] for r in runs if r["precision"] == p]
        out["conv"] = {
            "model": CONV,
            "epochs": args.conv_epochs,
            "timed_on": {
                "train_images": len(part.x_train),
                "test_images": len(part.x_test),
                "steps_per_epoch": -(-len(part.x_train) // 128),
                "scaled_to": {"train_images": len(data.x_train), "test_images": len(data.x_test)},
                "scale": scale,
            },
            "timed_epochs": "all but each run's first, times scale",
            "summary": summary,
            "runs": runs,
        }
    out["load_after"] = load()
    out["benchmark_seconds"] = time.perf_counter() - t0
    out["created_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nload average before {out['load_before']}, after {out['load_after']}")
    print("| model | precision | s/epoch (median [min, max]) | speed-up | test -ELBO after the last epoch |")
    print("|---|---|---|---|---|")
    for name in ("mlp", "conv"):
        if name not in out:
            continue
        for p, s in out[name]["summary"].items():
            sec = s["seconds_per_epoch"]
            elbo = s["final_test_neg_elbo"]
            elbo_text = ", ".join(f"{v:.2f}" for v in (elbo.values() if isinstance(elbo, dict) else elbo))
            print(
                f"| {name} | {p} | {sec['median']:.2f} [{sec['min']:.2f}, {sec['max']:.2f}] | "
                f"{s['speedup_vs_' + precisions[0]]:.2f}x | {elbo_text} |"
            )
    print(f"\nwrote {args.out} ({out['benchmark_seconds'] / 60:.1f} min)")


if __name__ == "__main__":
    main()
