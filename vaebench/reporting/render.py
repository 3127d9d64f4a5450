"""Markdown rendering of a study's report: its header (with the evaluation protocol when the runs held
out a validation split, and a family's findings, e.g. a disentanglement study's), its tables (render_table), the FID note, the
note on the summary cells and how the rows were made (provenance), its settings and its failed runs.
The wording of its paragraphs is in prose.yaml."""

from __future__ import annotations

import pandas as pd

from ..results.rows import grid_column
from .caveats import paper_limits
from .columns import NOT_MEASURED, Cell, ReportTable, cell_label, format_value
from .convergence import protocol_notes
from .layouts import fid_extractors, is_grid
from .prose import prose
from .settings import (
    external_rows,
    finished,
    fixed_settings,
    sweep_rows,
    variant_settings,
)
from .tables import RUN_TABLES, search_targets, study_findings, study_tables, study_title
from .titles import FAILED_RUNS_TITLE, PRUNED_RUNS_TITLE


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
        return prose("fid_not_measured")
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
    warning = prose("fid_mixed_warning", marker=MIXED_FID.strip()) if len(parts) > 1 else ""
    return prose("fid_note", extractors="; ".join(parts), warning=warning, nll=_nll_note(ok))


def _mark_mixed_fid(table: ReportTable) -> ReportTable:
    """The table with every FID header marked: its cells mix FIDs of different extractors."""
    header = [h + MIXED_FID if "FID" in h else h for h in table.header]
    return ReportTable(table.key, table.title, header, table.rows, table.notes)


def _nll_note(ok: pd.DataFrame) -> str:
    """How the importance-sampled NLL was measured: its samples per image and test images."""
    if "nll_k" not in ok or ok["nll_k"].isna().all():
        return NOT_MEASURED
    k, n = ok["nll_k"].dropna().unique(), ok["nll_examples"].dropna().unique()
    return prose("nll_measured", samples=_ints(k), examples=_ints(n))


def _ints(values) -> str:
    return ", ".join(str(int(v)) for v in values)


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
        "fid": fid_extractors(finished(df)),
    }


def render_study(df: pd.DataFrame) -> str:
    """The Markdown report of one study's rows. Rows added from outside the sweep (`add_result`)
    join the tables and are listed with their provenance; the settings, times and provenance
    sentences describe the sweep's own runs."""
    all_rows = df
    external = external_rows(df)
    df = sweep_rows(df)
    study = df["study"].iloc[0]
    grid_keys = list(df["grid_keys"].iloc[0])
    fixed, set_by_spec = fixed_settings(df, grid_keys)
    failed = df[df["status"] == "failed"]
    pruned = df[df["status"] == "pruned"]
    ok = finished(df)
    seeds = sorted(int(s) for s in df["seed"].unique())
    made = provenance(df)
    mixed = len(fid_extractors(ok)) > 1
    tables = [_mark_mixed_fid(t) if mixed else t for t in study_tables(all_rows)]
    header = prose(
        "study_header",
        dataset=df["dataset"].iloc[0],
        checksum=df["dataset_checksum"].iloc[0],
        seeds=seeds,
        finished=len(ok),
        failed=len(failed),
        pruned=prose("study_header_pruned", pruned=len(pruned)) if len(pruned) else "",
        vaebench_version=df["vaebench_version"].iloc[0],
        torch_version=df["torch_version"].iloc[0],
        devices=", ".join(sorted(df["device"].unique())),
    )
    lines = [f"# {study_title(all_rows)} — study `{study}`", "", header]
    searched = not is_grid(df) or len(search_targets(df)) > 1
    for note in protocol_notes(df, searched):  # which split the curves and the selection read
        lines += ["", note]
    if limits := paper_limits(df):
        lines += ["", prose("paper_limits"), ""] + [f"- {_sentence(n)}" for n in limits]
    for title, findings in study_findings(all_rows):  # a family's findings, stated from its numbers
        lines += ["", f"## {title}"]
        for paragraph in findings:
            lines += ["", paragraph]
    for table in tables:
        if table.key not in RUN_TABLES:
            lines += ["", render_table(table)]
    train_seconds = ok["train_seconds"].sum()
    lines += [
        "",
        _fid_note(ok),
        "",
        prose("cell_note"),
        "",
        prose(
            "made_by",
            command=made["command"],
            machine=made["machine"],
            wall=made["wall"],
            train_seconds=train_seconds,
            eval_seconds=ok["eval_seconds"].sum(),
            runs=len(ok),
            seconds_per_epoch=train_seconds / max(1, ok["epochs_completed"].sum()),
        ),
    ]
    if plugins := plugins_used(df):
        lines += ["", prose("plugins_used", plugins=plugins)]
    if unlisted := unlisted_plugin_columns(ok):
        lines += ["", prose("unlisted_columns", columns=unlisted)]
    lines += ["", prose("fixed_settings", settings=_resolved(fixed, set_by_spec))]
    if "variant" in grid_keys:
        lines += ["", "Variants:", ""]
        lines += [f"- **{name}**: {_settings(v) or 'defaults'}" for name, v in variant_settings(df).items()]
    if len(external):
        lines += ["", prose("external_rows"), ""]
        for _, r in external.iterrows():
            lines.append(f"- **{r['variant']}** (`{r['run_id']}`, {r['created_at']}): {r['provenance_note']}")
    for table in tables:
        if table.key in RUN_TABLES:  # after the settings, as they list single runs
            lines += ["", render_table(table)]
    for title, rows in ((FAILED_RUNS_TITLE, failed), (PRUNED_RUNS_TITLE, pruned)):
        if len(rows):
            lines += ["", f"## {title}", ""]
            for _, r in rows.iterrows():
                cell = cell_label(grid_keys, [r[grid_column(k)] for k in grid_keys])
                lines.append(f"- `{r['run_id']}` ({cell}, seed {r['seed']}): {r['reason']}")
    return "\n".join(lines) + "\n"


