"""Markdown rendering of a study's report."""

from __future__ import annotations

import math

import pandas as pd

from ..results import grid_column
from .tables import (METRIC_COLUMNS, fixed_settings, objectives_of, pareto_front, param_label, summarize,
                     table_title, variant_settings)


def _cell(mean: float, std: float, fmt: str) -> str:
    if math.isnan(mean):
        return "—"
    if math.isnan(std) or std == 0:
        return f"{mean:{fmt}}"
    return f"{mean:{fmt}} ± {std:{fmt}}"


def _param(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def markdown_table(summary: pd.DataFrame, grid_keys: list[str]) -> str:
    head = [param_label(k) for k in grid_keys] + [f"{c.label} {c.better}".strip() for c in METRIC_COLUMNS] + ["n"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for _, r in summary.iterrows():
        cells = [_param(r[k]) for k in grid_keys]
        cells += [_cell(r[c.key + ".mean"], r[c.key + ".std"], c.fmt) for c in METRIC_COLUMNS]
        cells.append(str(int(r["n"])))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fid_note(ok: pd.DataFrame) -> str:
    """Which features, layer and sample count every FID of the table used (they must agree)."""
    if "fid_extractor" not in ok or ok["fid_extractor"].isna().all():
        return "FID: not measured (eval.fid_extractor: null)."
    settings = ok[["fid_extractor", "fid_feature_layer", "fid_samples", "fid_reference"]].drop_duplicates()
    parts = [f"`{r.fid_extractor}` features `{r.fid_feature_layer}`, {r.fid_samples} images vs `{r.fid_reference}`"
             for r in settings.itertuples()]
    acc = ok["classifier_test_accuracy"].dropna().unique() if "classifier_test_accuracy" in ok else []
    extra = f" (classifier test accuracy {acc[0]:.4f})" if len(acc) == 1 else ""
    warn = " — WARNING: the rows used different FID settings and are not comparable" if len(parts) > 1 else ""
    return "FID: " + "; ".join(parts) + extra + warn + ". NLL: importance sampling, " + _nll_note(ok) + "."


def _nll_note(ok: pd.DataFrame) -> str:
    if "nll_k" not in ok or ok["nll_k"].isna().all():
        return "not measured"
    k, n = ok["nll_k"].dropna().unique(), ok["nll_examples"].dropna().unique()
    return f"k = {', '.join(str(int(v)) for v in k)} samples on the first {', '.join(str(int(v)) for v in n)} test images"


def _wall_span(df: pd.DataFrame) -> float:
    """Seconds from the earliest run start to the latest run end (rows record their end time)."""
    end = pd.to_datetime(df["created_at"])
    start = end - pd.to_timedelta(df["train_seconds"].fillna(0) + df["eval_seconds"].fillna(0), unit="s")
    return (end.max() - start.min()).total_seconds()


def render_study(df: pd.DataFrame) -> str:
    """The Markdown report of one study's rows."""
    study = df["study"].iloc[0]
    grid_keys = list(df["grid_keys"].iloc[0])
    summary = summarize(df, grid_keys)
    fixed = fixed_settings(df, grid_keys)
    failed = df[df["status"] == "failed"]
    pruned = df[df["status"] == "pruned"]
    ok = df[df["status"] == "ok"]
    seeds = sorted(int(s) for s in df["seed"].unique())
    commands = sorted(c for c in df.get("command", pd.Series(dtype=str)).dropna().unique() if c)
    lines = [
        f"# {table_title(grid_keys, study)} — study `{study}`",
        "",
        f"Dataset `{df['dataset'].iloc[0]}` (checksum `{df['dataset_checksum'].iloc[0]}`), "
        f"seeds {seeds}, {len(ok)} finished run(s), {len(failed)} failed"
        + (f", {len(pruned)} pruned (not in the table)" if len(pruned) else "") + ". "
        f"vaebench {df['vaebench_version'].iloc[0]}, torch {df['torch_version'].iloc[0]}, "
        f"device {', '.join(sorted(df['device'].unique()))}.",
        "",
        markdown_table(summary, grid_keys),
        "",
        _fid_note(ok),
        "",
        "Each cell: mean ± sample standard deviation over seeds; n = finished runs in the row. "
        "↓ lower is better, ↑ higher is better. Losses are in nats per test example (sum over pixels "
        "and latent dimensions, mean over examples); −ELBO and KL are the unweighted (β = 1) "
        "quantities whatever β was used in training; Recon MSE is per pixel, decoding the posterior "
        "mean. Definitions: README, section Metrics.",
        "",
        f"Made by: {', '.join(f'`{c}`' for c in commands) or 'unknown command'}, then `vaebench report`. "
        f"Wall time {_wall_span(df) / 60:.1f} min from the first run's start to the last run's end; "
        f"compute {ok['train_seconds'].sum():.0f} s training + {ok['eval_seconds'].sum():.0f} s evaluation "
        f"over {len(ok)} runs ({ok['train_seconds'].sum() / max(1, ok['epochs_completed'].sum()):.2f} s per epoch).",
        "",
        "Fixed settings: " + ", ".join(f"`{k}={_param(v)}`" for k, v in fixed.items())
        + "; everything else at vaebench's defaults (README, Sweep specs).",
    ]
    if "variant" in grid_keys:
        lines += ["", "Variants:", ""]
        for name, settings in variant_settings(df).items():
            lines.append(f"- **{name}**: " + (", ".join(f"`{k}={_param(v)}`" for k, v in settings.items()) or "defaults"))
    objectives = objectives_of(df)
    if len(objectives) > 1:
        lines += ["", _pareto_section(df, grid_keys, objectives)]
    for title, rows in (("Failed runs", failed), ("Pruned runs", pruned)):
        if len(rows):
            lines += ["", f"## {title}", ""]
            for _, r in rows.iterrows():
                cell = ", ".join(f"{param_label(k)}={_param(r[grid_column(k)])}" for k in grid_keys)
                lines.append(f"- `{r['run_id']}` ({cell}, seed {r['seed']}): {r['reason']}")
    return "\n".join(lines) + "\n"


def _pareto_section(df: pd.DataFrame, grid_keys: list[str], objectives: list[tuple[str, str]]) -> str:
    """The non-dominated runs of a multi-objective study, one line per run."""
    front = pareto_front(df)
    arrows = {"minimize": "↓", "maximize": "↑"}
    head = ["run"] + [param_label(k) for k in grid_keys] + ["seed"] + [f"{m} {arrows[d]}" for m, d in objectives]
    lines = [
        f"## Pareto front ({', '.join(f'{m} {arrows[d]}' for m, d in objectives)})",
        "",
        f"{len(front)} of {int((df['status'] == 'ok').sum())} finished runs are not beaten in every objective by another run.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
    ]
    for _, r in front.iterrows():
        cells = [f"`{r['run_id']}`"] + [_param(r[grid_column(k)]) for k in grid_keys] + [str(r["seed"])]
        cells += [f"{r[m]:.4g}" for m, _ in objectives]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
