"""Tables of model families with metrics of their own: a VQ-VAE study's codebook table and a
hierarchical study's per-layer tables with Sønderby et al.'s finding checked.

Which applies is read from the rows' measured columns (a study whose runs have codebook columns is a
VQ-VAE study; one whose runs have per-layer KLs of more than one layer is a hierarchical study), not
from the study's name. Registered into tables.py's FAMILY_LAYOUTS / FAMILY_TABLES on import.
"""

from __future__ import annotations

import math

import pandas as pd

from ..metrics import columns as C
from .stats import trend_sign
from .tables import (FAMILY_LAYOUTS, FAMILY_TABLES, Column, Layout, ReportTable, _col, _item, _summary_table,
                     summarize)

VQ_TITLE = "VQ-VAE: reconstruction and codebook use"
HIERARCHICAL_TITLE = "Hierarchical (ladder) VAE: likelihood by depth"


def _has(df: pd.DataFrame, key: str) -> bool:
    ok = df[df["status"] == "ok"]
    return key in ok and ok[key].notna().any()


def _layers(df: pd.DataFrame) -> pd.Series:
    """Stochastic layers of each row (from its per-layer KL list; NaN without one)."""
    return df[C.KL_PER_LAYER].map(lambda v: len(v) if hasattr(v, "__len__") else math.nan)


def is_vq_study(df: pd.DataFrame) -> bool:
    return _has(df, C.CODEBOOK_PERPLEXITY)


def is_hierarchical_study(df: pd.DataFrame) -> bool:
    return _has(df, C.KL_PER_LAYER) and _layers(df[df["status"] == "ok"]).max() > 1


VQ_NOTE = ("A VQ-VAE's rate is fixed by its codebook: log K nats per latent position under the paper's uniform "
           "prior (the `kl` column). Sample FID needs a learned prior over the codes, which is out of scope: "
           "it is not applicable here (see each row's metrics_skipped), and FID is of reconstructions.")
FAMILY_LAYOUTS.append((is_vq_study, VQ_TITLE, Layout(
    "vqvae",
    (_col(C.RECON_MSE, "Recon MSE (per pixel)"), _col(C.SSIM), _col(C.CODEBOOK_PERPLEXITY),
     _col(C.CODES_USED_FRACTION), _col(C.FID_RECON, "FID of reconstructions"), _col(C.KL, "Rate (nats)")),
    headline=C.RECON_MSE, unranked=frozenset({C.KL}), notes=(VQ_NOTE,))))

HIERARCHICAL_NOTE = ("−ELBO and the importance-sampled NLL are over all stochastic layers jointly; KL is the sum of "
                     "the layers' KLs (per layer below).")
FAMILY_LAYOUTS.append((is_hierarchical_study, HIERARCHICAL_TITLE, Layout(
    "hierarchical",
    (_col(C.NEG_ELBO), _col(C.NLL_IS), _col(C.KL), _col(C.ACTIVE_UNITS), _col("n_params", "Parameters")),
    headline=C.NLL_IS, notes=(HIERARCHICAL_NOTE,))))


def per_layer_tables(df: pd.DataFrame, grid_keys: list[str]) -> list[ReportTable]:
    """KL and active units of each stochastic layer (bottom first), then the depth check: Sønderby
    et al. 2016 found that more stochastic layers lower the NLL."""
    if not is_hierarchical_study(df):
        return []
    ok = df[df["status"] == "ok"]
    depth = int(_layers(ok).max())
    tables = []
    for lists, name, fmt in ((C.KL_PER_LAYER, "KL", ".2f"), (C.ACTIVE_UNITS_PER_LAYER, "Active units", ".1f")):
        derived = {f"{lists}.{i}": ok[lists].map(lambda v, i=i: _item(v, i)) for i in range(depth)}
        columns = [Column(k, f"{name} layer {i + 1}" + (" (nats)" if name == "KL" else ""), fmt, "")
                   for i, k in enumerate(derived)]
        summary = summarize(ok.assign(**derived), grid_keys, columns + [_col(C.NLL_IS)])  # p: on the NLL
        note = (f"{name} of each stochastic layer, layer 1 next to the data; '—' where a model has fewer layers. "
                + ("Each layer's KL is the test-set mean of its one-sample KL against p(z_l | z_l+1) "
                   "(the top layer against N(0, I)); they sum to the KL column up to Monte Carlo noise."
                   if name == "KL" else "Active units of each layer on the posterior's mean path."))
        tables.append(_summary_table(f"{lists}_table", f"{name} per layer", summary, grid_keys, columns,
                                     Layout(f"{lists}_table", headline=C.NLL_IS), [note]))
    tables.append(depth_check(ok))
    return tables


def depth_check(ok: pd.DataFrame) -> ReportTable:
    """Mean IS-NLL by number of stochastic layers, and whether it falls as depth grows (⚠ if not)."""
    by_depth = ok.assign(_layers=_layers(ok)).groupby("_layers")[C.NLL_IS].agg(["mean", "count"]).sort_index()
    means = list(by_depth["mean"])
    sign = trend_sign(means)
    if len(means) < 2 or any(math.isnan(m) for m in means):
        verdict = "not enough depths measured to check"
    elif sign < 0 and all(b < a for a, b in zip(means, means[1:])):
        verdict = "agrees: the NLL falls with every added layer"
    elif sign < 0:
        verdict = "⚠ partly contradicts: the NLL falls overall but not with every added layer"
    else:
        verdict = "⚠ contradicts: more stochastic layers do not lower the NLL here"
    rows = [[_cell(f"{int(d)}"), _cell(f"{m:.2f}"), _cell(str(int(n)))] for d, (m, n) in
            zip(by_depth.index, zip(by_depth["mean"], by_depth["count"]))]
    note = ("Sønderby et al. 2016 (Ladder VAE) report that more stochastic layers lower the test NLL. Measured "
            f"here: {verdict}. Mean of the importance-sampled NLL (nats per example) over the runs of each depth.")
    return ReportTable("depth_check", "Depth versus NLL (Sønderby et al. 2016)",
                       ["Stochastic layers", "NLL (IS, nats)", "n (runs)"], rows, [note])


def _cell(text: str):
    from .tables import Cell

    return Cell(text)


FAMILY_TABLES.append(per_layer_tables)
