"""The sections of a run's config (`RunConfig`): dataset, model, objective, schedule, train, eval.

Each section is a pydantic model; unknown keys, out-of-range values, NaN and infinities are errors.
A name that picks a registry entry (`registered(kind)`) must be registered, or the error suggests
the closest name. A section whose choice reads only some of its fields (`ReadsSomeFields`: the
objective's likelihood and estimator, the schedule, the lr schedule, a pruner) refuses a value for
a field that choice does not read. The `eval:` section is the metric layer's (metrics/declarations.py);
the `search:` section is in search.py; sweep_spec.py puts them together into a `SweepSpec`.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, ClassVar, Literal, Optional, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    field_validator,
    model_validator,
)

from ..metrics.declarations import EvalConfig
from ..options import FamilySection
from ..registry import did_you_mean


class StrictModel(BaseModel):
    """Unknown keys are errors; values are validated on assignment too; NaN and infinite floats
    (YAML `.nan`, `.inf`) are errors in every float field."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def _check_registered(kind: str, name: str) -> str:
    # Imported lazily: the registries live with their families (data/, models/, objectives/, samplers.py).
    from ..data import DATASETS
    from ..models import MODELS
    from ..objectives.bounds import ESTIMATORS
    from ..objectives.likelihoods import LIKELIHOODS
    from ..objectives.schedules import SCHEDULES
    from .samplers import PRUNERS, SAMPLERS

    registry = {
        "dataset": DATASETS,
        "model": MODELS,
        "likelihood": LIKELIHOODS,
        "estimator": ESTIMATORS,
        "schedule": SCHEDULES,
        "sampler": SAMPLERS,
        "pruner": PRUNERS,
    }[kind]
    if name not in registry:
        raise ValueError(registry.unknown_message(name))
    return name


def registered(kind: str):
    """A str field whose value must be a name in the `kind` registry (with a "did you mean" error)."""
    return Annotated[str, AfterValidator(lambda v: _check_registered(kind, v))]


class ReadsSomeFields(StrictModel):
    """A section whose choice (a likelihood, a schedule, an lr schedule, a pruner) reads only some of
    its fields. A field the choice does not read must keep its default: a value given for it would
    be silently ignored, so it is an error instead. Subclasses say which fields are read."""

    def _fields_read(self) -> tuple[set[str], str]:
        """(the fields the section's choice reads, the choice as the error message names it)."""
        raise NotImplementedError

    @model_validator(mode="after")
    def _unread_fields_at_default(self):
        used, owner = self._fields_read()
        for name, field in type(self).model_fields.items():
            if name not in used and getattr(self, name) != field.get_default(call_default_factory=True):
                raise ValueError(f"{name!r} is not used by {owner}; remove it")
        return self


class DatasetConfig(FamilySection):
    """The `dataset:` section: the source's name, `binarize` (every source), and the source's own
    options (declared by its `Options` model in the dataset registry; see vaebench/options.py)."""

    kind: ClassVar[str] = "dataset"
    name: registered("dataset") = Field("mnist", description="dataset source from the dataset registry")
    binarize: bool = Field(
        False,
        description="dynamic binarization: a fresh Bernoulli draw of every training batch; "
        "the test split is binarized once with a fixed seed",
    )
    validation: Union[StrictInt, StrictFloat] = Field(
        0,
        description="training examples held out as the validation split: a count (an int, e.g. 10000 for "
        "MNIST's 50k/10k/10k) or a fraction (a float in (0, 1)); the same examples for every seed, cell "
        "and worker; what pruners, search targets and early stopping read. 0: none",
    )

    @field_validator("validation")
    @classmethod
    def _count_or_fraction(cls, v: int | float) -> int | float:
        if isinstance(v, int) and v < 0:
            raise ValueError("a count of validation examples must be >= 0")
        if isinstance(v, float) and not 0.0 < v < 1.0 and v != 0.0:
            raise ValueError("a float is a fraction of the training split, in (0, 1); give a count as an int")
        return v

    @classmethod
    def _family_registry(cls):
        from ..data import DATASETS

        return DATASETS


