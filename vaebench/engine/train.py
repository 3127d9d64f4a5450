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
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from ..data import Dataset
from ..errors import Preempted
from ..models import VAE, build_model
from ..objectives.likelihoods import build_likelihood
from ..objectives.schedules import kl_weight, settled_epoch
from ..objectives.training import Step, TrainingInfo
from ..results.fields import selection_loss
from ..results.status import RunStatus
from ..runtime import stop
from ..runtime.device import autocast, resolve_device, tf32
from ..runtime.seeding import seed_everything
from ..spec.sweep_spec import RunConfig
from .checkpoint import Checkpoints

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
    # the epoch this process resumed in, from a checkpoint (engine/checkpoint.py); None: from epoch 1
    resumed_from_epoch: Optional[int] = None


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
    checkpoints: Optional[Checkpoints] = None,
    on_resume: Optional[Callable[[list[dict]], None]] = None,
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

    Checkpoints (`checkpoints`, engine/checkpoint.py): a checkpoint of this run found there is
    resumed from (`on_resume` is called with the history it restores; the result's
    `resumed_from_epoch` says where), one is written as `cfg.train.checkpoint_every` asks, and at the
    first step boundary after a stop request (runtime.stop: SIGTERM) one is written and
    `errors.Preempted` raised. On CPU a resumed run's history (but its seconds) and weights equal an
    uninterrupted run's bit for bit: every state the loop continues from is in the checkpoint.

    `device` (a string is resolved: `runtime.resolve_device`) and the precision on it are the
    caller's to check, once, at its boundary (`runtime.check_device`, `runtime.check_precision`:
    `vaebench run`, `vaebench worker`, `vaebench train`); a precision torch lacks on the device is
    not refused here."""
    device = resolve_device(device)
    with tf32(device, cfg.train.tf32) as tf32_on:
        result = _train(cfg, data, seed, device, on_epoch, checkpoints, on_resume)
    result.tf32 = tf32_on
    return result


def _train(
    cfg: RunConfig,
    data: Dataset,
    seed: int,
    device: torch.device,
    on_epoch: Optional[EpochCallback],
    checkpoints: Optional[Checkpoints] = None,
    on_resume: Optional[Callable[[list[dict]], None]] = None,
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
    # the loss, and any auxiliary networks with their own optimizers (objectives/training.py)
    objective = model.training_objective(
        cfg.objective, TrainingInfo(n, steps_per_epoch, total_steps, cfg.train.lr, device)
    )
    precision = cfg.train.precision
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None  # fp16 gradients underflow unscaled
    result = TrainResult(model, precision=precision)
    stopping = EarlyStopper(cfg.train.early_stopping, settled_epoch(cfg.schedule, steps_per_epoch, total_steps))
    loop = _LoopState(model, opt, plateau, scaler, gen, stopping, result.history, device, objective)
    saved = checkpoints.load() if checkpoints is not None else None
    if saved is not None:
        loop.restore(saved)
        result.resumed_from_epoch = loop.epoch
        where = f"epoch {loop.epoch}" + (f", step {loop.start // bs + 1}" if loop.start else "")
        checkpoints.note(f"run {checkpoints.identity['run_id']}: resumed from its checkpoint at {where}")
        if on_resume is not None and result.history:
            on_resume(list(result.history))
    t0 = time.perf_counter() - loop.seconds  # the history's seconds count the earlier attempts' training too
    if checkpoints is not None:
        checkpoints.last_write = time.perf_counter()

    for epoch in range(loop.epoch, cfg.train.epochs + 1):
        model.train()
        if loop.perm is None:  # a new epoch (else: resumed within this one)
            loop.sums = torch.zeros(3, device=device)  # loss, recon, kl: summed over examples
            loop.weights = 0.0  # sum over the epoch's steps of the KL weight
            loop.aux_sums = {}  # auxiliary network -> its loss summed over examples
            loop.perm = torch.randperm(n, device=device, generator=gen)
        perm, sums = loop.perm, loop.sums
        for start in range(loop.start, n, bs):
            # a step boundary: a stop asked by SIGTERM (runtime.stop), or the time policy, writes a checkpoint here
            stop.kill_point("step")
            if stop.requested() or (checkpoints is not None and checkpoints.due()):
                loop.epoch, loop.start, loop.seconds = epoch, start, time.perf_counter() - t0
                if checkpoints is not None:
                    checkpoints.save(loop.state(), epoch, loop.step)
                if stop.requested():
                    raise Preempted(
                        f"stopped by SIGTERM at epoch {epoch}, step {start // bs + 1}/{steps_per_epoch}"
                        + (f"; checkpoint {checkpoints.path}" if checkpoints is not None else "; no checkpoint kept")
                    )
            idx = perm[start : start + bs]
            x, y = x_train[idx], y_train[idx]  # (B, C, H, W), (B,)
            if cfg.dataset.binarize:
                x = torch.bernoulli(x, generator=gen)
            # the KL schedule's weight w(t) of this step: the KL term's weight is beta * w(t)
            w = kl_weight(cfg.schedule, loop.step, steps_per_epoch, total_steps)
            step = Step(loop.step, steps_per_epoch, total_steps, w, n)
            # forward / backward
            with autocast(device, precision):  # fp32: no autocast
                out = objective(model, x, y, step)
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
            # the objective's auxiliary networks (e.g. FactorVAE's discriminator), each by its own optimizer
            for name, aux_opt in loop.aux_opts.items():
                aux_opt.zero_grad(set_to_none=True)  # also drops what the model's loss put there
                with autocast(device, precision):
                    aux_loss = objective.auxiliary_loss(name, model, x, y, out, step)
                aux_loss.backward()
                aux_opt.step()
                loop.aux_sums[name] = loop.aux_sums.get(name, 0.0) + aux_loss.detach().float() * len(x)
            # bookkeeping on the device, in float32 (autocast may leave terms in bf16/fp16): no host sync per step
            with torch.no_grad():
                sums += torch.stack([out.loss.detach().float() * len(x), out.recon.float().sum(), out.kl.float().sum()])
            loop.weights += beta * w
            loop.step += 1
        loop.perm, loop.start = None, 0
        # once per epoch: read the sums, evaluate on the held-out split, check for divergence
        train_loss, train_recon, train_kl = (sums / n).tolist()
        with tf32(device, False):  # the recorded held-out loss in full float32, whatever the training precision
            held = heldout_loss(model, x_held, y_held, cfg.eval.batch_size, prefix)
        record = {
            "epoch": epoch,
            "kl_weight": loop.weights / steps_per_epoch,
            "lr": opt.param_groups[0]["lr"],
            "train_loss": train_loss,
            "train_recon": train_recon,
            "train_kl": train_kl,
            **{f"train_{name}_loss": float(v) / n for name, v in loop.aux_sums.items()},
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
        if on_epoch is not None and (stop_reason := on_epoch(record)):
            result.status, result.stop_reason, result.reason = RunStatus.PRUNED, "pruned", stop_reason
            break
        if stopping.update(epoch, selection_loss(record)[1], model):
            result.stop_reason = "converged"  # status stays ok; the row's best_epoch says where
            break
        # an epoch boundary with training to come: the RNG states saved are those after the held-out loss
        if checkpoints is not None and epoch < cfg.train.epochs and checkpoints.due(epoch_end=epoch):
            loop.epoch, loop.seconds = epoch + 1, time.perf_counter() - t0
            checkpoints.save(loop.state(), epoch + 1, loop.step)

    result.seconds = time.perf_counter() - t0
    result.best_epoch = len(result.history) if result.history else None
    if result.status is RunStatus.OK and stopping.best_state is not None:
        model.load_state_dict(stopping.best_state)
        result.best_epoch = stopping.best_epoch
    model.eval()
    return result


class _LoopState:
    """Where the training loop is, and everything it continues from: what a checkpoint holds.

    `epoch` (1-based) is the epoch in progress or next; `start` the index in that epoch's permutation
    `perm` of the next batch (`perm` None: the epoch has not begun, its permutation is drawn from
    `gen` when it does); `sums` and `weights` the epoch's loss sums and KL weights so far; `step` the
    steps taken (the KL schedule's t); `seconds` the training seconds so far (all attempts). The
    model, optimizer, scheduler, scaler, generator, early stopper and history are the loop's own
    objects: `state()` reads them, `restore()` loads a checkpoint into them."""

    def __init__(
        self, model, opt, plateau, scaler, gen, stopping, history: list, device: torch.device, objective
    ) -> None:
        self.model, self.opt, self.plateau, self.scaler, self.gen = model, opt, plateau, scaler, gen
        self.stopping, self.history, self.device, self.objective = stopping, history, device, objective
        self.aux_opts = objective.auxiliary_optimizers()
        self.aux_sums: dict = {}
        self.epoch, self.start, self.step, self.seconds = 1, 0, 0, 0.0
        self.perm: Optional[torch.Tensor] = None
        self.sums: Optional[torch.Tensor] = None
        self.weights = 0.0

    def state(self) -> dict:
        cpu = torch.device("cpu")
        return {
            "epoch": self.epoch,
            "start": self.start,
            "step": self.step,
            "seconds": self.seconds,
            "perm": None if self.perm is None else self.perm.to(cpu),
            "sums": None if self.perm is None else self.sums.to(cpu),
            "weights": self.weights,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "objective": self.objective.state_dict(),  # auxiliary networks (empty for most objectives)
            "aux_optimizers": {name: o.state_dict() for name, o in self.aux_opts.items()},
            "aux_sums": {name: v.to(cpu) for name, v in self.aux_sums.items()},
            "plateau": None if self.plateau is None else self.plateau.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "history": list(self.history),
            "early_stopping": {
                "best": self.stopping.best,
                "best_epoch": self.stopping.best_epoch,
                "best_state": self.stopping.best_state,
                "waited": self.stopping.waited,
            },
            "rng": rng_states(self.gen, self.device),
        }

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.objective.load_state_dict(state.get("objective", {}))
        for name, o in self.aux_opts.items():
            o.load_state_dict(state["aux_optimizers"][name])
        self.aux_sums = {name: v.to(self.device) for name, v in state.get("aux_sums", {}).items()}
        if self.plateau is not None:
            self.plateau.load_state_dict(state["plateau"])
        if self.scaler is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.history[:] = state["history"]
        es = state["early_stopping"]
        self.stopping.best, self.stopping.best_epoch, self.stopping.waited = es["best"], es["best_epoch"], es["waited"]
        self.stopping.best_state = (
            None if es["best_state"] is None else {k: v.to(self.device) for k, v in es["best_state"].items()}
        )
        self.epoch, self.start, self.step, self.seconds = (
            state["epoch"],
            state["start"],
            state["step"],
            state["seconds"],
        )
        self.weights = state["weights"]
        self.perm = None if state["perm"] is None else state["perm"].to(self.device)
        self.sums = None if state["sums"] is None else state["sums"].to(self.device)
        restore_rng_states(state["rng"], self.gen, self.device)


def rng_states(gen: torch.Generator, device: torch.device) -> dict:
    """Every random generator a run draws from: the loop's (permutations, dynamic binarization),
    torch's global CPU generator (the sampling of z) and CUDA's on a CUDA device, Python's and NumPy's."""
    keys, pos, has_gauss, gauss = np.random.get_state()[1:]
    return {
        "loop": gen.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else None,
        "python": random.getstate(),
        "numpy": {"keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)},
    }


def restore_rng_states(states: dict, gen: torch.Generator, device: torch.device) -> None:
    gen.set_state(states["loop"])
    torch.set_rng_state(states["torch"])
    if device.type == "cuda" and states["cuda"] is not None:
        torch.cuda.set_rng_state_all(states["cuda"])
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    n = states["numpy"]
    np.random.set_state(("MT19937", np.array(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"], n["gauss"]))


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
