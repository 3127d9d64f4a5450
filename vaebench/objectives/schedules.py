"""KL-weight schedules: pure functions of the optimizer step giving w(t) in [0, 1].

The KL term's weight at step t is beta * w(t). `t` counts optimizer steps from 0; a unit of
`epochs` is `steps_per_epoch` steps, so warm-ups move smoothly within an epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from ..registry import Registry


@dataclass(frozen=True)
class Schedule:
    fn: Callable[..., float]  # (cfg, step, steps_per_epoch, total_steps) -> w in [0, 1]
    fields: tuple[str, ...]  # ScheduleConfig fields it reads


SCHEDULES: Registry[Schedule] = Registry("schedule")


def _units(cfg, step: int, steps_per_epoch: int) -> float:
    return step / steps_per_epoch if cfg.unit == "epochs" else float(step)


def constant(cfg, step: int, steps_per_epoch: int, total_steps: int) -> float:
    """No annealing: w = 1."""
    return 1.0


def linear(cfg, step: int, steps_per_epoch: int, total_steps: int) -> float:
    """Bowman et al. 2016 linear warm-up: w = min(1, t / warmup), t in `unit`s."""
    return min(1.0, _units(cfg, step, steps_per_epoch) / cfg.warmup)


def logistic(cfg, step: int, steps_per_epoch: int, total_steps: int) -> float:
    """Bowman et al. 2016 logistic warm-up: w = 1 / (1 + exp(-k (t - t0))), t in `unit`s."""
    x = -cfg.steepness * (_units(cfg, step, steps_per_epoch) - cfg.midpoint)
    return 1.0 / (1.0 + math.exp(x)) if x < 700 else 0.0


def cyclical(cfg, step: int, steps_per_epoch: int, total_steps: int) -> float:
    """Fu et al. 2019: M cycles over the run; within a cycle, tau = position in [0, 1); w rises
    linearly as tau / R for tau < R, then stays at 1."""
    period = total_steps / cfg.cycles
    tau = (step % period) / period
    return min(1.0, tau / cfg.ratio)


SCHEDULES.register("constant", Schedule(constant, ()))
SCHEDULES.register("linear", Schedule(linear, ("unit", "warmup")))
SCHEDULES.register("logistic", Schedule(logistic, ("unit", "midpoint", "steepness")))
SCHEDULES.register("cyclical", Schedule(cyclical, ("cycles", "ratio")))


def kl_weight(cfg, step: int, steps_per_epoch: int, total_steps: int) -> float:
    """w(step) of the schedule a ScheduleConfig names."""
    return SCHEDULES.get(cfg.name).fn(cfg, step, steps_per_epoch, total_steps)


SETTLED_TOLERANCE = 1e-3  # w within this of 1 counts as the schedule's final weight


def settled_epoch(cfg, steps_per_epoch: int, total_steps: int) -> int:
    """The first epoch (1-based) from which every remaining step of the run has w(t) >= 1 - 1e-3: the
    schedule has finished warming up (linear, logistic) or annealing (cyclical: the rise of its last
    cycle), and the training loss is the final one. Early stopping neither counts nor keeps epochs
    before it (a warm-up's rising KL weight can raise the validation -ELBO for a while). Returns
    `total_steps / steps_per_epoch + 1` when w never settles (cyclical with ratio 1)."""
    fn = SCHEDULES.get(cfg.name).fn
    for step in range(total_steps - 1, -1, -1):  # back from the last step to the last unsettled one
        if fn(cfg, step, steps_per_epoch, total_steps) < 1.0 - SETTLED_TOLERANCE:
            return step // steps_per_epoch + 2
    return 1
