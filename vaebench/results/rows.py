"""Results rows: one Parquet file per run, written atomically, loaded back as one DataFrame.

Layout: results/<study>/runs/<run_id>.parquet, one row each. Keyed by run id, so re-runs and resumes
can never double-count. A row is written before its Optuna trial is told COMPLETE.

Columns (all rows of a study share one schema):
- identity: run_id, study, seed, status (ok | pruned | failed: status.RunStatus), reason, variant (grid.variant name),
  cell_index (the cell's position in the grid; a sampled trial's number), trial_number (Optuna's)
- search: sampler, objective_metrics and objective_directions (what the study optimizes), objective_values
  (what the trial told Optuna, in that order) and objective_split (the split they, the per-epoch values and
  early stopping were measured on: validation, or test), allow_test_selection (the spec's opt-out)
- parameters: `param.<section>.<field>` for every RunConfig field, `param.eval.<metric>.<option>` for the
  options of every registered metric that declares some; `grid_keys` lists the varied ones
- metrics: the columns every registered metric declares (metrics/declarations.py: dtype, unit, direction;
  `metric_types`), null where a metric did not apply (`metrics_skipped`: "<metric>: <reason>") and on
  failed runs
- timing: train_seconds, eval_seconds, eval_seconds_<metric>, epochs_completed (the epochs trained)
- convergence: stop_reason (max_epochs | converged | pruned | diverged), best_epoch (the epoch whose
  weights were evaluated: the best validation epoch under early stopping, else the last)
- interruptions: resumed_from_epoch (the epoch in which the run's last attempt resumed from a checkpoint:
  k + 1 after a checkpoint at the end of epoch k, k after one within epoch k; null when it never resumed),
  attempts (the study's trials that carried the run, the one that wrote the row included)
- files: model_path, artifacts_path (relative to results/<study>/; see artifacts.py)
- history: list of per-epoch records (results/fields.py, HISTORY_FIELDS)
- provenance: the command line, overrides (the KEY=VALUE command-line overrides of the spec file the study's spec
  was made or last grown with: spec/overrides.py; empty without), vaebench/torch/optuna/python versions, device, host, machine (CPU model, cores, memory, GPU), dataset name and checksum,
  validation_size and validation_checksum (of the held-out indices; 0 and null without a validation split),
  spec fingerprint, created_at (UTC); precision (the training steps' autocast dtype: fp32, bf16, fp16) and
  tf32 (whether TF32 matmuls/convolutions were allowed while training: CUDA with train.tf32 only)
- tracking: tracking_error, only in the rows of runs mirrored to a tracker (the spec's `tracking:`
  section, `--track`): null when every tracker took the run, else what failed ("mlflow: ...; ..."); a
  tracker's failure never keeps a row from being written (vaebench/tracking/)
"""

from __future__ import annotations

import math
import os
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from ..metrics import (
    METRICS,
    METRICS_SKIPPED,
    MetricDeclarationError,
    declared_columns,
)
from ..options import FamilySection
from ..runtime.files import atomic_path
from ..spec.sections import OPERATIONAL, SECTIONS, RunConfig
from .fields import HISTORY_FIELDS

if TYPE_CHECKING:
    import pandas as pd

RESULTS_ROOT_ENV = "VAEBENCH_RESULTS"
PARAM_PREFIX = "param."

