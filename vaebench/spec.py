"""Sweep specs: pydantic models, YAML loading, and the expansion into runs.

A spec names everything a run depends on. The YAML mirrors `SweepSpec`:

    study: beta                       # results go to results/<study>/
    dataset: {name: mnist}
    model: {name: mlp, hidden_dim: 256, latent_dim: 32, depth: 2}
    objective: {likelihood: bernoulli, beta: 1.0}
    train: {epochs: 20, batch_size: 128, lr: 1.0e-3, grad_clip: 1.0}
    grid:                             # dotted path -> list of values; the product is the cells
      objective.beta: [0.1, 0.5, 1, 4, 10]
    seeds: [0, 1, 2]                  # every cell runs once per seed

A *cell* is one point of the grid (a full `RunConfig`); a *run* is a cell x seed, identified by
`run_id`, a short hash of the canonical config and the seed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Optional, Union

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from .errors import SpecError
from .family import FamilySection
from .registry import did_you_mean

STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class _Strict(BaseModel):
    """Unknown keys are errors; values are validated on assignment too; NaN and infinite floats
    (YAML `.nan`, `.inf`) are errors in every float field."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def _check_registered(kind: str, name: str) -> str:
    # Imported lazily: the registries live with their families (data.py, models/, objectives.py, ...).
    from . import data, models, objectives, schedules, search

    registry = {
        "dataset": data.DATASETS,
        "model": models.MODELS,
        "likelihood": objectives.LIKELIHOODS,
        "estimator": objectives.ESTIMATORS,
        "schedule": schedules.SCHEDULES,
        "sampler": search.SAMPLERS,
        "pruner": search.PRUNERS,
    }[kind]
    if name not in registry:
        raise ValueError(registry.unknown_message(name))
    return name


def registered(kind: str):
    """A str field whose value must be a name in the `kind` registry (with a "did you mean" error)."""
    return Annotated[str, AfterValidator(lambda v: _check_registered(kind, v))]


def _unused_fields_at_default(cfg: BaseModel, used: set[str], owner: str) -> None:
    """A field that the chosen family/variant does not read must keep its default: a value given
    for it would be silently ignored, so it is an error instead."""
    for name, field in type(cfg).model_fields.items():
        if name not in used and getattr(cfg, name) != field.get_default(call_default_factory=True):
            raise ValueError(f"{name!r} is not used by {owner}; remove it")


class DatasetConfig(FamilySection):
    """The `dataset:` section: the source's name, `binarize` (every source), and the source's own
    options (declared by its `Options` model in the dataset registry; see family.py)."""

    kind: ClassVar[str] = "dataset"
    name: registered("dataset") = Field("mnist", description="dataset source from the dataset registry")
    binarize: bool = Field(
        False,
        description="dynamic binarization: a fresh Bernoulli draw of every training batch; "
        "the test split is binarized once with a fixed seed",
    )

    @classmethod
    def _family_registry(cls):
        from .data import DATASETS

        return DATASETS


class ModelConfig(FamilySection):
    """The `model:` section: the family's name, the latent size, and the family's own options
    (declared by its `Options` model in the model registry; see family.py)."""

    kind: ClassVar[str] = "model"
    name: registered("model") = Field("mlp", description="model family from the model registry")
    latent_dim: int = Field(32, ge=1, description="dimension of z")

    @classmethod
    def _family_registry(cls):
        from .models import MODELS

        return MODELS

    @model_validator(mode="after")
    def _family_check(self) -> "ModelConfig":
        """The family's cross-field check of the section (`ModelFamily.check`), if it has one."""
        check = getattr(self._family_registry().get(self.name), "check", None)
        if check is not None:
            check(self)
        return self


