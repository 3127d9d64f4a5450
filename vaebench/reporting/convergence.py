"""Convergence and the evaluation protocol of a study's runs, for the report (issue 24).

Per grid cell: how many finished runs early stopping ended (`stop_reason` "converged") and the
median `best_epoch` (the epoch whose weights were evaluated); the notes under a study's lead table
(a cell whose runs all hit the maximum epochs under early stopping; a fixed-budget study's budget);
whether a finding against the literature may be printed as a contradiction (only when every run of
the compared cells converged); and the protocol sentences (which split the per-epoch curves, early
stopping and a search's selection were measured on). Rows made before validation splits and early
stopping have none of these columns: they are fixed-budget runs measured on the test split.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..results.rows import grid_column
from .columns import MISSING, cell_name, format_value
from .prose import prose

EARLY_STOPPING = grid_column("train.early_stopping")  # {patience, min_delta} or null
EPOCHS = grid_column("train.epochs")  # the epoch budget (the maximum under early stopping)
CONVERGED, MAX_EPOCHS = "converged", "max_epochs"  # the stop_reason of an ok run

# The summary's columns of a cell's convergence (summary.summarize), over its finished runs:
STOPPING_N = "early_stopping.n"  # runs trained under early stopping
CONVERGED_N = "converged.n"  # runs early stopping ended
MAX_EPOCHS_N = "max_epochs.n"  # runs under early stopping that used every epoch
BEST_EPOCH = "best_epoch.median"  # median best_epoch (NaN: none recorded)
EPOCHS_MAX = "epochs.max"  # the cell's epoch budget (largest train.epochs of its runs)


def under_early_stopping(df: pd.DataFrame) -> pd.Series:
    """Per row: whether it trained under early stopping (a non-null `param.train.early_stopping`)."""
    if EARLY_STOPPING not in df:
        return pd.Series(False, index=df.index)
    return df[EARLY_STOPPING].map(lambda v: isinstance(v, dict) or (v is not None and not _is_nan(v)))


def uses_early_stopping(df: pd.DataFrame) -> bool:
    """Whether any row of the study trained under early stopping."""
    return bool(under_early_stopping(df).any())


def _is_nan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _stop_reasons(g: pd.DataFrame) -> pd.Series:
    return g["stop_reason"] if "stop_reason" in g else pd.Series(None, index=g.index, dtype=object)


def cell_convergence(g: pd.DataFrame) -> dict[str, float]:
    """The convergence columns of one cell's finished runs `g` (STOPPING_N ... EPOCHS_MAX)."""
    stopping = under_early_stopping(g)
    reasons = _stop_reasons(g)
    best = g["best_epoch"].dropna().astype(float) if "best_epoch" in g else pd.Series(dtype=float)
    budget = g[EPOCHS].dropna().astype(float) if EPOCHS in g else g["epochs_completed"].dropna().astype(float)
    return {
        STOPPING_N: int(stopping.sum()),
        CONVERGED_N: int(((reasons == CONVERGED) & stopping).sum()),
        MAX_EPOCHS_N: int(((reasons == MAX_EPOCHS) & stopping).sum()),
        BEST_EPOCH: float(np.median(best)) if len(best) else math.nan,
        EPOCHS_MAX: float(budget.max()) if len(budget) else math.nan,
    }


def shows_convergence(summary: pd.DataFrame) -> bool:
    """Whether a summary table gets the converged and best-epoch columns: some run of it trained
    under early stopping."""
    return STOPPING_N in summary and summary[STOPPING_N].sum() > 0


def converged_text(row) -> str:
    """A summary row's converged cell: "2/3" (runs early stopping ended / finished runs); "—" for a
    cell trained without early stopping."""
    return f"{int(row[CONVERGED_N])}/{int(row['n'])}" if row[STOPPING_N] > 0 else MISSING


def best_epoch_text(row) -> str:
    """A summary row's best-epoch cell: the median over its runs ("37", "37.5"); "—" without one."""
    return MISSING if math.isnan(row[BEST_EPOCH]) else f"{row[BEST_EPOCH]:g}"


def all_converged(summary_rows) -> bool:
    """Whether every finished run of these summary rows (cells) converged under early stopping."""
    rows = list(summary_rows)
    return bool(rows) and all(r["n"] > 0 and r.get(CONVERGED_N, 0) == r["n"] for r in rows)


def shortfall(summary_rows) -> str:
    """Why these cells' runs do not count as converged: no run was tested for convergence (a fixed
    budget), or how many of their runs converged."""
    rows = list(summary_rows)
    runs = int(sum(r["n"] for r in rows))
    if not any(r.get(STOPPING_N, 0) > 0 for r in rows):
        return prose("not_tested_for_convergence")
    return prose("partly_converged", converged=int(sum(r.get(CONVERGED_N, 0) for r in rows)), runs=runs)


