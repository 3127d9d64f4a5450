"""Summaries over seeds and the summary table every layout is printed as.

`summarize` gives one row per grid cell with each column's mean, 95% CI half-width (Student t over
seeds), standard deviation and values; `summary_table` prints it: the grid values, one
"mean ± half-width" cell per column with the best mean marked, a p column testing each row against
the baseline row (Welch's t-test on the layout's headline metric), then n.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd

from ..results.rows import grid_column
from .columns import (
    BEST_EPOCH_HEADER,
    CONVERGED_HEADER,
    DERIVED,
    MISSING,
    N_HEADER,
    NOT_MEASURED,
    Cell,
    Layout,
    ReportTable,
    TableColumn,
    format_value,
    param_label,
    report_columns,
)
from .convergence import best_epoch_text, cell_convergence, converged_text, shows_convergence
from .settings import finished
from .stats import ci95, welch_p


def cell_groups(rows: pd.DataFrame, grid_keys: list[str]) -> list[tuple[tuple, pd.DataFrame]]:
    """(the cell's grid values, its rows) for every cell present in `rows`, in the spec's grid order."""
    keys = [grid_column(k) for k in grid_keys]
    if not keys:
        return [((), rows)] if len(rows) else []
    groups = sorted(rows.groupby(keys, sort=False, dropna=False), key=lambda vg: vg[1]["cell_index"].min())
    return [(v if isinstance(v, tuple) else (v,), g) for v, g in groups]


def summarize(df: pd.DataFrame, grid_keys: list[str], columns: list[TableColumn] | None = None) -> pd.DataFrame:
    """One row per cell of the grid (status 'ok' runs only), in the spec's grid order: n (finished
    runs), and for each column `<key>.mean`, `.ci` (95% CI half-width, Student t; NaN when n < 2),
    `.std` (sample standard deviation, ddof=1), `.n` (runs with a value) and `.values` (the runs'
    values), in the column's units. A column the rows lack has n = 0 and a NaN mean. Also each cell's
    convergence (convergence.cell_convergence: runs under early stopping, converged, at the maximum
    epochs, the median best epoch, the epoch budget)."""
    columns = list(report_columns().values()) if columns is None else columns
    out = []
    for values, g in cell_groups(finished(df).assign(**DERIVED), grid_keys):
        rec = {k: v for k, v in zip(grid_keys, values)}
        rec["n"] = len(g)
        rec.update(cell_convergence(g))
        for col in columns:
            x = g[col.key].astype(float).to_numpy() if col.key in g else np.array([])
            mean, half, n = ci95(x)
            finite = x[~np.isnan(x)]
            std = float(np.std(finite, ddof=1)) if n > 1 else math.nan
            rec.update(
                {
                    f"{col.key}.mean": mean,
                    f"{col.key}.ci": half,
                    f"{col.key}.std": std,
                    f"{col.key}.n": n,
                    f"{col.key}.values": x,
                }
            )
        out.append(rec)
    return pd.DataFrame(out)


def summary_text(row, col: TableColumn) -> str:
    """A summary cell: "mean ± half-width" (the mean alone when n = 1 or all runs agree), with
    "(n=k)" when fewer runs than the row's n have the metric; "—" when none has it."""
    mean, half, n = row[f"{col.key}.mean"], row[f"{col.key}.ci"], int(row[f"{col.key}.n"])
    if n == 0:
        return MISSING
    text = f"{mean:{col.fmt}}" if math.isnan(half) or half == 0 else f"{mean:{col.fmt}} ± {half:{col.fmt}}"
    return text + (f" (n={n})" if n != int(row["n"]) else "")


def is_measured(summary: pd.DataFrame, key: str) -> bool:
    """Whether any finished run of the summary has a value of the column."""
    return bool(len(summary)) and f"{key}.n" in summary and summary[f"{key}.n"].sum() > 0


def list_item(values, i: int) -> float:
    """values[i] of a list cell (e.g. a per-factor or per-layer metric); NaN for a missing list (a row
    without the metric)."""
    if isinstance(values, (list, tuple, np.ndarray)) and len(values) > i and values[i] is not None:
        return float(values[i])
    return math.nan


