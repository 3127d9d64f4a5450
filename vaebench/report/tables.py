"""Report tables from results rows, as one structured model that Markdown and HTML render alike.

`study_tables(df)` is the entry point: the tutorial's layout the study's grid mirrors (if any), the
tutorial's printed numbers beside the measured ones (published.yaml), every metric, and the Pareto
front of a multi-objective study. Summary cells are mean ± 95% CI half-width (Student t over seeds),
the best mean of a column with a direction is marked, and a p column tests each row against the
baseline row (Welch's t-test on the table's headline metric). Texts are plain (no Markdown).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..metrics import columns as C
from ..metrics import declared_columns
from ..results import PARAM_PREFIX, grid_column
from .stats import ci95, trend_sign, welch_p


@dataclass(frozen=True)
class Column:
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


SECONDS_PER_EPOCH = "seconds_per_epoch"  # derived: train_seconds / epochs_completed
DERIVED = {SECONDS_PER_EPOCH: lambda d: d["train_seconds"] / d["epochs_completed"]}
LATENT_DIM = grid_column("model.latent_dim")
DISENTANGLEMENT = "disentanglement"  # the tutorial's column: MIG and SAP where measured, else NOT_MEASURED
NOT_MEASURED = "not measured"
MISSING = "—"
N_HEADER = "n (runs)"

# The all-metrics table: every declared metric column a search may optimize (a scalar with a
# direction; metrics/spec.py), labelled, with units and best-direction arrows, from the declarations.
# The tutorial's β-VAE table leads with Reconstruction MSE and KL Divergence: these lead, in this order,
# and are listed even when no row has them ("not measured"); every other declared column (MIG and SAP,
# KID, IS, a plugin's metrics) follows in registry order when some row has it.
LEADING_METRICS = (C.RECON_MSE, C.KL, C.NEG_ELBO, C.RECON_NLL, C.SSIM, C.FID, C.FID_RECON, C.NLL_IS, C.ACTIVE_UNITS,
                   C.MIG, C.SAP)
# Columns only some datasets can have (ground-truth factors): left out of a table whose rows lack them.
OPTIONAL_COLUMNS = frozenset({C.MIG, C.SAP})
# Number format (mean and CI half-width) of the built-in metric columns; other columns: DEFAULT_FORMAT.
METRIC_FORMATS = {C.RECON_MSE: ".4f", C.KL: ".2f", C.NEG_ELBO: ".2f", C.RECON_NLL: ".2f", C.SSIM: ".4f",
                  C.FID: ".2f", C.FID_RECON: ".2f", C.NLL_IS: ".2f", C.ACTIVE_UNITS: ".1f", C.MIG: ".3f",
                  C.SAP: ".3f", C.KID: ".4f", C.IS: ".2f", C.CODEBOOK_PERPLEXITY: ".1f",
                  C.CODES_USED_FRACTION: ".3f"}
DEFAULT_FORMAT = ".4g"
# Units as the tables print them: every log-density and KL is per example (the report says so once).
UNIT_ABBREVIATIONS = {"nats per example": "nats"}
BETTER = {"lower": "↓", "higher": "↑"}
OTHER_COLUMNS = (Column("n_params", "Parameter count", ",.0f"), Column(SECONDS_PER_EPOCH, "Time/epoch (s)", ".2f"))


def header_label(label: str, unit: str) -> str:
    """A declared label with its unit: "Recon MSE" + "per pixel" -> "Recon MSE (per pixel)", "NLL (IS)" +
    "nats per example" -> "NLL (IS, nats)"; a dimensionless column keeps its label."""
    unit = UNIT_ABBREVIATIONS.get(unit, unit)
    if not unit:
        return label
    return f"{label[:-1]}, {unit})" if label.endswith(")") else f"{label} ({unit})"


def declared_column(key: str) -> Column:
    """The report column of a declared metric column: its label and unit, its format, and the arrow of
    its direction (none for a column declared with rank=False, e.g. the KL)."""
    _, decl = declared_columns()[key]
    better = BETTER.get(decl.direction, "") if decl.rank else ""
    return Column(key, header_label(decl.label, decl.unit), METRIC_FORMATS.get(key, DEFAULT_FORMAT), better)


def metric_columns() -> list[Column]:
    """The all-metrics table's possible columns: the declared objective columns of every registered
    metric (LEADING_METRICS first, then the others in registry order), parameter count, time per epoch."""
    objective = [k for k, (_, decl) in declared_columns().items() if decl.objective]
    ordered = [k for k in LEADING_METRICS if k in objective] + [k for k in objective if k not in LEADING_METRICS]
    return [declared_column(k) for k in ordered] + list(OTHER_COLUMNS)


def report_columns() -> dict[str, Column]:
    """Every column a table can show, by key: the metric columns, latent dim, the Disentanglement column."""
    return {c.key: c for c in [*metric_columns(), Column(LATENT_DIM, "Latent dim", ".0f"),
                               Column(DISENTANGLEMENT, "Disentanglement", "")]}


COLUMNS = report_columns()  # the built-in metrics' columns (and any registered so far): the layouts' base

PARAM_LABELS = {
    "objective.beta": "β",
    "objective.likelihood": "Likelihood",
    "model.latent_dim": "Latent dim",
    "model.hidden_dim": "Hidden dim",
    "model.depth": "Depth",
    "model.name": "Architecture",
    "train.lr": "Learning rate",
    "train.batch_size": "Batch size",
    "train.epochs": "Epochs",
    "variant": "Variant",
}

DISENTANGLEMENT_TITLE = "Disentanglement (β-VAE and latent-dimension tables)"
DISENTANGLEMENT_SWEEP = "sweeps/disentanglement.yaml"

# Which tutorial table a study mirrors, by the parameters its grid varies.
TABLE_TITLES = {
    ("objective.beta",): "β-VAE trade-offs",
    ("model.latent_dim",): "Latent dimension impact",
    ("objective.likelihood",): "Loss comparison",
}
# Studies whose grid is a list of named variants, or several keys, say by their name which table they
# mirror (the disentanglement sweep's β x latent dim grid: a β table per latent size and a latent
# table per β, see sliced_layout_tables; a search over the same keys is not that).
STUDY_TITLES = {
    "architecture": "Architecture comparison",
    "schedule": "Annealing schedules",
    "disentanglement": DISENTANGLEMENT_TITLE,
}

# The tutorial's tables in its order, each with the shipped sweep that measures it (the index page).
TUTORIAL_TABLES = {
    "β-VAE trade-offs": "sweeps/beta.yaml",
    "Architecture comparison": "sweeps/architecture.yaml",
    "Latent dimension impact": "sweeps/latent_dim.yaml",
    DISENTANGLEMENT_TITLE: DISENTANGLEMENT_SWEEP,
    "Loss comparison": "sweeps/loss.yaml",
    "Annealing schedules": "sweeps/schedule.yaml",
}

# The row each p-value is measured against, by the single grid key (the tutorial's reference);
# a grid without one here, or whose reference value is absent, uses its first cell.
BASELINES = {"objective.beta": 1.0, "objective.likelihood": "bernoulli", "variant": "none"}


def table_title(grid_keys: list[str], study: str = "") -> str:
    return TABLE_TITLES.get(tuple(grid_keys)) or STUDY_TITLES.get(study, "Sweep results")


def param_label(key: str) -> str:
    return PARAM_LABELS.get(key, key)


def format_value(v) -> str:
    """A parameter value as a table shows it: floats in %g (1.0 -> "1"), the rest as str."""
    if isinstance(v, (float, np.floating)):
        return f"{float(v):g}"
    return str(v)


# ---------------------------------------------------------------------------------------------
# Layouts: the tutorial's tables


def _col(key: str, label: str | None = None, better: str | None = None) -> Column:
    """COLUMNS[key], relabelled for a layout."""
    base = COLUMNS[key]
    return replace(base, label=label or base.label, better=base.better if better is None else better)


@dataclass
class Layout:
    """How a study's tables read: its tutorial layout's columns (none: all-metrics only), which
    metric the p-values test, and which columns must not be ranked across rows."""

    key: str
    columns: tuple[Column, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)  # grid key -> header, overriding PARAM_LABELS
    headline: str = C.NEG_ELBO
    unranked: frozenset[str] = frozenset()
    notes: tuple[str, ...] = ()


DISENTANGLEMENT_NOTE = ("Disentanglement: not measured — this dataset has no ground-truth factors of variation; "
                        "MIG and SAP are measured on the generated `shapes` dataset by the disentanglement study "
                        f"(`vaebench run {DISENTANGLEMENT_SWEEP}`).")
LOSS_NOTE = ("−ELBO and reconstruction NLL are log-densities under different likelihoods and compare "
             "only within a row: they carry no arrow and no best mark, and the p-values test Recon MSE.")
FINAL_ELBO_NOTE = ("Final −ELBO: the unweighted (β = 1) −ELBO of the test set after the last epoch, "
                   "whatever weight the schedule or free bits gave the KL term in training.")
_FINAL_ELBO_COLUMNS = (
    _col(C.NEG_ELBO, "Final −ELBO (nats)"),
    _col(C.RECON_NLL, "Reconstruction NLL (nats)"),
    _col(C.RECON_MSE, "Reconstruction MSE (per pixel)"),
    _col(C.KL, "KL (nats)"),
    _col(C.ACTIVE_UNITS),
)
LAYOUTS = {  # by table_title
    "β-VAE trade-offs": Layout(
        "beta_tradeoffs",
        (_col(C.RECON_MSE, "Reconstruction MSE (per pixel)"), _col(C.KL, "KL divergence (nats)"),
         _col(DISENTANGLEMENT), _col(C.FID, "Sample quality: FID of samples"))),
    "Architecture comparison": Layout(
        "architecture",
        (_col(LATENT_DIM), _col("n_params", "Parameters"), _col(C.FID, "FID of samples"), _col(SECONDS_PER_EPOCH)),
        labels={"variant": "Architecture"}),
    "Latent dimension impact": Layout(
        "latent_dim",
        (_col(C.RECON_MSE, "Reconstruction: recon MSE (per pixel)"), _col(C.FID, "Generation: FID of samples"),
         _col(DISENTANGLEMENT)),
        notes=("Reconstruction and Generation are numbers where the tutorial prints words.",)),
    "Loss comparison": Layout(
        "loss", _FINAL_ELBO_COLUMNS, headline=C.RECON_MSE,
        unranked=frozenset({C.NEG_ELBO, C.RECON_NLL, C.NLL_IS}), notes=(LOSS_NOTE,)),
    "Annealing schedules": Layout(
        "schedules", _FINAL_ELBO_COLUMNS, labels={"variant": "Schedule"}, notes=(FINAL_ELBO_NOTE,)),
}
DEFAULT_LAYOUT = Layout("sweep")


# Tables of families with metrics of their own (family_tables.py): a layout chosen when the rows have
# the family's measured columns — (predicate(df), title, Layout) — and extra tables (df, grid_keys) -> tables.
FAMILY_LAYOUTS: list = []
FAMILY_TABLES: list = []


def family_layout(df: pd.DataFrame) -> tuple[str, Layout] | None:
    """(title, layout) of the first family layout whose metrics the rows measured, else None."""
    for applies, title, layout in FAMILY_LAYOUTS:
        if applies(df):
            return title, layout
    return None


def study_title(df: pd.DataFrame) -> str:
    """The title of a study's report: its tutorial table's, else its family table's, else "Sweep results"."""
    study, grid_keys = df["study"].iloc[0], list(df["grid_keys"].iloc[0])
    title = table_title(grid_keys, study)
    if title in LAYOUTS or (family := family_layout(df)) is None:
        return title
    return family[0]


