"""The search side of a study: Optuna samplers and pruners by name.

A spec's `search` section picks entries from these registries (see search.SearchConfig); a
pruner entry also declares the PrunerConfig fields it reads (any other must stay at its default).
The grid "sampler" is vaebench's own: every cell x seed is enqueued once (sweep/study.py), so no sampler
is asked. Pruners see one intermediate value per epoch: the validation -ELBO in nats per example
(the test split's only under search.allow_test_selection; engine/train.py).

Optuna is imported only when the study builds its sampler or pruner (`build_sampler`,
`build_pruner`): reading and validating a spec, which looks names and fields up here, never
imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..registry import Registry

if TYPE_CHECKING:
    import optuna


def _optuna():
    import optuna  # here, not at the top: a process that only reads specs never imports Optuna

    return optuna


@dataclass(frozen=True)
class SamplerFamily:
    build: Callable[[Any], Optional[optuna.samplers.BaseSampler]]  # SearchConfig -> sampler


@dataclass(frozen=True)
class PrunerFamily:
    build: Callable[[Any, int], optuna.pruners.BasePruner]  # (PrunerConfig, epochs) -> pruner
    fields: tuple[str, ...]  # PrunerConfig fields it reads


SAMPLERS: Registry[SamplerFamily] = Registry("sampler")
PRUNERS: Registry[PrunerFamily] = Registry("pruner")

# grid: every grid cell x seed exactly once (enqueued, also under many workers); the sampler is never asked
SAMPLERS.register("grid", SamplerFamily(lambda s: _optuna().samplers.RandomSampler(seed=s.seed)))
# random: independent uniform / log-uniform draws
SAMPLERS.register("random", SamplerFamily(lambda s: _optuna().samplers.RandomSampler(seed=s.seed)))
# tpe: Tree-structured Parzen Estimator (multivariate; constant liar for parallel workers); single- and
# multi-objective
SAMPLERS.register(
    "tpe", SamplerFamily(lambda s: _optuna().samplers.TPESampler(seed=s.seed, multivariate=True, constant_liar=True))
)
# nsga2: NSGA-II genetic search, for multi-objective studies
SAMPLERS.register("nsga2", SamplerFamily(lambda s: _optuna().samplers.NSGAIISampler(seed=s.seed)))

# none: never prune
PRUNERS.register("none", PrunerFamily(lambda p, epochs: _optuna().pruners.NopPruner(), ()))
# median: stop a trial whose validation -ELBO at epoch t is worse than the median of earlier trials at t
PRUNERS.register(
    "median",
    PrunerFamily(
        lambda p, epochs: _optuna().pruners.MedianPruner(
            n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps
        ),
        ("n_startup_trials", "n_warmup_steps"),
    ),
)
# successive_halving: asynchronous successive halving: at rungs min_resource * eta^k epochs keep the best 1/eta
PRUNERS.register(
    "successive_halving",
    PrunerFamily(
        lambda p, epochs: _optuna().pruners.SuccessiveHalvingPruner(
            min_resource=p.min_resource, reduction_factor=p.reduction_factor
        ),
        ("min_resource", "reduction_factor"),
    ),
)
# hyperband: several successive-halving brackets up to the spec's epochs
PRUNERS.register(
    "hyperband",
    PrunerFamily(
        lambda p, epochs: _optuna().pruners.HyperbandPruner(
            min_resource=p.min_resource, max_resource=epochs, reduction_factor=p.reduction_factor
        ),
        ("min_resource", "reduction_factor"),
    ),
)


def build_sampler(search) -> optuna.samplers.BaseSampler:
    return SAMPLERS.get(search.sampler).build(search)


def build_pruner(search, epochs: int) -> optuna.pruners.BasePruner:
    return PRUNERS.get(search.pruner.name).build(search.pruner, epochs)


def suggest(trial: optuna.Trial, key: str, param) -> Any:
    """Draw `key` from its spec distribution (search.FloatParam / IntParam / CategoricalParam)."""
    if param.type == "float":
        return trial.suggest_float(key, param.low, param.high, log=param.log, step=param.step)
    if param.type == "int":
        return trial.suggest_int(key, param.low, param.high, log=param.log, step=param.step)
    return trial.suggest_categorical(key, param.choices)


# ---------------------------------------------------------------------------------------------
# a grid key's values as an Optuna distribution

LOG_SPAN = 10.0  # numeric grid values all > 0 spanning at least this ratio get a log axis


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def grid_distribution(values: list[Any], pinned=None) -> Optional[optuna.distributions.BaseDistribution]:
    """The distribution a grid key's trials record its value under, so that optuna-dashboard and
    Optuna's plots put numbers on a numeric axis: every value an int -> IntDistribution, numbers ->
    FloatDistribution, from the least to the greatest value (each enqueued value lies in it), on a
    log scale when all are > 0 and span at least LOG_SPAN x; anything else -> CategoricalDistribution.

    `pinned`: the distribution the study's trials already record the key under (Optuna refuses
    another kind, another log scale, or other categorical choices for the same name). The result
    then keeps its kind and scale and widens its range to the values; None when the values do not
    fit it (a float on an int axis, a value <= 0 on a log axis, a new categorical choice): the
    trial then records no param for the key (its value stays in the trial's `labels` attribute)."""
    d = _optuna().distributions
    numeric = bool(values) and all(_number(v) for v in values)
    if pinned is None:
        if not numeric:
            return d.CategoricalDistribution(values)
        low, high = min(values), max(values)
        log = low > 0 and high >= LOG_SPAN * low
        if all(isinstance(v, int) for v in values):
            return d.IntDistribution(low, high, log=log)
        return d.FloatDistribution(float(low), float(high), log=log)
    if isinstance(pinned, d.CategoricalDistribution):
        return pinned if all(v in pinned.choices for v in values) else None
    if not numeric or (pinned.log and min(values) <= 0):
        return None
    low, high = min(min(values), pinned.low), max(max(values), pinned.high)
    if isinstance(pinned, d.IntDistribution):
        return d.IntDistribution(low, high, log=pinned.log) if all(isinstance(v, int) for v in values) else None
    return d.FloatDistribution(float(low), float(high), log=pinned.log)


def suggest_distribution(trial: optuna.Trial, key: str, distribution) -> Any:
    """`trial`'s value of `key` under `distribution` (its enqueued fixed value, for a grid trial)."""
    d = _optuna().distributions
    if isinstance(distribution, d.FloatDistribution):
        return trial.suggest_float(key, distribution.low, distribution.high, log=distribution.log)
    if isinstance(distribution, d.IntDistribution):
        return trial.suggest_int(key, distribution.low, distribution.high, log=distribution.log)
    return trial.suggest_categorical(key, distribution.choices)