def plugins_used(df: pd.DataFrame) -> str:
    """The plugins the rows record, with their versions: "`vaebench_vampprior` 0.1.0 (distribution
    vaebench-vampprior), `my_metric` (a local module, source sha256 1a2b3c4d)"; '' when none."""
    seen: dict[tuple, str] = {}
    for entries in df.get("plugins", pd.Series(dtype=object)):
        for e in entries if entries is not None else []:
            key = (e["module"], e["distribution"], e["version"], e["source_sha256"])
            if e["distribution"]:
                seen[key] = f"`{e['module']}` {e['version']} (distribution {e['distribution']})"
            else:
                seen[key] = f"`{e['module']}` (a local module, source sha256 {e['source_sha256'][:8]})"
    return ", ".join(sorted(set(seen.values())))


def unlisted_plugin_columns(ok: pd.DataFrame) -> str:
    """The scalar columns a plugin's metric declared without a direction that the rows hold: the
    All-metrics table lists only ranked columns, so the report names these ('' when none)."""
    from ..metrics import declared_columns
    from ..plugins import registered_by

    names = []
    for column, (metric, decl) in declared_columns().items():
        plugin = registered_by("metric", metric)
        if plugin and decl.direction is None and decl.dtype in ("float", "int") and column in ok:
            if ok[column].notna().any():
                names.append(f"`{column}` (metric `{metric}` of plugin `{plugin}`)")
    return ", ".join(names)


def _sentence(text: str) -> str:
    """A note as a sentence of a paragraph: its first letter upper case."""
    return text[:1].upper() + text[1:]


def _yaml_value(v) -> str:
    """A resolved setting as the spec would spell it: true/false, null, else as a table shows it."""
    if isinstance(v, bool):
        return str(v).lower()
    return "null" if v is None else format_value(v)


def _resolved(settings: dict[str, object], set_by_spec: set[str]) -> str:
    """Every shared setting with its resolved value, in bold the ones the spec set: "**`train.epochs=20`**,
    `train.lr=0.001`"."""
    return ", ".join(
        f"**`{k}={_yaml_value(v)}`**" if k in set_by_spec else f"`{k}={_yaml_value(v)}`" for k, v in settings.items()
    )


def _settings(settings: dict[str, object]) -> str:
    """Parameter settings as the report lists them: "`model.name=conv`, `train.epochs=5`"."""
    return ", ".join(f"`{k}={format_value(v)}`" for k, v in settings.items())
