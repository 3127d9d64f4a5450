"""Results rows: one Parquet file per run, written atomically, loaded back as one DataFrame.

Layout: results/<study>/runs/<run_id>.parquet, one row each. Keyed by run id, so re-runs and resumes
can never double-count. A row is written before its Optuna trial is told COMPLETE.

Columns (all rows of a study share one schema):
- identity: run_id, study, seed, status ('ok' | 'failed' | 'pruned'), reason, variant (grid.variant name),
  cell_index (the cell's position in the grid; a sampled trial's number), trial_number (Optuna's)
- search: sampler, objective_metrics and objective_directions (what the study optimizes)
- parameters: `param.<section>.<field>` for every RunConfig field; `grid_keys` lists the varied ones
- metrics: see metrics/columns.py (units there); null on failed runs
- timing: train_seconds, eval_seconds, eval_seconds_<metric>, epochs_completed
- files: model_path, artifacts_path (relative to results/<study>/; see artifacts.py)
- history: list of per-epoch records (train.HISTORY_FIELDS)
- provenance: the command line, vaebench/torch/optuna/python versions, device, host, dataset name and checksum,
  spec fingerprint, created_at (UTC)
"""

from __future__ import annotations

import os
import typing
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .metrics import columns as C
from .spec import RunConfig, SECTIONS
from .runtime import atomic_path
from .train import HISTORY_FIELDS

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
    "trial_number": pa.int64(),
    "n_params": pa.int64(),
    "epochs_completed": pa.int64(),
    "train_seconds": pa.float64(),
    "eval_seconds": pa.float64(),
    "model_path": pa.string(),
    "artifacts_path": pa.string(),
    "history": pa.list_(
        pa.struct([(k, pa.int64() if k == "epoch" else pa.float64()) for k in HISTORY_FIELDS])
    ),
    "command": pa.string(),
    "vaebench_version": pa.string(),
    "torch_version": pa.string(),
    "optuna_version": pa.string(),
    "python_version": pa.string(),
    "device": pa.string(),
    "torch_threads": pa.int64(),
    "hostname": pa.string(),
    "dataset": pa.string(),
    "dataset_checksum": pa.string(),
    "spec_fingerprint": pa.string(),
    "created_at": pa.string(),
}

METRIC_TYPES: dict[str, pa.DataType] = {
    C.RECON_MSE: pa.float64(),
    C.SSIM: pa.float64(),
    C.SSIM_SIGMA: pa.float64(),
    C.SSIM_WIN_SIZE: pa.int64(),
    C.NEG_ELBO: pa.float64(),
    C.RECON_NLL: pa.float64(),
    C.KL: pa.float64(),
    C.KL_PER_DIM: pa.list_(pa.float64()),
    C.ACTIVE_UNITS: pa.int64(),
    C.ACTIVE_UNITS_THRESHOLD: pa.float64(),
    C.FID: pa.float64(),
    C.FID_RECON: pa.float64(),
    C.FID_EXTRACTOR: pa.string(),
    C.FID_FEATURE_LAYER: pa.string(),
    C.FID_SAMPLES: pa.int64(),
    C.FID_REFERENCE: pa.string(),
    C.TORCH_FIDELITY_VERSION: pa.string(),
    C.CLASSIFIER_ACCURACY: pa.float64(),
    C.KID: pa.float64(),
    C.KID_STD: pa.float64(),
    C.IS: pa.float64(),
    C.IS_STD: pa.float64(),
    C.SAMPLE_CLASS_FREQ: pa.list_(pa.float64()),
    C.RECON_MSE_PER_CLASS: pa.list_(pa.float64()),
    C.RECON_NLL_PER_CLASS: pa.list_(pa.float64()),
    C.NLL_IS: pa.float64(),
    C.NLL_IS_STDERR: pa.float64(),
    C.NLL_K: pa.int64(),
    C.NLL_EXAMPLES: pa.int64(),
    C.MIG: pa.float64(),
    C.SAP: pa.float64(),
    C.MIG_PER_FACTOR: pa.list_(pa.float64()),
    C.SAP_PER_FACTOR: pa.list_(pa.float64()),
    C.DISENTANGLEMENT_FACTORS: pa.list_(pa.string()),
    C.MIG_SAMPLES: pa.int64(),
    C.MIG_BINS: pa.int64(),
    C.SAP_TRAIN_SAMPLES: pa.int64(),
    C.SAP_TEST_SAMPLES: pa.int64(),
    C.DISENTANGLEMENT_SEED: pa.int64(),
}

def numeric_metric_columns() -> list[str]:
    """Metric columns a search can optimize: the scalar float and int ones."""
    return [k for k, t in METRIC_TYPES.items() if t in (pa.float64(), pa.int64())]


_PY_TO_ARROW = {int: pa.int64(), float: pa.float64(), bool: pa.bool_(), str: pa.string()}


def _arrow_type(ann) -> pa.DataType:
    """Arrow type of a RunConfig field annotation: int, float, bool, str, Literal[str], list[X],
    Optional[X]."""
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is typing.Literal:
        return _PY_TO_ARROW[type(args[0])]
    if origin is list:
        return pa.list_(_arrow_type(args[0]))
    if origin is not None:  # Optional[X] / X | None
        return _arrow_type(next(a for a in args if a is not type(None)))
    return _PY_TO_ARROW[ann]


def _param_types() -> dict[str, pa.DataType]:
    """Arrow type of every `param.` column, from the RunConfig field annotations."""
    out = {}
    for section in SECTIONS:
        model = RunConfig.model_fields[section].annotation
        for name, field in model.model_fields.items():
            out[f"{PARAM_PREFIX}{section}.{name}"] = _arrow_type(field.annotation)
    return out


def row_schema(row: dict[str, Any]) -> pa.Schema:
    """The schema of a row: fixed columns, then parameters, metrics and per-metric timings."""
    types = {**_BASE_TYPES, **_param_types(), **METRIC_TYPES}
    fields = []
    for key in row:
        if key in types:
            fields.append(pa.field(key, types[key]))
        elif key.startswith("eval_seconds_"):
            fields.append(pa.field(key, pa.float64()))
        else:
            raise KeyError(f"results row has an undeclared column {key!r}; declare its type in results.py")
    return pa.schema(fields)


def grid_column(key: str) -> str:
    """The results column holding a grid key's value: `variant`, or `param.<section>.<field>`."""
    return "variant" if key == "variant" else PARAM_PREFIX + key


def param_columns(config: RunConfig) -> dict[str, Any]:
    return {PARAM_PREFIX + k: v for k, v in config.flat().items()}


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


def load_results(results_root: Path, study: str | None = None) -> pd.DataFrame:
    """All rows of one study (or of every study under the root) as one DataFrame.

    For one study this is exactly `pd.read_parquet("results/<study>/runs")`.
    """
    studies = [study] if study else list_studies(results_root)
    frames = []
    for name in studies:
        folder = runs_dir(results_root, name)
        if not any(folder.glob("*.parquet")):
            continue
        frames.append(pd.read_parquet(folder))
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True).sort_values(["study", "run_id"], ignore_index=True)