_BASE_TYPES: dict[str, pa.DataType] = {
    "run_id": pa.string(),
    "study": pa.string(),
    "seed": pa.int64(),
    "status": pa.string(),
    "reason": pa.string(),
    "variant": pa.string(),
    "cell_index": pa.int64(),
    "grid_keys": pa.list_(pa.string()),
    "sampler": pa.string(),
    "objective_metrics": pa.list_(pa.string()),
    "objective_directions": pa.list_(pa.string()),
    "objective_values": pa.list_(pa.float64()),
    "objective_split": pa.string(),
    "allow_test_selection": pa.bool_(),
    "trial_number": pa.int64(),
    "n_params": pa.int64(),
    "epochs_completed": pa.int64(),
    "stop_reason": pa.string(),
    "best_epoch": pa.int64(),
    "resumed_from_epoch": pa.int64(),
    "attempts": pa.int64(),
    "train_seconds": pa.float64(),
    "eval_seconds": pa.float64(),
    "model_path": pa.string(),
    "artifacts_path": pa.string(),
    "history": pa.list_(pa.struct([(k, pa.int64() if k == "epoch" else pa.float64()) for k in HISTORY_FIELDS])),
    "command": pa.string(),
    "overrides": pa.list_(pa.string()),
    "vaebench_version": pa.string(),
    "torch_version": pa.string(),
    "optuna_version": pa.string(),
    "python_version": pa.string(),
    "device": pa.string(),
    "torch_threads": pa.int64(),
    "precision": pa.string(),
    "tf32": pa.bool_(),
    "hostname": pa.string(),
    "machine": pa.string(),
    "dataset": pa.string(),
    "dataset_checksum": pa.string(),
    "validation_size": pa.int64(),
    "validation_checksum": pa.string(),
    "spec_fingerprint": pa.string(),
    "created_at": pa.string(),
    "config": pa.string(),
    "plugins": pa.list_(pa.struct([(k, pa.string()) for k in ("module", "distribution", "version", "source_sha256")])),
    "provenance_note": pa.string(),
    "tracking_error": pa.string(),
}

BASE_COLUMNS = frozenset(_BASE_TYPES)  # the columns every row has, whatever its families and metrics

# Arrow type of each dtype a metric column may declare (metrics/declarations.py, `Column.dtype`).
DTYPE_TO_ARROW: dict[str, pa.DataType] = {
    "float": pa.float64(),
    "int": pa.int64(),
    "str": pa.string(),
    "list[float]": pa.list_(pa.float64()),
    "list[int]": pa.list_(pa.int64()),
    "list[str]": pa.list_(pa.string()),
}


ROW_SCALARS = ("n_params", "epochs_completed", "train_seconds", "eval_seconds")  # the run's size and times


def scalar_columns(row: dict[str, Any]) -> dict[str, float | int]:
    """The row's scalar numbers by column name: every declared scalar metric column (the values and
    the settings that qualify them, e.g. fid_samples) and the run's size and times (`ROW_SCALARS`).
    Null and non-finite values and booleans are left out. What the trial's `m.*` attributes and the
    trackers' final metrics show."""
    names = [n for n, (_, c) in declared_columns().items() if c.dtype in ("float", "int")] + list(ROW_SCALARS)
    out: dict[str, float | int] = {}
    for name in names:
        value = plain_json(row.get(name))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            continue
        out[name] = value
    return out


def metric_types() -> dict[str, pa.DataType]:
    """Arrow type of every metric column, derived from the registered metrics' declarations (this
    loads the metric registry: the built-in metrics and any plugin's), plus `metrics_skipped`."""
    types: dict[str, pa.DataType] = {}
    for name, (metric, column) in declared_columns().items():
        if name in _BASE_TYPES:
            raise MetricDeclarationError(
                f"metric {metric!r} declares column {name!r}, a column every results row already has; rename it"
            )
        types[name] = DTYPE_TO_ARROW[column.dtype]
    types[METRICS_SKIPPED] = pa.list_(pa.string())
    return types


_PY_TO_ARROW = {int: pa.int64(), float: pa.float64(), bool: pa.bool_(), str: pa.string()}


def _arrow_type(ann) -> pa.DataType:
    """Arrow type of a RunConfig field annotation: int, float, bool, str, Literal[str], list[X],
    Optional[X], int | float (float64), a strict type (Annotated[X, ...]: X), a pydantic model (a
    struct of its fields)."""
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is typing.Annotated:
        return _arrow_type(args[0])
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return pa.struct([(k, _arrow_type(f.annotation)) for k, f in ann.model_fields.items()])
    plain = {typing.get_args(a)[0] if typing.get_origin(a) is typing.Annotated else a for a in args}
    if plain == {int, float}:
        return pa.float64()
    if origin is typing.Literal:
        return _PY_TO_ARROW[type(args[0])]
    if origin is list:
        return pa.list_(_arrow_type(args[0]))
    if origin is not None:  # Optional[X] / X | None
        return _arrow_type(next(a for a in args if a is not type(None)))
    return _PY_TO_ARROW[ann]