def _cell_name(grid_keys: list[str], row) -> str:
    """A cell as the notes name it: a variant by its name, else "β=0.5, Latent dim=2"."""
    return cell_name(grid_keys, [row[k] for k in grid_keys]) or "all runs"


def _epochs(value: float) -> str:
    return "an unrecorded number of" if math.isnan(value) else format_value(int(value))


def convergence_notes(df: pd.DataFrame, summary: pd.DataFrame, grid_keys: list[str]) -> list[str]:
    """The notes under a study's lead table. Under early stopping: what the converged and best-epoch
    columns count, and a flag for each cell whose finished runs all used every epoch (its numbers are
    a budget's). Without it: that no run was tested for convergence, and the fixed budget (one number
    of epochs, or each cell's)."""
    if summary.empty:
        return []
    if not shows_convergence(summary):
        budgets = {int(b) for b in summary[EPOCHS_MAX] if not math.isnan(b)}
        if len(budgets) == 1:
            budget = prose("fixed_budget_epochs", epochs=budgets.pop())
        else:
            cells = ", ".join(f"{_cell_name(grid_keys, r)} {_epochs(r[EPOCHS_MAX])}" for _, r in summary.iterrows())
            budget = prose("fixed_budget_per_cell", cells=cells)
        return [prose("fixed_budget", budget=budget)]
    notes = [prose("convergence_columns", rules=_stopping_rules(df))]
    for _, r in summary.iterrows():
        if r[STOPPING_N] > 0 and r[MAX_EPOCHS_N] == r["n"]:
            notes.append(
                prose(
                    "budget_not_converged",
                    cell=_cell_name(grid_keys, r),
                    runs=int(r["n"]),
                    epochs=_epochs(r[EPOCHS_MAX]),
                )
            )
    return notes


def _stopping_rules(df: pd.DataFrame) -> str:
    """The early-stopping settings of the rows: "patience 5, min_delta 0.1 nats" (several: "; ")."""
    rules = {
        (int(v["patience"]), float(v["min_delta"]))
        for v in df.loc[under_early_stopping(df), EARLY_STOPPING]
        if isinstance(v, dict)
    }
    return "; ".join(prose("stopping_rule", patience=p, min_delta=f"{d:g}") for p, d in sorted(rules))


# ---------------------------------------------------------------------------------------------
# The protocol: which split the curves, early stopping and the selection were measured on


def validation_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of runs that held out a validation split (`validation_size` > 0)."""
    if "validation_size" not in df:
        return df.iloc[:0]
    return df[df["validation_size"].fillna(0).astype(float) > 0]


def _test_selection_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows whose spec set the opt-out `search.allow_test_selection: true`."""
    if "allow_test_selection" not in df:
        return df.iloc[:0]
    return df[df["allow_test_selection"].eq(True)]


def protocol_notes(df: pd.DataFrame, searched: bool) -> list[str]:
    """The sentences under a study's header on its evaluation protocol: with a validation split,
    what was measured on it (its size and checksum) and that the test metrics come from one
    evaluation after training; with the opt-out `search.allow_test_selection`, a warning that the
    selection read the test split (or that the opt-out went unused). None for rows without these
    columns (made before validation splits)."""
    notes = []
    held = validation_rows(df)
    if len(held):
        sizes = ", ".join(f"{s:,}" for s in sorted(int(v) for v in held["validation_size"].unique()))
        checksums = ", ".join(f"`{c}`" for c in sorted(held["validation_checksum"].dropna().unique())) or "not recorded"
        uses = ["the per-epoch curves"]
        stopping = uses_early_stopping(held)
        if stopping:
            uses.append("early stopping")
        if searched:
            uses.append("the search's objective values")
        measured = ", ".join(uses[:-1]) + " and " + uses[-1] if len(uses) > 1 else uses[0]
        notes.append(
            prose(
                "protocol_validation",
                size=sizes,
                checksum=checksums,
                measured=measured,
                weights=prose("protocol_best_weights") if stopping else prose("protocol_last_weights"),
            )
        )
    opted = _test_selection_rows(df)
    if len(opted):
        on_test = opted[opted["validation_size"].fillna(0).astype(float) <= 0] if "validation_size" in opted else opted
        if len(on_test):
            notes.append(prose("protocol_test_selection", runs=len(on_test), total=len(df)))
        else:
            notes.append(prose("protocol_test_selection_unused", runs=len(opted)))
    return notes
