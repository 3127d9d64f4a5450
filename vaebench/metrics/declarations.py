"""What a metric declares, and the one way a metric enters the registry: `register_metric`.

A metric is a compute function `(ctx: EvalContext) -> {column: value}` plus its declaration: the
result columns it fills (`Column`: Arrow-friendly dtype, unit, which way is better, a table label, a
one-line doc) and, optionally, its options (a pydantic model, given in a spec under
`eval.<metric name>: {...}` and handed to the function as `ctx.options`). Everything downstream
reads the declarations: the row schema (results/rows.py), which columns a search may optimize
(`numeric_metric_columns`), the report's "All metrics" table. A metric of your own therefore needs
nothing else edited:

    from pydantic import Field
    from vaebench.options import Options
    from vaebench.metrics import Column, MetricNotApplicable, register_metric

    class SharpnessOptions(Options):
        clip: float = Field(1.0, gt=0, description="reconstructions clipped to [0, clip] first")

    @register_metric("sharpness", options=SharpnessOptions, columns=[
        Column("sharpness", "float", unit="per pixel", direction="higher", label="Sharpness",
               doc="mean absolute Laplacian of the reconstructions"),
    ])
    def sharpness(ctx) -> dict:
        if ctx.x.shape[-1] < 3:
            raise MetricNotApplicable("images narrower than the 3x3 Laplacian")
        x = ctx.reconstructions.clamp(0, ctx.options.clip)
        return {"sharpness": ...}

In a spec: `eval: {sharpness: {clip: 0.5}}`; as a search target: `search.objectives: [{metric: sharpness,
direction: maximize}]`. Its options are parameter columns too (`param.eval.sharpness.clip`).

A compute function that cannot apply to this model or dataset raises `MetricNotApplicable(reason)`:
its columns are then null and the row's `metrics_skipped` says why. One that fills some of its
columns but not others calls `ctx.skip(part, reason)` and leaves those out (metrics/__init__.py).

The `eval:` section of a spec (`EvalConfig`) is defined here too: the built-in metrics' settings
and the options of every registered metric, validated against the declarations. The spec imports it
from here; nothing here imports the spec. A built-in metric's settings are its options as well
(`eval_settings`, `register_metric(..., settings=Model)`): its compute function reads them as
`ctx.options` like any metric's, and a spec may give them as `eval.<setting>` (the canonical
spelling, in run ids and `param.eval.<setting>` columns) or as `eval.<metric>: {setting: value}`.

This module imports no torch, so reading the declarations is cheap. The built-in metric modules
register themselves when the registry is first looked up (the loader metrics/__init__.py gives
`METRICS`); none of them imports torch-fidelity or torchvision before a metric runs.
"""

from __future__ import annotations

import re
import sys
from copy import copy
from dataclasses import dataclass
from typing import Any, Callable, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from ..errors import VaebenchError
from ..options import Options, check_entry, option_error, option_errors
from ..registry import Registry, did_you_mean

DTYPES = ("float", "int", "str", "list[float]", "list[int]", "list[str]")
SCALAR_DTYPES = ("float", "int")
NUMERIC_DTYPES = ("float", "int", "list[float]", "list[int]")
DIRECTIONS = ("lower", "higher")
METRICS_SKIPPED = "metrics_skipped"  # list: "metric: reason" per metric not applied, "metric (part): reason" per part
EVAL_SECONDS_PREFIX = "eval_seconds_"  # eval_seconds_<metric>: wall seconds of each metric
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

BUILTIN_MODULES = (
    "codebook",
    "disentanglement",
    "factor_scores",
    "fid",
    "latent",
    "layers",
    "likelihood",
    "perceptual",
    "recon",
)


class MetricDeclarationError(VaebenchError, ValueError):
    """A metric's declaration is invalid, or its compute function broke it (an undeclared column)."""

    exit_code = 2


