"""The training loop: a RunConfig, a seed and a Dataset in; a trained model and its history out.

Knows nothing of Optuna or results files. The whole dataset sits on the device as one tensor and a
batch is an index slice of it; losses are accumulated on the device and read once per epoch.

After every epoch the single-sample -ELBO is measured on one held-out split: the validation split
when the dataset has one (`val_loss`, `val_recon`, `val_kl`), else the test split (`test_loss`, ...;
the committed fixed-budget studies). That per-epoch value is what pruners, learning curves and early
stopping read (`selection_loss`); with a validation split the test split is evaluated only once,
after training (metrics.evaluate).
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
from ..objectives.schedules import kl_weight, settled_epoch
from ..results.fields import selection_loss
from ..results.status import RunStatus
from ..runtime.device import autocast, resolve_device, tf32
from ..runtime.seeding import seed_everything
from ..spec.sweep_spec import RunConfig

# Called after every epoch with its history record; a non-empty string it returns stops training
# (status pruned, the string as the reason): how a pruner stops a trial without the loop knowing
# (sweep/worker.py's callback reports the epoch to the Optuna trial and asks its pruner).
EpochCallback = Callable[[dict], Optional[str]]

# Why training ended (a row's `stop_reason`): the epoch budget ran out; early stopping found no
# improvement for `patience` epochs; a pruner stopped it; a loss was NaN or infinite.
STOP_REASONS = ("max_epochs", "converged", "pruned", "diverged")


@dataclass
class TrainResult:
    model: VAE
    history: list[dict] = field(default_factory=list)  # one record per finished epoch
    status: RunStatus = RunStatus.OK  # OK, FAILED (diverged) or PRUNED (stopped by on_epoch)
    reason: Optional[str] = None  # why training stopped early
    stop_reason: str = "max_epochs"  # STOP_REASONS
    best_epoch: Optional[int] = None  # the epoch whose weights the model holds (restored by early stopping)
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
def heldout_loss(model: VAE, x: torch.Tensor, y: torch.Tensor, batch_size: int, prefix: str = "test") -> dict:
    """Single-sample -ELBO (beta = 1, unweighted: comparable across runs) and its terms on held-out
    data `x`, nats per example: the history's `<prefix>_loss`, `<prefix>_recon`, `<prefix>_kl` (prefix
    "val" for the validation split, "test" for the test split)."""
    model.eval()
    sums = torch.zeros(2, device=x.device)
    for start in range(0, len(x), batch_size):
        t = model.elbo_terms(x[start : start + batch_size], y[start : start + batch_size])
        sums += torch.stack([t.recon.sum(), t.kl.sum()])
    recon, kl = (sums / len(x)).tolist()
    return {f"{prefix}_loss": recon + kl, f"{prefix}_recon": recon, f"{prefix}_kl": kl}


def train(
    cfg: RunConfig,
    data: Dataset,
    seed: int,
    device: str | torch.device | None = None,
    on_epoch: Optional[EpochCallback] = None,
) -> TrainResult:
    """Train the VAE `cfg` describes on the training examples of `data` (its training split without
    the validation part) with Adam; evaluate the loss on the validation split (else the test split)
    after every epoch. Stops early, with status failed when a loss is NaN or infinite (it diverged),
    with status pruned when `on_epoch` returns a reason, or (`cfg.train.early_stopping`) with status
    ok when the validation -ELBO has not improved by more than `min_delta` nats for `patience`
    counted epochs. Under early stopping the model returned holds the weights of its best epoch: the
    last epoch that improved by more than `min_delta` (Keras's rule), among the epochs after the KL
    schedule has settled (`objectives.schedules.settled_epoch`; earlier epochs do not count, so a
    warm-up or a cyclical schedule cannot trigger a stop before it has finished).

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
    x_train, y_train = data.training_examples()
    x_train, y_train = x_train.to(device).contiguous(memory_format=model.memory_format), y_train.to(device)
    held_out, prefix = (data.validation_split(), "val") if data.validation_size else (data, "test")
    x_held, y_held = held_out.x_test.to(device), held_out.y_test.to(device)
    n, bs, beta = len(x_train), cfg.train.batch_size, cfg.objective.beta
    steps_per_epoch = math.ceil(n / bs)
    total_steps = steps_per_epoch * cfg.train.epochs
    gen = torch.Generator(device=device).manual_seed(seed)
    precision = cfg.train.precision
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None  # fp16 gradients underflow unscaled
    result = TrainResult(model, precision=precision)
    stopping = EarlyStopper(cfg.train.early_stopping, settled_epoch(cfg.schedule, steps_per_epoch, total_steps))
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
        # once per epoch: read the sums, evaluate on the held-out split, check for divergence
        train_loss, train_recon, train_kl = (sums / n).tolist()
        with tf32(device, False):  # the recorded held-out loss in full float32, whatever the training precision
            held = heldout_loss(model, x_held, y_held, cfg.eval.batch_size, prefix)
        record = {
            "epoch": epoch,
            "kl_weight": weights / steps_per_epoch,
            "lr": opt.param_groups[0]["lr"],
            "train_loss": train_loss,
            "train_recon": train_recon,
            "train_kl": train_kl,
            **held,
            "seconds": time.perf_counter() - t0,
        }
        bad = [k for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            result.status, result.stop_reason = RunStatus.FAILED, "diverged"
            result.reason = f"non-finite {', '.join(bad)} at epoch {epoch} (lr={cfg.train.lr}, beta={beta})"
            break
        result.history.append(record)
        if plateau is not None:
            plateau.step(train_loss)
        if on_epoch is not None and (stop := on_epoch(record)):
            result.status, result.stop_reason, result.reason = RunStatus.PRUNED, "pruned", stop
            break
        if stopping.update(epoch, selection_loss(record)[1], model):
            result.stop_reason = "converged"  # status stays ok; the row's best_epoch says where
            break

    result.seconds = time.perf_counter() - t0
    result.best_epoch = len(result.history) if result.history else None
    if result.status is RunStatus.OK and stopping.best_state is not None:
        model.load_state_dict(stopping.best_state)
        result.best_epoch = stopping.best_epoch
    model.eval()
    return result


class EarlyStopper:
    """`train.early_stopping`'s state: the best held-out -ELBO among the counted epochs (those from
    `first_epoch`, when the KL schedule has settled), that epoch and a copy of its weights, and the
    counted epochs since it. Inactive (never stops, keeps nothing) when `config` is None."""

    def __init__(self, config, first_epoch: int):
        self.config, self.first_epoch = config, first_epoch
        self.best, self.best_epoch, self.best_state, self.waited = math.inf, None, None, 0

    def update(self, epoch: int, loss: float, model: VAE) -> bool:
        """Record epoch `epoch`'s held-out -ELBO (nats); True when training should stop."""
        if self.config is None or epoch < self.first_epoch:
            return False
        if loss < self.best - self.config.min_delta:
            self.best, self.best_epoch, self.waited = loss, epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return False
        self.waited += 1
        return self.waited >= self.config.patience