def layout_of(grid_keys: list[str], study: str = "") -> Layout:
    """The layout of a study: its tutorial table's, else DEFAULT_LAYOUT (no tutorial columns)."""
    return LAYOUTS.get(table_title(grid_keys, study), DEFAULT_LAYOUT)


# ---------------------------------------------------------------------------------------------
# Summaries over seeds


def cell_groups(rows: pd.DataFrame, grid_keys: list[str]) -> list[tuple[tuple, pd.DataFrame]]:
    """(the cell's grid values, its rows) for every cell present in `rows`, in the spec's grid order."""
    keys = [grid_column(k) for k in grid_keys]
    if not keys:
        return [((), rows)] if len(rows) else []
    groups = sorted(rows.groupby(keys, sort=False, dropna=False), key=lambda vg: vg[1]["cell_index"].min())
    return [(v if isinstance(v, tuple) else (v,), g) for v, g in groups]


def summarize(df: pd.DataFrame, grid_keys: list[str], columns: list[Column] | None = None) -> pd.DataFrame:
    """One row per cell of the grid (status 'ok' runs only), in the spec's grid order: n (finished
    runs), and for each column `<key>.mean`, `.ci` (95% CI half-width, Student t; NaN when n < 2),
    `.std` (sample standard deviation, ddof=1), `.n` (runs with a value) and `.values` (the runs'
    values), in the column's units. A column the rows lack has n = 0 and a NaN mean."""
    columns = list(report_columns().values()) if columns is None else columns
    out = []
    for values, g in cell_groups(df[df["status"] == "ok"].assign(**DERIVED), grid_keys):
        rec = {k: v for k, v in zip(grid_keys, values)}
        rec["n"] = len(g)
        for col in columns:
            x = g[col.key].astype(float).to_numpy() if col.key in g else np.array([])
            mean, half, n = ci95(x)
            finite = x[~np.isnan(x)]
            std = float(np.std(finite, ddof=1)) if n > 1 else math.nan
            rec.update({f"{col.key}.mean": mean, f"{col.key}.ci": half, f"{col.key}.std": std,
                        f"{col.key}.n": n, f"{col.key}.values": x})
        out.append(rec)
    return pd.DataFrame(out)