def list_items(lists: pd.Series, prefix: str, names) -> dict[str, pd.Series]:
    """A column of lists (e.g. per-factor or per-layer values) split into one column per position,
    named `<prefix>.<name>` for each of `names` in order: NaN where a row's list is missing or shorter."""
    return {f"{prefix}.{n}": lists.map(lambda v, i=i: list_item(v, i)) for i, n in enumerate(names)}


PICK_BEST = {"↓": min, "↑": max}


def best_rows(means: list[float], better: str) -> set[int]:
    """Indices of the rows holding the column's best mean (ties: all of them); none when the
    column has no direction, fewer than two rows have a value or every row has the same."""
    finite = [(i, m) for i, m in enumerate(means) if not math.isnan(m)]
    if better not in PICK_BEST or len({m for _, m in finite}) < 2:
        return set()
    best = PICK_BEST[better](m for _, m in finite)
    return {i for i, m in finite if m == best}


def same_value(a, b) -> bool:
    """Equal grid values: numbers within float rounding (1 == 1.0), anything else by ==."""
    numbers = (int, float, np.integer, np.floating)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    return a == b


# The row each p-value is measured against, by the single grid key (the tutorial's reference);
# a grid without one here, or whose reference value is absent, uses its first cell.
BASELINES = {"objective.beta": 1.0, "objective.likelihood": "bernoulli", "variant": "none"}


def baseline_index(summary: pd.DataFrame, grid_keys: list[str]) -> int | None:
    """Row of the summary the p-values compare against: the BASELINES value of a one-key grid when
    present (β = 1, the bernoulli likelihood, the `none` schedule), else the first grid cell."""
    if summary.empty:
        return None
    if len(grid_keys) == 1 and grid_keys[0] in BASELINES:
        want = BASELINES[grid_keys[0]]
        for i, v in enumerate(summary[grid_keys[0]]):
            if same_value(v, want):
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
    named = [
        format_value(row[k]) if k == "variant" else f"{labels.get(k, param_label(k))}={format_value(row[k])}"
        for k in grid_keys
    ]
    values = list(summary[f"{layout.headline}.values"])
    cells = [Cell("baseline") if i == base else Cell(format_p(welch_p(v, values[base]))) for i, v in enumerate(values)]
    return f"p ({metric}) vs {', '.join(named) or 'first cell'}", cells


def summary_table(
    key: str, title: str, summary: pd.DataFrame, grid_keys: list[str], columns, layout: Layout, notes: list[str]
) -> ReportTable:
    """Grid values, one summary cell per column (best marked), the p column (only when the table shows
    the layout's headline metric, which the p-values test), then n; when some run trained under early
    stopping, then how many of the row's runs converged and its median best epoch."""
    columns = [replace(c, better="") if c.key in layout.unranked else c for c in columns]
    labels = {k: layout.labels.get(k, param_label(k)) for k in grid_keys}
    shows_p = any(c.key == layout.headline for c in columns)
    p_header, p_cells = _p_column(summary, grid_keys, layout, labels) if shows_p else (None, [])
    measured = {c.key: is_measured(summary, c.key) for c in columns}
    best = {c.key: best_rows(list(summary[f"{c.key}.mean"]), c.better) if measured[c.key] else set() for c in columns}
    convergence = shows_convergence(summary)
    rows = []
    for i, (_, r) in enumerate(summary.iterrows()):
        cells = [Cell(format_value(r[k])) for k in grid_keys]
        cells += [
            Cell(summary_text(r, c), best=i in best[c.key]) if measured[c.key] else Cell(NOT_MEASURED) for c in columns
        ]
        rows.append(cells + p_cells[i : i + 1] + [Cell(str(int(r["n"])))])
        if convergence:
            rows[-1] += [Cell(converged_text(r)), Cell(best_epoch_text(r))]
    header = [labels[k] for k in grid_keys] + [c.header for c in columns] + [p_header] * shows_p + [N_HEADER]
    if convergence:
        header += [CONVERGED_HEADER, BEST_EPOCH_HEADER]
    return ReportTable(key, title, header, rows, notes)
