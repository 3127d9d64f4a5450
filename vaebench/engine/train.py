"""The training loop: a RunConfig, a seed and a Dataset in; a trained model and its history out.

Knows nothing of Optuna or results files. The whole dataset sits on the device as one tensor and a
batch is an index slice of it; losses are accumulated on the device and read once per epoch.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from ..data import Dataset
from ..models import VAE, build_model
from ..objectives.bounds import training_loss
from ..objectives.likelihoods import build_likelihood
from ..objectives.schedules import kl_weight
from ..results.status import RunStatus
from ..runtime.device import autocast, resolve_device, tf32
from ..runtime.seeding import seed_everything
from ..spec.sweep_spec import RunConfig

# Called after every epoch with its history record; a non-empty string it returns stops training
# (status pruned, the string as the reason): how a pruner stops a trial without the loop knowing
# (sweep/worker.py's callback reports the epoch to the Optuna trial and asks its pruner).
EpochCallback = Callable[[dict], Optional[str]]


@dataclass
class TrainResult:
    model: VAE
    history: list[dict] = field(default_factory=list)  # one record per finished epoch
    status: RunStatus = RunStatus.OK  # OK, FAILED (diverged) or PRUNED (stopped by on_epoch)
    reason: Optional[str] = None  # why training stopped early
    seconds: float = 0.0  # wall time of the training loop (incl. per-epoch test loss)
    precision: str = "fp32"  # train.precision: the autocast dtype of the training steps (fp32: none)
    tf32: bool = False  # whether TF32 matmuls/convolutions were allowed while training (CUDA only)


def _adam(params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam with the fused kernel where this torch has it for the device (CPU since torch 2.4): one
    kernel over all the parameters instead of the per-parameter loop."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


@torch.no_grad()
def heldout_loss(model: VAE, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> dict:
    """Single-sample -ELBO (beta = 1, unweighted: comparable across runs) and its terms on held-out
    data `x` (the test split), nats per example: the history's `test_loss`, `test_recon`, `test_kl`."""
    model.eval()
    sums = torch.zeros(2, device=x.device)
    for start in range(0, len(x), batch_size):
        t = model.elbo_terms(x[start : start + batch_size], y[start : start + batch_size])
        sums += torch.stack([t.recon.sum(), t.kl.sum()])
    recon, kl = (sums / len(x)).tolist()
    return {"test_loss": recon + kl, "test_recon": recon, "test_kl": kl}


def train(
    cfg: RunConfig,
    data: Dataset,
    seed: int,
    device: str | torch.device | None = None,
    on_epoch: Optional[EpochCallback] = None,
) -> TrainResult:
    """Train the VAE `cfg` describes on `data.x_train` with Adam; evaluate the loss on the test split
    after every epoch. Stops early, with status failed when a loss is NaN or infinite (it diverged),
    or with status pruned when `on_epoch` returns a reason.

    Precision (`cfg.train.precision`): each step's forward pass and loss run under torch.autocast to
    bf16 or fp16 (fp16 with a gradient scaler: the loss is scaled before backward, the gradients
    unscaled before clipping, steps with inf/NaN gradients skipped); the weights, Adam's state, the
    per-epoch test loss and everything after training stay float32. On CUDA, `cfg.train.tf32`
    allows TF32 for the float32 matmuls and convolutions of the training steps (not of the recorded
    losses).

    `device` (a string is resolved: `runtime.resolve_device`) and the precision on it are the
    caller's to check, once, at its boundary (`runtime.check_device`, `runtime.check_precision`:
    `vaebench run`, `vaebench worker`, `vaebench train`); a precision torch lacks on the device is
    not refused here."""
    device = resolve_device(device)
    with tf32(device, cfg.train.tf32) as tf32_on:
        result = _train(cfg, data, seed, device, on_epoch)
    result.tf32 = tf32_on
    return result