def summary_text(row, col: Column) -> str:
    """A summary cell: "mean ± half-width" (the mean alone when n = 1 or all runs agree), with
    "(n=k)" when fewer runs than the row's n have the metric; "—" when none has it."""
    mean, half, n = row[f"{col.key}.mean"], row[f"{col.key}.ci"], int(row[f"{col.key}.n"])
    if n == 0:
        return MISSING
    text = f"{mean:{col.fmt}}" if math.isnan(half) or half == 0 else f"{mean:{col.fmt}} ± {half:{col.fmt}}"
    return text + (f" (n={n})" if n != int(row["n"]) else "")


PICK_BEST = {"↓": min, "↑": max}


def best_rows(means: list[float], better: str) -> set[int]:
    """Indices of the rows holding the column's best mean (ties: all of them); none when the
    column has no direction, fewer than two rows have a value or every row has the same."""
    finite = [(i, m) for i, m in enumerate(means) if not math.isnan(m)]
    if better not in PICK_BEST or len({m for _, m in finite}) < 2:
        return set()
    best = PICK_BEST[better](m for _, m in finite)
    return {i for i, m in finite if m == best}


def _same(a, b) -> bool:
    """Equal grid values: numbers within float rounding (1 == 1.0), anything else by ==."""
    numbers = (int, float, np.integer, np.floating)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    return a == b


