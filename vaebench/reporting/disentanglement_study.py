"""The report of a disentanglement study (issue 27; Locatello et al. 2019, "Challenging common
assumptions in the unsupervised learning of disentangled representations", at this machine's scale):
the disentanglement metrics per model and strength with 95% CIs over seeds, the rank correlation
between the metrics over runs (the paper's Figure 2), each metric's variance split into model,
strength and seed (a one-way ANOVA over the grid's cells), and whether the paper's two findings hold.

Which study gets it is read from its rows, as for the other families (family_tables.py): finished
runs that measured at least MIN_METRICS of STUDY_METRICS (more than MIG and its two SAPs, the
tutorial's Disentanglement column) over at least two grid cells. A cell is one model at one strength:
its model is the value of the parameters that differ between cells and are not numbers (an objective
estimator, a model family; `objective.estimator` when none differs), its strength the numeric
parameters that differ between the cells of its model (β, a TC weight, λ_od, C_max), whatever the
grid's keys (named variants or a product grid). The wording is in prose.yaml.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from ..metrics import column_names as C
from ..objectives.training import estimator_label
from ..results.rows import PARAM_PREFIX, grid_column
from .columns import COLUMNS, MISSING, Cell, Layout, ReportTable, format_value, param_label, relabel
from .layouts import PER_FACTOR_NAMES, disentanglement_sentence
from .prose import prose
from .settings import finished, hashable
from .stats import VarianceShares, ci95, intervals_overlap, rank_correlation, variance_shares
from .summary import best_rows, cell_groups, summarize, summary_table
from .titles import RANK_CORRELATION_TITLE, VARIANCE_SOURCES_TITLE

# The study's metrics in the report's order: supervised scores, then the unsupervised ones.
STUDY_METRICS = (
    C.MIG,
    C.SAP_DLIB,
    C.SAP,
    C.DCI_DISENTANGLEMENT,
    C.DCI_COMPLETENESS,
    C.DCI_INFORMATIVENESS,
    C.FACTORVAE_SCORE,
    C.BETAVAE_SCORE,
    C.MODULARITY,
    C.EXPLICITNESS,
    C.GAUSSIAN_TOTAL_CORRELATION,
    C.MUTUAL_INFO_SCORE,
)
# Locatello et al.'s six metrics (their Figure 2), SAP in disentanglement_lib's convention: finding (b).
PAPER_METRICS = (C.BETAVAE_SCORE, C.FACTORVAE_SCORE, C.MIG, C.DCI_DISENTANGLEMENT, C.MODULARITY, C.SAP_DLIB)
MIN_METRICS = 4  # more than MIG, SAP (dlib) and SAP (by kind): a study of the metrics, not the tutorial's column
MODEL_KEY = "objective.estimator"  # a cell's model when no non-numeric parameter differs between cells
AGREE_RHO = 0.5  # two metrics agree when their Spearman ρ over runs is at least this
LISTED_PAIRS = 5  # finding (b) names at most this many of the pairs below AGREE_RHO, the lowest first
MODEL, STRENGTH = "model", "strength"  # the lead table's first two columns (summary keys)

LAYOUT_COLUMNS = tuple(relabel(m) for m in STUDY_METRICS)


def measured_metrics(df: pd.DataFrame) -> list[str]:
    """The STUDY_METRICS some finished run of `df` has a value of, in STUDY_METRICS order."""
    ok = finished(df)
    return [m for m in STUDY_METRICS if m in ok and ok[m].notna().any()]


def is_disentanglement_study(df: pd.DataFrame) -> bool:
    """Whether the rows get this report: at least MIN_METRICS study metrics measured, over at least
    two grid cells with finished runs."""
    if len(measured_metrics(df)) < MIN_METRICS:
        return False
    return len(cell_groups(finished(df), list(df["grid_keys"].iloc[0]))) >= 2


def metric_name(metric: str) -> str:
    """A metric as the tables name it, without units: "MIG", "SAP (dlib)", "Gaussian TC"."""
    return PER_FACTOR_NAMES.get(metric, COLUMNS[metric].name)


def higher_is_better(metric: str) -> bool:
    return COLUMNS[metric].better != "↓"


# ---------------------------------------------------------------------------------------------
# Cells: model and strength


@dataclass(frozen=True)
class StudyCell:
    """One grid cell: its grid values, model, strength (text) and finished runs."""

    values: tuple
    model: str
    strength: str
    runs: pd.DataFrame


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def study_cells(df: pd.DataFrame) -> list[StudyCell]:
    """The grid's cells with finished runs, in grid order, each with its model and strength (module
    docstring)."""
    ok = finished(df)
    groups = cell_groups(ok, list(df["grid_keys"].iloc[0]))
    firsts = [g.iloc[0] for _, g in groups]
    params = [c for c in ok.columns if c.startswith(PARAM_PREFIX)]
    varying = [c for c in params if len({hashable(r[c]) for r in firsts}) > 1]
    model_keys = [c for c in varying if any(not _is_number(v) for r in firsts if (v := hashable(r[c])) is not None)]
    if not model_keys and grid_column(MODEL_KEY) in ok:
        model_keys = [grid_column(MODEL_KEY)]
    numeric = [c for c in varying if c not in model_keys]

    def model_of(r) -> str:
        if model_keys == [grid_column(MODEL_KEY)]:  # an estimator: the model it trains, as papers name it
            return estimator_label(str(hashable(r[model_keys[0]])))
        if len(model_keys) == 1:
            return format_value(hashable(r[model_keys[0]]))
        return ", ".join(f"{param_label(c[len(PARAM_PREFIX) :])}={format_value(hashable(r[c]))}" for c in model_keys)

    models = [model_of(r) for r in firsts]
    cells = []
    for (values, g), r, model in zip(groups, firsts, models):
        mates = [f for f, m in zip(firsts, models) if m == model]
        keys = [c for c in numeric if len({hashable(f[c]) for f in mates}) > 1]
        strength = ", ".join(f"{param_label(c[len(PARAM_PREFIX) :])}={format_value(hashable(r[c]))}" for c in keys)
        cells.append(StudyCell(values, model or MISSING, strength or MISSING, g))
    return cells


def _runs(cells: list[StudyCell]) -> pd.DataFrame:
    """Every finished run of the cells, with its cell's position (`_cell`) and model (`_model`)."""
    return pd.concat([c.runs.assign(_cell=i, _model=c.model) for i, c in enumerate(cells)])


