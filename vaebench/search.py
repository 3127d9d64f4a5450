"""The search side of a study: Optuna samplers and pruners by name, and the Pareto front.

A spec's `search` section picks entries from these registries (see spec.SearchConfig). The grid
"sampler" is vaebench's own: every cell x seed is enqueued once (study.py), so no sampler is asked.
Pruners see one intermediate value per epoch: the test -ELBO in nats per example.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import optuna

from .registry import Registry


@dataclass(frozen=True)
class SamplerFamily:
    build: Callable[[Any], Optional[optuna.samplers.BaseSampler]]  # SearchConfig -> sampler
    doc: str


@dataclass(frozen=True)
class PrunerFamily:
    build: Callable[[Any, int], optuna.pruners.BasePruner]  # (PrunerConfig, epochs) -> pruner
    fields: tuple[str, ...]  # PrunerConfig fields it reads
    doc: str


SAMPLERS: Registry[SamplerFamily] = Registry("sampler")
PRUNERS: Registry[PrunerFamily] = Registry("pruner")

SAMPLERS.register("grid", SamplerFamily(
    lambda s: optuna.samplers.RandomSampler(seed=s.seed),  # never asked: every trial is enqueued
    "every grid cell x seed exactly once (enqueued, also under many workers)"))
SAMPLERS.register("random", SamplerFamily(
    lambda s: optuna.samplers.RandomSampler(seed=s.seed), "independent uniform / log-uniform draws"))
SAMPLERS.register("tpe", SamplerFamily(
    lambda s: optuna.samplers.TPESampler(seed=s.seed, multivariate=True, constant_liar=True),
    "Tree-structured Parzen Estimator (multivariate; constant liar for parallel workers); "
    "single- and multi-objective"))
SAMPLERS.register("nsga2", SamplerFamily(
    lambda s: optuna.samplers.NSGAIISampler(seed=s.seed), "NSGA-II genetic search, for multi-objective studies"))

PRUNERS.register("none", PrunerFamily(lambda p, epochs: optuna.pruners.NopPruner(), (), "never prune"))
PRUNERS.register("median", PrunerFamily(
    lambda p, epochs: optuna.pruners.MedianPruner(n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps),
    ("n_startup_trials", "n_warmup_steps"),
    "stop a trial whose test -ELBO at epoch t is worse than the median of earlier trials at t"))
PRUNERS.register("successive_halving", PrunerFamily(
    lambda p, epochs: optuna.pruners.SuccessiveHalvingPruner(min_resource=p.min_resource, reduction_factor=p.reduction_factor),
    ("min_resource", "reduction_factor"),
    "asynchronous successive halving: at rungs min_resource * eta^k epochs keep the best 1/eta"))
PRUNERS.register("hyperband", PrunerFamily(
    lambda p, epochs: optuna.pruners.HyperbandPruner(
        min_resource=p.min_resource, max_resource=epochs, reduction_factor=p.reduction_factor),
    ("min_resource", "reduction_factor"),
    "Hyperband: several successive-halving brackets up to the spec's epochs"))


def build_sampler(search) -> optuna.samplers.BaseSampler:
    return SAMPLERS.get(search.sampler).build(search)


def build_pruner(search, epochs: int) -> optuna.pruners.BasePruner:
    return PRUNERS.get(search.pruner.name).build(search.pruner, epochs)


def suggest(trial: optuna.Trial, key: str, param) -> Any:
    """Draw `key` from its spec distribution (spec.FloatParam / IntParam / CategoricalParam)."""
    if param.type == "float":
        return trial.suggest_float(key, param.low, param.high, log=param.log, step=param.step)
    if param.type == "int":
        return trial.suggest_int(key, param.low, param.high, log=param.log, step=param.step)
    return trial.suggest_categorical(key, param.choices)


def pareto_mask(values: Sequence[Sequence[float]], directions: Sequence[str]) -> list[bool]:
    """For each point, True when no other point is at least as good in every objective and better
    in one (`directions`: 'minimize' / 'maximize' per objective)."""
    sign = [1.0 if d == "minimize" else -1.0 for d in directions]
    pts = [[s * v for s, v in zip(sign, row)] for row in values]

    def dominates(a, b) -> bool:
        return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))

    return [not any(dominates(q, p) for j, q in enumerate(pts) if j != i) for i, p in enumerate(pts)]
