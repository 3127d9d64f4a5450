"""Published numbers (published.yaml) beside the measured ones.

The tutorial's tables (`published_table`): for each published table whose grid key is the study's
grid, the grid values present in both, their difference, and whether the measured trend along the
rows runs with or against the tutorial's (and the objective's). A measured trend against the
tutorial's is printed as a contradiction only when every run of the compared cells converged under
early stopping, or when the quantity is fixed by the configuration (CONFIGURED) or the runs follow
the direction the objective fixes for it (the entry's `expected` trend); otherwise as inconclusive at
this budget.

Other authors' orderings (`ordering_table`, entries of `kind: ordering`): numbers whose settings
differ too much from the study's for their values to be compared, so only the order of the models is:
Kendall's τ between the published values and the measured means, and each pair of models the two
order differently, as a reversal only when the pair's 95% intervals are disjoint, and as a
contradiction only when every compared run converged.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import yaml
from scipy import stats

from ..metrics import column_names as C
from ..results.rows import grid_column
from .columns import MISSING, Cell, ReportTable, cell_name, format_value, param_label, report_columns
from .convergence import all_converged, shortfall
from .layouts import fid_features
from .prose import prose
from .settings import finished
from .stats import intervals_overlap, trend_sign
from .summary import cell_groups, same_value, summary_text
from .titles import ORDERING_TITLE, PUBLISHED_TITLE

PUBLISHED_PATH = Path(__file__).with_name("published.yaml")
TREND, ORDERING = "trend", "ordering"  # an entry's `kind` (a tutorial table when absent)
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
    entries = [e for e in load_published().values() if e["dataset"] == dataset]
    tables = [
        published_table(e, summary, df)
        for e in entries
        if e.get("kind", TREND) == TREND and [e["grid_key"]] == grid_keys
    ]
    tables += [ordering_table(e, summary, df, grid_keys) for e in entries if e.get("kind") == ORDERING]
    return [t for t in tables if t is not None]


# ---------------------------------------------------------------------------------------------
# Other authors' orderings


def _ranks(values: list[float], better: str) -> list[int]:
    """1 for the best value (the lowest when lower is better), ties sharing the better rank."""
    sign = -1.0 if better == "↑" else 1.0
    return [1 + sum(sign * w < sign * v for w in values) for v in values]


def ordering_table(entry: dict, summary: pd.DataFrame, df: pd.DataFrame, grid_keys: list[str]) -> ReportTable | None:
    """The study's cells whose model (the `match` parameter) has a published value, beside it: the
    published value, its settings and rank, the measured mean ± 95% CI (the cell's `summary` row)
    and rank, then the verdict on the order (module docstring). None when fewer than two such cells
    measured the quantity."""
    ok = finished(df)
    key, quantity = grid_column(entry["match"]), entry["quantity"]
    col = report_columns()[quantity]
    if key not in ok or f"{quantity}.n" not in summary:
        return None
    matched = []  # (published row, cell name, the cell's summary row); summary rows are in cell_groups order
    for (values, g), (_, cell) in zip(cell_groups(ok, grid_keys), summary.iterrows()):
        pub = next((p for p in entry["rows"] if same_value(g[key].iloc[0], p["model"])), None)
        if pub is not None and cell[f"{quantity}.n"] > 0:
            matched.append((pub, cell_name(grid_keys, values), cell))
    if len(matched) < 2:
        return None
    published = [p["value"] for p, _, _ in matched]
    means = [c[f"{quantity}.mean"] for _, _, c in matched]
    pub_rank, our_rank = _ranks(published, col.better), _ranks(means, col.better)
    rows = [
        [
            Cell(name),
            Cell(str(p["model"])),
            Cell(f"{p['value']:{col.fmt}}"),
            Cell(p["settings"]),
            Cell(str(pr)),
            Cell(summary_text(c, col)),
            Cell(str(mr)),
        ]
        for (p, name, c), pr, mr in zip(matched, pub_rank, our_rank)
    ]
    source = entry["source"]
    notes = [
        prose(
            "ordering_source",
            file=source["file"],
            section=source["section"],
            quantity=col.name,
            match=entry.get("match_label", param_label(entry["match"])),
        ),
        _ordering_verdict(matched, quantity, pub_rank, our_rank, published, means),
    ]
    notes += [entry["note"]] if entry.get("note") else []
    header = [
        "Model" if grid_keys == ["variant"] else "Cell",  # a named variant is one model here
        entry.get("match_label", param_label(entry["match"])),
        f"Published {col.label}",
        "Published settings",
        "Published rank",
        f"Measured {col.label} (mean ± 95% CI)",
        "Measured rank",
    ]
    return ReportTable(f"ordering_{quantity}", ORDERING_TITLE.format(quantity=col.name), header, rows, notes)


def _ordering_verdict(matched, quantity: str, pub_rank, our_rank, published, means) -> str:
    """Kendall's τ-b of the two orders, and the pairs they order differently: within the 95% CIs
    (not resolved by these seeds), or a reversal, printed as a contradiction only when every run of
    the compared cells converged."""
    tau = float(stats.kendalltau(published, means).statistic) if len(set(means)) > 1 else math.nan
    within, reversed_ = [], []
    for i in range(len(matched)):
        for j in range(i + 1, len(matched)):
            if pub_rank[i] == pub_rank[j] or our_rank[i] == our_rank[j]:
                continue  # a tie on either side orders nothing
            if (pub_rank[i] < pub_rank[j]) == (our_rank[i] < our_rank[j]):
                continue
            (_, a, ca), (_, b, cb) = matched[i], matched[j]
            first, second = (a, b) if our_rank[i] < our_rank[j] else (b, a)
            pair = prose("ordering_pair", first=first, second=second)
            mean, ci = f"{quantity}.mean", f"{quantity}.ci"
            disjoint = not intervals_overlap(ca[mean], ca[ci], cb[mean], cb[ci])
            (reversed_ if disjoint else within).append(pair)
    tau_text = "undefined" if math.isnan(tau) else f"{tau:+.2f}"
    if not within and not reversed_:
        return prose("ordering_agrees", tau=tau_text, n=len(matched))
    cells = [c for _, _, c in matched]
    text = prose("ordering_differs", tau=tau_text, n=len(matched))
    if within:
        text += " " + prose("ordering_within", pairs="; ".join(within))
    if reversed_ and all_converged(cells):
        text += " " + prose("ordering_contradicts", pairs="; ".join(reversed_))
    elif reversed_:
        text += " " + prose("ordering_inconclusive", pairs="; ".join(reversed_), shortfall=shortfall(cells))
    return text
