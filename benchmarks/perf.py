"""Performance benchmark: vaebench's trainer against the tutorial's training loop and against this
machine's matmul peak, sweep throughput per worker layout, harness overhead, evaluation cost.

    python benchmarks/perf.py [--threads 2] [--repeats 3] [--out benchmarks/results/perf.json]
    python benchmarks/perf.py --only mlp,eval          # a subset: mlp, conv, layout, eval

Needs MNIST under $VAEBENCH_DATA_ROOT (on this project's machines: ../shared/data). Every number is
a median over `--repeats` repetitions with its min and max, measured in this one run:

1. s/epoch of `vaebench.train.train` versus a tutorial-style loop written here (torchvision MNIST
   dataset with `ToTensor`, `DataLoader(batch_size=128, shuffle=True, num_workers=2)`, plain Adam,
   `.item()` on loss, recon and KL every step, a test pass with its own DataLoader after each epoch),
   on the same model (vaebench's MLP 784-256-256-32, Bernoulli logits), batch and data. An epoch is
   one pass over the 60,000 training images plus one -ELBO pass over the 10,000 test images, in both.
2. Achieved training GFLOP/s = FLOPs of an epoch / its seconds, against the peak of a 4096x4096
   float32 matmul with the same thread count. FLOPs from the layer shapes: a multiply-add is 2
   FLOPs; a training image costs its forward pass (`forward_flops`) plus the backward pass's weight
   gradients (1x forward) and input gradients (1x forward minus the first layer's, which autograd
   does not compute: the images need no gradient) (`training_flops`, 12% less than the common
   "3x forward" for this MLP); a test image costs one forward pass.
3. The same for the conv VAE (vaebench's `conv`, channels 32-64-128-256, latent 32). Conv epochs are
   timed on the first `--conv-images` training images and a sixth as many test images (the full
   splits' proportion) and scaled to the full epoch (seconds x 60,000 / n), for both loops; the
   tutorial loop's DataLoaders are then persistent, so their start-up is not scaled up with them.
4. Trials per hour of a short MNIST sweep (`worker_layout.py`'s: MLP, 2 epochs, full evaluation)
   for 1 worker x N threads versus N workers x 1 thread, the whole `vaebench run` command.
5. Harness overhead of those sweeps: 1 - sum over trials of (train + eval seconds) / (workers x wall).
6. Evaluation seconds per metric (`vaebench.metrics.evaluate`, default EvalConfig) of the MLP from
   (1) on the 10,000 MNIST test images, against its median training epoch.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # worker_layout.py beside this file

from vaebench.data import Dataset, load_dataset, resolve_data_root  # noqa: E402
from vaebench.engine.train import train  # noqa: E402
from vaebench.models import build_model  # noqa: E402
from vaebench.objectives.gaussian import gaussian_kl  # noqa: E402
from vaebench.objectives.likelihoods import build_likelihood
from vaebench.spec.sweep_spec import RunConfig  # noqa: E402

TARGETS = {  # issue 7's targets on this machine
    "mlp_speedup_vs_tutorial": 3.0,
    "mlp_fraction_of_peak": 0.65,
    "conv_speedup_vs_tutorial": 2.0,
    "layout_speedup": 1.4,
    "harness_overhead": 0.05,
    "eval_over_epoch": 1.0,
}
MLP = {"name": "mlp", "hidden_dim": 256, "depth": 2, "latent_dim": 32}
CONV = {"name": "conv", "channels": [32, 64, 128, 256], "latent_dim": 32}


def spread(values: list[float]) -> dict:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "values": values,
    }


# ---------------------------------------------------------------------------------------------
# hardware limit and FLOPs


def matmul_peak(repeats: int, n: int = 4096) -> dict:
    """GFLOP/s of an n x n float32 matmul (2 n^3 FLOPs), with the current torch thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        rates.append(2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return spread(rates)


def forward_flops(model: nn.Module, x: torch.Tensor) -> float:
    """FLOPs of one forward pass (encode, reparameterize, decode) per example, from the shapes of
    the Linear, Conv2d and ConvTranspose2d layers it runs: 2 per multiply-add; bias, normalization
    and activations are left out (a few percent at most)."""
    total = 0.0

    def hook(module, inputs, output):
        nonlocal total
        total += _layer_flops(module, inputs, output)

    _forward_with_hook(model, x, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d), hook)
    return total / len(x)