# ---------------------------------------------------------------------------------------------
# The tables


def metrics_table(df: pd.DataFrame, grid_keys: list[str], layout: Layout, title: str) -> ReportTable:
    """The lead table: per cell its model and strength, each measured study metric's mean ± 95% CI
    over seeds (best marked), the p column (Welch, on the layout's headline metric, against the
    first cell) and n. A Layout's `lead`."""
    measured = set(measured_metrics(df))
    columns = [c for c in layout.columns if c.key in measured]
    summary = summarize(df, grid_keys, columns)
    cells = study_cells(df)
    summary[MODEL], summary[STRENGTH] = [c.model for c in cells], [c.strength for c in cells]
    notes = [disentanglement_sentence(df), _metrics_note(df, measured)]
    return summary_table(layout.key, title, summary, [MODEL, STRENGTH], columns, layout, notes)


def _metrics_note(df: pd.DataFrame, measured: set[str]) -> str:
    """Which other metrics the table holds and the representation of the unsupervised ones."""
    ok = finished(df)
    kinds = ok[C.UNSUPERVISED_REPRESENTATION].dropna().unique() if C.UNSUPERVISED_REPRESENTATION in ok else []
    representation = ", ".join(sorted(kinds)) or MISSING
    others = [metric_name(m) for m in STUDY_METRICS if m in measured and m not in (C.MIG, C.SAP, C.SAP_DLIB)]
    return prose("study_metrics_note", metrics=", ".join(others) or MISSING, representation=representation)


def rank_correlation_matrix(df: pd.DataFrame) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(metrics, ρ, n): Spearman's ρ between every pair of measured study metrics over the finished
    runs that have both (k x k; 1 on the diagonal), and those runs' counts. Lower-is-better metrics
    enter negated, so a positive ρ means two metrics agree on which runs are better."""
    ok = finished(df)
    metrics = measured_metrics(df)
    values = {m: ok[m].astype(float).to_numpy() * (1.0 if higher_is_better(m) else -1.0) for m in metrics}
    k = len(metrics)
    rho, n = np.eye(k), np.zeros((k, k), dtype=int)
    for i, j in combinations(range(k), 2):
        r, count = rank_correlation(values[metrics[i]], values[metrics[j]])
        rho[i, j] = rho[j, i] = r
        n[i, j] = n[j, i] = count
    for i, m in enumerate(metrics):
        n[i, i] = int(ok[m].notna().sum())
    return metrics, rho, n


def oriented_name(metric: str) -> str:
    """A metric's name as the correlation matrix shows it: "−Gaussian TC" for a lower-is-better one."""
    return metric_name(metric) if higher_is_better(metric) else f"−{metric_name(metric)}"


def noise_rho(runs: int) -> float:
    """|ρ| that two independent metrics exceed in 5% of studies of `runs` runs: 1.96/√(runs − 1)
    (Spearman's ρ has variance 1/(runs − 1) under independence)."""
    return 1.96 / math.sqrt(runs - 1) if runs > 1 else math.nan


