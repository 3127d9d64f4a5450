"""Tables of model families with metrics of their own: a VQ-VAE study's codebook table, a
hierarchical study's per-layer tables with Sønderby et al.'s finding checked, and a disentanglement
study's metrics by model and strength, their rank correlations, their variance by source and
Locatello et al.'s findings checked (disentanglement_study.py), and a model comparison's lead table
(a study whose cells are three or more different models, e.g. sweeps/pythae_zoo.yaml).

Which applies is read from the rows' measured columns (a study whose runs have codebook columns is a
VQ-VAE study; one whose runs have per-layer KLs of more than one layer is a hierarchical study), not
from the study's name. tables.py uses the first of FAMILY_LAYOUTS that applies when the study mirrors
none of the tutorial's tables, adds the tables of every FAMILY_TABLES function, and render.py prints
the paragraphs of every FAMILY_FINDINGS entry (title, function) under the study's header.
"""

from __future__ import annotations

import math

import pandas as pd

from ..metrics import column_names as C
from .columns import COLUMNS, N_HEADER, SECONDS_PER_EPOCH, Cell, Layout, ReportTable, TableColumn, cell_name, relabel
from .convergence import all_converged, cell_convergence, shortfall
from .disentanglement_study import LAYOUT as DISENTANGLEMENT_STUDY_LAYOUT
from .disentanglement_study import is_disentanglement_study, study_extra_tables, study_findings
from .prose import prose
from .settings import finished, has_values, hashable
from .stats import intervals_overlap, trend_sign
from .summary import cell_groups, list_items, summarize, summary_table
from .titles import (
    DEPTH_CHECK_TITLE,
    DISENTANGLEMENT_STUDY_TITLE,
    FINDINGS_TITLE,
    HIERARCHICAL_TITLE,
    MODEL_COMPARISON_FINDINGS_TITLE,
    MODEL_COMPARISON_TITLE,
    PER_LAYER_TITLE,
    VQ_TITLE,
)

# A family's layout, chosen when the rows have the family's measured columns: (predicate(df), title, Layout);
# a family's extra tables: (df, grid_keys) -> tables; a family's findings: (title, df -> paragraphs).
FAMILY_LAYOUTS: list = []
FAMILY_TABLES: list = []
FAMILY_FINDINGS: list = []


def _layers(df: pd.DataFrame) -> pd.Series:
    """Stochastic layers of each row (from its per-layer KL list; NaN without one)."""
    return df[C.KL_PER_LAYER].map(lambda v: len(v) if hasattr(v, "__len__") else math.nan)


def is_vq_study(df: pd.DataFrame) -> bool:
    return has_values(df, C.CODEBOOK_PERPLEXITY)


def is_hierarchical_study(df: pd.DataFrame) -> bool:
    return has_values(df, C.KL_PER_LAYER) and _layers(finished(df)).max() > 1


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
            notes=(prose("vq_note"),),
        ),
    )
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
            notes=(prose("hierarchical_note"),),
        ),
    )
)


# The per-layer tables: (list column, quantity, header units, number format, what its note adds).
PER_LAYER = (
    (C.KL_PER_LAYER, "KL", " (nats)", ".2f", prose("per_layer_kl")),
    (C.ACTIVE_UNITS_PER_LAYER, "Active units", "", ".1f", prose("per_layer_active_units")),
)


