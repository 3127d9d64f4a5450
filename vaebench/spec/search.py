"""The `search:` section of a spec: how configurations are chosen, what is optimized, when a trial stops.

`SearchConfig` names a sampler (grid, or one drawing `n_trials` configs from `space`), the search
targets (`SearchTarget`: numeric result columns, each minimized or maximized; the YAML key is
`search.objectives`, Optuna's word, but in code they are *targets*: the spec's `objective:` section
is the training loss) and a pruner. Sampler and pruner names, and the pruner fields each pruner
reads, come from the registries in samplers.py; building the Optuna objects from this section is the
study's business (samplers.build_sampler, build_pruner).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import Field, field_validator, model_serializer, model_validator

from ..metrics.declarations import numeric_metric_columns
from ..registry import unknown_name
from .sections import ReadsSomeFields, StrictModel, check_dotted_key, check_finite_values, registered


class FloatParam(StrictModel):
    type: Literal["float"]
    low: float
    high: float
    log: bool = Field(False, description="sample on a log scale (low > 0)")
    step: Optional[float] = Field(None, gt=0.0, description="discretization step (not with log)")

    @model_validator(mode="after")
    def _range(self) -> "FloatParam":
        _check_range(self.low, self.high, self.log, self.step)
        return self

    def values(self) -> list[Any]:
        return [self.low, self.high]


class IntParam(StrictModel):
    type: Literal["int"]
    low: int
    high: int
    log: bool = Field(False, description="sample on a log scale (low >= 1)")
    step: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _range(self) -> "IntParam":
        _check_range(self.low, self.high, self.log, None if self.step == 1 else self.step)
        return self

    def values(self) -> list[Any]:
        return [self.low, self.high]


class CategoricalParam(StrictModel):
    type: Literal["categorical"]
    choices: list[Any] = Field(..., min_length=1)

    @field_validator("choices")
    @classmethod
    def _finite(cls, v: list[Any]) -> list[Any]:
        check_finite_values(v, "choices")
        return v

    def values(self) -> list[Any]:
        return list(self.choices)


def _check_range(low, high, log: bool, step) -> None:
    if low > high:
        raise ValueError(f"low ({low}) must be <= high ({high})")
    if log and low <= 0:
        raise ValueError(f"log scale needs low > 0, got {low}")
    if log and step is not None:
        raise ValueError("step and log cannot be used together")


SpaceParam = Annotated[Union[FloatParam, IntParam, CategoricalParam], Field(discriminator="type")]


class SearchTarget(StrictModel):
    """One search target (an entry of the spec's `search.objectives`): a numeric result column every
    trial reports to Optuna, minimized or maximized."""

    metric: str = Field(..., description="a numeric results column, e.g. neg_elbo, recon_mse, kl, fid")
    direction: Literal["minimize", "maximize"] = "minimize"

    @field_validator("metric")
    @classmethod
    def _numeric_column(cls, v: str) -> str:
        if v not in (names := numeric_metric_columns()):
            raise ValueError(unknown_name("metric", v, names, "Numeric metrics"))
        return v


class PrunerConfig(ReadsSomeFields):
    """Stops unpromising trials on the per-epoch validation -ELBO (nats per example; the test -ELBO
    only under `search.allow_test_selection`)."""

    name: registered("pruner") = Field("none", description="none, median, successive_halving or hyperband")
    n_startup_trials: int = Field(5, ge=0, description="median: finished trials before any pruning")
    n_warmup_steps: int = Field(0, ge=0, description="median: epochs of every trial before it can be pruned")
    min_resource: int = Field(1, ge=1, description="successive_halving, hyperband: epochs of the first rung")
    reduction_factor: int = Field(
        3, ge=2, description="successive_halving, hyperband: eta, 1/eta of trials go on at each rung"
    )

    def _fields_read(self) -> tuple[set[str], str]:
        from .samplers import PRUNERS

        return {"name", *PRUNERS.get(self.name).fields}, f"pruner {self.name!r}"


def _default_targets() -> list[SearchTarget]:
    # known-valid: built without validation, which would load every metric to list the numeric columns
    return [SearchTarget.model_construct(metric="neg_elbo", direction="minimize")]


TARGETS_KEY = "objectives"  # the YAML key of the search targets (Optuna's word; stays in specs and fingerprints)


class SearchConfig(StrictModel):
    """grid: every cell of `grid` x every seed, exactly once. random, tpe, nsga2: `n_trials` configs
    drawn from `space` (one seed each). Every trial is told the values of its `targets` (YAML key
    `objectives`: given and serialized under that name, so specs and fingerprints keep it)."""

    sampler: registered("sampler") = Field("grid", description="grid, random, tpe or nsga2")
    n_trials: Optional[int] = Field(None, ge=1, description="trial budget of a sampled search")
    seed: int = Field(0, ge=0, description="the sampler's random seed")
    space: dict[str, SpaceParam] = Field(default_factory=dict, description="SECTION.FIELD -> distribution")
    targets: list[SearchTarget] = Field(default_factory=_default_targets, min_length=1, alias=TARGETS_KEY)
    pruner: PrunerConfig = Field(default_factory=PrunerConfig)
    allow_test_selection: bool = Field(
        False,
        description="let a pruner, a searching sampler or early stopping select on the test split when the "
        "spec has no dataset.validation (refused otherwise); recorded in every row and printed in the report",
    )

    @model_validator(mode="after")
    def _consistent(self) -> "SearchConfig":
        metrics = self.metrics
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"objectives repeat a metric: {metrics}")
        if self.pruner.name != "none" and len(self.targets) > 1:
            raise ValueError("pruning needs a single objective (Optuna cannot prune multi-objective studies)")
        if self.pruner.name != "none" and self.targets[0].direction != "minimize":
            raise ValueError("pruning compares the per-epoch -ELBO, lower is better: the objective must be minimized")
        if self.sampler == "grid":
            if self.space:
                raise ValueError(
                    "sampler 'grid' takes its cells from `grid`; `search.space` is for random, tpe and nsga2"
                )
            if self.n_trials is not None:
                raise ValueError("sampler 'grid' runs every cell x seed; n_trials is for random, tpe and nsga2")
        else:
            if not self.space:
                raise ValueError(f"sampler {self.sampler!r} needs a search.space to draw from")
            if self.n_trials is None:
                raise ValueError(f"sampler {self.sampler!r} needs a trial budget, search.n_trials")
        for key in self.space:
            check_dotted_key(key, "search.space")
        return self

    @property
    def sampled(self) -> bool:
        return self.sampler != "grid"

    @model_serializer(mode="wrap")
    def _yaml_keys(self, handler):
        """Serialized under the YAML key (`objectives`), whatever pydantic's alias defaults."""
        return {(TARGETS_KEY if k == "targets" else k): v for k, v in handler(self).items()}

    @property
    def directions(self) -> list[str]:
        """The targets' directions ("minimize", "maximize"), in order."""
        return [t.direction for t in self.targets]

    @property
    def metrics(self) -> list[str]:
        """The targets' metric columns, in order."""
        return [t.metric for t in self.targets]