def baseline_index(summary: pd.DataFrame, grid_keys: list[str]) -> int | None:
    """Row of the summary the p-values compare against: the BASELINES value of a one-key grid when
    present (β = 1, the bernoulli likelihood, the `none` schedule), else the first grid cell."""
    if summary.empty:
        return None
    if len(grid_keys) == 1 and grid_keys[0] in BASELINES:
        want = BASELINES[grid_keys[0]]
        for i, v in enumerate(summary[grid_keys[0]]):
            if _same(v, want):
                return i
    return 0


def format_p(p: float) -> str:
    return MISSING if math.isnan(p) else "< 0.001" if p < 0.001 else f"{p:.3f}"


def _p_column(summary: pd.DataFrame, grid_keys: list[str], layout: Layout, labels: dict[str, str]):
    """(header, cells) of the p column: Welch's p of each row against the baseline on the headline metric."""
    base = baseline_index(summary, grid_keys)
    metric = report_columns()[layout.headline].name
    if base is None:
        return f"p ({metric}) vs baseline", []
    row = summary.iloc[base]
    named = [format_value(row[k]) if k == "variant" else f"{labels.get(k, param_label(k))}={format_value(row[k])}"
             for k in grid_keys]
    values = list(summary[f"{layout.headline}.values"])
    cells = [Cell("baseline") if i == base else Cell(format_p(welch_p(v, values[base])))
             for i, v in enumerate(values)]
    return f"p ({metric}) vs {', '.join(named) or 'first cell'}", cells


def _summary_table(key: str, title: str, summary: pd.DataFrame, grid_keys: list[str], columns, layout: Layout,
                   notes: list[str]) -> ReportTable:
    """Grid values, one summary cell per column (best marked), the p column, then n."""
    columns = [replace(c, better="") if c.key in layout.unranked else c for c in columns]
    labels = {k: layout.labels.get(k, param_label(k)) for k in grid_keys}
    p_header, p_cells = _p_column(summary, grid_keys, layout, labels)
    measured = {c.key: bool(len(summary)) and summary[f"{c.key}.n"].sum() > 0 for c in columns}
    best = {c.key: best_rows(list(summary[f"{c.key}.mean"]), c.better) if measured[c.key] else set() for c in columns}
    rows = []
    for i, (_, r) in enumerate(summary.iterrows()):
        cells = [Cell(format_value(r[k])) for k in grid_keys]
        cells += [Cell(summary_text(r, c), best=i in best[c.key]) if measured[c.key] else Cell(NOT_MEASURED)
                  for c in columns]
        rows.append(cells + [p_cells[i], Cell(str(int(r["n"])))])
    header = [labels[k] for k in grid_keys] + [c.header for c in columns] + [p_header, N_HEADER]
    return ReportTable(key, title, header, rows, notes)


def _fid_features(df: pd.DataFrame) -> str | None:
    """The feature extractor(s) the finished runs' FIDs used, or None when FID was not measured."""
    ok = df[df["status"] == "ok"]
    if C.FID_EXTRACTOR not in ok or ok[C.FID_EXTRACTOR].isna().all():
        return None
    return ", ".join(sorted(ok[C.FID_EXTRACTOR].dropna().unique()))


def _fid_sentence(df: pd.DataFrame) -> str:
    features = _fid_features(df)
    if features is None:
        return "FID: not measured (eval.fid_extractor: null)."
    return (f"FID of samples: Fréchet distance between images sampled from the prior and test images, "
            f"on {features} features (lower is better).")


def _measured(summary: pd.DataFrame, key: str) -> bool:
    """Whether any finished run of the summary has a value of the column."""
    return bool(len(summary)) and f"{key}.n" in summary and summary[f"{key}.n"].sum() > 0