class MetricNotApplicable(Exception):
    """Raised by a compute function that cannot apply here (e.g. per-class metrics on an unlabeled
    dataset): the metric's columns stay null and `metrics_skipped` records "<metric>: <reason>"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Column:
    """One result column a metric fills.

    name: the column (also its key in the compute function's dict); lower-case, digits, underscores.
    dtype: "float", "int", "str", "list[float]", "list[int]" or "list[str]" (the Arrow type follows).
    unit: e.g. "nats per example", "per pixel", "images"; "" when dimensionless.
    direction: "lower" or "higher" (which way is better), None for settings and provenance. The
        scalar (float, int) columns with a direction are what a search may optimize.
    label: short human label for tables, without the unit (default: the name).
    doc: one line: what the value is.
    rank: whether a report marks the best value of the column (False for quantities a search may
        push either way but no value of which is better in itself, e.g. the KL term).
    """

    name: str
    dtype: str
    unit: str = ""
    direction: Optional[str] = None
    label: str = ""
    doc: str = ""
    rank: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise MetricDeclarationError(f"column name must match {_NAME.pattern}, got {self.name!r}")
        if self.dtype not in DTYPES:
            raise MetricDeclarationError(
                f"column {self.name!r}: dtype must be one of {', '.join(DTYPES)}; got {self.dtype!r}"
            )
        if self.direction not in (*DIRECTIONS, None):
            raise MetricDeclarationError(
                f"column {self.name!r}: direction must be 'lower', 'higher' or None; got {self.direction!r}"
            )
        if self.direction is not None and self.dtype not in NUMERIC_DTYPES:
            raise MetricDeclarationError(f"column {self.name!r}: a {self.dtype} column has no direction")
        if not self.label:
            object.__setattr__(self, "label", self.name)

    @property
    def target(self) -> bool:
        """A scalar number with a direction: it may be a search target (`search.objectives`)."""
        return self.dtype in SCALAR_DTYPES and self.direction is not None


@dataclass(frozen=True)
class MetricDeclaration:
    """A registered metric: its compute function, the columns it fills, its options model.

    options: the model of options of its own, given as `eval.<name>: {option: value}` and stored as
        `param.eval.<name>.<option>` columns (plugins, lpips).
    settings: the model of a built-in metric whose options are `eval:` settings (`eval_settings`):
        canonically spelled `eval.<setting>` (`eval.fid_samples`), stored as `param.eval.<setting>`,
        also accepted as `eval.<name>: {setting: value}`. At most one of the two is given; either way
        the compute function gets the validated values as `ctx.options`.
    """

    name: str
    compute: Callable[[Any], dict]
    columns: tuple[Column, ...]
    options: Optional[type] = None  # a pydantic model (unknown keys forbidden, every field defaulted)
    doc: str = ""
    settings: Optional[type] = None  # an `eval_settings` model (built-in metrics only)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def options_model(self) -> Optional[type]:
        """The model of what the compute function gets as `ctx.options` (`options` or `settings`)."""
        return self.options if self.options is not None else self.settings

    def options_for(self, cfg) -> Any:
        """The validated options of this metric in a RunConfig: `eval.<name>` (its defaults when the
        spec gives none), or for a metric with `settings` the values of those eval settings; None for
        a metric without options."""
        section = getattr(cfg, "eval", None)
        if self.settings is not None:
            values = {k: getattr(section, k) for k in self.settings.model_fields} if section is not None else {}
            return self.settings.model_validate(values)
        if self.options is None:
            return None
        given = (getattr(section, "model_extra", None) or {}).get(self.name) or {}
        return self.options.model_validate(given)

    def __call__(self, ctx) -> dict:
        """Run the compute function with `ctx.options` set to this metric's options (and `ctx.metric`
        to its name)."""
        ctx.options = self.options_for(ctx.cfg)
        ctx.metric = self.name
        return self.compute(ctx)


def _first_line(doc: str | None) -> str:
    return " ".join((doc or "").strip().split("\n\n")[0].split())


def _check_own_options(name: str) -> None:
    """A metric's own options live at eval.<name>: no eval setting may have that name."""
    if name in EvalConfig.model_fields:
        raise MetricDeclarationError(
            f"metric {name!r} has options but eval.{name} is an eval setting; rename the metric"
        )


