"""What a reader must know before trusting or comparing a study's numbers, read from its rows: runs
whose posterior collapsed, what limits comparison with published papers (the data and likelihood
behind −ELBO and NLL, the features behind FID), differences the confidence intervals cannot
resolve, and why some cells of a column are blank (the metric did not apply to their model). The thresholds are defined here, once; the wording is in prose.yaml."""

from __future__ import annotations

import math

import pandas as pd

from ..metrics import column_names as C
from ..metrics.declarations import METRICS_SKIPPED, declared_columns
from ..results.rows import grid_column
from .columns import cell_name, report_columns
from .prose import prose
from .settings import finished
from .summary import baseline_index, cell_groups

# A run's posterior collapsed (the decoder ignores z) when both hold: its KL (nats per test example,
# summed over latent dimensions) is below COLLAPSE_KL_NATS, and at most COLLAPSE_ACTIVE_UNITS latent
# dimensions are active (eval.active_threshold). docs/metrics.md states them.
COLLAPSE_KL_NATS = 0.1
COLLAPSE_ACTIVE_UNITS = 0


def collapsed(rows: pd.DataFrame) -> pd.Series:
    """For each row, whether its posterior collapsed (COLLAPSE_KL_NATS, COLLAPSE_ACTIVE_UNITS); False
    where either value is missing."""
    kl = pd.to_numeric(rows.get(C.KL), errors="coerce")
    units = pd.to_numeric(rows.get(C.ACTIVE_UNITS), errors="coerce")
    return (kl < COLLAPSE_KL_NATS) & (units <= COLLAPSE_ACTIVE_UNITS)


def collapse_note(df: pd.DataFrame, grid_keys: list[str]) -> str | None:
    """Under the lead table: the cells with collapsed runs (⚠), or that no run collapsed, with the
    thresholds. None when the finished rows lack KL or active units (e.g. a VQ-VAE)."""
    ok = finished(df)
    if ok.empty or any(c not in ok or ok[c].isna().all() for c in (C.KL, C.ACTIVE_UNITS)):
        return None
    rule = prose("collapse_rule", kl=COLLAPSE_KL_NATS, units=COLLAPSE_ACTIVE_UNITS)
    cells = []
    for values, g in cell_groups(ok, grid_keys):
        n = int(collapsed(g).sum())
        if n:
            cells.append(prose("collapse_cell", cell=cell_name(grid_keys, values) or "every run", n=n, runs=len(g)))
    if not cells:
        return prose("collapse_none", runs=len(ok), rule=rule)
    return prose("collapse_found", cells="; ".join(cells), rule=rule)


# ---------------------------------------------------------------------------------------------
# Comparison with papers

CLASSIFIER_EXTRACTOR = "vaebench-classifier-"  # the prefix of fid_extractor for vaebench's own classifier


def _param(ok: pd.DataFrame, key: str, default):
    """The rows' `param.<key>` column, the default where a row lacks it."""
    column = grid_column(key)
    return ok[column].where(ok[column].notna(), default) if column in ok else pd.Series(default, index=ok.index)


def paper_limits(df: pd.DataFrame) -> list[str]:
    """What limits comparing these rows with published papers, from the rows themselves: runs of
    grey-level MNIST (dataset mnist, dataset.binarize false) scored with the Bernoulli likelihood
    (binary cross-entropy), where papers use binarized MNIST; and FIDs on vaebench's own classifier's
    features (fid_extractor vaebench-classifier-…), where papers use Inception-v3."""
    ok = finished(df)
    if ok.empty:
        return []
    notes = []
    dataset = ok["dataset"] if "dataset" in ok else _param(ok, "dataset.name", None)
    grey = (
        (dataset == "mnist")
        & ~_param(ok, "dataset.binarize", False).astype(bool)
        & (_param(ok, "objective.likelihood", "bernoulli") == "bernoulli")
    )
    if grey.any():
        which = "" if grey.all() else prose("paper_limits_some", runs=int(grey.sum()), total=len(ok)) + " "
        notes.append(prose("paper_limits_grey_mnist", which=which))
    extractors = sorted(ok[C.FID_EXTRACTOR].dropna().unique()) if C.FID_EXTRACTOR in ok else []
    classifier = [e for e in extractors if str(e).startswith(CLASSIFIER_EXTRACTOR)]
    if classifier and C.FID in ok and ok.loc[ok[C.FID_EXTRACTOR].isin(classifier), C.FID].notna().any():
        notes.append(prose("paper_limits_classifier_fid", extractors=", ".join(f"`{e}`" for e in classifier)))
    return notes


