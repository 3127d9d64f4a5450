"""Sweep specs: the `SweepSpec` model, YAML loading, and the expansion into runs.

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

The models live in three modules, imported here so that this module offers them all: sections.py
(the sections of a `RunConfig`: dataset, model, objective, schedule, train; the `eval:` section is
metrics/declarations.py's), search.py (the `search:` section) and this one (the sweep: grid, seeds,
runs, fingerprints, loading). None of them imports Optuna.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from ..errors import SpecError
from ..metrics.declarations import EvalConfig
from .overrides import Override, Overrides, annotate, apply_overrides, parse_overrides
from .search import (
    CategoricalParam,
    FloatParam,
    IntParam,
    PrunerConfig,
    SearchConfig,
    SearchTarget,
    SpaceParam,
)
from .sections import (
    SECTIONS,
    DatasetConfig,
    ModelConfig,
    ObjectiveConfig,
    RunConfig,
    ScheduleConfig,
    TrainConfig,
    check_dotted_key,
    check_finite_values,
    registered,
    without_operational,
)
from .tracking import TrackingConfig

__all__ = [
    "SECTIONS",
    "VARIANT",
    "CategoricalParam",
    "DatasetConfig",
    "EvalConfig",
    "FloatParam",
    "IntParam",
    "ModelConfig",
    "ObjectiveConfig",
    "PrunerConfig",
    "Run",
    "RunConfig",
    "ScheduleConfig",
    "SearchConfig",
    "SearchTarget",
    "SpaceParam",
    "SweepSpec",
    "TrackingConfig",
    "TrainConfig",
    "apply_params",
    "expand_grid",
    "format_validation_error",
    "load_spec",
    "parse_spec",
    "registered",
    "spec_diff",
]

STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
VARIANT = "variant"


class SweepSpec(RunConfig):
    """A whole spec: its RunConfig sections (the base every grid cell starts from), the study's name,
    the plugins to import, the grid, the seeds and the search."""

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
    tracking: TrackingConfig = Field(
        default_factory=TrackingConfig,
        description="where each run is mirrored (MLflow, TensorBoard); not part of the study's identity",
    )

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
                check_dotted_key(key, "grid", VARIANT)
            check_finite_values(values, f"grid key {key!r}")
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
            raise ValueError(
                f"search.sampler {self.search.sampler!r} draws configs from search.space; remove `grid` "
                "(or use sampler 'grid')"
            )
        if len(self.seeds) != 1:
            raise ValueError(
                f"search.sampler {self.search.sampler!r} runs each drawn config once: give one seed "
                "(rerun the best configs under a grid for several seeds)"
            )
        for key, param in self.search.space.items():  # every endpoint / choice must make a valid config
            for value in param.values():
                try:
                    apply_params(self.base(), {key: value})
                except ValueError as e:
                    raise ValueError(f"search.space.{key}: {e}") from None
        return self

    @model_validator(mode="after")
    def _selects_on_validation(self) -> "SweepSpec":
        """A pruner, a searching sampler or early stopping selects on the per-epoch or final values it
        reads: without a validation split those are the test split's, which the report then presents
        as held out. Refused unless `search.allow_test_selection` says it is meant."""
        if "dataset.validation" in self.grid or "dataset.validation" in self.search.space:
            raise ValueError(
                "dataset.validation cannot vary within a study (every run validates on the same split): "
                "set it in the dataset section"
            )
        if self.dataset.validation or self.search.allow_test_selection:
            return self
        selecting = []
        if self.search.pruner.name != "none":
            selecting.append(f"search.pruner {self.search.pruner.name!r}")
        if self.search.sampled:
            selecting.append(f"search.sampler {self.search.sampler!r}")
        if any(cfg.train.early_stopping is not None for cfg in self.cells()):
            selecting.append("train.early_stopping")
        if selecting:
            raise ValueError(
                f"{' and '.join(selecting)} would select on the test split: set dataset.validation (a count of "
                "training examples, e.g. 10000, or a fraction, e.g. 0.1) to hold out a validation split, or "
                "set search.allow_test_selection: true to select on test deliberately (recorded in the rows "
                "and the report)"
            )
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
        return [Run(cfg, seed, labels, i) for i, (labels, cfg) in enumerate(self.grid_cells()) for seed in self.seeds]

    def n_runs(self) -> int:
        """The study's runs: cells x seeds of a grid, the trial budget of a sampled search."""
        return self.search.n_trials if self.search.sampled else len(self.cells()) * len(self.seeds)

    def fingerprint(self) -> str:
        """Hash of what determines the study's runs: every non-default value but the description, the
        operational fields (`sections.OPERATIONAL`: train.checkpoint_every), the plugin list (which modules provide the families is provenance, recorded in every row)
        and the tracking section (where results are mirrored, not what is computed)."""
        return _digest(
            without_operational(
                self.model_dump(mode="json", exclude={"description", "plugins", "tracking"}, exclude_defaults=True)
            )
        )

    def fixed_settings(self) -> dict[str, Any]:
        """What every run of the study shares, as it is fingerprinted: the spec without its grid
        values and seeds (the grid's keys stay: they name the cells' parameters)."""
        dumped = self.model_dump(
            mode="json", exclude={"description", "plugins", "study", "grid", "seeds"}, exclude_defaults=True
        )
        return {**without_operational(dumped), "grid_keys": list(self.grid)}

    def growth_problems(self, old: "SweepSpec") -> list[str]:
        """Why this spec is not `old` grown ([] when it is): a grown spec keeps every fixed setting
        and grid key of `old` and every grid value and seed of it, and may add grid values and seeds.
        Then every run of `old` is a run of this spec, with the same run id (run ids hash the run's
        config and seed), so its finished runs are kept and only the new cells x seeds are run."""
        problems = []
        mine, theirs = self.fixed_settings(), old.fixed_settings()
        if mine != theirs:
            problems += [f"fixed setting {c}" for c in spec_diff(theirs, mine)]
        if list(self.grid) == list(old.grid):
            for key, values in old.grid.items():
                kept = {json.dumps(v, sort_keys=True) for v in self.grid[key]}
                lost = [v for v in values if json.dumps(v, sort_keys=True) not in kept]
                if lost:
                    problems.append(f"grid {key}: removed or changed {_labels(key, lost)}")
        if lost_seeds := [s for s in old.seeds if s not in self.seeds]:
            problems.append(f"seeds: removed {lost_seeds}")
        return problems

    def grid_choices(self, key: str) -> list[Any]:
        """The values of a grid key as Optuna categorical choices (a variant by its name)."""
        return [v["name"] if key == VARIANT else v for v in self.grid[key]]