def _train(
    cfg: RunConfig, data: Dataset, seed: int, device: torch.device, on_epoch: Optional[EpochCallback]
) -> TrainResult:
    seed_everything(seed)
    model = build_model(cfg.model, data.shape, build_likelihood(cfg.objective), data.num_classes)
    model = model.to(device, memory_format=model.memory_format)
    opt = _adam(model.parameters(), cfg.train.lr, cfg.train.weight_decay)
    plateau = (
        torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, factor=cfg.train.plateau_factor, patience=cfg.train.plateau_patience
        )
        if cfg.train.lr_schedule == "plateau"
        else None
    )
    params = [p for p in model.parameters() if p.requires_grad]
    x_train, y_train = data.x_train.to(device).contiguous(memory_format=model.memory_format), data.y_train.to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    n, bs, beta = len(x_train), cfg.train.batch_size, cfg.objective.beta
    steps_per_epoch = math.ceil(n / bs)
    total_steps = steps_per_epoch * cfg.train.epochs
    gen = torch.Generator(device=device).manual_seed(seed)
    precision = cfg.train.precision
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None  # fp16 gradients underflow unscaled
    result = TrainResult(model, precision=precision)
    t0 = time.perf_counter()
    step = 0

    for epoch in range(1, cfg.train.epochs + 1):
        model.train()
        sums = torch.zeros(3, device=device)  # loss, recon, kl: summed over examples
        weights = 0.0  # sum over the epoch's steps of the KL weight
        perm = torch.randperm(n, device=device, generator=gen)
        for start in range(0, n, bs):
            idx = perm[start : start + bs]
            x, y = x_train[idx], y_train[idx]  # (B, C, H, W), (B,)
            if cfg.dataset.binarize:
                x = torch.bernoulli(x, generator=gen)
            # KL weight of this step: beta * w(t)
            w = beta * kl_weight(cfg.schedule, step, steps_per_epoch, total_steps)
            # forward / backward
            with autocast(device, precision):  # fp32: no autocast
                out = training_loss(cfg.objective, model, x, y, w)
            opt.zero_grad(set_to_none=True)
            (out.loss if scaler is None else scaler.scale(out.loss)).backward()
            if cfg.train.grad_clip is not None:
                if scaler is not None:
                    scaler.unscale_(opt)  # clip the true gradients
                torch.nn.utils.clip_grad_norm_(params, cfg.train.grad_clip, foreach=True)
            if scaler is None:
                opt.step()
            else:
                scaler.step(opt)  # skipped when a gradient is inf/NaN; the scale then shrinks
                scaler.update()
            # bookkeeping on the device, in float32 (autocast may leave terms in bf16/fp16): no host sync per step
            with torch.no_grad():
                sums += torch.stack([out.loss.detach().float() * len(x), out.recon.float().sum(), out.kl.float().sum()])
            weights += w
            step += 1
        # once per epoch: read the sums, evaluate on the test split, check for divergence
        train_loss, train_recon, train_kl = (sums / n).tolist()
        with tf32(device, False):  # the recorded test loss in full float32, whatever the training precision
            test = heldout_loss(model, x_test, y_test, cfg.eval.batch_size)
        record = {
            "epoch": epoch,
            "kl_weight": weights / steps_per_epoch,
            "lr": opt.param_groups[0]["lr"],
            "train_loss": train_loss,
            "train_recon": train_recon,
            "train_kl": train_kl,
            **test,
            "seconds": time.perf_counter() - t0,
        }
        bad = [k for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            result.status = RunStatus.FAILED
            result.reason = f"non-finite {', '.join(bad)} at epoch {epoch} (lr={cfg.train.lr}, beta={beta})"
            break
        result.history.append(record)
        if plateau is not None:
            plateau.step(train_loss)
        if on_epoch is not None and (stop := on_epoch(record)):
            result.status, result.reason = RunStatus.PRUNED, stop
            break

    result.seconds = time.perf_counter() - t0
    model.eval()
    return result
