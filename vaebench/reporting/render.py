"""Markdown rendering of a study's report."""

from __future__ import annotations

import pandas as pd

from ..results.rows import grid_column
from .columns import Cell, ReportTable, format_value, param_label
from .layouts import fid_extractors
from .settings import EXTERNAL_COMMAND, fixed_settings, sweep_rows, variant_settings
from .tables import PARETO_KEY, study_tables, study_title

CELL_NOTE = (
    "Each summary cell: mean ± half-width of the 95% confidence interval of the mean over seeds (Student t, "
    "n − 1 degrees of freedom; a cell with one run, or where every run agrees, shows the value alone; "
    '"(n=k)" when only k runs of the row have the metric); n = finished runs in the row. **Bold**: the best '
    "mean of a column. ↓ lower is better, ↑ higher is better; columns without an arrow are not ranked. "
    "p: two-sided Welch's t-test (unequal variances) of the row against the baseline row, on the metric "
    'the header names; "—" when either side has fewer than 2 runs. Losses are in nats per test example '
    "(sum over pixels and latent dimensions, mean over examples); −ELBO and KL are the unweighted (β = 1) "
    "quantities whatever β was used in training; Recon MSE is per pixel, decoding the posterior mean. "
    "Definitions: vaebench's docs/metrics.md."
)


def _md_cell(cell: Cell) -> str:
    text = cell.text.replace("|", "\\|")
    text = f"`{text}`" if cell.code else text
    return f"**{text}**" if cell.best else text