class ObjectiveConfig(_Strict):
    likelihood: registered("likelihood") = Field("bernoulli", description="decoder likelihood p(x|z)")
    beta: float = Field(1.0, ge=0.0, description="weight of the KL term in the training loss")
    variance: float = Field(
        0.5,
        gt=0.0,
        description="gaussian: fixed pixel variance; 0.5 makes the data term sum((x - x_hat)^2) "
        "plus a constant, the tutorial's MSE(reduction='sum')",
    )
    laplace_scale: float = Field(
        1.0, gt=0.0, description="laplace: fixed scale b; 1 makes the data term sum|x - x_hat|, the tutorial's L1"
    )
    variance_floor: float = Field(
        1e-3, gt=0.0, description="gaussian_learned: lower bound of the decoder's pixel variance"
    )
    reduction: Literal["sum", "mean"] = Field(
        "sum",
        description="training-loss convention: sum (nats per example) or the tutorial's mean "
        "(reconstruction averaged over pixels too); metrics are always nats per example",
    )
    free_bits: Optional[float] = Field(None, ge=0.0, description="free-bits floor lambda, nats per latent dimension")
    free_bits_mode: Literal["example", "batch"] = Field(
        "example",
        description="example: clamp each dimension's KL at lambda per example; batch (Kingma et al. "
        "2016): average each dimension's KL over the batch, then clamp",
    )
    estimator: registered("estimator") = Field("elbo", description="training bound: elbo or iwae")
    iwae_k: int = Field(1, ge=1, description="iwae: importance samples per example")



    @model_validator(mode="after")
    def _consistent(self) -> "ObjectiveConfig":
        used = {"likelihood", "beta", "reduction", "free_bits", "estimator"}
        used |= {"gaussian": {"variance"}, "laplace": {"laplace_scale"}, "gaussian_learned": {"variance_floor"}}.get(
            self.likelihood, set()
        )
        if self.free_bits is not None:
            used.add("free_bits_mode")
        if self.estimator == "iwae":
            used.add("iwae_k")
            if self.beta != 1.0 or self.free_bits is not None or self.reduction != "sum":
                raise ValueError("estimator 'iwae' is the unweighted bound: it needs beta 1, no free_bits, reduction sum")
        _unused_fields_at_default(self, used, f"this objective (likelihood {self.likelihood!r}, estimator {self.estimator!r})")
        return self


class ScheduleConfig(_Strict):
    """The KL-weight schedule w(t) in [0, 1]; the KL term's weight at step t is beta * w(t)."""

    name: registered("schedule") = Field("constant", description="constant, linear, logistic or cyclical")
    unit: Literal["epochs", "steps"] = Field("epochs", description="unit of warmup and midpoint")
    warmup: float = Field(10.0, gt=0.0, description="linear: w reaches 1 after this many units")
    midpoint: float = Field(5.0, ge=0.0, description="logistic: w = 1/2 at this many units")
    steepness: float = Field(1.0, gt=0.0, description="logistic: slope k per unit")
    cycles: int = Field(4, ge=1, description="cyclical: M cycles over the whole run")
    ratio: float = Field(0.5, gt=0.0, le=1.0, description="cyclical: fraction R of each cycle spent increasing")


    @model_validator(mode="after")
    def _fields_of_schedule(self) -> "ScheduleConfig":
        from .schedules import SCHEDULES

        _unused_fields_at_default(self, {"name", *SCHEDULES.get(self.name).fields}, f"schedule {self.name!r}")
        return self


class TrainConfig(_Strict):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0.0, description="Adam learning rate")
    weight_decay: float = Field(0.0, ge=0.0, description="Adam L2 weight decay")
    grad_clip: Optional[float] = Field(1.0, gt=0.0, description="max global grad norm; null: off")
    lr_schedule: Literal["none", "plateau"] = Field(
        "none", description="plateau: ReduceLROnPlateau on the epoch's training loss"
    )
    plateau_patience: int = Field(5, ge=0, description="plateau: epochs without improvement before a cut")
    plateau_factor: float = Field(0.5, gt=0.0, lt=1.0, description="plateau: lr multiplier at a cut")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="training steps' forward pass and loss under torch.autocast to bf16 or fp16 (fp16: CUDA "
        "only, with a gradient scaler); weights, optimizer, per-epoch test loss and evaluation stay float32"
    )
    tf32: bool = Field(True, description="CUDA only: float32 matmuls and convolutions of training may use TF32")

    @model_validator(mode="after")
    def _plateau_fields(self) -> "TrainConfig":
        used = {"epochs", "batch_size", "lr", "weight_decay", "grad_clip", "lr_schedule", "precision", "tf32"}
        if self.lr_schedule == "plateau":
            used |= {"plateau_patience", "plateau_factor"}
        _unused_fields_at_default(self, used, f"lr_schedule {self.lr_schedule!r}")
        return self