def _param_types(config: RunConfig | None = None) -> dict[str, pa.DataType]:
    """Arrow type of every `param.` column, from the field annotations: the fixed sections' fields,
    and for the family sections (model, dataset) the common fields plus the options of the family
    `config` names (of every registered family when `config` is None)."""
    out = {}
    for section in SECTIONS:
        model = RunConfig.model_fields[section].annotation
        fields = dict(model.model_fields)
        if issubclass(model, FamilySection):
            if config is not None:
                fields.update(model.options_model(getattr(config, section).name).model_fields)
            else:
                for family in model._family_registry():
                    fields.update(model.options_model(family).model_fields)
        for name, field in fields.items():
            if name not in OPERATIONAL.get(section, ()):  # no parameter of a result: no column
                out[f"{PARAM_PREFIX}{section}.{name}"] = _arrow_type(field.annotation)
    return out


def row_schema(row: dict[str, Any]) -> pa.Schema:
    """The schema of a row: fixed columns, then parameters, metrics and per-metric timings."""
    config = RunConfig.model_validate_json(row["config"]) if row.get("config") else None
    types = {**_BASE_TYPES, **_param_types(config), **_metric_option_types(), **metric_types()}
    fields = []
    for key in row:
        if key in types:
            fields.append(pa.field(key, types[key]))
        elif key.startswith("eval_seconds_"):
            fields.append(pa.field(key, pa.float64()))
        else:
            raise KeyError(
                f"results row has an undeclared column {key!r}: declare a metric's column in the "
                f"metric's registration (register_metric(name, columns=[Column({key!r}, dtype, ...)])); "
                f"other columns in results/rows.py"
            )
    return pa.schema(fields)


def grid_column(key: str) -> str:
    """The results column holding a grid key's value: `variant`, or `param.<section>.<field>`."""
    return "variant" if key == "variant" else PARAM_PREFIX + key


def param_columns(config: RunConfig) -> dict[str, Any]:
    options_given = {f"eval.{m}" for m in config.eval.model_extra or {}}  # replaced by their option columns
    flat = {k: v for k, v in config.flat().items() if k not in options_given}
    return {PARAM_PREFIX + k: v for k, v in {**flat, **_metric_option_values(config)}.items()}


def _metric_options() -> dict[str, Any]:
    """{metric: its options model} of every registered metric that declares options."""
    return {m: METRICS.get(m).options for m in METRICS.names() if METRICS.get(m).options is not None}


def _metric_option_values(config: RunConfig) -> dict[str, Any]:
    """`eval.<metric>.<option>` -> value (its default unless the spec set it), for every registered
    metric with options: a metric's options are parameters like any eval setting."""
    return {
        f"eval.{m}.{k}": v
        for m in _metric_options()
        for k, v in METRICS.get(m).options_for(config).model_dump(mode="json").items()
    }


def _metric_option_types() -> dict[str, pa.DataType]:
    return {
        f"{PARAM_PREFIX}eval.{m}.{k}": _arrow_type(f.annotation)
        for m, options in _metric_options().items()
        for k, f in options.model_fields.items()
    }


def resolve_results_root(results: str | Path | None = None) -> Path:
    """--results, else $VAEBENCH_RESULTS, else ./results."""
    return Path(results or os.environ.get(RESULTS_ROOT_ENV) or "results")


def runs_dir(results_root: Path, study: str) -> Path:
    return Path(results_root) / study / "runs"


def row_path(results_root: Path, study: str, run_id: str) -> Path:
    return runs_dir(results_root, study) / f"{run_id}.parquet"