def _layer_flops(module: nn.Module, inputs, output) -> float:
    """FLOPs of one layer's forward pass over a batch: 2 per multiply-add."""
    if isinstance(module, nn.Linear):
        return 2 * module.in_features * module.out_features * output.shape[0]
    kh, kw = module.kernel_size
    if isinstance(module, nn.ConvTranspose2d):  # each input pixel scatters Cout * k*k
        return 2 * (module.out_channels // module.groups) * kh * kw * inputs[0].numel()
    return 2 * (module.in_channels // module.groups) * kh * kw * output.numel()  # Conv2d: Cin/groups * k*k per output


def training_flops(model: nn.Module, x: torch.Tensor) -> float:
    """FLOPs of one training step's forward and backward passes per example: forward, plus per layer
    the weight-gradient product (as many FLOPs as its forward) and the input-gradient product (as
    many again, except for layers whose input needs no gradient: the first layer, fed the images)."""
    total = 0.0

    def hook(module, inputs, output):
        nonlocal total
        total += _layer_flops(module, inputs, output) * (3 if inputs[0].requires_grad else 2)

    _forward_with_hook(model, x, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d), hook, grad=True)
    return total / len(x)


def linear_shapes(model: nn.Module, x: torch.Tensor) -> list[tuple[int, int, int, bool]]:
    """(batch, in_features, out_features, whether the input needs a gradient) of every Linear layer
    one training forward pass of `x` runs."""
    shapes: list[tuple[int, int, int, bool]] = []
    _forward_with_hook(
        model,
        x,
        (nn.Linear,),
        lambda m, inputs, output: shapes.append(
            (output.shape[0], m.in_features, m.out_features, inputs[0].requires_grad)
        ),
        grad=True,
    )
    return shapes


def _forward_with_hook(model: nn.Module, x: torch.Tensor, types: tuple, hook, grad: bool = False) -> None:
    """One forward pass of `x` with `hook` on every module of the given types: in eval mode without
    gradients, or (`grad`) as in training (the parameters require gradients, `x` does not)."""
    if grad:  # a copy: a training-mode pass would update BatchNorm statistics of the model itself
        model = copy.deepcopy(model)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, types)]
    try:
        with torch.set_grad_enabled(grad):
            model.train(grad)
            model(x)
    finally:
        model.eval()
        for h in handles:
            h.remove()