def _disentanglement_sentence(df: pd.DataFrame) -> str:
    """How the MIG and SAP of the table were measured (the settings every row carries)."""
    ok = df[(df["status"] == "ok") & df[C.MIG].notna()]
    keys = [C.MIG_SAMPLES, C.MIG_BINS, C.SAP_TRAIN_SAMPLES, C.SAP_TEST_SAMPLES, C.DISENTANGLEMENT_SEED]
    settings = {tuple(int(r[k]) for k in keys) for _, r in ok.iterrows()}
    factors = {tuple(r[C.DISENTANGLEMENT_FACTORS]) for _, r in ok.iterrows()}
    datasets = ", ".join(f"`{d}`" for d in sorted(ok["dataset"].dropna().unique())) or "the dataset"
    parts = [f"MIG on {m:,} test images with {b} bins per latent, SAP fit on {tr:,} and scored on {te:,} other "
             f"test images, subsets drawn with seed {seed}" for m, b, tr, te, seed in sorted(settings)]
    warn = " — WARNING: the rows used different settings and are not comparable" if len(settings) > 1 else ""
    return (f"Disentanglement of the posterior means against {datasets}'s ground-truth factors "
            f"({'; '.join(', '.join(f) for f in sorted(factors))}): MIG (Chen et al. 2018), the mean over factors "
            "of the mutual-information gap between the two most informative latents over the factor's entropy; "
            "SAP (Kumar et al. 2018), the mean over factors of the gap between the two latents that best predict "
            "the factor on held-out images (linear-SVM accuracy for a categorical factor, R² of a line for an "
            "ordered one; a categorical factor's gap is at most 1 − chance, 2/3 for 3 classes). Both in [0, 1], higher is more disentangled. "
            + "; ".join(parts) + warn + ".")


def _disentanglement_columns(columns: list[Column], summary: pd.DataFrame, df: pd.DataFrame):
    """The layout's Disentanglement column as MIG and SAP when the rows have them (with a note on
    how they were measured), else kept as "not measured" (with a note pointing to the sweep)."""
    if not _measured(summary, C.MIG):
        return columns, DISENTANGLEMENT_NOTE
    out = []
    for c in columns:
        out += [_col(C.MIG, "Disentanglement: MIG"), _col(C.SAP, "SAP")] if c.key == DISENTANGLEMENT else [c]
    return out, _disentanglement_sentence(df)


def layout_table(df: pd.DataFrame, summary: pd.DataFrame, grid_keys: list[str], layout: Layout,
                 title: str, key: str | None = None, notes: bool = True) -> ReportTable:
    """The tutorial's table for this study, measured (`notes=False`: without the notes, for a table
    that repeats another's layout)."""
    texts = list(layout.notes)
    columns = list(layout.columns)
    if any(c.key == DISENTANGLEMENT for c in columns):
        columns, note = _disentanglement_columns(columns, summary, df)
        texts.append(note)
    if any(c.key == C.FID for c in columns):
        texts.append(_fid_sentence(df))
    return _summary_table(key or layout.key, title, summary, grid_keys, columns, layout, texts if notes else [])


def _is_grid(df: pd.DataFrame) -> bool:
    """A grid search (rows made before searches existed have no sampler: grids)."""
    return "sampler" not in df or df["sampler"].isna().all() or set(df["sampler"].dropna()) == {"grid"}


def sliced_layout_tables(df: pd.DataFrame, summary: pd.DataFrame, grid_keys: list[str]) -> list[ReportTable]:
    """For a grid over several keys: each key's tutorial table (if it has one) once per combination of
    the other keys' values, e.g. for β x latent dim, a β table per latent size and a latent-dimension
    table per β. Rows, best marks and p-values are those of the slice; the notes come with the
    first table of each layout."""
    if len(grid_keys) < 2 or summary.empty or not _is_grid(df):
        return []
    tables = []
    for key in grid_keys:
        title = TABLE_TITLES.get((key,))
        layout = LAYOUTS.get(title or "")
        if layout is None or not layout.columns:
            continue
        others = [k for k in grid_keys if k != key]
        for i, (values, part) in enumerate(summary.groupby(others, sort=False, dropna=False)):
            values = values if isinstance(values, tuple) else (values,)
            fixed = ", ".join(f"{param_label(k)} = {format_value(v)}" for k, v in zip(others, values))
            slug = "_".join(f"{k.rsplit('.', 1)[-1]}={format_value(v)}" for k, v in zip(others, values))
            tables.append(layout_table(df, part.reset_index(drop=True), [key], layout, f"{title} ({fixed})",
                                       f"{layout.key}.{slug}", notes=i == 0))
    return tables


def all_metrics_table(summary: pd.DataFrame, grid_keys: list[str], layout: Layout = DEFAULT_LAYOUT) -> ReportTable:
    """Every metric of every grid cell: the declared objective columns of the registered metrics
    (`metric_columns`; beyond LEADING_METRICS, and MIG and SAP, only those the rows have), parameter
    count and time per epoch. `summary` must hold them (`summarize`'s default columns do)."""
    notes = [LOSS_NOTE] if layout.unranked else []
    always = {*LEADING_METRICS, *(c.key for c in OTHER_COLUMNS)} - OPTIONAL_COLUMNS
    columns = [c for c in metric_columns() if c.key in always or _measured(summary, c.key)]
    return _summary_table("all_metrics", "All metrics", summary, grid_keys, columns, layout, notes)