def markdown_table(table: ReportTable) -> str:
    """The table's grid as Markdown (no title, no notes)."""
    lines = ["| " + " | ".join(table.header) + " |", "|" + "|".join("---" for _ in table.header) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def render_table(table: ReportTable) -> str:
    """A section: the title as a heading, the table, then its notes as a list."""
    notes = [""] + [f"- {n}" for n in table.notes] if table.notes else []
    return "\n".join([f"## {table.title}", "", markdown_table(table), *notes])


MIXED_FID = " ⚠ mixed extractors"  # appended to FID headers when the rows' FIDs come from several extractors


def _fid_note(ok: pd.DataFrame) -> str:
    """Which features, layer and sample count the FIDs used: each extractor with the SHA-256 of its
    weights and, for the classifier, its test accuracy; a warning when they differ between rows."""
    extractors = fid_extractors(ok)
    if not extractors:
        return "FID: not measured (eval.fid_extractor: null)."
    cols = ["fid_extractor", "fid_feature_layer", "fid_samples", "fid_reference"]
    cols += [c for c in ("fid_weights_sha256", "classifier_test_accuracy") if c in ok]
    parts = []
    for r in ok[cols].dropna(subset=["fid_extractor"]).drop_duplicates().to_dict("records"):
        about = []
        if isinstance(r.get("fid_weights_sha256"), str):
            about.append(f"weights SHA-256 `{r['fid_weights_sha256']}`")
        if pd.notna(r.get("classifier_test_accuracy")):
            about.append(f"classifier test accuracy {r['classifier_test_accuracy']:.4f}")
        n_runs = int((ok["fid_extractor"] == r["fid_extractor"]).sum())
        parts.append(
            f"`{r['fid_extractor']}` features `{r['fid_feature_layer']}`, {r['fid_samples']} images vs "
            f"`{r['fid_reference']}`"
            + (f" ({', '.join(about)})" if about else "")
            + (f" in {n_runs} run(s)" if len(extractors) > 1 else "")
        )
    warn = (
        f" — WARNING: the rows used different FID settings and are not comparable; the FID columns are "
        f"marked “{MIXED_FID.strip()}”"
        if len(parts) > 1
        else ""
    )
    return "FID: " + "; ".join(parts) + warn + ". NLL: importance sampling, " + _nll_note(ok) + "."


def _mark_mixed_fid(table: ReportTable) -> ReportTable:
    """The table with every FID header marked: its cells mix FIDs of different extractors."""
    header = [h + MIXED_FID if "FID" in h else h for h in table.header]
    return ReportTable(table.key, table.title, header, table.rows, table.notes)


def _nll_note(ok: pd.DataFrame) -> str:
    if "nll_k" not in ok or ok["nll_k"].isna().all():
        return "not measured"
    k, n = ok["nll_k"].dropna().unique(), ok["nll_examples"].dropna().unique()
    return (
        f"k = {', '.join(str(int(v)) for v in k)} samples on the first {', '.join(str(int(v)) for v in n)} test images"
    )


def _wall_span(df: pd.DataFrame) -> float:
    """Seconds from the earliest run start to the latest run end (rows record their end time)."""
    end = pd.to_datetime(df["created_at"])
    start = end - pd.to_timedelta(df["train_seconds"].fillna(0) + df["eval_seconds"].fillna(0), unit="s")
    return (end.max() - start.min()).total_seconds()


def provenance(df: pd.DataFrame) -> dict:
    """How a study's sweep rows were made: the command(s), the machine(s), the date of the last run,
    the wall time from the first run's start to the last run's end (minutes), as text, and the FID
    extractor ids of its finished runs (a list; empty: FID not measured)."""
    commands = sorted(c for c in df.get("command", pd.Series(dtype=str)).dropna().unique() if c)
    machines = sorted(m for m in df.get("machine", pd.Series(dtype=str)).dropna().unique() if m)
    return {
        "command": ", ".join(f"`{c}`" for c in commands) or "unknown command",
        "machine": "; ".join(machines) or "not recorded",
        "date": str(df["created_at"].max())[:10],
        "wall": f"{_wall_span(df) / 60:.1f} min",
        "fid": fid_extractors(df[df["status"] == "ok"]),
    }


def render_study(df: pd.DataFrame) -> str:
    """The Markdown report of one study's rows. Rows added from outside the sweep (`add_result`)
    join the tables and are listed with their provenance; the settings, times and provenance
    sentences describe the sweep's own runs."""
    all_rows = df
    external = df[df["command"] == EXTERNAL_COMMAND] if "command" in df else df.iloc[:0]
    df = sweep_rows(df)
    study = df["study"].iloc[0]
    grid_keys = list(df["grid_keys"].iloc[0])
    tables = study_tables(all_rows)
    fixed = fixed_settings(df, grid_keys)
    failed = df[df["status"] == "failed"]
    pruned = df[df["status"] == "pruned"]
    ok = df[df["status"] == "ok"]
    seeds = sorted(int(s) for s in df["seed"].unique())
    made = provenance(df)
    mixed = len(fid_extractors(ok)) > 1
    lines = [
        f"# {study_title(all_rows)} — study `{study}`",
        "",
        f"Dataset `{df['dataset'].iloc[0]}` (checksum `{df['dataset_checksum'].iloc[0]}`), "
        f"seeds {seeds}, {len(ok)} finished run(s), {len(failed)} failed"
        + (f", {len(pruned)} pruned (not in the table)" if len(pruned) else "")
        + ". "
        f"vaebench {df['vaebench_version'].iloc[0]}, torch {df['torch_version'].iloc[0]}, "
        f"device {', '.join(sorted(df['device'].unique()))}.",
    ]
    for table in tables:
        if table.key != PARETO_KEY:
            lines += ["", render_table(_mark_mixed_fid(table) if mixed else table)]
    lines += [
        "",
        _fid_note(ok),
        "",
        CELL_NOTE,
        "",
        f"Made by: {made['command']}, then `vaebench report`; machine: {made['machine']}. "
        f"Wall time {made['wall']} from the first run's start to the last run's end; "
        f"compute {ok['train_seconds'].sum():.0f} s training + {ok['eval_seconds'].sum():.0f} s evaluation "
        f"over {len(ok)} runs ({ok['train_seconds'].sum() / max(1, ok['epochs_completed'].sum()):.2f} s per epoch).",
        "",
        "Fixed settings: "
        + ", ".join(f"`{k}={format_value(v)}`" for k, v in fixed.items())
        + "; everything else at vaebench's defaults (docs/spec.md).",
    ]
    if "variant" in grid_keys:
        lines += ["", "Variants:", ""]
        for name, settings in variant_settings(df).items():
            lines.append(
                f"- **{name}**: " + (", ".join(f"`{k}={format_value(v)}`" for k, v in settings.items()) or "defaults")
            )
    if len(external):
        lines += [
            "",
            "Results added from outside the sweep (`vaebench.add_result`; not trained by this study's "
            "spec, so not part of its seeds or settings):",
            "",
        ]
        for _, r in external.iterrows():
            lines.append(f"- **{r['variant']}** (`{r['run_id']}`, {r['created_at']}): {r['provenance_note']}")
    for table in tables:
        if table.key == PARETO_KEY:  # after the settings, as it lists single runs
            lines += ["", render_table(_mark_mixed_fid(table) if mixed else table)]
    for title, rows in (("Failed runs", failed), ("Pruned runs", pruned)):
        if len(rows):
            lines += ["", f"## {title}", ""]
            for _, r in rows.iterrows():
                cell = ", ".join(f"{param_label(k)}={format_value(r[grid_column(k)])}" for k in grid_keys)
                lines.append(f"- `{r['run_id']}` ({cell}, seed {r['seed']}): {r['reason']}")
    return "\n".join(lines) + "\n"