def gemm_bound(model: nn.Module, x: torch.Tensor, n_train: int, n_test: int, repeats: int) -> dict:
    """Seconds per epoch of the epoch's matrix products alone, with their real shapes: for every
    training batch, each Linear layer's forward (addmm), input-gradient and weight-gradient products;
    for every test batch, the forward products. Nothing else (no activations, loss, optimizer, data):
    what an MLP epoch cannot beat at this batch size on this machine, whatever the loop around it."""
    batch = len(x)  # one training batch of images
    shapes = linear_shapes(model, x)
    ops = [
        (torch.randn(b, i), torch.randn(o, i), torch.randn(o), torch.randn(b, o), needs) for b, i, o, needs in shapes
    ]
    steps_train, steps_test = -(-n_train // batch), -(-n_test // batch)

    def epoch() -> float:
        t0 = time.perf_counter()
        for step in range(steps_train + steps_test):
            for x, w, bias, g, input_grad in ops:
                torch.addmm(bias, x, w.t())
                if step < steps_train:
                    g.t() @ x  # weight gradient
                    if input_grad:
                        g @ w  # input gradient
        return time.perf_counter() - t0

    epoch()  # warm-up
    return spread([epoch() for _ in range(repeats)])


# ---------------------------------------------------------------------------------------------
# the two training loops


def tutorial_epochs(model_cfg: dict, root: Path, epochs: int, n_train: int | None, n_test: int | None) -> list[float]:
    """The tutorial's loop (vae_architecture_and_training.md, train_vae_epoch + evaluate_vae) on
    vaebench's model: seconds of each epoch (training pass + test pass)."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.ToTensor()])
    train_set = datasets.MNIST(str(root), train=True, download=False, transform=tf)
    test_set = datasets.MNIST(str(root), train=False, download=False, transform=tf)
    if n_train:
        train_set = Subset(train_set, range(n_train))
    if n_test:
        test_set = Subset(test_set, range(n_test))
    # A partial epoch is scaled up to a full one: keep the loader processes alive between epochs then,
    # so that their start-up (paid once per real epoch) is not multiplied by the scale factor.
    persistent = bool(n_train)
    train_loader = DataLoader(train_set, batch_size=128, shuffle=True, num_workers=2, persistent_workers=persistent)
    test_loader = DataLoader(test_set, batch_size=128, shuffle=False, num_workers=2, persistent_workers=persistent)
    cfg = RunConfig(model=model_cfg)
    torch.manual_seed(0)
    model = build_model(cfg.model, (1, 28, 28), build_likelihood(cfg.objective), 10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss_terms(data):
        logits, mu, logvar = model(data)
        recon = F.binary_cross_entropy_with_logits(logits, data, reduction="sum")
        kl = gaussian_kl(mu, logvar).sum()
        return recon + kl, recon, kl

    seconds = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        model.train()
        total = [0.0, 0.0, 0.0]
        for data, _ in train_loader:
            opt.zero_grad()
            loss, recon, kl = loss_terms(data)
            (loss / len(data)).backward()
            opt.step()
            total[0] += loss.item()
            total[1] += recon.item()
            total[2] += kl.item()
        model.eval()
        with torch.no_grad():
            for data, _ in test_loader:
                loss, recon, kl = loss_terms(data)
                total[0] += loss.item()
                total[1] += recon.item()
                total[2] += kl.item()
        seconds.append(time.perf_counter() - t0)
    return seconds


def subset(data: Dataset, n_train: int | None, n_test: int | None) -> Dataset:
    from dataclasses import replace

    return replace(
        data,
        x_train=data.x_train[:n_train],
        y_train=data.y_train[:n_train],
        x_test=data.x_test[:n_test],
        y_test=data.y_test[:n_test],
    )


def vaebench_epochs(model_cfg: dict, data: Dataset, epochs: int):
    """vaebench's trainer: seconds of each epoch (training pass + the test -ELBO pass) and the model."""
    cfg = RunConfig(dataset={"name": "mnist"}, model=model_cfg, train={"epochs": epochs, "batch_size": 128})
    result = train(cfg, data, seed=0, device="cpu")
    stamps = [0.0] + [h["seconds"] for h in result.history]
    return [b - a for a, b in zip(stamps, stamps[1:])], result, cfg


def compare_loops(
    name: str,
    model_cfg: dict,
    data: Dataset,
    root: Path,
    repeats: int,
    peak: float,
    n_train: int | None = None,
    n_test: int | None = None,
) -> dict:
    """Both loops for `repeats` timed epochs after one warm-up epoch each, scaled to the full split."""
    part = subset(data, n_train, n_test)
    scale_train = len(data.x_train) / len(part.x_train)
    flop_model = build_model(RunConfig(model=model_cfg).model, data.shape, build_likelihood(RunConfig().objective), 10)
    fwd = forward_flops(flop_model, data.x_test[:8])
    train_flops = training_flops(flop_model, data.x_test[:8])
    epoch_flops = train_flops * len(data.x_train) + fwd * len(data.x_test)
    ours_raw, result, cfg = vaebench_epochs(model_cfg, part, repeats + 1)
    theirs_raw = tutorial_epochs(model_cfg, root, repeats + 1, n_train, n_test)
    scale = scale_train if n_train else 1.0  # a partial epoch (same train:test proportion) -> a full one
    ours = [s * scale for s in ours_raw[1:]]
    theirs = [s * scale for s in theirs_raw[1:]]
    o, t = statistics.median(ours), statistics.median(theirs)
    out = {
        "model": model_cfg,
        "params": sum(p.numel() for p in result.model.parameters()),
        "timed_on": {
            "train_images": len(part.x_train),
            "test_images": len(part.x_test),
            "scaled_to": {"train_images": len(data.x_train), "test_images": len(data.x_test)},
        },
        "forward_gflop_per_example": fwd / 1e9,
        "training_gflop_per_example": train_flops / 1e9,
        "epoch_gflop": epoch_flops / 1e9,
        "vaebench_seconds_per_epoch": spread(ours),
        "tutorial_seconds_per_epoch": spread(theirs),
        "speedup_vs_tutorial": t / o,
        "vaebench_gflops": epoch_flops / o / 1e9,
        "fraction_of_peak": epoch_flops / o / 1e9 / peak,
    }
    if model_cfg["name"] == "mlp":  # every FLOP of an MLP is in a matrix product
        bound = gemm_bound(result.model, data.x_train[:128], len(data.x_train), len(data.x_test), repeats)
        out["gemm_only_seconds_per_epoch"] = bound
        out["gemm_only_fraction_of_peak"] = epoch_flops / bound["median"] / 1e9 / peak
        out["vaebench_over_gemm_only"] = o / bound["median"]
        print(
            f"{name}: its matrix products alone take {bound['median']:.2f} s/epoch = "
            f"{out['gemm_only_fraction_of_peak']:.0%} of the peak; vaebench's epoch is "
            f"{out['vaebench_over_gemm_only']:.2f}x that",
            flush=True,
        )
    print(
        f"{name}: vaebench {o:.2f} s/epoch [{min(ours):.2f}, {max(ours):.2f}], tutorial {t:.2f} "
        f"[{min(theirs):.2f}, {max(theirs):.2f}] -> {t / o:.2f}x; {out['vaebench_gflops']:.0f} GFLOP/s "
        f"= {out['fraction_of_peak']:.0%} of the {peak:.0f} GFLOP/s matmul peak",
        flush=True,
    )
    return out, result, cfg, part


# ---------------------------------------------------------------------------------------------
# evaluation, sweeps


def eval_cost(model, data: Dataset, cfg: RunConfig, repeats: int) -> dict:
    from vaebench.metrics import evaluate

    runs = []
    for i in range(repeats):
        t0 = time.perf_counter()
        out = evaluate(model, data, cfg, seed=0)
        out["total"] = time.perf_counter() - t0
        runs.append(out)
    names = ["total"] + sorted(k.removeprefix("eval_seconds_") for k in runs[0] if k.startswith("eval_seconds_"))
    return {n: spread([r["total" if n == "total" else f"eval_seconds_{n}"] for r in runs]) for n in names}


def layout_sweeps(repeats: int, threads: int, runs: int = 4, epochs: int = 2) -> dict:
    import worker_layout as wl
    import yaml

    from vaebench.metrics.classifier import cached_classifier
    from vaebench.spec.sweep_spec import load_spec

    layouts = {
        f"1x{threads}": ["--workers", "1", "--threads", str(threads)],
        f"{threads}x1": ["--workers", str(threads), "--threads", "1"],
    }
    wl.LAYOUTS.clear()
    wl.LAYOUTS.update(layouts)
    measurements = []
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "layout.yaml"
        spec_path.write_text(yaml.safe_dump(wl.spec(runs, epochs)))
        cached_classifier(load_dataset(load_spec(spec_path).dataset))  # trained once, untimed
        for i in range(repeats):
            for name in layouts if i % 2 == 0 else list(reversed(list(layouts))):
                m = wl.run_layout(name, spec_path, Path(tmp))
                workers = int(name.split("x")[0])
                m["harness_overhead"] = 1 - m.pop("trial_seconds_sum") / (workers * m["wall_seconds"])
                print(
                    f"layout {name}: {m['trials_per_hour']:.0f} trials/h, harness overhead "
                    f"{m['harness_overhead']:.1%} (start-up {m['startup_seconds']:.1f} s, in trials "
                    f"{m['in_trial_harness_seconds']:.1f} s, shutdown {m['shutdown_seconds']:.1f} s of "
                    f"{m['wall_seconds']:.0f} s)",
                    flush=True,
                )
                measurements.append(m)
    summary = {}
    for name in layouts:
        ms = [m for m in measurements if m["layout"] == name]
        summary[name] = {
            k: spread([m[k] for m in ms])
            for k in (
                "trials_per_hour",
                "harness_overhead",
                "startup_seconds",
                "in_trial_harness_seconds",
                "shutdown_seconds",
                "wall_seconds",
            )
        }
    many, one = f"{threads}x1", f"1x{threads}"
    return {
        "spec": wl.spec(runs, epochs),
        "measurements": measurements,
        "summary": summary,
        "default_layout": many,
        "layout_speedup": summary[many]["trials_per_hour"]["median"] / summary[one]["trials_per_hour"]["median"],
    }


# ---------------------------------------------------------------------------------------------


def verdicts(out: dict) -> list[tuple[str, float | None, str, bool | None]]:
    """(measure, value, target, met) rows."""
    rows = []

    def row(label, value, target_key, fmt, higher=True):
        target = TARGETS[target_key]
        met = None if value is None else (value >= target if higher else value <= target)
        rows.append((label, value, ("≥ " if higher else "≤ ") + fmt.format(target), met, fmt))

    mlp, conv, lay, ev = out.get("mlp"), out.get("conv"), out.get("layout"), out.get("eval")
    row("MLP speed-up vs tutorial loop", mlp and mlp["speedup_vs_tutorial"], "mlp_speedup_vs_tutorial", "{:.2f}x")
    row("MLP fraction of matmul peak", mlp and mlp["fraction_of_peak"], "mlp_fraction_of_peak", "{:.0%}")
    row("Conv speed-up vs tutorial loop", conv and conv["speedup_vs_tutorial"], "conv_speedup_vs_tutorial", "{:.2f}x")
    row("Default layout vs one 2-thread worker", lay and lay["layout_speedup"], "layout_speedup", "{:.2f}x")
    row(
        "Harness overhead (default layout)",
        lay and lay["summary"][lay["default_layout"]]["harness_overhead"]["median"],
        "harness_overhead",
        "{:.1%}",
        higher=False,
    )
    row("Evaluation / training epoch (MLP)", ev and ev["eval_over_epoch"], "eval_over_epoch", "{:.2f}x", higher=False)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--threads",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="torch threads for the loop comparisons; workers in the layout comparison",
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="mlp,conv,layout,eval")
    ap.add_argument(
        "--conv-images",
        type=int,
        default=3840,
        help="training images a conv epoch is timed on (and a sixth as many test images)",
    )
    ap.add_argument("--layout-runs", type=int, default=4, help="runs of the layout sweep (MLP, one seed each)")
    ap.add_argument("--layout-epochs", type=int, default=2, help="epochs per run of the layout sweep")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "perf.json")
    args = ap.parse_args()
    parts = set(args.only.split(","))
    torch.set_num_threads(args.threads)
    root = resolve_data_root()
    data = load_dataset(RunConfig(dataset={"name": "mnist"}).dataset, root)

    out: dict = {
        "command": "python benchmarks/perf.py " + " ".join(sys.argv[1:]),
        "machine": {
            "cores": len(os.sched_getaffinity(0)),
            "cpu": _cpu_name(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "platform": platform.platform(),
        },
        "threads": args.threads,
        "repeats": args.repeats,
        "targets": TARGETS,
    }
    t_start = time.perf_counter()
    peak = matmul_peak(max(args.repeats, 3))
    out["matmul_peak_gflops"] = peak
    print(
        f"matmul peak ({args.threads} threads, 4096^2 float32): {peak['median']:.0f} GFLOP/s "
        f"[{peak['min']:.0f}, {peak['max']:.0f}]",
        flush=True,
    )
    mlp_model = mlp_cfg = None
    if parts & {"mlp", "eval"}:
        out["mlp"], res, mlp_cfg, _ = compare_loops("MLP", MLP, data, root, args.repeats, peak["median"])
        mlp_model = res.model
    if "conv" in parts:
        out["conv"], *_ = compare_loops(
            "Conv", CONV, data, root, args.repeats, peak["median"], args.conv_images, args.conv_images // 6
        )
    if "eval" in parts:
        cost = eval_cost(mlp_model, data, mlp_cfg, args.repeats)
        epoch = out["mlp"]["vaebench_seconds_per_epoch"]["median"]
        out["eval"] = {
            "model": MLP,
            "eval_config": mlp_cfg.eval.model_dump(),
            "seconds": cost,
            "training_epoch_seconds": epoch,
            "eval_over_epoch": cost["total"]["median"] / epoch,
        }
        print(
            "evaluation: "
            + ", ".join(f"{k} {v['median']:.2f} s" for k, v in cost.items())
            + f" -> {out['eval']['eval_over_epoch']:.2f} training epochs",
            flush=True,
        )
    if "layout" in parts:
        out["layout"] = layout_sweeps(max(2, args.repeats - 1), args.threads, args.layout_runs, args.layout_epochs)
        print(f"default layout: {out['layout']['layout_speedup']:.2f}x the trials per hour", flush=True)
    out["verdicts"] = [{"measure": m, "value": v, "target": t, "met": ok} for m, v, t, ok, _ in verdicts(out)]
    out["benchmark_seconds"] = time.perf_counter() - t_start
    out["created_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print("\n| measure | measured | target | met |\n|---|---|---|---|")
    for m, v, t, ok, fmt in verdicts(out):
        print(
            f"| {m} | {'—' if v is None else fmt.format(v)} | {t} | {'—' if ok is None else ('yes' if ok else 'no')} |"
        )
    print(f"\nwrote {args.out} ({out['benchmark_seconds'] / 60:.1f} min)")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