def write_row(results_root: Path, study: str, row: dict[str, Any]) -> Path:
    """Write one run's row atomically: a temp file in the same folder, fsync, then rename."""
    path = row_path(results_root, study, row["run_id"])
    table = pa.Table.from_pylist([row], schema=row_schema(row))
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def has_row(results_root: Path, study: str, run_id: str) -> bool:
    return row_path(results_root, study, run_id).is_file()


def read_row(results_root: Path, study: str, run_id: str) -> dict[str, Any]:
    return pq.read_table(row_path(results_root, study, run_id)).to_pylist()[0]


def list_studies(results_root: Path) -> list[str]:
    root = Path(results_root)
    return sorted(p.parent.name for p in root.glob("*/runs") if any(p.glob("*.parquet")))


def load_results_table(results_root: Path, study: str | None = None) -> pa.Table | None:
    """All rows of one study (or of every study under the root) as one Arrow table, sorted by study
    and run id; None without rows. Rows of different model families or datasets have different
    `param.*` columns (each family its own options): the files' schemas are unified, and a column a
    row does not have is null there."""
    studies = [study] if study else list_studies(results_root)
    tables = []
    for name in studies:
        tables += [pq.read_table(f) for f in sorted(runs_dir(results_root, name).glob("*.parquet"))]
    if not tables:
        return None
    table = pa.concat_tables(tables, promote_options="permissive")
    return table.sort_by([("study", "ascending"), ("run_id", "ascending")])


def load_results(results_root: Path, study: str | None = None) -> "pd.DataFrame":
    """All rows of one study (or of every study under the root) as one DataFrame (see
    `load_results_table`)."""
    import pandas as pd  # here, not at the top: a worker writes rows without importing pandas

    table = load_results_table(results_root, study)
    return pd.DataFrame() if table is None else table.to_pandas()


EXPORT_FORMATS = ("parquet", "csv", "json")


def plain_json(value: Any, *, finite: bool = False) -> Any:
    """`value` as plain JSON values: numpy scalars and arrays become Python numbers and lists, dicts,
    lists and tuples are converted recursively. With `finite`, NaN and infinities become None
    (strict JSON has neither); without, they stay floats (Python's and Optuna's JSON keep them)."""
    if isinstance(value, dict):
        return {k: plain_json(v, finite=finite) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain_json(v, finite=finite) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if finite and isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def export_results(table: pa.Table, fmt: str, out) -> None:
    """Write the rows in a tidy form that pandas, DuckDB and polars read with their plain readers:
    one row per run, one column per variable.

    - parquet: the rows' own Arrow schema (lists and the per-epoch history as nested columns); `out`
      is a path or a binary file.
    - csv: a header line, then one line per row; list and struct columns (kl_per_dim, grid_keys,
      history, ...) as one-line JSON text in their cell; nulls empty. `out`: a path or a text file.
    - json: JSON Lines, one object per row; lists as arrays, the history as an array of objects;
      NaN and infinities as null. `out`: a path or a text file.
    """
    if fmt == "parquet":
        pq.write_table(table, out)
        return
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; one of {', '.join(EXPORT_FORMATS)}")
    import json

    rows = table.to_pylist()
    nested = {f.name for f in table.schema if pa.types.is_nested(f.type)}
    if fmt == "json":
        text = "".join(json.dumps(plain_json(r, finite=True), ensure_ascii=False, allow_nan=False) + "\n" for r in rows)
    else:
        import pandas as pd

        frame = pd.DataFrame(
            [
                {
                    k: (
                        json.dumps(plain_json(v, finite=True), ensure_ascii=False, allow_nan=False)
                        if k in nested and v is not None
                        else v
                    )
                    for k, v in r.items()
                }
                for r in rows
            ],
            columns=table.column_names,
        )
        text = frame.to_csv(index=False, lineterminator="\n")
    if isinstance(out, (str, Path)):
        Path(out).write_text(text, encoding="utf-8")
    else:
        out.write(text)