class ModelConfig(FamilySection):
    """The `model:` section: the family's name, the latent size, and the family's own options
    (declared by its `Options` model in the model registry; see vaebench/options.py)."""

    kind: ClassVar[str] = "model"
    name: registered("model") = Field("mlp", description="model family from the model registry")
    latent_dim: int = Field(32, ge=1, description="dimension of z")

    @classmethod
    def _family_registry(cls):
        from ..models import MODELS

        return MODELS

    @model_validator(mode="after")
    def _family_check(self) -> "ModelConfig":
        """The family's cross-field check of the section (`ModelFamily.check`), if it has one."""
        check = getattr(self._family_registry().get(self.name), "check", None)
        if check is not None:
            check(self)
        return self


class ObjectiveConfig(ReadsSomeFields):
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
    estimator: registered("estimator") = Field(
        "elbo",
        description="training loss: elbo, iwae, or a disentangling objective (btcvae, factorvae, dipvae, "
        "annealed: objectives/disentangle.py)",
    )
    iwae_k: int = Field(1, ge=1, description="iwae: importance samples per example")
    # the disentangling objectives' options (objectives/disentangle.py); beta is btcvae's TC weight
    tc_sampling: Literal["mws", "mss"] = Field(
        "mws",
        description="btcvae: the estimator of log q(z) over a minibatch: minibatch-weighted (mws) or "
        "minibatch-stratified (mss) sampling (Chen et al. 2018)",
    )
    tc_weight: float = Field(10.0, ge=0.0, description="factorvae: gamma, the weight of the discriminator's TC")
    discriminator_lr: float = Field(1e-4, gt=0.0, description="factorvae: the discriminator's Adam learning rate")
    discriminator_hidden: int = Field(1000, ge=1, description="factorvae: units per discriminator layer")
    discriminator_layers: int = Field(6, ge=1, description="factorvae: hidden layers of the discriminator")
    dip_type: Literal["i", "ii"] = Field(
        "i", description="dipvae: i penalizes Cov[mu(x)], ii Cov[z] = E[diag sigma^2(x)] + Cov[mu(x)]"
    )
    lambda_od: float = Field(10.0, ge=0.0, description="dipvae: weight of the squared off-diagonal covariances")
    lambda_d: Optional[float] = Field(
        None, ge=0.0, description="dipvae: weight of (diagonal - 1)^2; default 10 lambda_od (i), lambda_od (ii)"
    )
    capacity_max: float = Field(25.0, ge=0.0, description="annealed: the final capacity C_max, nats per example")
    capacity_warmup: float = Field(10.0, gt=0.0, description="annealed: epochs over which C rises linearly to C_max")
    capacity_gamma: float = Field(1000.0, ge=0.0, description="annealed: gamma, the weight of |KL - C|")

    def _fields_read(self) -> tuple[set[str], str]:
        from ..objectives.training import COMMON_FIELDS, check_estimator, estimator_fields

        likelihood = {"gaussian": {"variance"}, "laplace": {"laplace_scale"}, "gaussian_learned": {"variance_floor"}}
        own = estimator_fields(self.estimator)
        if own is not None:  # an Estimator declares what it reads, and may refuse a combination
            check_estimator(self)
            return {*COMMON_FIELDS, *own, *likelihood.get(self.likelihood, set())}, f"estimator {self.estimator!r}"
        used = {"likelihood", "beta", "reduction", "free_bits", "estimator"}
        used |= likelihood.get(self.likelihood, set())
        if self.free_bits is not None:
            used.add("free_bits_mode")
        if self.estimator == "iwae":
            used.add("iwae_k")
            # checked here, before the fields that are not read: the error of a spec that has both
            if self.beta != 1.0 or self.free_bits is not None or self.reduction != "sum":
                raise ValueError(
                    "estimator 'iwae' is the unweighted bound: it needs beta 1, no free_bits, reduction sum"
                )
        return used, f"this objective (likelihood {self.likelihood!r}, estimator {self.estimator!r})"


class ScheduleConfig(ReadsSomeFields):
    """The KL-weight schedule w(t) in [0, 1]; the KL term's weight at step t is beta * w(t)."""

    name: registered("schedule") = Field("constant", description="constant, linear, logistic or cyclical")
    unit: Literal["epochs", "steps"] = Field("epochs", description="unit of warmup and midpoint")
    warmup: float = Field(10.0, gt=0.0, description="linear: w reaches 1 after this many units")
    midpoint: float = Field(5.0, ge=0.0, description="logistic: w = 1/2 at this many units")
    steepness: float = Field(1.0, gt=0.0, description="logistic: slope k per unit")
    cycles: int = Field(4, ge=1, description="cyclical: M cycles over the whole run")
    ratio: float = Field(0.5, gt=0.0, le=1.0, description="cyclical: fraction R of each cycle spent increasing")

    def _fields_read(self) -> tuple[set[str], str]:
        from ..objectives.schedules import SCHEDULES

        return {"name", *SCHEDULES.get(self.name).fields}, f"schedule {self.name!r}"


