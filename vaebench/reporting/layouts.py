"""The tutorial's tables: their layouts, which study mirrors which, and the tables built from them.

Which tutorial table a study mirrors is read from its rows, never from its name (`tutorial_title`):
a one-key grid by its key (TABLE_TITLES), the β x latent-dimension grid by its two keys, a grid of
named variants by what its variants change (KL_WEIGHTING, ARCHITECTURES). Besides a study's layout
table: a β table per latent size and a latent table per β for a grid over both
(`sliced_layout_tables`), MIG and SAP per factor, and the all-metrics table.
"""

from __future__ import annotations

import pandas as pd

from ..metrics import column_names as C
from ..results.fields import selection_loss
from ..results.rows import grid_column
from .columns import (
    COLUMNS,
    DISENTANGLEMENT,
    LATENT_DIM,
    LEADING_METRICS,
    OPTIONAL_COLUMNS,
    OTHER_COLUMNS,
    SECONDS_PER_EPOCH,
    Layout,
    ReportTable,
    TableColumn,
    format_value,
    metric_columns,
    param_label,
    relabel,
)
from .prose import prose
from .settings import finished, has_values, param_key, sweep_rows, varying_columns
from .summary import is_measured, list_items, summarize, summary_table
from .titles import (
    ALL_METRICS_TITLE,
    ARCHITECTURE_TITLE,
    BETA_TITLE,
    DISENTANGLEMENT_TITLE,
    LATENT_DIM_TITLE,
    LOSS_TITLE,
    PER_FACTOR_TITLE,
    SCHEDULES_TITLE,
    SLICE_TITLE,
)

DISENTANGLEMENT_SWEEP = "sweeps/disentanglement.yaml"

# The tutorial's tables in its order, each with the shipped sweep that measures it (the index page).
TUTORIAL_TABLES = {
    BETA_TITLE: "sweeps/beta.yaml",
    ARCHITECTURE_TITLE: "sweeps/architecture.yaml",
    LATENT_DIM_TITLE: "sweeps/latent_dim.yaml",
    DISENTANGLEMENT_TITLE: DISENTANGLEMENT_SWEEP,
    LOSS_TITLE: "sweeps/loss.yaml",
    SCHEDULES_TITLE: "sweeps/schedule.yaml",
}

_FINAL_ELBO_COLUMNS = (
    relabel(C.NEG_ELBO, "Final −ELBO (nats)"),
    relabel(C.RECON_NLL, "Reconstruction NLL (nats)"),
    relabel(C.RECON_MSE, "Reconstruction MSE (per pixel)"),
    relabel(C.KL, "KL (nats)"),
    relabel(C.ACTIVE_UNITS),
)
LAYOUTS = {  # by the tutorial table's title
    BETA_TITLE: Layout(
        "beta_tradeoffs",
        (
            relabel(C.RECON_MSE, "Reconstruction MSE (per pixel)"),
            relabel(C.KL, "KL divergence (nats)"),
            relabel(DISENTANGLEMENT),
            relabel(C.FID, "Sample quality: FID of samples"),
        ),
    ),
    ARCHITECTURE_TITLE: Layout(
        "architecture",
        (
            relabel(LATENT_DIM),
            relabel("n_params", "Parameters"),
            relabel(C.FID, "FID of samples"),
            relabel(SECONDS_PER_EPOCH),
        ),
        labels={"variant": "Architecture"},
    ),
    LATENT_DIM_TITLE: Layout(
        "latent_dim",
        (
            relabel(C.RECON_MSE, "Reconstruction: recon MSE (per pixel)"),
            relabel(C.FID, "Generation: FID of samples"),
            relabel(DISENTANGLEMENT),
        ),
        notes=(prose("latent_dim_note"),),
    ),
    LOSS_TITLE: Layout(
        "loss",
        _FINAL_ELBO_COLUMNS,
        headline=C.RECON_MSE,
        unranked=frozenset({C.NEG_ELBO, C.RECON_NLL, C.NLL_IS}),
        notes=(prose("loss_note"),),
    ),
    SCHEDULES_TITLE: Layout(
        "schedules", _FINAL_ELBO_COLUMNS, labels={"variant": "Schedule"}, notes=(prose("final_elbo_note"),)
    ),
}
DEFAULT_LAYOUT = Layout("sweep")