def spec_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    """`key: old -> new` for every dotted key whose value differs between two nested mappings."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += spec_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {json.dumps(a)} -> {json.dumps(b)}")
    return out


def _labels(key: str, values: list[Any]) -> list[Any]:
    return [v["name"] if key == VARIANT and isinstance(v, dict) else v for v in values]


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
        loc, msg, value = _error_parts(e.errors()[0])
        got = "" if isinstance(value, dict) else f" = {value!r}"
        raise ValueError(f"{what}: {loc}{got}: {msg}") from None


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
                raise ValueError(
                    f"grid.variant[{i}] ({v['name']}): unknown section {section!r}; sections: {list(SECTIONS)}"
                )
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
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _error_parts(e: dict) -> tuple[str, str, Any]:
    """One pydantic error as (dotted location, message without pydantic's "Value error, " prefix,
    the value given): what both messages of a spec error are written from."""
    return ".".join(str(p) for p in e["loc"]), e["msg"].removeprefix("Value error, "), e.get("input")


def format_validation_error(path: Path | str, err: ValidationError, overrides: Sequence[Override] = ()) -> str:
    """Every error of a spec's validation, one line each: the field, the message and the value given
    (not for a missing or unknown key, nor for a whole section), and whether the field was set by a
    command-line override (`overrides`)."""
    lines = [f"{path}: invalid sweep spec ({err.error_count()} error{'s' * (err.error_count() > 1)})"]
    for e in err.errors():
        loc, msg, value = _error_parts(e)
        msg = "unknown key" if e["type"] == "extra_forbidden" else msg
        quiet = e["type"] in ("missing", "extra_forbidden", "unknown_option") or isinstance(value, dict)
        lines.append(
            f"  field {loc or '(top level)'}: {msg}{'' if quiet else f' (got {value!r})'}{annotate(loc, overrides)}"
        )
    return "\n".join(lines)


def parse_spec(data: Any, source: str = "<spec>", overrides: Overrides = None) -> SweepSpec:
    """Validate a spec mapping (what a YAML spec file holds); its `plugins` are imported first (their
    families may be named in it).

    Parameters:
        data: the mapping, e.g. `yaml.safe_load` of a spec file, or a dict written in Python.
        source: what error messages name it (a file name).
        overrides: KEY=VALUE strings or a mapping (spec/overrides.py), set on the mapping first; the
            errors of an overridden field say so.

    Returns:
        SweepSpec: the validated spec (`spec.cells()`, `spec.n_runs()`, `spec.model_dump()`).
    A problem is a `SpecError` naming `source` and the field.

    Example:
        >>> spec = vaebench.parse_spec({"study": "s", "dataset": {"name": "digits"}, "seeds": [0]})
        >>> spec.n_runs()
        1
    """
    from ..plugins import load_plugins

    parsed = parse_overrides(overrides)
    data = apply_overrides(data, parsed, source)
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a sweep spec must be a YAML mapping, got {type(data).__name__}")
    plugins = data.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(m, str) for m in plugins):
        raise SpecError(
            f"{source}: invalid sweep spec\n  field plugins: must be a list of module names (got {plugins!r})"
        )
    load_plugins(plugins, f"{source}, field plugins")
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as e:
        raise SpecError(format_validation_error(source, e, parsed)) from None


def load_spec(path: str | Path, overrides: Overrides = None) -> SweepSpec:
    """Read and validate a YAML sweep spec.

    Parameters:
        path: the spec file (str or Path).
        overrides: the command line's KEY=VALUE strings (or a mapping: spec/overrides.py), set on the
            spec before it is validated.

    Returns:
        SweepSpec: the validated spec. Every problem is a `SpecError` naming the file and the field.

    Example:
        >>> spec = vaebench.load_spec("sweeps/smoke.yaml")
        >>> spec.study, spec.n_runs()
        ('smoke', 4)
    """
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
    return parse_spec(data, str(path), overrides)