class EarlyStopping(StrictModel):
    """`train.early_stopping`: stop when the validation -ELBO (beta = 1, nats per example) has not
    improved by more than `min_delta` for `patience` epochs; `train.epochs` is the maximum. The
    weights of the best epoch are restored before the final evaluation. Epochs before the KL
    schedule has settled (`objectives.schedules.settled_epoch`) neither count towards the patience
    nor can be the best."""

    patience: int = Field(..., ge=1, description="epochs without an improvement before training stops")
    min_delta: float = Field(0.0, ge=0.0, description="smallest decrease of the validation -ELBO (nats) that counts")


# train.checkpoint_every as minutes of training: "10min", "2.5min"
_MINUTES = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*min$")


class TrainConfig(ReadsSomeFields):
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
        "fp32",
        description="training steps' forward pass and loss under torch.autocast to bf16 or fp16 (fp16: CUDA "
        "only, with a gradient scaler); weights, optimizer, per-epoch held-out loss and evaluation stay float32",
    )
    tf32: bool = Field(True, description="CUDA only: float32 matmuls and convolutions of training may use TF32")
    early_stopping: Optional[EarlyStopping] = Field(
        None,
        description="{patience: P, min_delta: D}: stop when the validation -ELBO has not improved by more than "
        "D nats (default 0) for P epochs (>= 1), and evaluate the best epoch's weights; needs dataset.validation; "
        "epochs is then the maximum; epochs before the KL schedule settles do not count. null: train every epoch",
    )
    checkpoint_every: Union[StrictInt, str, None] = Field(
        "10min",
        description="how often a run in a results folder writes its checkpoint (results/<study>/checkpoints/"
        "<run_id>.pt), from which a preempted or killed run resumes exactly: every N epochs (an int), or after "
        'every N minutes of training ("10min"), checked at each step; null: never (a retry starts at epoch '
        "1). The default loses at most ~10 minutes to a preemption, and a run shorter than that writes none "
        "(SIGTERM still writes one). Not part of the run id or the study fingerprint",
    )

    @field_validator("checkpoint_every")
    @classmethod
    def _epochs_or_minutes(cls, v: int | str | None) -> int | str | None:
        if isinstance(v, int) and v < 1:
            raise ValueError("a number of epochs must be >= 1")
        if isinstance(v, str) and (not _MINUTES.match(v.strip()) or float(_MINUTES.match(v.strip())[1]) <= 0):
            raise ValueError('give epochs as an int (e.g. 5) or minutes of training as "<N>min" (e.g. "10min")')
        return v

    def checkpoint_interval(self) -> tuple[Optional[int], Optional[float]]:
        """`checkpoint_every` as (epochs, seconds of training): one of them set, or neither (never)."""
        if isinstance(self.checkpoint_every, int):
            return self.checkpoint_every, None
        if isinstance(self.checkpoint_every, str):
            return None, 60.0 * float(_MINUTES.match(self.checkpoint_every.strip())[1])
        return None, None

    def _fields_read(self) -> tuple[set[str], str]:
        used = {"epochs", "batch_size", "lr", "weight_decay", "grad_clip", "lr_schedule", "precision", "tf32"}
        used |= {"early_stopping", "checkpoint_every"}
        if self.lr_schedule == "plateau":
            used |= {"plateau_patience", "plateau_factor"}
        return used, f"lr_schedule {self.lr_schedule!r}"


