"""Statistics of the report tables: confidence intervals over seeds, Welch's test, trend direction, and
the Pareto mask of a multi-objective study (numpy and scipy only: no optuna)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

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