PER_FACTOR = {C.MIG: C.MIG_PER_FACTOR, C.SAP: C.SAP_PER_FACTOR}


def _item(values, i: int) -> float:
    """values[i] of a list cell; NaN for a missing list (a row without the metric)."""
    if isinstance(values, (list, tuple, np.ndarray)) and len(values) > i and values[i] is not None:
        return float(values[i])
    return math.nan


def per_factor_tables(df: pd.DataFrame, grid_keys: list[str]) -> list[ReportTable]:
    """MIG and SAP of each ground-truth factor (the per-factor lists of the rows), when measured."""
    ok = df[df["status"] == "ok"]
    if C.MIG_PER_FACTOR not in ok or ok[C.MIG_PER_FACTOR].isna().all():
        return []
    names = list(ok[C.DISENTANGLEMENT_FACTORS].dropna().iloc[0])
    tables = []
    for metric, lists in PER_FACTOR.items():
        derived = {f"{metric}.{n}": ok[lists].map(lambda v, i=i: _item(v, i)) for i, n in enumerate(names)}
        columns = [COLUMNS[metric]] + [Column(k, f"{COLUMNS[metric].name} {n}", ".3f", "↑") for k, n in
                                       zip(derived, names)]
        summary = summarize(ok.assign(**derived), grid_keys, columns)
        layout = Layout(f"{metric}_per_factor", headline=metric)
        note = (f"{COLUMNS[metric].name} of each factor ({', '.join(names)}); the {COLUMNS[metric].name} column "
                "is their mean.")
        tables.append(_summary_table(layout.key, f"{COLUMNS[metric].name} per factor", summary, grid_keys, columns,
                                     layout, [note]))
    return tables


# ---------------------------------------------------------------------------------------------
# Published versus measured

PUBLISHED_PATH = Path(__file__).with_name("published.yaml")
TRENDS = {1: "rises", -1: "falls"}
TRENDING = {1: "rising", -1: "falling"}


def load_published(path: Path = PUBLISHED_PATH) -> dict[str, dict]:
    """The tutorial's printed tables by name: source (file, section), grid_key, rows (grid value and
    results columns, in the tutorial's order and units) and expected trends."""
    return yaml.safe_load(Path(path).read_text())


def _shared(rows: list[dict], summary: pd.DataFrame, grid_key: str) -> list[tuple[dict, pd.Series]]:
    """(published row, summary row) pairs for the grid values present in both, in the tutorial's order."""
    if summary.empty or grid_key not in summary:
        return []
    pairs = []
    for pub in rows:
        match = [r for _, r in summary.iterrows() if _same(r[grid_key], pub[grid_key])]
        pairs += [(pub, match[0])] if match else []
    return pairs


def _along(grid_key: str, names: list[str]) -> str:
    """How the rows advance: "as β rises" for a number, "from A to B" for named variants."""
    if isinstance(names[0], str):
        return f"from {names[0]} to {names[-1]}"
    return f"as {param_label(grid_key)} rises"


def _compared(grid_key: str, pairs) -> str:
    """What the published table's rows are matched by: "β values", or "variants (matched by name)"."""
    named = isinstance(pairs[0][0][grid_key], str)
    return "variants (matched by name)" if named else f"{param_label(grid_key)} values"


def trend_verdict(published: list[float], measured: list[float]) -> tuple[str, bool]:
    """(cell text, contradicts) comparing the direction of the two series along the same points."""
    pub, meas = trend_sign(published), trend_sign(measured)
    if len(published) < 2:
        return "one shared point: no trend", False
    if any(math.isnan(m) for m in measured):
        return "not measured", False
    if pub == 0 or meas == 0:
        return f"no trend to compare (tutorial {TRENDS.get(pub, 'flat')}, measured {TRENDS.get(meas, 'flat')})", False
    if pub != meas:
        return f"⚠ contradicts: measured {TRENDS[meas]}, tutorial {TRENDS[pub]}", True
    return f"agrees: both {'rise' if pub > 0 else 'fall'}", False


def _expected_note(name: str, along: str, expected: dict, pub: list[float], meas: list[float]) -> str:
    """What the objective implies for a quantity, and whether each series follows it."""
    want = {"rises": 1, "falls": -1}[expected["trend"]]

    def follows(values) -> str:
        sign = trend_sign(values)
        return "no trend to judge" if sign == 0 else "follow it" if sign == want else "⚠ do not"

    return (f"Expected from the objective: {name} {expected['trend']} {along} ({expected['why']}). "
            f"Measured values: {follows(meas)}; the tutorial's: {follows(pub)}.")


