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
    ("variant",): "Sweep results",
}


def table_title(grid_keys: list[str]) -> str:
    return TABLE_TITLES.get(tuple(grid_keys), "Sweep results")


def param_label(key: str) -> str:
    return PARAM_LABELS.get(key, key)


def summarize(df: pd.DataFrame, grid_keys: list[str]) -> pd.DataFrame:
    """One row per cell of the grid (status 'ok' runs only): for each metric its mean, sample
    standard deviation (ddof=1; NaN when n = 1) and n, in grid order."""
    ok = df[df["status"] == "ok"].assign(**{SECONDS_PER_EPOCH: lambda d: d["train_seconds"] / d["epochs_completed"]})
    keys = [grid_column(k) for k in grid_keys]
    groups = ok.groupby(keys, sort=True, dropna=False) if keys else [((), ok)]
    out = []
    for values, g in groups:
        values = values if isinstance(values, tuple) else (values,)
        rec = {k: v for k, v in zip(grid_keys, values)}
        rec["n"] = len(g)
        for col in METRIC_COLUMNS:
            x = g[col.key].astype(float).to_numpy()
            rec[col.key + ".mean"] = float(np.mean(x)) if len(x) else float("nan")
            rec[col.key + ".std"] = float(np.std(x, ddof=1)) if len(x) > 1 else float("nan")
        out.append(rec)
    return pd.DataFrame(out)


def fixed_settings(df: pd.DataFrame, grid_keys: list[str]) -> dict[str, object]:
    """The parameters every run of the study shares (those not in the grid)."""
    out = {}
    for col in df.columns:
        key = col[len(PARAM_PREFIX):]
        if col.startswith(PARAM_PREFIX) and key not in grid_keys:
            values = {_hashable(v) for v in df[col] if not _missing(v)}
            if len(values) == 1:
                out[key] = values.pop()
    return out


def _hashable(v):
    return tuple(v.tolist()) if hasattr(v, "tolist") and not np.isscalar(v) else v


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))
