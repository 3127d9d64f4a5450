"""The plugins results rows were made with, imported by whatever reads the rows (`vaebench results`,
`report`, `status`, `vaebench.load_results`, `vaebench.report`), so that their families and metric
columns are declared. A recorded plugin that cannot be imported here is an error (a `PluginError`,
exit 2) when the rows need it: they name a model family or dataset, or hold a column, that nothing
registered. One that the rows do not need (an installed plugin that happened to be loaded when they
were made) is passed over."""

from __future__ import annotations

from typing import Any

from ..data import DATASETS
from ..metrics import METRICS
from ..metrics.declarations import EVAL_SECONDS_PREFIX
from ..models import MODELS
from ..objectives import LIKELIHOODS, SCHEDULES
from ..plugins import PluginError, try_load_plugins
from .rows import BASE_COLUMNS, metric_types

# The row columns that hold a registry entry's name, and that registry.
NAMED_BY = {
    "param.model.name": MODELS,
    "param.dataset.name": DATASETS,
    "param.objective.likelihood": LIKELIHOODS,
    "param.schedule.name": SCHEDULES,
}


def _column_names(rows) -> list[str]:
    return list(rows.column_names if hasattr(rows, "column_names") else rows.columns)


def _values(rows, column: str) -> list[Any]:
    """The column's non-null values (NaN counts as null)."""
    if column not in _column_names(rows):
        return []
    values = rows.column(column).to_pylist() if hasattr(rows, "column_names") else list(rows[column])
    return [v for v in values if v is not None and not (isinstance(v, float) and v != v)]


def recorded_plugins(rows) -> list[str]:
    """The plugin modules the rows' `plugins` column records, in first-seen order."""
    modules: list[str] = []
    for entries in _values(rows, "plugins"):
        for entry in entries:
            if entry["module"] not in modules:
                modules.append(entry["module"])
    return modules


def unregistered_names(rows) -> list[str]:
    """What the rows name that no registry here declares: "model 'x'", "dataset 'y'", "column 'z'"."""
    missing = [
        f"{registry.kind} {name!r}"
        for column, registry in NAMED_BY.items()
        for name in sorted(set(_values(rows, column)))
        if name not in registry
    ]
    known = set(BASE_COLUMNS) | set(metric_types()) | {f"{EVAL_SECONDS_PREFIX}{m}" for m in METRICS.names()}
    missing += [f"column {c!r}" for c in _column_names(rows) if c not in known and not c.startswith("param.")]
    return missing


def import_row_plugins(rows, where: str) -> None:
    """Import the plugins `rows` (a DataFrame or an Arrow table) record; raise a PluginError naming
    the ones that cannot be imported when the rows need them (see the module docstring). `where`
    names the rows in the message, e.g. "study 'plug'"."""
    failures = try_load_plugins(recorded_plugins(rows), f"the plugins column of {where}'s rows")
    if not failures:
        return
    missing = unregistered_names(rows)
    if missing:
        causes = "\n  ".join(str(e) for e in failures.values())
        raise PluginError(
            f"the rows of {where} name {', '.join(missing)}, which nothing registered here; they were made "
            f"with plugin(s) that cannot be imported:\n  {causes}"
        )