def published_table(entry: dict, summary: pd.DataFrame, df: pd.DataFrame) -> ReportTable | None:
    """The tutorial's numbers beside ours for the grid values present in both (None: no overlap),
    with a flag wherever the measured trend runs against the tutorial's."""
    grid_key = entry["grid_key"]
    pairs = _shared(entry["rows"], summary, grid_key)
    if not pairs:
        return None
    along = _along(grid_key, [p[grid_key] for p, _ in pairs])
    source = entry["source"]
    notes = [f"Published: the tutorial's numbers as printed in {source['file']}, section “{source['section']}” "
             f"(kept in vaebench/report/published.yaml); only the {_compared(grid_key, pairs)} present in both "
             f"are compared. Difference = measured mean − published."]
    rows = []
    for q in (k for k in entry["rows"][0] if k != grid_key):
        col, pub = report_columns()[q], [p[q] for p, _ in pairs]
        meas = [s[f"{q}.mean"] for _, s in pairs]
        verdict, contradicts = trend_verdict(pub, meas)
        if contradicts:
            notes.append(f"⚠ trend contradicts the tutorial: {col.name} {TRENDS[trend_sign(meas)]} {along} (measured), "
                         f"the tutorial shows it {TRENDING[trend_sign(pub)]}.")
        if q in entry.get("expected", {}):
            notes.append(_expected_note(col.name, along, entry["expected"][q], pub, meas))
        for (p, s), m in zip(pairs, meas):
            diff = MISSING if math.isnan(m) else f"{m - p[q]:+{col.fmt}}"
            rows.append([Cell(format_value(p[grid_key])), Cell(col.label), Cell(f"{p[q]:{col.fmt}}"),
                         Cell(summary_text(s, col)), Cell(diff), Cell(verdict)])
    if any(C.FID == q for q in entry["rows"][0]):
        features = _fid_features(df)
        notes.append("FID: the tutorial does not say which features, images or sample count its FIDs used; "
                     + (f"ours use {features} features, so compare the order of the rows, not the values."
                        if features else "this study did not measure FID."))
    header = [param_label(grid_key), "Quantity (units)", "Published", "Measured (mean ± 95% CI)",
              "Measured − published", f"Trend {along}"]
    return ReportTable("published_vs_measured", "Published versus measured", header, rows, notes)


def published_tables(summary: pd.DataFrame, grid_keys: list[str], df: pd.DataFrame) -> list[ReportTable]:
    """A published-versus-measured table for each published table whose grid key is the study's grid."""
    tables = [published_table(e, summary, df) for e in load_published().values() if [e["grid_key"]] == grid_keys]
    return [t for t in tables if t is not None]


# ---------------------------------------------------------------------------------------------
# One study

PARETO_KEY = "pareto_front"
ARROWS = {"minimize": "↓", "maximize": "↑"}


def study_tables(df: pd.DataFrame) -> list[ReportTable]:
    """Every table for one study's rows, in reading order: the tutorial's layout (when the grid
    mirrors one; for a grid over several keys, each key's layout per value of the others),
    published versus measured (β and architecture studies), MIG and SAP per factor (datasets with
    ground-truth factors), all metrics, and the Pareto front (multi-objective studies; key PARETO_KEY)."""
    study, grid_keys = df["study"].iloc[0], list(df["grid_keys"].iloc[0])
    summary = summarize(df, grid_keys)
    layout, title = layout_of(grid_keys, study), table_title(grid_keys, study)
    if not layout.columns and (family := family_layout(df)):
        title, layout = family
    if layout.columns:
        tables = [layout_table(df, summary, grid_keys, layout, title)]
    else:  # a grid over several keys: each key's tutorial table per value of the others
        tables = sliced_layout_tables(df, summary, grid_keys)
    tables += published_tables(summary, grid_keys, df)
    tables += per_factor_tables(df, grid_keys)
    for extra in FAMILY_TABLES:
        tables += extra(df, grid_keys)
    tables.append(all_metrics_table(summary, grid_keys, layout))
    if len(objectives_of(df)) > 1:
        tables.append(pareto_table(df, grid_keys))
    return tables


def pareto_table(df: pd.DataFrame, grid_keys: list[str]) -> ReportTable:
    """The non-dominated runs of a multi-objective study, one row per run."""
    objectives = objectives_of(df)
    front = pareto_front(df)
    header = ["Run"] + [param_label(k) for k in grid_keys] + ["Seed"]
    labels = report_columns()
    header += [f"{labels[m].label if m in labels else m} {ARROWS[d]}" for m, d in objectives]
    rows = [[Cell(r["run_id"], code=True)] + [Cell(format_value(r[grid_column(k)])) for k in grid_keys]
            + [Cell(str(r["seed"]))] + [Cell(f"{r[m]:.4g}") for m, _ in objectives] for _, r in front.iterrows()]
    title = f"Pareto front ({', '.join(f'{m} {ARROWS[d]}' for m, d in objectives)})"
    n_ok = int((df["status"] == "ok").sum())
    note = f"{len(front)} of {n_ok} finished runs are not beaten in every objective by another run."
    return ReportTable(PARETO_KEY, title, header, rows, [note])