def per_layer_tables(df: pd.DataFrame, grid_keys: list[str]) -> list[ReportTable]:
    """KL and active units of each stochastic layer (bottom first), then the depth check: Sønderby
    et al. 2016 found that more stochastic layers lower the NLL."""
    if not is_hierarchical_study(df):
        return []
    ok = finished(df)
    depth = int(_layers(ok).max())
    tables = []
    for lists, name, units, fmt, about in PER_LAYER:
        derived = list_items(ok[lists], lists, range(depth))
        columns = [TableColumn(k, f"{name} layer {i + 1}{units}", fmt, "") for i, k in enumerate(derived)]
        summary = summarize(ok.assign(**derived), grid_keys, columns + [relabel(C.NLL_IS)])  # p: on the NLL
        note = prose("per_layer_note", quantity=name, about=about)
        tables.append(
            summary_table(
                f"{lists}_table",
                PER_LAYER_TITLE.format(quantity=name),
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
    """Mean IS-NLL by number of stochastic layers, and whether it falls as depth grows: ⚠ if not and
    every run converged under early stopping, else inconclusive at this budget."""
    layers = ok.assign(_layers=_layers(ok))
    by_depth = layers.groupby("_layers")[C.NLL_IS].agg(["mean", "count"]).sort_index()
    means = list(by_depth["mean"])
    sign = trend_sign(means)
    depths = [{"n": len(g), **cell_convergence(g)} for _, g in layers.groupby("_layers")]
    finding = None
    if len(means) < 2 or any(math.isnan(m) for m in means):
        verdict = "not enough depths measured to check"
    elif sign < 0 and all(b < a for a, b in zip(means, means[1:])):
        verdict = "agrees: the NLL falls with every added layer"
    elif sign < 0:
        verdict, finding = "⚠ partly contradicts: ", "the NLL falls overall but not with every added layer"
    else:
        verdict, finding = "⚠ contradicts: ", "more stochastic layers do not lower the NLL here"
    if finding is not None:
        converged = all_converged(depths)
        verdict = (
            verdict + finding
            if converged
            else prose("depth_check_inconclusive", finding=finding, shortfall=shortfall(depths))
        )
    rows = [
        [Cell(f"{int(d)}"), Cell(f"{m:.2f}"), Cell(str(int(n)))]
        for d, (m, n) in zip(by_depth.index, zip(by_depth["mean"], by_depth["count"]))
    ]
    note = prose("depth_check_note", verdict=verdict)
    return ReportTable(
        "depth_check", DEPTH_CHECK_TITLE, ["Stochastic layers", "NLL (IS, nats)", N_HEADER], rows, [note]
    )


FAMILY_TABLES.append(per_layer_tables)

FAMILY_LAYOUTS.append((is_disentanglement_study, DISENTANGLEMENT_STUDY_TITLE, DISENTANGLEMENT_STUDY_LAYOUT))
FAMILY_TABLES.append(study_extra_tables)
FAMILY_FINDINGS.append((FINDINGS_TITLE, study_findings))


# A model comparison: the cells are MIN_MODELS or more models, a model being the cell's values of the
# non-numeric `model.*` parameters (the family, `model.name`, and a family's own choice of model, e.g.
# the pythae plugin's `model.model` and `model.config`). Two models are a baseline and its
# alternative (sweeps/vampprior.yaml), which the all-metrics table's p column already serves.
MIN_MODELS = 3
MODEL_PARAM = "param.model."


def cell_models(df: pd.DataFrame) -> list[tuple]:
    """Each grid cell's model (the values of its non-numeric `model.*` parameters), in grid order."""
    ok = finished(df)
    grid_keys = list(df["grid_keys"].iloc[0]) if len(df) else []
    columns = [c for c in ok.columns if c.startswith(MODEL_PARAM)]
    firsts = [g.iloc[0] for _, g in cell_groups(ok, grid_keys)]
    return [tuple((c, hashable(r[c])) for c in columns if isinstance(hashable(r[c]), str)) for r in firsts]


def is_model_comparison(df: pd.DataFrame) -> bool:
    return len(set(cell_models(df))) >= MIN_MODELS


FAMILY_LAYOUTS.append(
    (
        is_model_comparison,
        MODEL_COMPARISON_TITLE,
        Layout(
            "model_comparison",
            (
                relabel(C.NLL_IS),
                relabel(C.NEG_ELBO),
                relabel(C.KL, "Rate: KL (nats)"),
                relabel(C.RECON_MSE, "Recon MSE (per pixel)"),
                relabel(C.SSIM),
                relabel(C.FID, "FID of samples"),
                relabel(C.FID_RECON, "FID of reconstructions"),
                relabel(C.ACTIVE_UNITS),
                relabel("n_params", "Parameters"),
                relabel(SECONDS_PER_EPOCH),
            ),
            labels={"variant": "Model"},
            headline=C.NLL_IS,  # the KL (rate) is declared unranked: no arrow, no best mark
            notes=(prose("model_comparison_note"),),
        ),
    )
)


# The metrics a model comparison's findings name the best model of, in this order.
COMPARED = (C.NLL_IS, C.NEG_ELBO, C.RECON_MSE, C.SSIM, C.FID, C.FID_RECON)


def best_models(summary: pd.DataFrame, grid_keys: list[str], metric: str) -> str | None:
    """One metric's sentence from the cells' summary: the cell with the best mean (mean ± 95% CI) and
    the cells whose intervals overlap its interval (not told apart from it by these seeds). None when
    fewer than two cells measured it."""
    col = COLUMNS[metric]
    mean, ci = f"{metric}.mean", f"{metric}.ci"
    cells = [
        (cell_name(grid_keys, [r[k] for k in grid_keys]), r[mean], r[ci])
        for _, r in summary.iterrows()
        if r[f"{metric}.n"] > 0
    ]
    if len(cells) < 2:
        return None
    pick = min if col.better == "↓" else max
    name, best, half = pick(cells, key=lambda c: c[1])
    tied = [c for c, m, h in cells if c != name and intervals_overlap(best, half, m, h)]
    value = f"{best:{col.fmt}}" + ("" if math.isnan(half) else f" ± {half:{col.fmt}}")
    return prose(
        "comparison_best",
        metric=col.label,
        best=name,
        value=value,
        tied=", ".join(tied) if tied else prose("comparison_none_tied"),
        of=len(cells),
    )


def comparison_findings(df: pd.DataFrame) -> list[str]:
    """A model comparison's findings: for each of COMPARED, the best model and those its interval
    cannot tell apart from it."""
    if not is_model_comparison(df):
        return []
    grid_keys = list(df["grid_keys"].iloc[0])
    summary = summarize(df, grid_keys, [COLUMNS[m] for m in COMPARED])
    sentences = [s for m in COMPARED if (s := best_models(summary, grid_keys, m)) is not None]
    return [prose("comparison_intro"), "\n".join(f"- {s}" for s in sentences)] if sentences else []


FAMILY_FINDINGS.append((MODEL_COMPARISON_FINDINGS_TITLE, comparison_findings))


def family_layout(df: pd.DataFrame) -> tuple[str, Layout] | None:
    """(title, layout) of the first family layout whose metrics the rows measured, else None."""
    for applies, title, layout in FAMILY_LAYOUTS:
        if applies(df):
            return title, layout
    return None