def _check_settings(name: str, settings: Any) -> None:
    fields = getattr(settings, "model_fields", None)
    if not (isinstance(settings, type) and issubclass(settings, BaseModel)) or not fields:
        raise MetricDeclarationError(
            f"metric {name!r}: settings must be a model made by eval_settings(...), got {settings!r}"
        )
    for field, info in fields.items():
        own = EvalConfig.model_fields.get(field)
        if own is None or (info.annotation, info.default) != (own.annotation, own.default):
            raise MetricDeclarationError(
                f"metric {name!r}: its settings model {settings.__name__} has field {field!r}, which is not "
                "the eval setting of that name: make it with eval_settings(name, *settings)"
            )


def _check(name: str, declaration: MetricDeclaration) -> None:
    """What registering a metric checks (the registry's `check`, so `METRICS.register` does too)."""
    check_entry(
        "metric",
        name,
        declaration,
        MetricDeclaration,
        "compute",
        "it with @register_metric(name, columns=[...]) (a MetricDeclaration)",
        defaults_required=True,
        error=MetricDeclarationError,
    )
    if not declaration.columns:
        raise MetricDeclarationError(
            f"metric {declaration.name!r} declares no columns: register_metric(name, columns=[Column(...), ...])"
        )
    bad = [c for c in declaration.columns if not isinstance(c, Column)]
    if bad:
        raise MetricDeclarationError(
            f"metric {declaration.name!r}: columns must be Column(...) declarations, got {bad[0]!r}"
        )
    # What is registered so far: `register` loads the built-ins before it checks, so a new column cannot
    # take theirs. (Not `names()`: that would import installed plugins in the middle of a registration.)
    registered = METRICS._items
    owners = {c.name: m for m, other in registered.items() for c in other.columns}
    seen: set[str] = set()
    for c in declaration.columns:
        if c.name in seen:
            raise MetricDeclarationError(f"metric {declaration.name!r} declares column {c.name!r} twice")
        seen.add(c.name)
        if c.name in owners:
            raise MetricDeclarationError(
                f"column {c.name!r} is declared by metric {owners[c.name]!r} and by metric "
                f"{declaration.name!r}; a column belongs to one metric: rename one of them"
            )
        if c.name == METRICS_SKIPPED or c.name.startswith(EVAL_SECONDS_PREFIX):
            raise MetricDeclarationError(f"metric {declaration.name!r}: column name {c.name!r} is reserved")
    if declaration.options is not None and declaration.settings is not None:
        raise MetricDeclarationError(f"metric {declaration.name!r}: give options or settings, not both")
    if declaration.options is not None:
        _check_own_options(name)
    if declaration.settings is not None:
        _check_settings(declaration.name, declaration.settings)


# Deprecated name of MetricDeclaration (it is not a spec: specs are YAML sweeps); removed in the next release.
MetricSpec = MetricDeclaration

METRICS: Registry[MetricDeclaration] = Registry("metric", check=_check)  # metrics/__init__ loads the built-ins