class RunConfig(StrictModel):
    """Everything one training run depends on, except its seed. (The sections' defaults are made
    when a config is, not when this module is imported: making one looks its family up in a
    registry, which imports the installed plugins, and a broken one must not break the import.)"""

    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="after")
    def _iwae_has_no_kl_weight(self) -> "RunConfig":
        if self.objective.estimator == "iwae" and self.schedule.name != "constant":
            raise ValueError("estimator 'iwae' has no KL weight to schedule: use schedule 'constant'")
        return self

    @model_validator(mode="after")
    def _family_checks_the_run(self) -> "RunConfig":
        """The model family's check of the whole run (`ModelFamily.check_run`), if it has one."""
        from ..models import MODELS

        check_run = MODELS.get(self.model.name).check_run
        if check_run is not None:
            check_run(self)
        return self

    @model_validator(mode="after")
    def _estimator_trains_the_model(self) -> "RunConfig":
        from ..models import MODELS
        from ..objectives.training import unsupported_reason

        reason = unsupported_reason(self.objective.estimator, MODELS.get(self.model.name).model)
        if reason is not None:
            raise ValueError(
                f"objective.estimator {self.objective.estimator!r} cannot train model {self.model.name!r}: {reason}"
            )
        return self

    @model_validator(mode="after")
    def _free_bits_need_a_kl_per_dimension(self) -> "RunConfig":
        from ..models import MODELS

        if self.objective.free_bits is not None and not MODELS.get(self.model.name).kl_per_dim:
            raise ValueError(
                f"objective.free_bits clamps the KL of each latent dimension; model {self.model.name!r}'s "
                "KL does not decompose by dimension"
            )
        return self

    def flat(self) -> dict[str, Any]:
        """{'objective.beta': 1.0, ...}: the config as dotted keys (the results' parameter columns),
        without the `OPERATIONAL` fields (they are no parameter of a result)."""
        return {
            f"{s}.{k}": v
            for s, sec in self.model_dump().items()
            for k, v in sec.items()
            if k not in OPERATIONAL.get(s, ())
        }

    def identity(self) -> dict[str, Any]:
        """What identifies the config: every value that differs from its default, except the
        operational fields that cannot change a result (`OPERATIONAL`). Fields added later with
        defaults leave existing run ids and study fingerprints unchanged."""
        return without_operational(self.model_dump(mode="json", exclude_defaults=True))


# Fields of a RunConfig that change how a run is carried out, never its result: left out of run ids,
# config digests and study fingerprints, so that changing them never orphans a run or refuses a study.
OPERATIONAL = {"train": ("checkpoint_every",)}


def without_operational(dumped: dict[str, Any]) -> dict[str, Any]:
    """A dump of a RunConfig or a spec (exclude_defaults) without its `OPERATIONAL` fields; a
    section left empty is dropped, as exclude_defaults drops a section at its defaults."""
    out = dict(dumped)
    for section, fields in OPERATIONAL.items():
        if isinstance(out.get(section), dict):
            kept = {k: v for k, v in out[section].items() if k not in fields}
            if kept:
                out[section] = kept
            else:
                del out[section]
    return out


SECTIONS = tuple(RunConfig.model_fields)


def check_dotted_key(key: str, where: str, *also: str) -> None:
    """`key` must be SECTION.FIELD naming a RunConfig field (a grid key, a search.space key)."""
    section, _, field = key.partition(".")
    if section not in SECTIONS or not field:
        extra = f", or {', '.join(map(repr, also))}" if also else ""
        raise ValueError(f"{where} key {key!r} must be SECTION.FIELD with SECTION in {list(SECTIONS)}{extra}")
    if field in OPERATIONAL.get(section, ()):
        raise ValueError(f"{where} key {key!r} cannot vary: it changes how runs are carried out, not their results")
    model = RunConfig.model_fields[section].annotation
    fields = set(model.model_fields)
    if issubclass(model, FamilySection):  # common fields, or an option of some registered family
        fields |= set(model.all_option_names())
    if field not in fields:
        raise ValueError(
            f"{where} key {key!r}: {section} has no field {field!r}.{did_you_mean(field, fields)} "
            f"Fields: {', '.join(sorted(fields))}"
        )


def _non_finite(value: Any) -> Optional[float]:
    """The first NaN or infinite float in `value` (nested lists and mappings searched), else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return value
    for item in value.values() if isinstance(value, dict) else value if isinstance(value, list) else ():
        if (bad := _non_finite(item)) is not None:
            return bad
    return None


def check_finite_values(values: list[Any], where: str) -> None:
    """Grid values and categorical choices are untyped (Any): refuse NaN and infinities here, as the
    typed fields do (allow_inf_nan=False)."""
    for value in values:
        if (bad := _non_finite(value)) is not None:
            raise ValueError(f"{where}: {bad} is not a finite number (NaN and infinities are refused)")
