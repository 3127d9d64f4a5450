"""What the trainer minimizes: a `TrainingObjective`, built once per run from the spec's estimator or
owned by the model's family.

The trainer knows one protocol and no special cases:

- `objective(model, x, y, step) -> LossOut` is the loss of one batch (nats per example for the
  built-in estimators) with its bookkeeping terms;
- an objective may own auxiliary networks (submodules, e.g. FactorVAE's discriminator), each trained
  by its own optimizer: `auxiliary_optimizers()` names them, and after the model's optimizer step the
  trainer calls `auxiliary_loss(name, model, x, y, out, step)`, back-propagates it and steps that
  optimizer. Their parameters are never in the model's optimizer; their states (the networks and the
  optimizers) are in the run's checkpoints.

Where an objective comes from: `VAE.training_objective(cfg, info)`, whose default is
`build_objective` below: the `ESTIMATORS` entry the spec's `objective.estimator` names. A family
that defines its own training loss (a plugin wrapping another library's models) overrides
`training_objective` instead.

An `ESTIMATORS` entry is either a plain loss function `(cfg, model, x, y, kl_weight) -> LossOut`
(stateless; `kl_weight` = beta * w(t)) or an `Estimator`: a builder of a `TrainingObjective` and the
`objective:` fields it reads (the spec refuses a value for a field the estimator does not read).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
from torch import nn

from .bounds import ESTIMATORS, LossOut, training_loss

# The fields of the `objective:` section every estimator reads.
COMMON_FIELDS = ("likelihood", "estimator")


class Step(NamedTuple):
    """Where training is when a batch's loss is computed."""

    step: int  # optimizer steps taken before this one (the KL schedule's t)
    steps_per_epoch: int
    total_steps: int  # steps_per_epoch * train.epochs
    weight: float  # the KL schedule's w(t) in [0, 1]; the KL term's weight is beta * w(t)
    dataset_size: int  # training examples (without the validation split): N in estimators over q(z)


class TrainingInfo(NamedTuple):
    """What an objective may need to know when it is built (before the first step)."""

    dataset_size: int  # training examples
    steps_per_epoch: int
    total_steps: int
    lr: float  # the model's learning rate (train.lr)
    device: torch.device


class TrainingObjective(nn.Module):
    """The loss of one batch, and any networks trained beside the model (see the module docstring).

    A subclass implements `forward(model, x, y, step) -> LossOut`. One with auxiliary networks
    registers them as submodules, builds their optimizers in `__init__`, returns them from
    `auxiliary_optimizers` and their losses from `auxiliary_loss`."""

    def forward(self, model, x: torch.Tensor, y: torch.Tensor | None, step: Step) -> LossOut:
        raise NotImplementedError

    def auxiliary_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """name -> the optimizer of an auxiliary network; empty when the objective has none."""
        return {}

    def auxiliary_loss(
        self, name: str, model, x: torch.Tensor, y: torch.Tensor | None, out: LossOut, step: Step
    ) -> torch.Tensor:
        """The scalar loss of auxiliary network `name` for this batch, after the model's step; `out` is
        the batch's LossOut (its `extras` carry what the objective stashed, e.g. the sampled codes)."""
        raise NotImplementedError(f"{type(self).__name__} has no auxiliary network {name!r}")


class FunctionObjective(TrainingObjective):
    """The estimator `cfg.estimator` when it is a stateless loss function `(cfg, model, x, y,
    kl_weight) -> LossOut` (`elbo`, `iwae`, plugins' plain functions), called through
    `bounds.training_loss` with kl_weight = beta * w(t)."""

    def __init__(self, cfg) -> None:
        super().__init__()
        self.cfg = cfg

    def forward(self, model, x, y, step: Step) -> LossOut:
        return training_loss(self.cfg, model, x, y, self.cfg.beta * step.weight)


@dataclass(frozen=True)
class Estimator:
    """An `ESTIMATORS` entry with state or options: `build(cfg, model, info) -> TrainingObjective` and
    the `objective:` fields it reads besides `COMMON_FIELDS` (e.g. `("beta", "tc_sampling")`).
    `check(cfg)`, when given, raises ValueError for a combination of fields the estimator refuses;
    `unsupported(model_class)`, when given, returns why the estimator cannot train the models of a
    family (the class its `ModelFamily.model` names), or None: both run when the spec is validated.
    `label`: the model it trains as papers name it ("β-TCVAE"), for reports (`estimator_label`)."""

    build: Callable[..., TrainingObjective]
    fields: tuple[str, ...] = ()
    doc: str = ""
    check: Callable[..., None] | None = None
    unsupported: Callable[[type], str | None] | None = None
    label: str = ""


def estimator_label(name: str) -> str:
    """Estimator `name` as papers name the model it trains ("β-TCVAE" for btcvae): its `label` (an
    `Estimator`'s field, or a plain loss function's attribute), else `name` itself."""
    entry = ESTIMATORS.get(name) if name in ESTIMATORS else None
    return getattr(entry, "label", "") or name


# The fields a plain loss function reads (the elbo estimator's; iwae adds iwae_k): see ObjectiveConfig.
FUNCTION_FIELDS = ("beta", "reduction", "free_bits")


def _estimator(name: str) -> Estimator | None:
    """The `Estimator` registered as `name`, or None for a plain loss function."""
    entry = ESTIMATORS.get(name)
    return entry if isinstance(entry, Estimator) else None


def estimator_fields(name: str) -> tuple[str, ...] | None:
    """The `objective:` fields estimator `name` reads besides COMMON_FIELDS and the likelihood's,
    or None for a plain loss function (whose fields the spec section knows)."""
    entry = _estimator(name)
    return None if entry is None else entry.fields


def check_estimator(cfg) -> None:
    """Run the `check` of the Estimator the `objective:` section `cfg` names (ValueError), if any."""
    entry = _estimator(cfg.estimator)
    if entry is not None and entry.check is not None:
        entry.check(cfg)


def unsupported_reason(estimator: str, model_class: type) -> str | None:
    """Why estimator `estimator` cannot train models of `model_class`, or None."""
    entry = _estimator(estimator)
    return None if entry is None or entry.unsupported is None else entry.unsupported(model_class)


def build_objective(cfg, model, info: TrainingInfo) -> TrainingObjective:
    """The objective the `objective:` section `cfg` names, for `model`, on its device."""
    entry = _estimator(cfg.estimator)
    objective = FunctionObjective(cfg) if entry is None else entry.build(cfg, model, info)
    return objective.to(info.device)