def correlation_table(df: pd.DataFrame) -> ReportTable:
    """The rank-correlation matrix between the metrics (rank_correlation_matrix), ρ to 2 decimals."""
    metrics, rho, n = rank_correlation_matrix(df)
    names = [oriented_name(m) for m in metrics]
    rows = [
        [Cell(name)] + [Cell("1" if i == j else MISSING if math.isnan(r) else f"{r:.2f}") for j, r in enumerate(row)]
        for i, (name, row) in enumerate(zip(names, rho))
    ]
    runs = len(finished(df))
    negated = [metric_name(m) for m in metrics if not higher_is_better(m)]
    note = prose(
        "rank_correlation_note",
        runs=runs,
        fewest=int(n.min()) if len(metrics) else 0,
        negated=", ".join(negated) or MISSING,
        noise=f"{noise_rho(runs):.2f}",
    )
    return ReportTable("rank_correlations", RANK_CORRELATION_TITLE, ["Metric", *names], rows, [note])


def metric_shares(df: pd.DataFrame) -> dict[str, VarianceShares]:
    """Each measured study metric's variance shares over the finished runs (stats.variance_shares:
    cells = the grid's cells, models = their models)."""
    runs = _runs(study_cells(df))
    return {
        m: variance_shares(runs[m].astype(float), list(runs["_cell"]), list(runs["_model"]))
        for m in measured_metrics(df)
    }


def _share(x: float) -> str:
    return MISSING if math.isnan(x) else f"{x:.2f}"


def _p(p: float) -> str:
    return MISSING if math.isnan(p) else "< 0.001" if p < 0.001 else f"{p:.3f}"


VARIANCE_HEADER = [
    "Metric",
    "Model",
    "Strength (within model)",
    "Between cells (η²)",
    "Seed (within cells)",
    "η² by chance",
    "p (F test)",
    "runs",
    "cells",
]


def variance_table(df: pd.DataFrame) -> ReportTable:
    """Per metric, the shares of its variance due to the model, the strength within the model and
    the seed (within cells), the chance level of η² and the F test of equal cell means."""
    rows = []
    for m, s in metric_shares(df).items():
        cells = [s.model, s.strength, s.between, s.within, s.chance]
        rows.append([Cell(metric_name(m)), *(Cell(_share(x)) for x in cells), Cell(_p(s.p))])
        rows[-1] += [Cell(str(s.runs)), Cell(str(s.cells))]
    return ReportTable("variance_sources", VARIANCE_SOURCES_TITLE, VARIANCE_HEADER, rows, [prose("variance_note")])


def study_extra_tables(df: pd.DataFrame, grid_keys: list[str]) -> list[ReportTable]:
    """The correlation matrix and the variance table, for a disentanglement study (FAMILY_TABLES)."""
    if not is_disentanglement_study(df):
        return []
    return [correlation_table(df), variance_table(df)]


# ---------------------------------------------------------------------------------------------
# Locatello et al.'s findings, from the numbers


def _verdict(kind: str) -> str:
    return {
        "holds": prose("verdict_holds"),
        "partly": prose("verdict_partly"),
        "contradicted": prose("verdict_contradicted"),
    }[kind]


def _percent(x: float) -> str:
    return MISSING if math.isnan(x) else f"{x:.0%}"


def best_model_per_metric(df: pd.DataFrame) -> list[tuple[str, str, bool]]:
    """For each measured study metric: (metric, the model of the cell with the best mean, whether
    that cell's 95% CI is clear of the CI of every cell of every other model)."""
    cells = study_cells(df)
    out = []
    for m in measured_metrics(df):
        stats = [ci95(c.runs[m].astype(float)) for c in cells]
        means = [s[0] for s in stats]
        best = best_rows(means, COLUMNS[m].better)
        if not best:
            continue
        b = min(best)
        clear = not any(
            intervals_overlap(means[b], stats[b][1], s[0], s[1])
            for c, s in zip(cells, stats)
            if c.model != cells[b].model and not math.isnan(s[0])
        )
        out.append((m, cells[b].model, clear))
    return out