# ---------------------------------------------------------------------------------------------
# Settings

ALWAYS_SHOWN = ("dataset.name", "model.name", "objective.likelihood", "train.epochs")


def _defaults(row=None) -> dict[str, object]:
    """vaebench's default of every parameter; for the family sections (model, dataset) the defaults
    of the family `row` names (of the default family when no row is given). An option the family
    does not have is absent (its column is null in that row)."""
    from ..family import FamilySection
    from ..spec import SECTIONS, RunConfig

    out = {k: _hashable(v) for k, v in RunConfig().flat().items()}
    for section in SECTIONS:
        model = RunConfig.model_fields[section].annotation
        name = None if row is None else row.get(f"{PARAM_PREFIX}{section}.name")
        if not issubclass(model, FamilySection) or not isinstance(name, str) or name not in model._family_registry():
            continue
        out = {k: v for k, v in out.items() if not k.startswith(f"{section}.") or k[len(section) + 1:] in model.model_fields}
        for field, info in model.options_model(name).model_fields.items():
            if not info.is_required():
                out[f"{section}.{field}"] = _hashable(info.get_default(call_default_factory=True))
    from ..metrics import METRICS

    for metric in METRICS.names():  # the options of metrics that declare some: param.eval.<metric>.<option>
        if (options := METRICS.get(metric).options) is not None:
            out.update({f"eval.{metric}.{k}": _hashable(v) for k, v in options().model_dump(mode="json").items()})
    return out


def _dataset_fields(df: pd.DataFrame) -> set[str]:
    """The dataset's own parameters (e.g. the shapes grid) of a study on one dataset: always shown."""
    from ..data import DATASETS

    names = set(df["param.dataset.name"].dropna()) if "param.dataset.name" in df else set()
    if len(names) != 1 or (name := names.pop()) not in DATASETS:
        return set()
    return {f"dataset.{f}" for f in DATASETS.get(name).options.model_fields}


def fixed_settings(df: pd.DataFrame, grid_keys: list[str]) -> dict[str, object]:
    """The parameters every run of the study shares (not in the grid) that differ from vaebench's
    defaults, plus the dataset (with its own parameters, e.g. the shapes grid), model, likelihood
    and epochs."""
    defaults, out = _defaults(df.iloc[0] if len(df) else None), {}
    always = {*ALWAYS_SHOWN, *_dataset_fields(df)}
    for col in df.columns:
        key = col[len(PARAM_PREFIX):]
        if not col.startswith(PARAM_PREFIX) or key in grid_keys:
            continue
        values = {_hashable(v) for v in df[col]}
        if len(values) == 1:
            value = values.pop()
            if key in always or value != defaults.get(key):
                out[key] = value
    return out


def variant_settings(df: pd.DataFrame) -> dict[str, dict[str, object]]:
    """For a study with grid.variant: each variant's non-default values of the parameters that
    differ between variants, in grid order."""
    first = df.sort_values("cell_index").drop_duplicates("variant")
    varying = [c for c in df.columns if c.startswith(PARAM_PREFIX) and len({_hashable(v) for v in first[c]}) > 1]
    out = {}
    for _, r in first.iterrows():
        defaults = _defaults(r)
        out[r["variant"]] = {
            c[len(PARAM_PREFIX):]: _hashable(r[c]) for c in varying
            if _hashable(r[c]) != defaults.get(c[len(PARAM_PREFIX):])
            and not (_hashable(r[c]) is None and c[len(PARAM_PREFIX):] not in defaults)  # not an option of this family
        }
    return out


def _hashable(v):
    """A comparable form of a parameter value: arrays and lists as tuples, NaN as None."""
    if hasattr(v, "tolist") and not np.isscalar(v) or isinstance(v, list):
        return tuple(v.tolist() if hasattr(v, "tolist") else v)
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    return v.item() if hasattr(v, "item") else v


def objectives_of(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(metric, direction) pairs the study optimized (rows made before searches existed: -ELBO)."""
    if "objective_metrics" not in df or df["objective_metrics"].isna().all():
        return [("neg_elbo", "minimize")]
    first = df.dropna(subset=["objective_metrics"]).iloc[0]
    return list(zip(first["objective_metrics"], first["objective_directions"]))


def pareto_front(df: pd.DataFrame) -> pd.DataFrame:
    """The finished runs no other finished run beats in every objective (the non-dominated set),
    sorted by the first objective."""
    from ..search import pareto_mask

    objectives = objectives_of(df)
    metrics = [m for m, _ in objectives]
    ok = df[(df["status"] == "ok")].dropna(subset=metrics)
    if ok.empty:
        return ok
    mask = pareto_mask(ok[metrics].astype(float).to_numpy().tolist(), [d for _, d in objectives])
    return ok[mask].sort_values(metrics[0])


from . import family_tables  # noqa: E402,F401  (registers the VQ-VAE and hierarchical tables)
