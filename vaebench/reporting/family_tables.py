"""Tables of model families with metrics of their own: a VQ-VAE study's codebook table and a
hierarchical study's per-layer tables with Sønderby et al.'s finding checked.

Which applies is read from the rows' measured columns (a study whose runs have codebook columns is a
VQ-VAE study; one whose runs have per-layer KLs of more than one layer is a hierarchical study), not
from the study's name. tables.py uses the first of FAMILY_LAYOUTS that applies when the study mirrors
none of the tutorial's tables, and adds the tables of every FAMILY_TABLES function.
"""

from __future__ import annotations

import math

import pandas as pd

from ..metrics import column_names as C
from .columns import Cell, Layout, ReportTable, TableColumn, relabel
from .stats import trend_sign
from .summary import list_item, summarize, summary_table

VQ_TITLE = "VQ-VAE: reconstruction and codebook use"
HIERARCHICAL_TITLE = "Hierarchical (ladder) VAE: likelihood by depth"

# A family's layout, chosen when the rows have the family's measured columns: (predicate(df), title, Layout);
# and a family's extra tables: (df, grid_keys) -> tables.
FAMILY_LAYOUTS: list = []
FAMILY_TABLES: list = []


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


VQ_NOTE = (
    "A VQ-VAE's rate is fixed by its codebook: log K nats per latent position under the paper's uniform "
    "prior (the `kl` column). Sample FID needs a learned prior over the codes, which is out of scope: "
    "it is not applicable here (see each row's metrics_skipped), and FID is of reconstructions."
)
FAMILY_LAYOUTS.append(
    (
        is_vq_study,
        VQ_TITLE,
        Layout(
            "vqvae",
            (
                relabel(C.RECON_MSE, "Recon MSE (per pixel)"),
                relabel(C.SSIM),
                relabel(C.CODEBOOK_PERPLEXITY),
                relabel(C.CODES_USED_FRACTION),
                relabel(C.FID_RECON, "FID of reconstructions"),
                relabel(C.KL, "Rate (nats)"),
            ),
            headline=C.RECON_MSE,
            unranked=frozenset({C.KL}),
            notes=(VQ_NOTE,),
        ),
    )
)

HIERARCHICAL_NOTE = (
    "−ELBO and the importance-sampled NLL are over all stochastic layers jointly; KL is the sum of "
    "the layers' KLs (per layer below)."
)
FAMILY_LAYOUTS.append(
    (
        is_hierarchical_study,
        HIERARCHICAL_TITLE,
        Layout(
            "hierarchical",
            (
                relabel(C.NEG_ELBO),
                relabel(C.NLL_IS),
                relabel(C.KL),
                relabel(C.ACTIVE_UNITS),
                relabel("n_params", "Parameters"),
            ),
            headline=C.NLL_IS,
            notes=(HIERARCHICAL_NOTE,),
        ),
    )
)


def per_layer_tables(df: pd.DataFrame, grid_keys: list[str]) -> list[ReportTable]:
    """KL and active units of each stochastic layer (bottom first), then the depth check: Sønderby
    et al. 2016 found that more stochastic layers lower the NLL."""
    if not is_hierarchical_study(df):
        return []
    ok = df[df["status"] == "ok"]
    depth = int(_layers(ok).max())
    tables = []
    for lists, name, fmt in ((C.KL_PER_LAYER, "KL", ".2f"), (C.ACTIVE_UNITS_PER_LAYER, "Active units", ".1f")):
        derived = {f"{lists}.{i}": ok[lists].map(lambda v, i=i: list_item(v, i)) for i in range(depth)}
        columns = [
            TableColumn(k, f"{name} layer {i + 1}" + (" (nats)" if name == "KL" else ""), fmt, "")
            for i, k in enumerate(derived)
        ]
        summary = summarize(ok.assign(**derived), grid_keys, columns + [relabel(C.NLL_IS)])  # p: on the NLL
        note = f"{name} of each stochastic layer, layer 1 next to the data; '—' where a model has fewer layers. " + (
            "Each layer's KL is the test-set mean of its one-sample KL against p(z_l | z_l+1) "
            "(the top layer against N(0, I)); they sum to the KL column up to Monte Carlo noise."
            if name == "KL"
            else "Active units of each layer on the posterior's mean path."
        )
        tables.append(
            summary_table(
                f"{lists}_table",
                f"{name} per layer",
                summary,
                grid_keys,
                columns,
                Layout(f"{lists}_table", headline=C.NLL_IS),
                [note],
            )
        )
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
    rows = [
        [Cell(f"{int(d)}"), Cell(f"{m:.2f}"), Cell(str(int(n)))]
        for d, (m, n) in zip(by_depth.index, zip(by_depth["mean"], by_depth["count"]))
    ]
    note = (
        "Sønderby et al. 2016 (Ladder VAE) report that more stochastic layers lower the test NLL. Measured "
        f"here: {verdict}. Mean of the importance-sampled NLL (nats per example) over the runs of each depth."
    )
    return ReportTable(
        "depth_check",
        "Depth versus NLL (Sønderby et al. 2016)",
        ["Stochastic layers", "NLL (IS, nats)", "n (runs)"],
        rows,
        [note],
    )


FAMILY_TABLES.append(per_layer_tables)


def family_layout(df: pd.DataFrame) -> tuple[str, Layout] | None:
    """(title, layout) of the first family layout whose metrics the rows measured, else None."""
    for applies, title, layout in FAMILY_LAYOUTS:
        if applies(df):
            return title, layout
    return None
