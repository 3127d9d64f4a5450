"""Summary tables from results rows: one row per grid cell, mean ± std over seeds, n shown."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..metrics import columns as C
from ..results import PARAM_PREFIX, grid_column


@dataclass(frozen=True)
class Column:
    key: str  # results column
    label: str  # header, with units
    fmt: str  # format of mean and std
    better: str = ""  # "↓", "↑" or "" (no preferred direction)


SECONDS_PER_EPOCH = "seconds_per_epoch"  # derived: train_seconds / epochs_completed

# The tutorial's β-VAE table leads with Reconstruction MSE and KL Divergence; the rest follow.
METRIC_COLUMNS = [
    Column(C.RECON_MSE, "Recon MSE (per pixel)", ".4f", "↓"),
    Column(C.KL, "KL (nats)", ".2f"),
    Column(C.NEG_ELBO, "−ELBO (nats)", ".2f", "↓"),
    Column(C.RECON_NLL, "Recon NLL (nats)", ".2f", "↓"),
    Column(C.SSIM, "SSIM", ".4f", "↑"),
    Column(C.FID, "FID samples", ".2f", "↓"),
    Column(C.FID_RECON, "FID recon", ".2f", "↓"),
    Column("nll_is", "NLL (IS, nats)", ".2f", "↓"),
    Column(C.ACTIVE_UNITS, "Active units", ".1f"),
    Column("n_params", "Parameters", ",.0f"),
    Column(SECONDS_PER_EPOCH, "Time/epoch (s)", ".2f"),
]

PARAM_LABELS = {
    "objective.beta": "β",
    "objective.likelihood": "Likelihood",
    "model.latent_dim": "Latent dim",
    "model.hidden_dim": "Hidden dim",
    "model.depth": "Depth",
    "model.name": "Architecture",
    "train.lr": "Learning rate",
    "train.batch_size": "Batch size",
    "train.epochs": "Epochs",
    "variant": "Variant",
}

# Which tutorial table a study mirrors, by the parameters its grid varies.
TABLE_TITLES = {
    ("objective.beta",): "β-VAE trade-offs",
    ("model.latent_dim",): "Latent dimension impact",
    ("objective.likelihood",): "Loss comparison",
}
# Studies whose grid is a list of named variants say by their name which table they mirror.
STUDY_TITLES = {
    "architecture": "Architecture comparison",
    "schedule": "Annealing schedules",
}


def table_title(grid_keys: list[str], study: str = "") -> str:
    return TABLE_TITLES.get(tuple(grid_keys)) or STUDY_TITLES.get(study, "Sweep results")


def param_label(key: str) -> str:
    return PARAM_LABELS.get(key, key)


def summarize(df: pd.DataFrame, grid_keys: list[str]) -> pd.DataFrame:
    """One row per cell of the grid (status 'ok' runs only), in the spec's grid order: for each
    metric its mean, sample standard deviation (ddof=1; NaN when n = 1) and n."""
    ok = df[df["status"] == "ok"].assign(**{SECONDS_PER_EPOCH: lambda d: d["train_seconds"] / d["epochs_completed"]})
    keys = [grid_column(k) for k in grid_keys]
    groups = ok.groupby(keys, sort=False, dropna=False) if keys else [((), ok)]
    out = []
    for values, g in sorted(groups, key=lambda vg: vg[1]["cell_index"].min()):  # grid order
        values = values if isinstance(values, tuple) else (values,)
        rec = {k: v for k, v in zip(grid_keys, values)}
        rec["n"] = len(g)
        for col in METRIC_COLUMNS:
            x = g[col.key].astype(float).to_numpy()
            rec[col.key + ".mean"] = float(np.mean(x)) if len(x) else float("nan")
            rec[col.key + ".std"] = float(np.std(x, ddof=1)) if len(x) > 1 else float("nan")
        out.append(rec)
    return pd.DataFrame(out)


ALWAYS_SHOWN = ("dataset.name", "model.name", "objective.likelihood", "train.epochs")


def _defaults() -> dict[str, object]:
    from ..spec import RunConfig

    return {k: _hashable(v) for k, v in RunConfig().flat().items()}


def fixed_settings(df: pd.DataFrame, grid_keys: list[str]) -> dict[str, object]:
    """The parameters every run of the study shares (not in the grid) that differ from vaebench's
    defaults, plus the dataset, model, likelihood and epochs."""
    defaults, out = _defaults(), {}
    for col in df.columns:
        key = col[len(PARAM_PREFIX):]
        if not col.startswith(PARAM_PREFIX) or key in grid_keys:
            continue
        values = {_hashable(v) for v in df[col]}
        if len(values) == 1:
            value = values.pop()
            if key in ALWAYS_SHOWN or value != defaults.get(key):
                out[key] = value
    return out


def variant_settings(df: pd.DataFrame) -> dict[str, dict[str, object]]:
    """For a study with grid.variant: each variant's non-default values of the parameters that
    differ between variants, in grid order."""
    defaults = _defaults()
    first = df.sort_values("cell_index").drop_duplicates("variant")
    varying = [c for c in df.columns if c.startswith(PARAM_PREFIX) and len({_hashable(v) for v in first[c]}) > 1]
    return {
        r["variant"]: {
            c[len(PARAM_PREFIX):]: _hashable(r[c]) for c in varying
            if _hashable(r[c]) != defaults.get(c[len(PARAM_PREFIX):])
        }
        for _, r in first.iterrows()
    }


def _hashable(v):
    """A comparable form of a parameter value: arrays and lists as tuples, NaN as None."""
    if hasattr(v, "tolist") and not np.isscalar(v) or isinstance(v, list):
        return tuple(v.tolist() if hasattr(v, "tolist") else v)
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    return v.item() if hasattr(v, "item") else v


def objectives_of(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(metric, direction) pairs the study optimized (rows made before searches existed: -ELBO)."""
    if "objective_metrics" not in df or df["objective_metrics"].isna().all():
        return [("neg_elbo", "minimize")]
    first = df.dropna(subset=["objective_metrics"]).iloc[0]
    return list(zip(first["objective_metrics"], first["objective_directions"]))


def pareto_front(df: pd.DataFrame) -> pd.DataFrame:
    """The finished runs no other finished run beats in every objective (the non-dominated set),
    sorted by the first objective."""
    from ..search import pareto_mask

    objectives = objectives_of(df)
    metrics = [m for m, _ in objectives]
    ok = df[(df["status"] == "ok")].dropna(subset=metrics)
    if ok.empty:
        return ok
    mask = pareto_mask(ok[metrics].astype(float).to_numpy().tolist(), [d for _, d in objectives])
    return ok[mask].sort_values(metrics[0])
