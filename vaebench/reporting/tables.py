"""Every table of one study's report, as structured `ReportTable`s that Markdown and HTML render alike.

`study_tables(df)` is the entry point: the tutorial's layout the study's rows mirror (if any;
layouts.py), else a model family's (family_tables.py), the tutorial's printed numbers beside the
measured ones (published.py), MIG and SAP per factor, every metric, and the Pareto front of a
multi-objective study (a single-objective search: its best runs), chosen on the validation split
when the rows have one. Summary cells are mean ± 95% CI half-width (Student t over seeds), the best
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
    convergence.py    per cell, runs converged under early stopping and the median best epoch; the
                      budget notes, when a contradiction of the literature may be printed, the protocol
"""

from __future__ import annotations

import pandas as pd

from ..results.rows import grid_column
from .caveats import collapse_note, skipped_note, unresolved_note
from .columns import MISSING, Cell, Layout, ReportTable, format_value, param_label, report_columns
from .convergence import convergence_notes
from .family_tables import FAMILY_FINDINGS, FAMILY_TABLES, family_layout
from .layouts import (
    DEFAULT_LAYOUT,
    LAYOUTS,
    all_metrics_columns,
    all_metrics_table,
    budget_note,
    is_grid,
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
from .titles import ARCHITECTURE_TITLE, BEST_RUNS_TITLE, DEFAULT_TITLE, PARETO_TITLE

PARETO_KEY = "pareto_front"
BEST_RUNS_KEY = "best_runs"
RUN_TABLES = (PARETO_KEY, BEST_RUNS_KEY)  # tables of single runs: the report prints them after the settings
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
    (multi-objective studies; key PARETO_KEY) or a single-objective search's best runs (BEST_RUNS_KEY).
    The lead table's notes end with the runs' convergence (convergence.convergence_notes) and their
    posterior collapse (caveats.collapse_note); the table with the p column gets a warning for the
    differences its confidence intervals cannot resolve (caveats.unresolved_note)."""
    grid_keys = list(df["grid_keys"].iloc[0])
    summary = summarize(df, grid_keys)
    title, layout = study_layout(df)
    if layout.lead is not None:  # a family's own lead table
        tables = [layout.lead(df, grid_keys, layout, title)]
    elif layout.columns:
        tables = [layout_table(df, summary, grid_keys, layout, title)]
    else:  # a grid over several keys: each key's tutorial table per value of the others
        tables = sliced_layout_tables(df, summary, grid_keys)
    if title == ARCHITECTURE_TITLE and tables:
        tables[0].notes.append(budget_note(df))
    lead = tables[0] if tables else None  # the convergence notes go under the lead table
    tables += published_tables(summary, grid_keys, df)
    tables += per_factor_tables(df, grid_keys)
    for extra in FAMILY_TABLES:
        tables += extra(df, grid_keys)
    tables.append(all_metrics_table(summary, grid_keys, layout))
    if (blanks := skipped_note(df, grid_keys, [c.key for c in all_metrics_columns(summary)])) is not None:
        tables[-1].notes.append(blanks)
    (lead or tables[-1]).notes.extend(convergence_notes(df, summary, grid_keys))
    if (collapse := collapse_note(df, grid_keys)) is not None:
        (lead or tables[-1]).notes.append(collapse)
    if (unresolved := unresolved_note(summary, grid_keys, layout.headline)) is not None:
        # under the first table whose p column tests the whole grid: the lead table unless it is a
        # slice of a several-key grid or does not show the headline metric, else all metrics
        whole = lead is not None and layout.columns and any(h.startswith("p (") for h in lead.header)
        (lead if whole else tables[-1]).notes.append(unresolved)
    if len(search_targets(df)) > 1:
        tables.append(pareto_table(df, grid_keys))
    elif not is_grid(df):
        tables.append(best_runs_table(df, grid_keys))
    return tables


def study_findings(df: pd.DataFrame) -> list[tuple[str, list[str]]]:
    """(title, paragraphs) of each family whose report states findings from its numbers, under the
    study's header (FAMILY_FINDINGS in order; none for most studies)."""
    return [(title, paragraphs) for title, findings in FAMILY_FINDINGS if (paragraphs := findings(df))]


def search_targets(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(metric, direction) pairs the study's search targeted (the row columns `objective_metrics` and
    `objective_directions`; -ELBO when the rows name none)."""
    if "objective_metrics" not in df or df["objective_metrics"].isna().all():
        return [("neg_elbo", "minimize")]
    first = df.dropna(subset=["objective_metrics"]).iloc[0]
    return list(zip(first["objective_metrics"], first["objective_directions"]))


SELECTED = "selected."  # a run's selection value of a search target: column `selected.<metric>`


def selection_values(df: pd.DataFrame) -> tuple[pd.DataFrame, str, str]:
    """(runs, split, how): the finished runs with each search target's selection value as a column
    `selected.<metric>` (runs without every value left out), the split those values were measured on
    ("validation" or "test"), and how the choice was made: "validation", "opt_out" (on test, by
    `search.allow_test_selection`) or "test" (no validation split, or rows from before one). The values
    are what each trial told Optuna (`objective_values`, measured on `objective_split`) when every
    finished run has them; else (rows from before validation splits) the test metric columns."""
    metrics = [m for m, _ in search_targets(df)]
    ok = finished(df)
    told = "objective_values" in ok and len(ok) and ok["objective_values"].map(_values_of(len(metrics))).all()
    if told:
        values = pd.DataFrame(ok["objective_values"].map(list).tolist(), index=ok.index, columns=metrics)
        split = "validation" if set(ok["objective_split"].dropna()) == {"validation"} else "test"
    else:
        values, split = ok.reindex(columns=metrics), "test"
    opted = "allow_test_selection" in ok and bool(ok["allow_test_selection"].eq(True).any())
    how = "validation" if split == "validation" else "opt_out" if opted else "test"
    runs = ok.assign(**{SELECTED + m: values[m].astype(float) for m in metrics})
    return runs.dropna(subset=[SELECTED + m for m in metrics]), split, how


def _values_of(n: int):
    """Whether a row's `objective_values` holds n values."""
    return lambda v: v is not None and hasattr(v, "__len__") and len(v) == n


def pareto_front(df: pd.DataFrame) -> pd.DataFrame:
    """The finished runs no other finished run beats in every objective (the non-dominated set) on
    their selection values (`selection_values`: the validation split's when the rows have them),
    sorted by the first objective."""
    targets = search_targets(df)
    selected = [SELECTED + m for m, _ in targets]
    ok = selection_values(df)[0]
    if ok.empty:
        return ok
    mask = pareto_mask(ok[selected].astype(float).to_numpy().tolist(), [d for _, d in targets])
    return ok[mask].sort_values(selected[0])


def _run_table(df: pd.DataFrame, grid_keys: list[str], runs: pd.DataFrame, split: str):
    """(header, rows) of a table of single runs: run id, grid or search values, seed, then per search
    target its selection value and, when that was measured on the validation split, its test value."""
    targets = search_targets(df)
    labels = report_columns()
    header = ["Run"] + [param_label(k) for k in grid_keys] + ["Seed"]
    for m, d in targets:
        label = labels[m].label if m in labels else m
        if split == "validation":
            header += [f"{_on(label, split)} {ARROWS[d]}", _on(label, "test")]
        else:
            header.append(f"{label} {ARROWS[d]}")
    rows = []
    for _, r in runs.iterrows():
        cells = [Cell(r["run_id"], code=True)] + [Cell(format_value(r[grid_column(k)])) for k in grid_keys]
        cells.append(Cell(str(r["seed"])))
        for m, _ in targets:
            cells.append(Cell(f"{r[SELECTED + m]:.4g}"))
            if split == "validation":
                cells.append(Cell(MISSING if m not in r or pd.isna(r[m]) else f"{r[m]:.4g}"))
        rows.append(cells)
    return header, rows


def _on(label: str, split: str) -> str:
    """A column label with the split its values are from: "−ELBO (nats)" -> "−ELBO (nats, validation)"."""
    return f"{label[:-1]}, {split})" if label.endswith(")") else f"{label} ({split})"


def _selection_note(df: pd.DataFrame, how: str) -> str:
    """How the runs of a run table were chosen (`how` from selection_values)."""
    objectives = ", ".join(m for m, _ in search_targets(df))
    if how == "validation":
        return prose("selection_validation", objectives=objectives)
    if how == "opt_out":
        return prose("selection_test_opt_out", objectives=objectives)
    return prose("selection_test", objectives=objectives)


def pareto_table(df: pd.DataFrame, grid_keys: list[str]) -> ReportTable:
    """The non-dominated runs of a multi-objective study, one row per run: chosen on their selection
    values (the validation split's when the rows have them), with their test values beside."""
    targets = search_targets(df)
    front = pareto_front(df)
    _, split, how = selection_values(df)
    header, rows = _run_table(df, grid_keys, front, split)
    title = PARETO_TITLE.format(objectives=", ".join(f"{m} {ARROWS[d]}" for m, d in targets))
    note = prose("pareto_note", front=len(front), finished=len(finished(df)))
    return ReportTable(PARETO_KEY, title, header, rows, [note, _selection_note(df, how)])


BEST_RUNS = 5  # runs the best-runs table of a single-objective search lists


def best_runs_table(df: pd.DataFrame, grid_keys: list[str]) -> ReportTable:
    """The BEST_RUNS best finished runs of a single-objective search, best first, ranked on their
    selection values (the validation split's when the rows have them), with their test values beside."""
    (metric, direction), *_ = search_targets(df)
    runs, split, how = selection_values(df)
    ranked = runs.sort_values(SELECTED + metric, ascending=direction == "minimize", kind="stable").head(BEST_RUNS)
    header, rows = _run_table(df, grid_keys, ranked, split)
    title = BEST_RUNS_TITLE.format(objective=f"{metric} {ARROWS[direction]}", split=split)
    note = prose("best_runs_note", shown=len(ranked), finished=len(finished(df)))
    return ReportTable(BEST_RUNS_KEY, title, header, rows, [note, _selection_note(df, how)])
