"""The tutorial's printed numbers (published.yaml) beside the measured ones: for each published table
whose grid key is the study's grid, the grid values present in both, their difference, and whether
the measured trend along the rows runs with or against the tutorial's (and the objective's). A measured
trend against the tutorial's is printed as a contradiction only when every run of the compared cells
converged under early stopping, or when the quantity is fixed by the configuration (CONFIGURED) or
the runs follow the direction the objective fixes for it (the entry's `expected` trend); otherwise
as inconclusive at this budget."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import yaml

from ..metrics import column_names as C
from ..results.rows import grid_column
from .columns import MISSING, Cell, ReportTable, format_value, param_label, report_columns
from .convergence import all_converged, shortfall
from .layouts import fid_features
from .prose import prose
from .stats import trend_sign
from .summary import same_value, summary_text
from .titles import PUBLISHED_TITLE

PUBLISHED_PATH = Path(__file__).with_name("published.yaml")
TRENDS = {1: "rises", -1: "falls"}
TRENDING = {1: "rising", -1: "falling"}
INCONCLUSIVE = "inconclusive at this budget: "  # a trend against the tutorial's whose runs did not all converge
# Quantities the configuration fixes, not training (the parameter count, the latent size): a trend of
# theirs against the tutorial's is a contradiction whatever the runs' convergence.
CONFIGURED = frozenset({"n_params", grid_column("model.latent_dim")})


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
        match = [r for _, r in summary.iterrows() if same_value(r[grid_key], pub[grid_key])]
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

    return prose(
        "expected_trend",
        quantity=name,
        trend=expected["trend"],
        along=along,
        why=expected["why"],
        measured=follows(meas),
        published=follows(pub),
    )


def published_table(entry: dict, summary: pd.DataFrame, df: pd.DataFrame) -> ReportTable | None:
    """The tutorial's numbers beside ours for the grid values present in both (None: no overlap),
    with a flag wherever the measured trend runs against the tutorial's."""
    grid_key = entry["grid_key"]
    pairs = _shared(entry["rows"], summary, grid_key)
    if not pairs:
        return None
    along = _along(grid_key, [p[grid_key] for p, _ in pairs])
    source = entry["source"]
    cells = [r for _, r in pairs]  # a trend against the tutorial is a contradiction only if all these converged
    converged, short = all_converged(cells), shortfall(cells)
    notes = [
        prose("published_source", file=source["file"], section=source["section"], compared=_compared(grid_key, pairs))
    ]
    rows = []
    for q in (k for k in entry["rows"][0] if k != grid_key):
        col, pub = report_columns()[q], [p[q] for p, _ in pairs]
        meas = [s[f"{q}.mean"] for _, s in pairs]
        verdict, contradicts = trend_verdict(pub, meas)
        trends = dict(quantity=col.name, measured=TRENDS[trend_sign(meas)], along=along) if contradicts else {}
        expected = entry.get("expected", {}).get(q)
        # the objective fixes the direction of an `expected` trend the runs follow: the tutorial's
        # contrary trend is then contradicted at any budget, like a configured quantity
        follows_objective = expected is not None and trend_sign(meas) == {"rises": 1, "falls": -1}[expected["trend"]]
        if contradicts and q not in CONFIGURED and not follows_objective and not converged:
            verdict = f"{INCONCLUSIVE}measured {TRENDS[trend_sign(meas)]}, tutorial {TRENDS[trend_sign(pub)]}"
            notes.append(prose("trend_inconclusive", **trends, published=TRENDING[trend_sign(pub)], shortfall=short))
        elif contradicts:
            notes.append(prose("trend_contradicts", **trends, published=TRENDING[trend_sign(pub)]))
        if expected is not None:
            notes.append(_expected_note(col.name, along, expected, pub, meas))
        for (p, s), m in zip(pairs, meas):
            diff = MISSING if math.isnan(m) else f"{m - p[q]:+{col.fmt}}"
            rows.append(
                [
                    Cell(format_value(p[grid_key])),
                    Cell(col.label),
                    Cell(f"{p[q]:{col.fmt}}"),
                    Cell(summary_text(s, col)),
                    Cell(diff),
                    Cell(verdict),
                ]
            )
    if any(C.FID == q for q in entry["rows"][0]):
        features = fid_features(df)
        ours = prose("published_fid_measured", features=features) if features else prose("published_fid_not_measured")
        notes.append(prose("published_fid", ours=ours))
    header = [
        param_label(grid_key),
        "Quantity (units)",
        "Published",
        "Measured (mean ± 95% CI)",
        "Measured − published",
        f"Trend {along}",
    ]
    return ReportTable("published_vs_measured", PUBLISHED_TITLE, header, rows, notes)


def published_tables(summary: pd.DataFrame, grid_keys: list[str], df: pd.DataFrame) -> list[ReportTable]:
    """A published-versus-measured table for each published table whose grid key is the study's grid
    and whose dataset is the study's (the tutorial's numbers are for MNIST: a smoke or digits study
    gets its tables without the comparison)."""
    dataset = df["dataset"].iloc[0] if "dataset" in df and len(df) else None
    tables = [
        published_table(e, summary, df)
        for e in load_published().values()
        if [e["grid_key"]] == grid_keys and e["dataset"] == dataset
    ]
    return [t for t in tables if t is not None]
