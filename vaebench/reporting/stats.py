"""Statistics of the report tables: confidence intervals over seeds, Welch's test, trend direction, the
Pareto mask of a multi-objective study, whether two intervals overlap, rank correlation, and the
one-way ANOVA share of a metric's variance between cells and within them (numpy and scipy only: no
optuna)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


def _finite(values) -> np.ndarray:
    """The values as a float array with NaN (unmeasured runs) left out."""
    x = np.asarray(values, dtype=float).ravel()
    return x[~np.isnan(x)]


def ci95(values) -> tuple[float, float, int]:
    """(mean, half-width, n) of the Student-t 95% confidence interval of the mean over the values.

    half-width = t_{0.975, n-1} · s / √n with s the sample standard deviation (ddof = 1), in the
    values' own units; NaN when n < 2 (one run has no spread). NaN values are left out of n; the
    mean of no values is NaN.
    """
    x = _finite(values)
    n = len(x)
    mean = float(np.mean(x)) if n else math.nan
    if n < 2:
        return mean, math.nan, n
    half = float(stats.t.ppf(0.975, n - 1) * np.std(x, ddof=1) / math.sqrt(n))
    return mean, half, n


def welch_p(a, b) -> float:
    """Two-sided p-value of Welch's t-test (unequal variances) that groups a and b share a mean.

    NaN when either group has fewer than 2 values or both have zero variance (the test is undefined).
    """
    x, y = _finite(a), _finite(b)
    if len(x) < 2 or len(y) < 2 or (np.var(x) == 0 and np.var(y) == 0):
        return math.nan
    with warnings.catch_warnings():  # one constant group is fine; scipy warns of lost precision
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(x, y, equal_var=False).pvalue)


def trend_sign(values) -> int:
    """Direction of the values along their order: the sign of Spearman's rank correlation with the
    position (+1 rising, -1 falling); 0 with fewer than 2 values, a constant or no monotone trend."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2 or np.isnan(x).any() or np.ptp(x) == 0:
        return 0
    rho = stats.spearmanr(np.arange(len(x)), x).statistic
    return int(np.sign(rho)) if np.isfinite(rho) else 0


def pareto_mask(values: Sequence[Sequence[float]], directions: Sequence[str]) -> list[bool]:
    """For each point, True when no other point is at least as good in every objective and better
    in one (`directions`: 'minimize' / 'maximize' per objective)."""
    sign = [1.0 if d == "minimize" else -1.0 for d in directions]
    pts = [[s * v for s, v in zip(sign, row)] for row in values]

    def dominates(a, b) -> bool:
        return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))

    return [not any(dominates(q, p) for j, q in enumerate(pts) if j != i) for i, p in enumerate(pts)]


def intervals_overlap(mean_a: float, half_a: float, mean_b: float, half_b: float) -> bool:
    """Whether two confidence intervals (mean ± half-width) share a point: |a − b| ≤ half_a + half_b.
    An interval of unknown width (NaN: one run) cannot be told apart from anything: True."""
    if any(math.isnan(v) for v in (mean_a, half_a, mean_b, half_b)):
        return True
    return abs(mean_a - mean_b) <= half_a + half_b


def rank_correlation(a, b) -> tuple[float, int]:
    """(Spearman's ρ, n) of two equally long value sequences over the positions where both have a
    value (scipy.stats.spearmanr: Pearson's r of the ranks, ties given their mean rank). ρ is NaN
    with fewer than 3 such pairs or when either side is constant there."""
    x, y = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    both = ~(np.isnan(x) | np.isnan(y))
    x, y = x[both], y[both]
    n = len(x)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, n
    return float(stats.spearmanr(x, y).statistic), n


@dataclass(frozen=True)
class VarianceShares:
    """Where one metric's variance over runs comes from (`variance_shares`): fractions of its total
    sum of squares, which add up to 1 (between + within; model + strength = between)."""

    runs: int  # N: runs with a value
    cells: int  # k: cells (groups) with a value
    between: float  # η² = SS_between / SS_total: between the cells' means
    model: float  # SS between the models' means / SS_total (NaN with fewer than 2 models)
    strength: float  # between - model: the cells' means around their model's mean
    within: float  # SS_within / SS_total: the runs around their cell's mean (the seeds)
    chance: float  # (k − 1) / (N − 1): the expected η² when the cells do not differ (normal errors)
    f: float  # the one-way ANOVA F statistic: (SS_between / (k − 1)) / (SS_within / (N − k))
    p: float  # P(F_{k−1, N−k} ≥ f): the F test that every cell has the same mean


def _ss_between(values: np.ndarray, groups: list) -> float:
    """Σ over groups of n_g · (mean_g − grand mean)²."""
    grand = values.mean()
    labels = np.asarray(groups, dtype=object)
    return float(sum((labels == g).sum() * (values[labels == g].mean() - grand) ** 2 for g in dict.fromkeys(groups)))


def variance_shares(values, cells: list, models: list | None = None) -> VarianceShares:
    """A one-way ANOVA decomposition of `values` (one per run) by `cells` (each run's cell label),
    with the between-cell part split by `models` (each run's model; cells nest in models, so the
    split is exact): SS_total = Σ(y − ȳ)², SS_between = Σ_cells n_c(ȳ_c − ȳ)², SS_within = SS_total −
    SS_between, SS_model = Σ_models n_m(ȳ_m − ȳ)². Runs without a value (NaN) are left out. Shares
    are NaN when SS_total is 0 (every run equal); F and p are NaN with fewer than 2 cells or no
    degrees of freedom within cells."""
    y = np.asarray(values, dtype=float).ravel()
    keep = ~np.isnan(y)
    y = y[keep]
    cells = [c for c, k in zip(cells, keep) if k]
    models = None if models is None else [m for m, k in zip(models, keep) if k]
    n, k = len(y), len(set(cells))
    total = float(((y - y.mean()) ** 2).sum()) if n else math.nan
    between = _ss_between(y, cells) if n else math.nan
    within = max(total - between, 0.0) if n else math.nan
    model = _ss_between(y, models) if n and models is not None and len(set(models)) > 1 else math.nan
    share = (lambda ss: ss / total) if n and total > 0 else (lambda ss: math.nan)
    f = p = math.nan
    if k >= 2 and n - k >= 1:
        if within > 0:
            f = (between / (k - 1)) / (within / (n - k))
            p = float(stats.f.sf(f, k - 1, n - k))
        elif between > 0:
            f, p = math.inf, 0.0
    return VarianceShares(
        runs=n,
        cells=k,
        between=share(between),
        model=share(model),
        strength=share(max(between - model, 0.0)) if not math.isnan(model) else math.nan,
        within=share(within),
        chance=(k - 1) / (n - 1) if n > 1 else math.nan,
        f=f,
        p=p,
    )
