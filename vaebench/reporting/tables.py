"""Every table of one study's report, as structured `ReportTable`s that Markdown and HTML render alike.

`study_tables(df)` is the entry point: the tutorial's layout the study's rows mirror (if any;
layouts.py), else a model family's (family_tables.py), the tutorial's printed numbers beside the
measured ones (published.py), MIG and SAP per factor, every metric, and the Pareto front of a
multi-objective study. Summary cells are mean ± 95% CI half-width (Student t over seeds), the best
mean of a column with a direction is marked, and a p column tests each row against the baseline row
(Welch's t-test on the table's headline metric; summary.py). Texts are plain (no Markdown).

    titles.py         every table title
    columns.py        ReportTable, Cell, TableColumn, Layout; every column a table can show
    summary.py        summaries over seeds, best marks, p-values: the summary table
    layouts.py        the tutorial's layouts and which study mirrors which (from its rows, not its name)
    family_tables.py  the layouts and extra tables of families with metrics of their own
    published.py      published versus measured (published.yaml)
    settings.py       the fixed settings and each variant's settings (render.py prints them); which
                      rows finished and which the sweep made
    prose.py          the notes' wording (prose.yaml)
"""

from __future__ import annotations

import pandas as pd

from ..results.rows import grid_column
from .columns import Cell, Layout, ReportTable, format_value, param_label, report_columns
from .family_tables import FAMILY_TABLES, family_layout
from .layouts import (
    DEFAULT_LAYOUT,
    LAYOUTS,
    all_metrics_table,
    budget_note,
    layout_table,
    per_factor_tables,
    sliced_layout_tables,
    tutorial_title,
)
from .prose import prose
from .published import published_tables
from .settings import finished
from .stats import pareto_mask
from .summary import summarize
from .titles import ARCHITECTURE_TITLE, DEFAULT_TITLE, PARETO_TITLE

PARETO_KEY = "pareto_front"
ARROWS = {"minimize": "↓", "maximize": "↑"}


def study_layout(df: pd.DataFrame) -> tuple[str, Layout]:
    """(title, layout) of a study's report: the tutorial table its rows mirror (`tutorial_title`),
    else the first family layout whose metrics the rows measured, else DEFAULT_LAYOUT (all metrics
    only; for a grid over β and latent dimension, the tutorial's tables per value of the other key)."""
    title = tutorial_title(df)
    if title in LAYOUTS:
        return title, LAYOUTS[title]
    return family_layout(df) or (title or DEFAULT_TITLE, DEFAULT_LAYOUT)


def study_title(df: pd.DataFrame) -> str:
    """The title of a study's report: its tutorial table's, else its family table's, else DEFAULT_TITLE."""
    return study_layout(df)[0]


def study_tables(df: pd.DataFrame) -> list[ReportTable]:
    """Every table for one study's rows, in reading order: the tutorial's layout (when the rows
    mirror one; for a grid over several keys, each key's layout per value of the others), else a
    family's layout, published versus measured (β and architecture studies), MIG and SAP per factor
    (datasets with ground-truth factors), a family's extra tables, all metrics, and the Pareto front
    (multi-objective studies; key PARETO_KEY)."""
    grid_keys = list(df["grid_keys"].iloc[0])
    summary = summarize(df, grid_keys)
    title, layout = study_layout(df)
    if layout.columns:
        tables = [layout_table(df, summary, grid_keys, layout, title)]
    else:  # a grid over several keys: each key's tutorial table per value of the others
        tables = sliced_layout_tables(df, summary, grid_keys)
    if title == ARCHITECTURE_TITLE and tables:
        tables[0].notes.append(budget_note(df))
    tables += published_tables(summary, grid_keys, df)
    tables += per_factor_tables(df, grid_keys)
    for extra in FAMILY_TABLES:
        tables += extra(df, grid_keys)
    tables.append(all_metrics_table(summary, grid_keys, layout))
    if len(search_targets(df)) > 1:
        tables.append(pareto_table(df, grid_keys))
    return tables


def search_targets(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(metric, direction) pairs the study's search targeted (the row columns `objective_metrics` and
    `objective_directions`; -ELBO when the rows name none)."""
    if "objective_metrics" not in df or df["objective_metrics"].isna().all():
        return [("neg_elbo", "minimize")]
    first = df.dropna(subset=["objective_metrics"]).iloc[0]
    return list(zip(first["objective_metrics"], first["objective_directions"]))


def pareto_front(df: pd.DataFrame) -> pd.DataFrame:
    """The finished runs no other finished run beats in every objective (the non-dominated set),
    sorted by the first objective."""
    targets = search_targets(df)
    metrics = [m for m, _ in targets]
    ok = finished(df).dropna(subset=metrics)
    if ok.empty:
        return ok
    mask = pareto_mask(ok[metrics].astype(float).to_numpy().tolist(), [d for _, d in targets])
    return ok[mask].sort_values(metrics[0])


def pareto_table(df: pd.DataFrame, grid_keys: list[str]) -> ReportTable:
    """The non-dominated runs of a multi-objective study, one row per run."""
    targets = search_targets(df)
    front = pareto_front(df)
    header = ["Run"] + [param_label(k) for k in grid_keys] + ["Seed"]
    labels = report_columns()
    header += [f"{labels[m].label if m in labels else m} {ARROWS[d]}" for m, d in targets]
    rows = [
        [Cell(r["run_id"], code=True)]
        + [Cell(format_value(r[grid_column(k)])) for k in grid_keys]
        + [Cell(str(r["seed"]))]
        + [Cell(f"{r[m]:.4g}") for m, _ in targets]
        for _, r in front.iterrows()
    ]
    title = PARETO_TITLE.format(objectives=", ".join(f"{m} {ARROWS[d]}" for m, d in targets))
    note = prose("pareto_note", front=len(front), finished=len(finished(df)))
    return ReportTable(PARETO_KEY, title, header, rows, [note])