class EvalConfig(_Strict):
    """The `eval:` section: the built-in metrics' settings (the fields below), and the options of every
    registered metric that declares some (`register_metric(..., options=Model)`), given as
    `eval.<metric name>: {option: value}`, validated by the metric's model and handed to it as
    `ctx.options`. Only the options that differ from their defaults are kept (`model_extra`), so a
    spec that gives none, or gives the defaults, has the run ids it had before."""

    model_config = ConfigDict(extra="allow", validate_assignment=True, allow_inf_nan=False)

    batch_size: int = Field(2000, ge=1, description="examples per evaluation forward pass")
    active_threshold: float = Field(
        0.01, ge=0.0, description="unit u is active when Var_x(E_q[z_u|x]) exceeds this"
    )
    nll_k: int = Field(
        100, ge=1, description="importance samples per test image for the NLL (Burda et al. 2016 use 5000)"
    )
    nll_examples: Optional[int] = Field(
        1000, ge=1, description="test images in the NLL estimate (the first N of the split); null: all"
    )
    fid_extractor: Optional[str] = Field(
        "classifier", description="FID features: classifier (offline), inception (needs weights), null: no FID"
    )
    fid_samples: int = Field(10000, ge=2, description="generated samples (and reconstructions) for FID, at most the test split's size")
    kid: bool = Field(False, description="also compute KID (torch-fidelity) with the same features")
    # disentanglement (datasets with ground-truth factors only, e.g. shapes; see metrics/disentanglement.py):
    mig_samples: int = Field(10000, ge=2, description="MIG: test images (a seeded random subset; at most the split)")
    mig_bins: int = Field(20, ge=2, description="MIG: equal-width bins per latent mean")
    sap_train_samples: int = Field(5000, ge=2, description="SAP: test images the per-latent predictors are fit on")
    sap_test_samples: int = Field(5000, ge=1, description="SAP: other test images the classifiers are scored on")
    disentanglement_seed: int = Field(0, ge=0, description="MIG and SAP: seed of the test-image subsets (fixed "
                                      "across runs, so every run is scored on the same images)")

    @model_validator(mode="wrap")
    @classmethod
    def _metric_options(cls, data: Any, handler):
        if not isinstance(data, dict):
            return handler(data)
        given = {k: v for k, v in data.items() if k not in cls.model_fields}
        section = handler({k: v for k, v in data.items() if k in cls.model_fields})
        if given:  # kept: the options that differ from their defaults (none: the metric is left out)
            section.__pydantic_extra__ = _validated_metric_options(given, cls)
        return section


def _validated_metric_options(given: dict[str, Any], section: type[BaseModel]) -> dict[str, dict]:
    """{metric: its options that differ from their defaults, validated} for the `eval:` keys that are
    not eval settings; each such key must name a registered metric that declares options (else "did
    you mean"). A metric whose options are all at their defaults is left out, so that giving them
    changes no run id: `MetricSpec.options_for` fills the defaults back in."""
    from pydantic_core import InitErrorDetails, PydanticCustomError

    from .metrics import METRICS

    def error(kind: str, loc: tuple, msg: str, value: Any) -> InitErrorDetails:
        return InitErrorDetails(type=PydanticCustomError(kind, "{msg}", {"msg": msg}), loc=loc, input=value)

    with_options = [m for m in METRICS.names() if METRICS.get(m).options is not None]
    errors, out = [], {}
    for key, value in given.items():
        if key not in with_options:
            valid = sorted({*section.model_fields, *with_options})
            why = (f"metric {key!r} has no options" if key in METRICS else
                   f"{key!r} is neither an eval setting nor a metric with options")
            errors.append(error("unknown_option", (key,), f"unknown key: {why}.{did_you_mean(key, valid)} "
                                                          f"Valid: {', '.join(valid)}", value))
            continue
        options = METRICS.get(key).options
        try:
            changed = options.model_validate({} if value is None else value).model_dump(mode="json", exclude_defaults=True)
            if changed:
                out[key] = changed
        except ValidationError as e:
            for err in e.errors():
                loc = (key, *err["loc"])
                if err["type"] == "extra_forbidden":
                    field = str(err["loc"][0]) if err["loc"] else ""
                    valid = sorted(options.model_fields)
                    errors.append(error("unknown_option", loc, f"unknown key: {field!r} is not an option of metric "
                                        f"{key!r}.{did_you_mean(field, valid)} Valid: {', '.join(valid) or 'none'}",
                                        err.get("input")))
                else:
                    errors.append(error("metric_option", loc, err["msg"].removeprefix("Value error, "),
                                        err.get("input")))
    if errors:
        raise ValidationError.from_exception_data(section.__name__, errors)
    return out



