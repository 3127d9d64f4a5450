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
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from .errors import SpecError

STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class _Strict(BaseModel):
    """Unknown keys are errors; values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _check_registered(kind: str, name: str) -> str:
    # Imported lazily: the registries live with their families (data.py, models/, objectives.py).
    from . import data, models, objectives

    registry = {"dataset": data.DATASETS, "model": models.MODELS, "likelihood": objectives.LIKELIHOODS}[kind]
    if name not in registry:
        raise ValueError(registry.unknown_message(name))
    return name


class DatasetConfig(_Strict):
    name: str = Field("mnist", description="dataset source: mnist, digits, synthetic")
    binarize: bool = Field(
        False,
        description="dynamic binarization: a fresh Bernoulli draw of every training batch; "
        "the test split is binarized once with a fixed seed",
    )

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        return _check_registered("dataset", v)


class ModelConfig(_Strict):
    name: str = Field("mlp", description="model family from the model registry")
    hidden_dim: int = Field(256, ge=1, description="width of every hidden layer")
    latent_dim: int = Field(32, ge=1, description="dimension of z")
    depth: int = Field(2, ge=1, description="hidden layers in the encoder and in the decoder")

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        return _check_registered("model", v)


class ObjectiveConfig(_Strict):
    likelihood: str = Field("bernoulli", description="decoder likelihood p(x|z)")
    beta: float = Field(1.0, ge=0.0, description="weight of the KL term in the training loss")
    variance: float = Field(
        0.5,
        gt=0.0,
        description="fixed pixel variance of the gaussian likelihood; 0.5 makes the data term "
        "sum((x - x_hat)^2) plus a constant, the tutorial's MSE(reduction='sum')",
    )

    @field_validator("likelihood")
    @classmethod
    def _known(cls, v: str) -> str:
        return _check_registered("likelihood", v)


class TrainConfig(_Strict):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0.0, description="Adam learning rate")
    grad_clip: Optional[float] = Field(1.0, gt=0.0, description="max global grad norm; null: off")


class EvalConfig(_Strict):
    batch_size: int = Field(2000, ge=1, description="examples per evaluation forward pass")
    active_threshold: float = Field(
        0.01, ge=0.0, description="unit u is active when Var_x(E_q[z_u|x]) exceeds this"
    )


class RunConfig(_Strict):
    """Everything one training run depends on, except its seed."""

    dataset: DatasetConfig = DatasetConfig()
    model: ModelConfig = ModelConfig()
    objective: ObjectiveConfig = ObjectiveConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()

    def flat(self) -> dict[str, Any]:
        """{'objective.beta': 1.0, ...}: the config as dotted keys (the results' parameter columns)."""
        return {f"{s}.{k}": v for s, sec in self.model_dump().items() for k, v in sec.items()}


SECTIONS = tuple(RunConfig.model_fields)


class SweepSpec(RunConfig):
    study: str = Field(..., description="study name: results/<study>/ and the Optuna study")
    description: str = ""
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    seeds: list[int] = Field(default_factory=lambda: [0])

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
            section, _, field = key.partition(".")
            if section not in SECTIONS or not field:
                raise ValueError(f"grid key {key!r} must be SECTION.FIELD with SECTION in {list(SECTIONS)}")
            fields = RunConfig.model_fields[section].annotation.model_fields
            if field not in fields:
                raise ValueError(f"grid key {key!r}: {section} has no field {field!r}; fields: {sorted(fields)}")
            if not values:
                raise ValueError(f"grid key {key!r} has no values")
            if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
                raise ValueError(f"grid key {key!r} repeats a value: {values}")
        if all(s in info.data for s in SECTIONS):  # else those sections have their own errors
            expand_grid(RunConfig(**{s: info.data[s] for s in SECTIONS}), grid)
        return grid

    def base(self) -> RunConfig:
        return RunConfig(**{s: getattr(self, s) for s in SECTIONS})

    def grid_cells(self) -> list[tuple[dict[str, Any], RunConfig]]:
        """The grid's product in declaration order: (the cell's grid values, its RunConfig)."""
        return expand_grid(self.base(), self.grid)

    def cells(self) -> list[RunConfig]:
        return [cfg for _, cfg in self.grid_cells()]

    def runs(self) -> list["Run"]:
        return [Run(cfg, seed) for cfg in self.cells() for seed in self.seeds]

    def fingerprint(self) -> str:
        """Hash of what determines the study's runs (not its description)."""
        return _digest(self.model_dump(exclude={"description"}))


def expand_grid(base: RunConfig, grid: dict[str, list[Any]]) -> list[tuple[dict[str, Any], RunConfig]]:
    """Every point of the grid's product applied to `base`, each validated into a RunConfig."""
    base_dict = base.model_dump()
    keys = list(grid)
    cells = []
    for values in itertools.product(*(grid[k] for k in keys)):
        cfg = json.loads(json.dumps(base_dict))
        for key, value in zip(keys, values):
            section, field = key.split(".", 1)
            cfg[section][field] = value
        try:
            cells.append((dict(zip(keys, values)), RunConfig.model_validate(cfg)))
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            raise ValueError(f"grid value {loc} = {err.get('input')!r}: {msg}") from None
    return cells


@dataclass(frozen=True)
class Run:
    """One cell x seed: the unit of work and of results."""

    config: RunConfig
    seed: int

    @property
    def run_id(self) -> str:
        return _digest({"config": self.config.model_dump(), "seed": self.seed})[:12]


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
        if e["type"] == "extra_forbidden" or isinstance(e.get("input"), dict):
            got = ""
        lines.append(f"  field {loc}: {msg}{got}")
    return "\n".join(lines)


def parse_spec(data: Any, source: str = "<spec>") -> SweepSpec:
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a sweep spec must be a YAML mapping, got {type(data).__name__}")
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
    return parse_spec(data, str(path))