# ---------------------------------------------------------------------------------------------
# Which tutorial table a study mirrors

# A one-key grid, by its key.
TABLE_TITLES = {
    ("objective.beta",): BETA_TITLE,
    ("model.latent_dim",): LATENT_DIM_TITLE,
    ("objective.likelihood",): LOSS_TITLE,
}
# A grid (not a sampled search) over β and latent dimension, in either order: the disentanglement
# sweep's, a β table per latent size and a latent table per β (see sliced_layout_tables).
DISENTANGLEMENT_KEYS = frozenset({"objective.beta", "model.latent_dim"})
# A grid of named variants (`grid.variant`), by the parameters that differ between its variants:
KL_WEIGHTING = ("schedule.", "objective.free_bits")  # only these (how training weights the KL term): schedules
ARCHITECTURES = frozenset({"mlp", "conv", "resnet"})  # only model.*, every variant one of these families


def is_grid(df: pd.DataFrame) -> bool:
    """A grid search (rows made before searches existed have no sampler: grids)."""
    return "sampler" not in df or df["sampler"].isna().all() or set(df["sampler"].dropna()) == {"grid"}


def _variant_title(df: pd.DataFrame) -> str | None:
    """The tutorial table a grid of named variants mirrors, from what the sweep's own variants change:
    the schedules table when only the KL weighting (KL_WEIGHTING), the architecture comparison when
    only the model (and each architecture's epoch budget, train.epochs), each variant one of the
    tutorial's architectures (ARCHITECTURES)."""
    df = sweep_rows(df)
    varying = [param_key(c) for c in varying_columns(df)]
    model = grid_column("model.name")
    families = set(df[model].dropna()) if model in df else set()
    if not varying:
        return None
    if all(k.startswith(KL_WEIGHTING) for k in varying):
        return SCHEDULES_TITLE
    if (
        all(k.startswith("model.") or k == "train.epochs" for k in varying)
        and families
        and families <= ARCHITECTURES
        and any(k.startswith("model.") for k in varying)
    ):
        return ARCHITECTURE_TITLE
    return None


def tutorial_title(df: pd.DataFrame) -> str | None:
    """The title of the tutorial table a study's rows mirror (a key of LAYOUTS, or
    DISENTANGLEMENT_TITLE), chosen from its grid keys and, for named variants, from what they
    change; None when it mirrors none."""
    grid_keys = list(df["grid_keys"].iloc[0])
    if title := TABLE_TITLES.get(tuple(grid_keys)):
        return title
    if len(grid_keys) == 2 and set(grid_keys) == DISENTANGLEMENT_KEYS and is_grid(df):
        return DISENTANGLEMENT_TITLE
    if grid_keys == ["variant"]:
        return _variant_title(df)
    return None


# ---------------------------------------------------------------------------------------------
# Tables in a tutorial layout


def fid_extractors(ok: pd.DataFrame) -> list[str]:
    """The distinct FID extractor ids of the finished rows (each one set of features and weights)."""
    if C.FID_EXTRACTOR not in ok:
        return []
    return sorted(ok[C.FID_EXTRACTOR].dropna().unique())


def fid_features(df: pd.DataFrame) -> str | None:
    """The feature extractor(s) the finished runs' FIDs used, or None when FID was not measured."""
    return ", ".join(fid_extractors(finished(df))) or None


def _fid_sentence(df: pd.DataFrame) -> str:
    """What the FID column of a tutorial table measures, on which features."""
    features = fid_features(df)
    if features is None:
        return prose("fid_not_measured")
    return prose("fid_measured", features=features)