# ---------------------------------------------------------------------------------------------
# Differences the intervals cannot resolve


def unresolved_note(summary: pd.DataFrame, grid_keys: list[str], headline: str) -> str | None:
    """⚠ under the table that holds the p column: the cells whose difference from the baseline cell
    on the `headline` metric is smaller than the 95% CI half-width of either cell's mean (their
    intervals each reach the other's mean), and a word on n = 2 (t = 12.7 standard errors) when a
    flagged cell has two runs. None when every difference is resolved or none can be measured."""
    base = baseline_index(summary, grid_keys)
    if base is None or f"{headline}.mean" not in summary:
        return None
    metric = report_columns()[headline]
    b = summary.iloc[base]
    flagged, two = [], False
    for i, r in summary.iterrows():
        if i == base:
            continue
        diff = r[f"{headline}.mean"] - b[f"{headline}.mean"]
        halves = [r[f"{headline}.ci"], b[f"{headline}.ci"]]
        if math.isnan(diff) or any(math.isnan(h) for h in halves) or max(halves) <= abs(diff):
            continue
        name = cell_name(grid_keys, [r[k] for k in grid_keys])
        flagged.append(
            prose("unresolved_cell", cell=name, diff=f"{diff:+{metric.fmt}}", ci=f"{max(halves):{metric.fmt}}")
        )
        two = two or 2 in (int(r[f"{headline}.n"]), int(b[f"{headline}.n"]))
    if not flagged:
        return None
    baseline = cell_name(grid_keys, [b[k] for k in grid_keys]) or "the first cell"
    return prose(
        "unresolved",
        metric=metric.name,
        baseline=baseline,
        cells="; ".join(flagged),
        two=prose("unresolved_two_runs") if two else "",
    )


# ---------------------------------------------------------------------------------------------
# Blank cells


def _skip_reasons(rows: pd.DataFrame, metric: str) -> list[str]:
    """The reasons the rows' `metrics_skipped` give for `metric` ("<metric>: <reason>", or
    "<metric> (<part>): <reason>" for one part of it), each once, in first-seen order."""
    reasons = []
    for skipped in rows[METRICS_SKIPPED] if METRICS_SKIPPED in rows else []:
        for entry in skipped if skipped is not None else []:
            name, _, reason = str(entry).partition(": ")
            if (name == metric or name.startswith(metric + " (")) and reason not in reasons:
                reasons.append(reason)
    return reasons


def skipped_note(df: pd.DataFrame, grid_keys: list[str], keys: list[str]) -> str | None:
    """Under the all-metrics table: for each of its columns (`keys`) that some cells measured and
    others did not, the blank cells and why (the reason their runs' `metrics_skipped` records for the
    metric that declares the column), cells with the same reason named together. None when no
    column is blank in part."""
    ok = finished(df)
    owners = declared_columns()
    groups = cell_groups(ok, grid_keys)
    parts = []
    for key in keys:
        if key not in ok or key not in owners:
            continue
        measured = [bool(g[key].notna().any()) for _, g in groups]
        if all(measured) or not any(measured):
            continue
        metric = owners[key][0]  # the metric that declares the column
        by_reason: dict[str, list[str]] = {}
        for (values, g), m in zip(groups, measured):
            if not m:
                reason = "; ".join(_skip_reasons(g, metric)) or prose("skipped_no_reason")
                by_reason.setdefault(reason, []).append(cell_name(grid_keys, values) or "every run")
        blanks = "; ".join(prose("skipped_cells", cells=", ".join(c), reason=r) for r, c in by_reason.items())
        parts.append(prose("skipped_column", column=report_columns()[key].name, blanks=blanks))
    return prose("skipped", parts=" ".join(parts)) if parts else None