# ---------------------------------------------------------------------------------------------
# the search: how Optuna chooses configurations, what it optimizes, and when it stops a trial


class FloatParam(_Strict):
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


class IntParam(_Strict):
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


def _non_finite(value: Any) -> Optional[float]:
    """The first NaN or infinite float in `value` (nested lists and mappings searched), else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return value
    for item in value.values() if isinstance(value, dict) else value if isinstance(value, list) else ():
        if (bad := _non_finite(item)) is not None:
            return bad
    return None


def _finite_values(values: list[Any], where: str) -> None:
    """Grid values and categorical choices are untyped (Any): refuse NaN and infinities here, as the
    typed fields do (allow_inf_nan=False)."""
    for value in values:
        if (bad := _non_finite(value)) is not None:
            raise ValueError(f"{where}: {bad} is not a finite number (NaN and infinities are refused)")


class CategoricalParam(_Strict):
    type: Literal["categorical"]
    choices: list[Any] = Field(..., min_length=1)

    @field_validator("choices")
    @classmethod
    def _finite(cls, v: list[Any]) -> list[Any]:
        _finite_values(v, "choices")
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


class ObjectiveMetric(_Strict):
    metric: str = Field(..., description="a numeric results column, e.g. neg_elbo, recon_mse, kl, fid")
    direction: Literal["minimize", "maximize"] = "minimize"

    @field_validator("metric")
    @classmethod
    def _numeric_column(cls, v: str) -> str:
        from .results import numeric_metric_columns

        if v not in (names := numeric_metric_columns()):
            import difflib

            close = difflib.get_close_matches(v, names, n=1)
            raise ValueError(f"unknown metric {v!r}.{f' Did you mean {close[0]!r}?' if close else ''} Numeric metrics: {', '.join(names)}")
        return v


class PrunerConfig(_Strict):
    """Stops unpromising trials on the per-epoch test -ELBO (nats per example)."""

    name: registered("pruner") = Field("none", description="none, median, successive_halving or hyperband")
    n_startup_trials: int = Field(5, ge=0, description="median: finished trials before any pruning")
    n_warmup_steps: int = Field(0, ge=0, description="median: epochs of every trial before it can be pruned")
    min_resource: int = Field(1, ge=1, description="successive_halving, hyperband: epochs of the first rung")
    reduction_factor: int = Field(3, ge=2, description="successive_halving, hyperband: eta, 1/eta of trials go on at each rung")

    @model_validator(mode="after")
    def _fields_of_pruner(self) -> "PrunerConfig":
        from .search import PRUNERS

        _unused_fields_at_default(self, {"name", *PRUNERS.get(self.name).fields}, f"pruner {self.name!r}")
        return self


def _default_objectives() -> list[ObjectiveMetric]:
    return [ObjectiveMetric.model_construct(metric="neg_elbo", direction="minimize")]  # known-valid, no import cycle


class SearchConfig(_Strict):
    """grid: every cell of `grid` x every seed, exactly once. random, tpe, nsga2: `n_trials` configs
    drawn from `space` (one seed each). Every trial is told the values of `objectives`."""

    sampler: registered("sampler") = Field("grid", description="grid, random, tpe or nsga2")
    n_trials: Optional[int] = Field(None, ge=1, description="trial budget of a sampled search")
    seed: int = Field(0, ge=0, description="the sampler's random seed")
    space: dict[str, SpaceParam] = Field(default_factory=dict, description="SECTION.FIELD -> distribution")
    objectives: list[ObjectiveMetric] = Field(default_factory=_default_objectives, min_length=1)
    pruner: PrunerConfig = Field(default_factory=PrunerConfig)

    @model_validator(mode="after")
    def _consistent(self) -> "SearchConfig":
        metrics = [o.metric for o in self.objectives]
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"objectives repeat a metric: {metrics}")
        if self.pruner.name != "none" and len(self.objectives) > 1:
            raise ValueError("pruning needs a single objective (Optuna cannot prune multi-objective studies)")
        if self.pruner.name != "none" and self.objectives[0].direction != "minimize":
            raise ValueError("pruning compares the per-epoch test -ELBO, lower is better: the objective must be minimized")
        if self.sampler == "grid":
            if self.space:
                raise ValueError("sampler 'grid' takes its cells from `grid`; `search.space` is for random, tpe and nsga2")
            if self.n_trials is not None:
                raise ValueError("sampler 'grid' runs every cell x seed; n_trials is for random, tpe and nsga2")
        else:
            if not self.space:
                raise ValueError(f"sampler {self.sampler!r} needs a search.space to draw from")
            if self.n_trials is None:
                raise ValueError(f"sampler {self.sampler!r} needs a trial budget, search.n_trials")
        for key in self.space:
            _check_dotted_key(key, "search.space")
        return self

    @property
    def sampled(self) -> bool:
        return self.sampler != "grid"

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    @property
    def metrics(self) -> list[str]:
        return [o.metric for o in self.objectives]


class RunConfig(_Strict):
    """Everything one training run depends on, except its seed."""

    dataset: DatasetConfig = DatasetConfig()
    model: ModelConfig = ModelConfig()
    objective: ObjectiveConfig = ObjectiveConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()

    @model_validator(mode="after")
    def _iwae_has_no_kl_weight(self) -> "RunConfig":
        if self.objective.estimator == "iwae" and self.schedule.name != "constant":
            raise ValueError("estimator 'iwae' has no KL weight to schedule: use schedule 'constant'")
        return self

    @model_validator(mode="after")
    def _free_bits_need_a_kl_per_dimension(self) -> "RunConfig":
        from .models import MODELS

        if self.objective.free_bits is not None and not MODELS.get(self.model.name).kl_per_dim:
            raise ValueError(f"objective.free_bits clamps the KL of each latent dimension; model {self.model.name!r}'s "
                             "KL does not decompose by dimension")
        return self

    def flat(self) -> dict[str, Any]:
        """{'objective.beta': 1.0, ...}: the config as dotted keys (the results' parameter columns)."""
        return {f"{s}.{k}": v for s, sec in self.model_dump().items() for k, v in sec.items()}

    def identity(self) -> dict[str, Any]:
        """What identifies the config: every value that differs from its default. Fields added
        later with defaults leave existing run ids and study fingerprints unchanged."""
        return self.model_dump(mode="json", exclude_defaults=True)


SECTIONS = tuple(RunConfig.model_fields)


class SweepSpec(RunConfig):
    study: str = Field(..., description="study name: results/<study>/ and the Optuna study")
    description: str = ""
    plugins: list[str] = Field(
        default_factory=list,
        description="plugin modules to import before the spec is read (they register models, datasets, "
        "metrics); stored with the study, so every worker imports them too",
    )
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    seeds: list[int] = Field(default_factory=lambda: [0])
    search: SearchConfig = Field(default_factory=SearchConfig)

    @field_validator("study")
    @classmethod
    def _path_safe(cls, v: str) -> str:
        if not STUDY_NAME.match(v):
            raise ValueError(f"must match {STUDY_NAME.pattern} (it names a folder)")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("needs at least one seed")
        if any(s < 0 for s in v):
            raise ValueError("seeds must be >= 0")
        if len(set(v)) != len(v):
            raise ValueError("seeds must be distinct")
        return v

    @field_validator("grid")
    @classmethod
    def _grid_valid(cls, grid: dict[str, list[Any]], info: ValidationInfo) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if key == VARIANT:
                _check_variants(values)
            else:
                _check_dotted_key(key, "grid", VARIANT)
            _finite_values(values, f"grid key {key!r}")
            if not values:
                raise ValueError(f"grid key {key!r} has no values")
            if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
                raise ValueError(f"grid key {key!r} repeats a value: {values}")
        if all(s in info.data for s in SECTIONS):  # else those sections have their own errors
            cells = expand_grid(RunConfig(**{s: info.data[s] for s in SECTIONS}), grid)
            seen: dict[str, dict] = {}
            for labels, cfg in cells:
                ident = _digest(cfg.identity())
                if ident in seen:
                    raise ValueError(f"grid cells {seen[ident]} and {labels} are the same configuration")
                seen[ident] = labels
        return grid

    @model_validator(mode="after")
    def _search_fits(self) -> "SweepSpec":
        if not self.search.sampled:
            return self
        if self.grid:
            raise ValueError(f"search.sampler {self.search.sampler!r} draws configs from search.space; remove `grid` "
                             "(or use sampler 'grid')")
        if len(self.seeds) != 1:
            raise ValueError(f"search.sampler {self.search.sampler!r} runs each drawn config once: give one seed "
                             "(rerun the best configs under a grid for several seeds)")
        for key, param in self.search.space.items():  # every endpoint / choice must make a valid config
            for value in param.values():
                try:
                    apply_params(self.base(), {key: value})
                except ValueError as e:
                    raise ValueError(f"search.space.{key}: {e}") from None
        return self

    def base(self) -> RunConfig:
        return RunConfig(**{s: getattr(self, s) for s in SECTIONS})

    def grid_cells(self) -> list[tuple[dict[str, Any], RunConfig]]:
        """The grid's product in declaration order: (the cell's grid values, its RunConfig)."""
        return expand_grid(self.base(), self.grid)

    def cells(self) -> list[RunConfig]:
        return [cfg for _, cfg in self.grid_cells()]

    def runs(self) -> list["Run"]:
        """Every cell x seed of a grid search; empty for a sampled search (the sampler draws runs)."""
        if self.search.sampled:
            return []
        return [
            Run(cfg, seed, labels, i)
            for i, (labels, cfg) in enumerate(self.grid_cells())
            for seed in self.seeds
        ]

    def n_runs(self) -> int:
        """The study's runs: cells x seeds of a grid, the trial budget of a sampled search."""
        return self.search.n_trials if self.search.sampled else len(self.cells()) * len(self.seeds)

    def fingerprint(self) -> str:
        """Hash of what determines the study's runs: every non-default value but the description and
        the plugin list (which modules provide the families is provenance, recorded in every row)."""
        return _digest(self.model_dump(mode="json", exclude={"description", "plugins"}, exclude_defaults=True))

    def grid_choices(self, key: str) -> list[Any]:
        """The values of a grid key as Optuna categorical choices (a variant by its name)."""
        return [v["name"] if key == VARIANT else v for v in self.grid[key]]


def expand_grid(base: RunConfig, grid: dict[str, list[Any]]) -> list[tuple[dict[str, Any], RunConfig]]:
    """Every point of the grid's product applied to `base`, each validated into a RunConfig."""
    base_dict = _overridable(base)
    keys = list(grid)
    cells = []
    for values in itertools.product(*(grid[k] for k in keys)):
        cfg = json.loads(json.dumps(base_dict))
        for key, value in zip(keys, values):
            if key == VARIANT:  # named overrides of several fields, merged onto the base
                for section, fields in value.items():
                    if section != "name":
                        cfg[section].update(fields)
            else:
                section, field = key.split(".", 1)
                cfg[section][field] = value
        labels = {k: (v["name"] if k == VARIANT else v) for k, v in zip(keys, values)}
        cells.append((labels, _validated(cfg, f"grid cell {labels}")))
    return cells


def apply_params(base: RunConfig, params: dict[str, Any]) -> RunConfig:
    """`base` with each dotted SECTION.FIELD of `params` set (a sampled trial's config)."""
    cfg = _overridable(base)
    for key, value in params.items():
        section, field = key.split(".", 1)
        cfg[section][field] = value
    return _validated(cfg, f"params {params}")


def _overridable(base: RunConfig) -> dict:
    """The base config as the mapping grid values and variants are applied to: only the values the
    spec set (defaults come back on validation), so that a variant switching the model family (or
    dataset) does not carry the previous family's default options into the new one."""
    dumped = base.model_dump(exclude_defaults=True)
    return {section: dumped.get(section, {}) for section in SECTIONS}


def _validated(cfg: dict, what: str) -> RunConfig:
    try:
        return RunConfig.model_validate(cfg)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        got = "" if isinstance(err.get("input"), dict) else f" = {err.get('input')!r}"
        raise ValueError(f"{what}: {loc}{got}: {msg}") from None


def _check_dotted_key(key: str, where: str, *also: str) -> None:
    """`key` must be SECTION.FIELD naming a RunConfig field."""
    section, _, field = key.partition(".")
    if section not in SECTIONS or not field:
        extra = f", or {', '.join(map(repr, also))}" if also else ""
        raise ValueError(f"{where} key {key!r} must be SECTION.FIELD with SECTION in {list(SECTIONS)}{extra}")
    model = RunConfig.model_fields[section].annotation
    fields = set(model.model_fields)
    if issubclass(model, FamilySection):  # common fields, or an option of some registered family
        fields |= set(model.all_option_names())
    if field not in fields:
        raise ValueError(f"{where} key {key!r}: {section} has no field {field!r}.{did_you_mean(field, fields)} "
                         f"Fields: {', '.join(sorted(fields))}")


VARIANT = "variant"


def _check_variants(values: list[Any]) -> None:
    """grid.variant: a list of {name: label, SECTION: {field: value, ...}, ...} mappings."""
    names = []
    for i, v in enumerate(values):
        if not isinstance(v, dict) or not isinstance(v.get("name"), str) or not v["name"]:
            raise ValueError(f"grid.variant[{i}] must be a mapping with a non-empty string 'name'")
        for section, fields in v.items():
            if section == "name":
                continue
            if section not in SECTIONS:
                raise ValueError(f"grid.variant[{i}] ({v['name']}): unknown section {section!r}; sections: {list(SECTIONS)}")
            if not isinstance(fields, dict):
                raise ValueError(f"grid.variant[{i}] ({v['name']}): {section} must be a mapping of fields")
        names.append(v["name"])
    if len(set(names)) != len(names):
        raise ValueError(f"grid.variant names must be distinct, got {names}")


@dataclass(frozen=True)
class Run:
    """One cell x seed: the unit of work and of results."""

    config: RunConfig
    seed: int
    labels: dict[str, Any] = field(default_factory=dict, compare=False)  # the cell's grid values
    cell_index: int = field(default=0, compare=False)  # position of the cell in the grid (report order)

    @property
    def variant(self) -> Optional[str]:
        """The cell's grid.variant name, if the grid has variants."""
        return self.labels.get(VARIANT)

    @property
    def run_id(self) -> str:
        return _digest({"config": self.config.identity(), "seed": self.seed})[:12]


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that rejects a key given twice instead of silently keeping the last."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def format_validation_error(path: Path | str, err: ValidationError) -> str:
    lines = [f"{path}: invalid sweep spec ({err.error_count()} error{'s' * (err.error_count() > 1)})"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        got = "" if e["type"] in ("missing",) else f" (got {e.get('input')!r})"
        if e["type"] in ("extra_forbidden", "unknown_option") or isinstance(e.get("input"), dict):
            got = ""
        lines.append(f"  field {loc}: {msg}{got}")
    return "\n".join(lines)


def parse_spec(data: Any, source: str = "<spec>") -> SweepSpec:
    """Validate a spec mapping; its `plugins` are imported first (their families may be named in it)."""
    from .plugins import load_plugins

    if not isinstance(data, dict):
        raise SpecError(f"{source}: a sweep spec must be a YAML mapping, got {type(data).__name__}")
    plugins = data.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(m, str) for m in plugins):
        raise SpecError(f"{source}: invalid sweep spec\n  field plugins: must be a list of module names (got {plugins!r})")
    load_plugins(plugins, f"{source}, field plugins")
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as e:
        raise SpecError(format_validation_error(source, e)) from None


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a YAML sweep spec; every problem is a SpecError naming file and field."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise SpecError(f"{path}: cannot read sweep spec: {e.strerror}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: not valid YAML: {e}") from None
    folder = str(path.resolve().parent)  # local plugin modules may sit beside the spec
    if isinstance(data, dict) and data.get("plugins") and folder not in sys.path:
        sys.path.append(folder)
    return parse_spec(data, str(path))