def disentanglement_sentence(df: pd.DataFrame) -> str:
    """How the MIG and SAP of the table were measured (the settings every row carries)."""
    ok = finished(df)
    ok = ok[ok[C.MIG].notna()]
    keys = [C.MIG_SAMPLES, C.MIG_BINS, C.SAP_TRAIN_SAMPLES, C.SAP_TEST_SAMPLES, C.DISENTANGLEMENT_SEED]
    settings = {tuple(int(r[k]) for k in keys) for _, r in ok.iterrows()}
    factors = {tuple(r[C.DISENTANGLEMENT_FACTORS]) for _, r in ok.iterrows()}
    datasets = ", ".join(f"`{d}`" for d in sorted(ok["dataset"].dropna().unique())) or "the dataset"
    parts = [
        prose("disentanglement_settings", samples=m, bins=b, sap_train=tr, sap_test=te, seed=seed)
        for m, b, tr, te, seed in sorted(settings)
    ]
    # which SAP convention(s) the rows hold: rows from before sap_dlib have vaebench's only
    sap = prose("disentanglement_sap_both") if has_values(ok, C.SAP_DLIB) else prose("disentanglement_sap_by_kind")
    return prose(
        "disentanglement_measured",
        sap=sap,
        datasets=datasets,
        factors="; ".join(", ".join(f) for f in sorted(factors)),
        settings="; ".join(parts),
        warning=prose("disentanglement_mixed_warning") if len(settings) > 1 else "",
    )


def _disentanglement_columns(columns: list[TableColumn], summary: pd.DataFrame, df: pd.DataFrame):
    """The layout's Disentanglement column as MIG and SAP when the rows have them (with a note on
    how they were measured), else kept as "not measured" (with a note pointing to the sweep)."""
    if not is_measured(summary, C.MIG):
        return columns, prose("disentanglement_not_measured", sweep=DISENTANGLEMENT_SWEEP)
    # disentanglement_lib's SAP (comparable with published numbers) first where the rows have it; then
    # vaebench's SAP by factor kind, the one of rows from before it (each labelled with its convention)
    saps = [relabel(C.SAP_DLIB, "SAP (dlib)")] if is_measured(summary, C.SAP_DLIB) else []
    saps.append(relabel(C.SAP, "SAP (by kind)"))
    out = []
    for c in columns:
        out += [relabel(C.MIG, "Disentanglement: MIG"), *saps] if c.key == DISENTANGLEMENT else [c]
    return out, disentanglement_sentence(df)


def layout_table(
    df: pd.DataFrame,
    summary: pd.DataFrame,
    grid_keys: list[str],
    layout: Layout,
    title: str,
    key: str | None = None,
    notes: bool = True,
) -> ReportTable:
    """The tutorial's table for this study, measured (`notes=False`: without the notes, for a table
    that repeats another's layout)."""
    texts = list(layout.notes)
    columns = list(layout.columns)
    if any(c.key == DISENTANGLEMENT for c in columns):
        columns, note = _disentanglement_columns(columns, summary, df)
        texts.append(note)
    if any(c.key == C.FID for c in columns):
        texts.append(_fid_sentence(df))
    return summary_table(key or layout.key, title, summary, grid_keys, columns, layout, texts if notes else [])


def sliced_layout_tables(df: pd.DataFrame, summary: pd.DataFrame, grid_keys: list[str]) -> list[ReportTable]:
    """For a grid over several keys: each key's tutorial table (if it has one) once per combination of
    the other keys' values, e.g. for β x latent dim, a β table per latent size and a latent-dimension
    table per β. Rows, best marks and p-values are those of the slice; the notes come with the
    first table of each layout."""
    if len(grid_keys) < 2 or summary.empty or not is_grid(df):
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
            tables.append(
                layout_table(
                    df,
                    part.reset_index(drop=True),
                    [key],
                    layout,
                    SLICE_TITLE.format(title=title, fixed=fixed),
                    f"{layout.key}.{slug}",
                    notes=i == 0,
                )
            )
    return tables


# ---------------------------------------------------------------------------------------------
# Every study: all metrics, and MIG and SAP per factor