def models_finding(df: pd.DataFrame) -> str:
    """Finding (a), no model is consistently better once seeds are accounted for: contradicted when
    one model's best cell is clear of every other model's on more than half the metrics, holds when
    it is so on none, else partly; with the variance shares (metric_shares) behind it."""
    cells = study_cells(df)
    models = sorted({c.model for c in cells})
    if len(models) < 2:
        return prose("finding_models_one_model", model=models[0] if models else MISSING)
    best = best_model_per_metric(df)
    clear = [(m, model) for m, model, c in best if c]
    wins = pd.Series([model for _, model in clear], dtype=object).value_counts()
    if not clear:
        kind = "holds"
    elif wins.iloc[0] > len(best) / 2:
        kind = "contradicted"
    else:
        kind = "partly"
    shares = list(metric_shares(df).values())

    def median(attr: str) -> float:
        values = [getattr(s, attr) for s in shares if not math.isnan(getattr(s, attr))]
        return float(np.median(values)) if values else math.nan

    seeds = [s.within for s in shares if not math.isnan(s.within)]
    return prose(
        "finding_models",
        verdict=_verdict(kind),
        clear=len(clear),
        metrics=len(best),
        clear_list="; ".join(f"{metric_name(m)}: {model}" for m, model in clear) or MISSING,
        overlap=len(best) - len(clear),
        overlap_list=", ".join(metric_name(m) for m, _, c in best if not c) or MISSING,
        seed=_percent(median("within")),
        seed_lo=_percent(min(seeds) if seeds else math.nan),
        seed_hi=_percent(max(seeds) if seeds else math.nan),
        model=_percent(median("model")),
        strength=_percent(median("strength")),
        chance=_percent(median("chance")),
        cells=len(cells),
        runs=len(finished(df)),
    )


def metrics_finding(df: pd.DataFrame) -> str:
    """Finding (b), the metrics disagree, over the pairs of the paper's metrics measured here:
    contradicted when every pair's ρ reaches AGREE_RHO, holds when at least half fall below it,
    else partly; with the range, the median and the LISTED_PAIRS lowest pairs."""
    metrics, rho, _ = rank_correlation_matrix(df)
    paper = [m for m in PAPER_METRICS if m in metrics]
    pairs = [
        (a, b, rho[metrics.index(a), metrics.index(b)])
        for a, b in combinations(paper, 2)
        if not math.isnan(rho[metrics.index(a), metrics.index(b)])
    ]
    if not pairs:
        return prose("finding_metrics_too_few", metrics=", ".join(metric_name(m) for m in paper) or MISSING)
    values = [r for _, _, r in pairs]
    weak = sorted((p for p in pairs if p[2] < AGREE_RHO), key=lambda p: p[2])
    kind = "contradicted" if not weak else "holds" if len(weak) >= len(pairs) / 2 else "partly"
    runs = len(finished(df))
    return prose(
        "finding_metrics",
        verdict=_verdict(kind),
        pairs=len(pairs),
        names=", ".join(metric_name(m) for m in paper),
        lo=f"{min(values):.2f}",
        hi=f"{max(values):.2f}",
        median=f"{float(np.median(values)):.2f}",
        weak=len(weak),
        agree=AGREE_RHO,
        weak_list="; ".join(f"{metric_name(a)}–{metric_name(b)} {r:.2f}" for a, b, r in weak[:LISTED_PAIRS])
        + ("; …" if len(weak) > LISTED_PAIRS else "")
        or "none",
        negative=sum(r < 0 for r in values),
        noise=f"{noise_rho(runs):.2f}",
        runs=runs,
    )


def scale_caveat(df: pd.DataFrame) -> str:
    """How far this study's scale is from the paper's: images, epochs, seeds, and what few seeds do
    to the intervals."""
    from scipy import stats

    ok = finished(df)
    cells = study_cells(df)
    seeds = int(np.median([len(c.runs) for c in cells]))
    size = ok[grid_column("dataset.image_size")].dropna() if grid_column("dataset.image_size") in ok else []
    sizes = sorted({int(s) for s in size})
    data = f"`{', '.join(sorted(ok['dataset'].dropna().unique()))}`"
    if sizes:
        data += " (" + ", ".join(f"{s}×{s} px" for s in sizes) + ")"
    return prose(
        "finding_scale",
        runs=len(ok),
        data=data,
        epochs=int(ok["epochs_completed"].median()),
        seeds=seeds,
        cells=len(cells),
        models=len({c.model for c in cells}),
        t=f"{stats.t.ppf(0.975, seeds - 1):.1f}" if seeds > 1 else MISSING,
    )


def study_findings(df: pd.DataFrame) -> list[str]:
    """The headline paragraphs (FAMILY_FINDINGS): findings (a) and (b) and the scale caveat."""
    if not is_disentanglement_study(df):
        return []
    return [prose("finding_intro"), models_finding(df), metrics_finding(df), scale_caveat(df)]


LAYOUT = Layout(
    "disentanglement_study",
    LAYOUT_COLUMNS,
    labels={MODEL: "Model", STRENGTH: "Strength"},
    headline=C.MIG,
    lead=metrics_table,
)
