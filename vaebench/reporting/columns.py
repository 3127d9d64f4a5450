"""The report's table model and its columns: `ReportTable` (rows of `Cell`s, which Markdown and HTML
render alike), `TableColumn` (a results column with its label, units, number format and best
direction; not `vaebench.metrics.Column`, a metric's declaration of the column it writes), `Layout`
(which columns a table shows and how it ranks and tests them), every column a table can show, and
how grid parameters and their values are printed."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Optional

import numpy as np

from ..metrics import column_names as C
from ..metrics import declared_columns
from ..results.rows import grid_column


@dataclass(frozen=True)
class TableColumn:
    """A column of a report table: which results column it shows and how (made from the metric's
    declared `vaebench.metrics.Column` by `declared_column`, or written out for the others)."""

    key: str  # results column (or a derived one: SECONDS_PER_EPOCH)
    label: str  # header, with units
    fmt: str  # format of mean and CI half-width
    better: str = ""  # "↓", "↑" or "" (no preferred direction)

    @property
    def header(self) -> str:
        return f"{self.label} {self.better}".strip()

    @property
    def name(self) -> str:
        """The label without its units: "Recon MSE (per pixel)" -> "Recon MSE"."""
        return self.label.split(" (")[0]


@dataclass
class Cell:
    text: str  # formatted, e.g. "0.0117 ± 0.0004" (mean ± 95% CI half-width)
    best: bool = False  # best value of its column (marked bold in Markdown)
    code: bool = False  # an identifier such as a run id (monospace)


@dataclass
class ReportTable:
    key: str  # stable id, e.g. "beta_tradeoffs", "all_metrics", "published_vs_measured"
    title: str
    header: list[str]  # with units, e.g. "Recon MSE (per pixel) ↓"
    rows: list[list[Cell]]
    notes: list[str]  # sentences printed under the table


@dataclass
class Layout:
    """How a study's tables read: its tutorial layout's columns (none: all-metrics only), which
    metric the p-values test, which columns must not be ranked across rows (layouts.py has the
    tutorial's), and a family's own lead table when the summary of `columns` by the grid's keys is
    not it (`lead(df, grid_keys, layout, title) -> ReportTable`, e.g. the disentanglement study's,
    by model and strength)."""

    key: str
    columns: tuple[TableColumn, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)  # grid key -> header, overriding PARAM_LABELS
    headline: str = C.NEG_ELBO
    unranked: frozenset[str] = frozenset()
    notes: tuple[str, ...] = ()
    lead: Optional[Callable] = None


SECONDS_PER_EPOCH = "seconds_per_epoch"  # derived: train_seconds / epochs_completed
DERIVED = {SECONDS_PER_EPOCH: lambda d: d["train_seconds"] / d["epochs_completed"]}
LATENT_DIM = grid_column("model.latent_dim")
DISENTANGLEMENT = "disentanglement"  # the tutorial's column: MIG and SAP where measured, else NOT_MEASURED
NOT_MEASURED = "not measured"
MISSING = "—"
N_HEADER = "n (runs)"
CONVERGED_HEADER = "converged (runs)"  # under early stopping: "2/3", runs early stopping ended / finished runs
BEST_EPOCH_HEADER = "best epoch (median)"  # the epoch whose weights were evaluated, median over the row's runs

# The all-metrics table: every declared metric column a search may optimize (a scalar with a
# direction; metrics/declarations.py), labelled, with units and best-direction arrows, from the declarations.
# The tutorial's β-VAE table leads with Reconstruction MSE and KL Divergence: these lead, in this order,
# and are listed even when no row has them ("not measured"); every other declared column (MIG and SAP,
# KID, IS, a plugin's metrics) follows in registry order when some row has it.
LEADING_METRICS = (
    C.RECON_MSE,
    C.KL,
    C.NEG_ELBO,
    C.RECON_NLL,
    C.SSIM,
    C.FID,
    C.FID_RECON,
    C.NLL_IS,
    C.ACTIVE_UNITS,
    C.MIG,
    C.SAP_DLIB,
    C.SAP,
)
# Columns only some datasets can have (ground-truth factors): left out of a table whose rows lack them.
OPTIONAL_COLUMNS = frozenset({C.MIG, C.SAP_DLIB, C.SAP})
# Number format (mean and CI half-width) of the built-in metric columns; other columns: DEFAULT_FORMAT.
METRIC_FORMATS = {
    C.RECON_MSE: ".4f",
    C.KL: ".2f",
    C.NEG_ELBO: ".2f",
    C.RECON_NLL: ".2f",
    C.SSIM: ".4f",
    C.FID: ".2f",
    C.FID_RECON: ".2f",
    C.NLL_IS: ".2f",
    C.ACTIVE_UNITS: ".1f",
    C.MIG: ".3f",
    C.SAP: ".3f",
    C.SAP_DLIB: ".3f",
    C.KID: ".4f",
    C.IS: ".2f",
    C.CODEBOOK_PERPLEXITY: ".1f",
    C.CODES_USED_FRACTION: ".3f",
    C.DCI_DISENTANGLEMENT: ".3f",
    C.DCI_COMPLETENESS: ".3f",
    C.DCI_INFORMATIVENESS: ".3f",
    C.FACTORVAE_SCORE: ".3f",
    C.BETAVAE_SCORE: ".3f",
    C.MODULARITY: ".3f",
    C.EXPLICITNESS: ".3f",
    C.GAUSSIAN_TOTAL_CORRELATION: ".3f",
    C.MUTUAL_INFO_SCORE: ".3f",
}
DEFAULT_FORMAT = ".4g"
# Units as the tables print them: every log-density and KL is per example (the report says so once).
UNIT_ABBREVIATIONS = {"nats per example": "nats"}
BETTER = {"lower": "↓", "higher": "↑"}
OTHER_COLUMNS = (
    TableColumn("n_params", "Parameter count", ",.0f"),
    TableColumn(SECONDS_PER_EPOCH, "Time/epoch (s)", ".2f"),
)


def header_label(label: str, unit: str) -> str:
    """A declared label with its unit: "Recon MSE" + "per pixel" -> "Recon MSE (per pixel)", "NLL (IS)" +
    "nats per example" -> "NLL (IS, nats)"; a dimensionless column keeps its label."""
    unit = UNIT_ABBREVIATIONS.get(unit, unit)
    if not unit:
        return label
    return f"{label[:-1]}, {unit})" if label.endswith(")") else f"{label} ({unit})"


def declared_column(key: str) -> TableColumn:
    """The report column of a declared metric column: its label and unit, its format, and the arrow of
    its direction (none for a column declared with rank=False, e.g. the KL)."""
    _, decl = declared_columns()[key]
    better = BETTER.get(decl.direction, "") if decl.rank else ""
    return TableColumn(key, header_label(decl.label, decl.unit), METRIC_FORMATS.get(key, DEFAULT_FORMAT), better)


def metric_columns() -> list[TableColumn]:
    """The all-metrics table's possible columns: the declared columns a search may target, of every
    registered metric (LEADING_METRICS first, then the others in registry order), parameter count, time
    per epoch."""
    targets = [k for k, (_, decl) in declared_columns().items() if decl.target]
    ordered = [k for k in LEADING_METRICS if k in targets] + [k for k in targets if k not in LEADING_METRICS]
    return [declared_column(k) for k in ordered] + list(OTHER_COLUMNS)


def report_columns() -> dict[str, TableColumn]:
    """Every column a table can show, by key: the metric columns, latent dim, the Disentanglement column."""
    return {
        c.key: c
        for c in [
            *metric_columns(),
            TableColumn(LATENT_DIM, "Latent dim", ".0f"),
            TableColumn(DISENTANGLEMENT, "Disentanglement", ""),
        ]
    }


COLUMNS = report_columns()  # the built-in metrics' columns (and any registered so far): the layouts' base


def relabel(key: str, label: str | None = None, better: str | None = None) -> TableColumn:
    """COLUMNS[key], relabelled for a layout."""
    base = COLUMNS[key]
    return replace(base, label=label or base.label, better=base.better if better is None else better)


PARAM_LABELS = {
    "objective.beta": "β",
    "objective.likelihood": "Likelihood",
    "objective.tc_weight": "TC weight",
    "objective.lambda_od": "λ_od",
    "objective.lambda_d": "λ_d",
    "objective.capacity_max": "C_max",
    "model.latent_dim": "Latent dim",
    "model.hidden_dim": "Hidden dim",
    "model.depth": "Depth",
    "model.name": "Architecture",
    "train.lr": "Learning rate",
    "train.batch_size": "Batch size",
    "train.epochs": "Epochs",
    "variant": "Variant",
}


def param_label(key: str) -> str:
    return PARAM_LABELS.get(key, key)


def format_value(v) -> str:
    """A parameter value as a table shows it: floats in %g (1.0 -> "1"), a struct parameter (a mapping,
    or settings.hashable's sorted items of one, e.g. train.early_stopping) as "{min_delta: 0.1,
    patience: 5}", the rest as str."""
    if isinstance(v, (float, np.floating)):
        return f"{float(v):g}"
    if isinstance(v, dict):
        v = tuple(sorted(v.items()))
    if isinstance(v, tuple) and v and all(isinstance(i, tuple) and len(i) == 2 and isinstance(i[0], str) for i in v):
        return "{" + ", ".join(f"{k}: {format_value(x)}" for k, x in v) + "}"
    return str(v)


def cell_label(grid_keys: list[str], values) -> str:
    """A grid cell named by its parameters: "β=0.5, Latent dim=2" ("" for a grid without keys)."""
    return ", ".join(f"{param_label(k)}={format_value(v)}" for k, v in zip(grid_keys, values))


def cell_name(grid_keys: list[str], values) -> str:
    """A grid cell as notes name it: a named variant by its name, other grid values as `cell_label`."""
    return format_value(values[0]) if list(grid_keys) == ["variant"] else cell_label(grid_keys, values)