def all_metrics_table(summary: pd.DataFrame, grid_keys: list[str], layout: Layout = DEFAULT_LAYOUT) -> ReportTable:
    """Every metric of every grid cell: the declared objective columns of the registered metrics
    (`metric_columns`; beyond LEADING_METRICS, and MIG and SAP, only those the rows have), parameter
    count and time per epoch. `summary` must hold them (`summarize`'s default columns do)."""
    notes = [prose("loss_note")] if layout.unranked else []
    columns = all_metrics_columns(summary)
    return summary_table("all_metrics", ALL_METRICS_TITLE, summary, grid_keys, columns, layout, notes)


def all_metrics_columns(summary: pd.DataFrame) -> list[TableColumn]:
    """The all-metrics table's columns: LEADING_METRICS and OTHER_COLUMNS always (but the optional
    ones), the other metric columns when some run measured them."""
    always = {*LEADING_METRICS, *(c.key for c in OTHER_COLUMNS)} - OPTIONAL_COLUMNS
    return [c for c in metric_columns() if c.key in always or is_measured(summary, c.key)]


PER_FACTOR = {C.MIG: C.MIG_PER_FACTOR, C.SAP_DLIB: C.SAP_DLIB_PER_FACTOR, C.SAP: C.SAP_PER_FACTOR}
# the two SAPs are named with their convention (their labels' parenthesis is not a unit)
PER_FACTOR_NAMES = {C.SAP_DLIB: "SAP (dlib)", C.SAP: "SAP (by kind)"}


def per_factor_tables(df: pd.DataFrame, grid_keys: list[str]) -> list[ReportTable]:
    """MIG and SAP of each ground-truth factor (the per-factor lists of the rows), when measured."""
    if not has_values(df, C.MIG_PER_FACTOR):
        return []
    ok = finished(df)
    names = list(ok[C.DISENTANGLEMENT_FACTORS].dropna().iloc[0])
    tables = []
    for metric, lists in PER_FACTOR.items():
        if not has_values(ok, lists):  # sap_dlib: not in rows from before it
            continue
        name = PER_FACTOR_NAMES.get(metric, COLUMNS[metric].name)
        derived = list_items(ok[lists], metric, names)
        columns = [COLUMNS[metric]] + [TableColumn(k, f"{name} {n}", ".3f", "↑") for k, n in zip(derived, names)]
        summary = summarize(ok.assign(**derived), grid_keys, columns)
        layout = Layout(f"{metric}_per_factor", headline=metric)
        note = prose("per_factor_note", metric=name, factors=", ".join(names))
        title = PER_FACTOR_TITLE.format(metric=name)
        tables.append(summary_table(layout.key, title, summary, grid_keys, columns, layout, [note]))
    return tables


STILL_IMPROVING = 0.5  # nats: a last epoch that lowered the test -ELBO by more than this has not converged


def budget_note(df: pd.DataFrame) -> str:
    """What an architecture comparison's training budget supports: each architecture's epochs and
    training minutes per run, which ones were still improving at the end (their last epoch lowered the
    per-epoch −ELBO, validation or test as the history has it, by more than STILL_IMPROVING nats, mean
    over seeds), and the conclusion that allows."""
    budgets, improving, splits = [], [], set()
    for name, g in finished(sweep_rows(df)).groupby("variant", sort=False):
        budgets.append(
            f"{name} {int(g['epochs_completed'].median())} epochs ({g['train_seconds'].mean() / 60:.1f} min per run)"
        )
        histories = g["history"] if "history" in g else []
        drops = [
            selection_loss(h[-2])[1] - selection_loss(h[-1])[1] for h in histories if h is not None and len(h) >= 2
        ]
        splits |= {selection_loss(h[-1])[0] for h in histories if h is not None and len(h)}
        if drops and sum(drops) / len(drops) > STILL_IMPROVING:
            improving.append(f"{name} ({sum(drops) / len(drops):.1f} nats in its last epoch)")
    if improving:
        verdict = prose("budget_still_improving", improving=", ".join(improving))
    else:
        verdict = prose("budget_converged", threshold=STILL_IMPROVING, split=" and ".join(sorted(splits)) or "test")
    return prose("budget", budgets="; ".join(budgets)) + " " + verdict