def register_metric(
    name: str,
    columns,
    options: Optional[type] = None,
    doc: Optional[str] = None,
    settings: Optional[type] = None,
):
    """Register a metric: a decorator for its compute function `(ctx) -> dict`, one value per column.

    Parameters:
        name: the metric's name (what `eval.metrics` lists and `eval.<name>:` configures).
        columns: its `Column`s (name, dtype, unit, direction, label, doc); none declared by another metric.
        options: a pydantic model of its `eval.<name>:` options (it must forbid unknown keys and default
            every field), read in the compute function as `ctx.options`.
        doc: one line for the docs and reports (default: the first paragraph of the function's docstring).
        settings: instead of `options`, an `eval_settings` model, for the built-in metrics whose options
            are `eval:` settings.

    Returns:
        the decorator, which registers the function and returns it unchanged. A bad declaration (an
        undeclared or taken column, a bad dtype or direction) raises when it is registered.

    Example:
        >>> @vaebench.register_metric("mean_pixel", columns=[vaebench.Column("mean_pixel", "float", unit="")])
        ... def mean_pixel(ctx):
        ...     return {"mean_pixel": float(ctx.x.mean())}
    """

    def decorate(compute: Callable[[Any], dict]) -> Callable[[Any], dict]:
        doc_ = doc or _first_line(compute.__doc__)
        METRICS.register(name, MetricDeclaration(name, compute, tuple(columns or ()), options, doc_, settings))
        return compute

    return decorate


def unregister_metric(name: str) -> MetricDeclaration:
    """Remove a registered metric (for tests that register one of their own); returns its declaration."""
    return METRICS.unregister(name)


def declared_columns() -> dict[str, tuple[str, Column]]:
    """Every declared column: {column name: (metric name, Column)}, metrics in name order, each
    metric's columns in declaration order."""
    return {c.name: (m, c) for m in METRICS.names() for c in METRICS.get(m).columns}


def numeric_metric_columns() -> list[str]:
    """Metric columns a search can optimize: the declared scalar (float, int) columns with a
    direction (settings and provenance columns have none)."""
    return [name for name, (_, column) in declared_columns().items() if column.target]


# ---------------------------------------------------------------------------------------------
# the `eval:` section of a spec: the built-in metrics' settings and every metric's options


class EvalConfig(BaseModel):
    """The `eval:` section: the evaluation's batch size and the built-in metrics' settings (the fields
    below), and the options of every registered metric that declares some (`register_metric(...,
    options=Model)`), given as `eval.<metric name>: {option: value}`, validated by the metric's model
    and handed to it as `ctx.options`. Only the options that differ from their defaults are kept
    (`model_extra`), so giving a metric's defaults changes no run id.

    A built-in metric's settings are its options too (`eval_settings`: FID reads fid_extractor,
    fid_samples and kid as `ctx.options`), and may be given the same way, `eval: {fid: {fid_samples:
    1000}}`; they are kept as the fields below (`eval.fid_samples`), the canonical spelling, so both
    spellings give the same config, run id and `param.eval.fid_samples` column."""

    model_config = ConfigDict(extra="allow", validate_assignment=True, allow_inf_nan=False)

    batch_size: int = Field(2000, ge=1, description="examples per evaluation forward pass")
    active_threshold: float = Field(0.01, ge=0.0, description="unit u is active when Var_x(E_q[z_u|x]) exceeds this")
    nll_k: int = Field(
        100, ge=1, description="importance samples per test image for the NLL (Burda et al. 2016 use 5000)"
    )
    nll_examples: Optional[int] = Field(
        1000, ge=1, description="test images in the NLL estimate (the first N of the split); null: all"
    )
    fid_extractor: Optional[str] = Field(
        "classifier", description="FID features: classifier (offline), inception (needs weights), null: no FID"
    )
    fid_samples: int = Field(
        10000, ge=2, description="generated samples (and reconstructions) for FID, at most the test split's size"
    )
    kid: bool = Field(False, description="also compute KID (torch-fidelity) with the same features")
    # disentanglement (datasets with ground-truth factors only, e.g. shapes; see metrics/disentanglement.py):
    mig_samples: int = Field(10000, ge=2, description="MIG: test images (a seeded random subset; at most the split)")
    mig_bins: int = Field(20, ge=2, description="MIG: equal-width bins per latent mean")
    sap_train_samples: int = Field(5000, ge=2, description="SAP: test images the per-latent predictors are fit on")
    sap_test_samples: int = Field(5000, ge=1, description="SAP: other test images the classifiers are scored on")
    disentanglement_seed: int = Field(
        0,
        ge=0,
        description="MIG and SAP: seed of the test-image subsets (fixed "
        "across runs, so every run is scored on the same images)",
    )

    @model_validator(mode="wrap")
    @classmethod
    def _metric_options(cls, data: Any, handler):
        if not isinstance(data, dict):
            return handler(data)
        given = {k: v for k, v in data.items() if k not in cls.model_fields}
        fields = {k: v for k, v in data.items() if k in cls.model_fields}
        section = handler(fields)
        if given:
            settings, options = _validated_metric_options(given, cls, section, fields)
            if settings:  # a built-in metric's options given as eval.<metric>: its eval settings
                section = handler({**fields, **settings})
            # kept: the options that differ from their defaults (none: the metric is left out)
            section.__pydantic_extra__ = options
        return section


def eval_settings(name: str, *settings: str, doc: str) -> type[Options]:
    """The options model of a built-in metric whose options are the `eval:` settings named (EvalConfig
    fields): the same names, types, bounds, defaults and descriptions. Register the metric with
    `register_metric(..., settings=Model)`; it reads them as `ctx.options.<setting>`."""
    missing = [s for s in settings if s not in EvalConfig.model_fields]
    if missing or not settings:
        raise MetricDeclarationError(f"{name}: {missing or 'no settings'} are not eval settings")
    fields = {s: (EvalConfig.model_fields[s].annotation, copy(EvalConfig.model_fields[s])) for s in settings}
    module = sys._getframe(1).f_globals.get("__name__", __name__)  # the metric's module, as a class statement
    return create_model(name, __base__=Options, __doc__=doc, __module__=module, **fields)


def _validated_metric_options(
    given: dict[str, Any], section_type: type[BaseModel], section: BaseModel, fields: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, dict]]:
    """The `eval:` keys that are not eval settings, validated: each must name a registered metric that
    declares options (else "did you mean"). Returns (the eval settings given as a built-in metric's
    options, {metric: its options that differ from their defaults}). A metric whose options are all at
    their defaults is left out, so that giving them changes no run id: `MetricDeclaration.options_for` fills
    the defaults back in. A setting given in both spellings, or through two metrics that read it
    (`latent` and `layers` read active_threshold), must have one value: `section` holds the validated
    `fields` given directly."""
    with_options = [m for m in METRICS.names() if METRICS.get(m).options_model is not None]
    errors, settings, options = [], {}, {}
    spelled: dict[str, str] = {f: f"eval.{f}" for f in fields}  # setting -> where it was given
    for key, value in given.items():
        if key not in with_options:
            valid = sorted({*section_type.model_fields, *with_options})
            why = (
                f"metric {key!r} has no options"
                if key in METRICS
                else f"{key!r} is neither an eval setting nor a metric with options"
            )
            errors.append(
                option_error(
                    "unknown_option",
                    (key,),
                    f"unknown key: {why}.{did_you_mean(key, valid)} Valid: {', '.join(valid)}",
                    value,
                )
            )
            continue
        metric = METRICS.get(key)
        model = metric.options_model
        try:
            values = model.model_validate({} if value is None else value)
        except ValidationError as e:
            errors += option_errors(e, f"metric {key!r}", sorted(model.model_fields), "metric_option", prefix=(key,))
            continue
        if metric.settings is None:
            changed = values.model_dump(mode="json", exclude_defaults=True)
            if changed:
                options[key] = changed
            continue
        for setting in (f for f in model.model_fields if f in values.model_fields_set):
            new = getattr(values, setting)
            before = settings[setting] if setting in settings else getattr(section, setting)
            if setting in spelled and new != before:
                errors.append(
                    option_error(
                        "metric_option",
                        (key, setting),
                        f"the same setting as {spelled[setting]}, which is {before!r}: give it once",
                        new,
                    )
                )
                continue
            settings[setting] = new
            spelled.setdefault(setting, f"eval.{key}.{setting}")
    if errors:
        raise ValidationError.from_exception_data(section_type.__name__, errors)
    return settings, options
