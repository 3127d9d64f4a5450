"""Command line: the commands over spec -> study -> worker -> results -> report, their arguments and
exit codes; the shared options and error exits are in cli/options.py, the work in the modules they call."""

from __future__ import annotations

import enum
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ..errors import Preempted, StudyError, VaebenchError
from ..reporting.formats import REPORT_FORMATS
from ..results.rows import EXPORT_FORMATS, grid_column
from ..runtime import stop
from ..sweep.launch import COMMAND_ENV, WORKERS_ENV
from ..sweep.storage import open_store as _store
from .options import (
    DataRoot,
    Device,
    Download,
    Heartbeat,
    InceptionWeights,
    LpipsWeights,
    Overrides,
    Plugins,
    Quiet,
    ResultsRoot,
    StorageUrl,
    Threads,
    Track,
    bad_usage,
    console,
    fail,
    interrupted,
    load_plugin_options,
    preempted,
    set_inception_weights,
    set_lpips_weights,
)
from .progress import cell_label, evaluating_text, print_status
from .progress import duration as _duration
from .train import train as _train

app = typer.Typer(add_completion=True, no_args_is_help=True, help="Benchmark and sweep harness for VAEs.")


def _version(value: bool) -> None:
    if value:
        from .._version import __version__

        print(f"vaebench {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print vaebench's version and exit"
    ),
) -> None:
    """Benchmark and sweep harness for VAEs."""


@app.command()
def run(
    spec_path: Path = typer.Argument(..., metavar="SPEC.yaml", help="sweep spec"),
    overrides: Optional[list[str]] = Overrides,
    study: Optional[str] = typer.Option(None, "--study", help="study name (default: the spec's `study`)"),
    print_spec: bool = typer.Option(
        False, "--print-spec", help="print the resolved spec (the file with the overrides, as YAML) and exit"
    ),
    workers: Optional[int] = typer.Option(
        None,
        "--workers",
        envvar=WORKERS_ENV,
        min=0,
        help="worker processes on this machine (default: one 1-thread worker per core on CPU, one per GPU on "
        "CUDA; 0: create or check the study and its grid, start none)",
    ),
    workers_per_gpu: Optional[int] = typer.Option(
        None,
        "--workers-per-gpu",
        min=1,
        help="CUDA: this many workers share each visible GPU, for small trials (default 1; --workers overrides it)",
    ),
    threads: Optional[int] = Threads,
    storage: Optional[str] = StorageUrl,
    heartbeat: int = Heartbeat,
    data_root: Optional[Path] = DataRoot,
    results: Optional[Path] = ResultsRoot,
    device: Optional[str] = Device,
    download: bool = Download,
    inception_weights: Optional[Path] = InceptionWeights,
    lpips_weights: Optional[Path] = LpipsWeights,
    quiet: bool = Quiet,
    plugin: Optional[list[str]] = Plugins,
    track: Optional[list[str]] = Track,
) -> None:
    """Run (or resume) the sweep SPEC.yaml, with KEY=VALUE overrides of its keys (train.epochs=3
    seeds=[0] 'grid.objective.beta=[1,4]' study=my_try): one Optuna trial per grid cell x seed (or per
    draw of a sampled search), on one or several worker processes."""
    load_plugin_options(plugin)
    from ..sweep.run import run_sweep
    from .display import RunDisplay, unfinished_message

    set_inception_weights(inception_weights)
    set_lpips_weights(lpips_weights)
    if print_spec:
        _print_spec(spec_path, overrides, study)
        return
    stop.install()  # SIGTERM: checkpoint, hand the trials back, exit 3 (passed on to the worker processes)
    try:
        final, ok = run_sweep(
            spec_path,
            study=study,
            workers=workers,
            threads=threads,
            storage=storage,
            heartbeat=heartbeat,
            data_root=data_root,
            results=results,
            device=device,
            download=download,
            plugins=plugin or [],
            display=RunDisplay(console, quiet),
            workers_per_gpu=workers_per_gpu,
            device_option="--device",  # checked there, before anything is written
            overrides=overrides or [],
            track=track or [],
            track_option="--track",
        )
    except KeyboardInterrupt:  # Ctrl-C: the finished rows are kept; say how to resume, exit 130
        interrupted()
    except Preempted as e:
        preempted(e)
    except VaebenchError as e:
        fail(e)
    if workers == 0:  # the study is created (or checked); no worker was asked for
        return
    if (message := unfinished_message(final, ok)) is not None:
        console.print(message)
        raise typer.Exit(1)


def _print_spec(spec_path: Path, overrides: Optional[list[str]], study: Optional[str]) -> None:
    """`run --print-spec`: the spec as it would run (every value, defaults resolved) as YAML on
    standard output; writes nothing. A bad spec or override exits 2 as `run` does."""
    import yaml

    from ..sweep.run import resolve_spec

    try:
        spec = resolve_spec(spec_path, overrides, study)
    except VaebenchError as e:
        fail(e)
    dumped = spec.model_dump(mode="json")
    first = {k: dumped.pop(k) for k in ("study", "description", "plugins")}
    sys.stdout.write(yaml.safe_dump({**first, **dumped}, sort_keys=False, allow_unicode=True))


@app.command()
def worker(
    study: str = typer.Option(..., "--study", help="the study to join (created by `vaebench run`)"),
    storage: Optional[str] = StorageUrl,
    heartbeat: int = Heartbeat,
    threads: Optional[int] = Threads,
    data_root: Optional[Path] = DataRoot,
    results: Optional[Path] = ResultsRoot,
    device: Optional[str] = Device,
    download: bool = Download,
    inception_weights: Optional[Path] = InceptionWeights,
    lpips_weights: Optional[Path] = LpipsWeights,
    quiet: bool = Quiet,
    plugin: Optional[list[str]] = Plugins,
    track: Optional[list[str]] = Track,
    wait_seconds: float = typer.Option(
        0.0,
        "--wait-for-study",
        hidden=True,
        min=0,
        help="wait up to this many seconds for the study to be made (the workers `vaebench run` starts beside it)",
    ),
) -> None:
    """Join an existing study (from this or any machine) and run its trials until none is left."""
    load_plugin_options(plugin)
    from ..runtime.device import check_device
    from ..sweep.join import join_study
    from .display import WorkerDisplay

    set_inception_weights(inception_weights)
    set_lpips_weights(lpips_weights)
    command = os.environ.get(COMMAND_ENV) or f"vaebench worker --study {study}" + (" --storage URL" if storage else "")
    stop.install()  # SIGTERM: checkpoint, hand the trial back, exit 3
    try:
        dev = check_device(device, "--device")  # before anything is written
        store = _store(storage, results, study, heartbeat)
        summary = join_study(
            store,
            dev,
            WorkerDisplay(console),
            threads=threads,
            data_root=data_root,
            download=download,
            wait_seconds=wait_seconds,
            command=command,
            track=track or [],
        )
    except KeyboardInterrupt:  # Ctrl-C: the finished rows are kept; say how to resume, exit 130
        interrupted(started_by_run=COMMAND_ENV in os.environ)
    except Preempted as e:
        preempted(e)
    except VaebenchError as e:
        fail(e)
    if summary.crashed:
        raise typer.Exit(1)


app.command("train")(_train)  # one run in this process, no study: cli/train.py


@app.command()
def status(
    study: Optional[str] = typer.Option(None, "--study", help="one study (default: every study in the storage)"),
    storage: Optional[str] = StorageUrl,
    results: Optional[Path] = ResultsRoot,
    plugin: Optional[list[str]] = Plugins,
) -> None:
    """Show a study's progress: complete, pruned, failed, crashed, running, waiting, and the time left."""
    load_plugin_options(plugin)
    from ..sweep.storage import study_names
    from ..sweep.study import STUDY_SPEC, study_status

    out = Console(soft_wrap=True)  # the answer goes to standard output; errors (fail) to standard error
    try:
        store = _store(storage, results, study or "")
        names = [study] if study else study_names(store)
        if not names:
            raise StudyError(f"no studies in {store.describe() if storage else store.results_root}")
        for name in names:
            st = store.with_study(name).load_study()
            if STUDY_SPEC not in st.user_attrs:
                out.print(f"study {name}: not a vaebench study, skipped")
                continue
            info = study_status(st)
            print_status(info, out)
            if info.mean_trial_seconds is not None:
                out.print(f"  mean trial time {info.mean_trial_seconds:.1f} s over {info.complete} complete trial(s)")
            for (number, run_id, worker_id, secs), (epochs, loss), (labels, seed), metric in zip(
                info.running, info.running_epochs, info.running_cells, info.running_evaluating
            ):
                if metric is not None:
                    at = f", {evaluating_text(metric)}"
                else:
                    at = f", epoch {epochs}/{info.epochs_per_trial}" + (
                        f" (test -ELBO {loss:.2f})" if loss is not None else ""
                    )
                out.print(
                    f"  running: trial {number} run {run_id} ({cell_label(labels, seed)}) on {worker_id} "
                    f"for {_duration(secs)}{at}",
                    highlight=False,
                )
            for number, reason in info.crashes:
                out.print(f"  crashed: trial {number}: {reason}", highlight=False)
    except VaebenchError as e:
        fail(e)


@app.command()
def pull(
    study: str = typer.Option(..., "--study", help="the study whose rows to collect"),
    storage: Optional[str] = StorageUrl,
    results: Optional[Path] = ResultsRoot,
    plugin: Optional[list[str]] = Plugins,
) -> None:
    """Copy every finished row held in the study storage into this results folder (the rows of
    workers on other machines), so `vaebench results` and `report` see them all."""
    load_plugin_options(plugin)
    from ..plugins import load_plugins
    from ..sweep.study import STUDY_SPEC, export_rows

    try:
        store = _store(storage, results, study)
        st = store.load_study()
        # the rows name the study's families: import the plugins its stored spec lists
        load_plugins(st.user_attrs.get(STUDY_SPEC, {}).get("plugins", []), f"study {study!r}'s stored spec")
    except VaebenchError as e:
        fail(e)
    written, present = export_rows(st, store)
    console.print(f"study {study}: wrote {written} row(s) to {store.folder / 'runs'}, {present} already there")


@app.command()
def delete(
    study: str = typer.Option(..., "--study", help="the study to delete"),
    storage: Optional[str] = StorageUrl,
    results: Optional[Path] = ResultsRoot,
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
) -> None:
    """Delete a study: its Optuna study (journal or database) and its results folder (rows, spec,
    models, figure arrays, checkpoints), to start it over. Asks first unless --yes."""
    from ..sweep.delete import delete_study, study_parts

    try:
        store = _store(storage, results, study)
        parts = study_parts(store)
    except VaebenchError as e:
        fail(e)
    if not yes:
        console.print(f"study {study}:", highlight=False)
        for part in parts:
            console.print(f"  {part}", highlight=False)
        if not typer.confirm("delete all of it?", default=False, err=True):
            console.print("nothing deleted")
            raise typer.Exit(1)
    try:
        removed = delete_study(store)
    except VaebenchError as e:
        fail(e)
    console.print(f"deleted study {study}: {'; '.join(removed)}", highlight=False)


def _choices(name: str, values: tuple[str, ...]) -> type[enum.Enum]:
    """The choices of an option as typer takes them: a str Enum whose members are named as their values."""
    return enum.Enum(name, {v: v for v in values}, type=str)


ExportFormat = _choices("ExportFormat", EXPORT_FORMATS)
ReportFormat = _choices("ReportFormat", REPORT_FORMATS)


@app.command()
def results(
    study: Optional[str] = typer.Option(None, "--study", help="one study (default: all)"),
    results: Optional[Path] = ResultsRoot,
    csv: bool = typer.Option(False, "--csv", help="every column as CSV instead of a table (= --format csv)"),
    fmt: Optional[ExportFormat] = typer.Option(
        None,
        "--format",
        help="export every column, one row per run: parquet (needs --out), csv (list columns "
        "as one-line JSON) or json (JSON Lines); read back by pandas, DuckDB, polars",
    ),
    out: Optional[Path] = typer.Option(None, "--out", help="write the export to FILE instead of standard output"),
    plugin: Optional[list[str]] = Plugins,
) -> None:
    """Print the results rows (one per finished run), or export them (--csv, --format)."""
    load_plugin_options(plugin)
    from ..metrics import column_names as C
    from ..results.row_plugins import import_row_plugins
    from ..results.rows import export_results, load_results_table, resolve_results_root

    if csv and fmt not in (None, ExportFormat.csv):
        bad_usage(f"--csv and --format {fmt.value} disagree; give one")
    fmt = ExportFormat.csv if csv else fmt
    if fmt is ExportFormat.parquet and out is None:
        bad_usage("--format parquet writes a binary file: give --out FILE")
    if out is not None and fmt is None:
        bad_usage("--out FILE writes an export: give --csv or --format parquet|csv|json")
    table = load_results_table(resolve_results_root(results), study)
    if table is None:
        console.print(f"no results under {resolve_results_root(results)}" + (f" for study {study!r}" if study else ""))
        raise typer.Exit(1)
    try:  # as `report` and `load_results` do: the rows' plugins, or exit 2 naming the one they need
        import_row_plugins(table, f"study {study!r}" if study else f"the results under {resolve_results_root(results)}")
    except VaebenchError as e:
        fail(e)
    if fmt is not None:
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
        export_results(table, fmt.value, out if out is not None else sys.stdout)
        if out is not None:
            console.print(f"wrote {table.num_rows} row(s) x {table.num_columns} columns to {out} ({fmt.value})")
        return
    df = table.to_pandas()
    out = Console()
    if not out.is_terminal:
        out = Console(width=200)  # pipes and files get whole tables, not 80-column ellipses
    shown = [
        ("recon_mse", C.RECON_MSE),
        ("KL", C.KL),
        ("-ELBO", C.NEG_ELBO),
        ("SSIM", C.SSIM),
        ("AU", C.ACTIVE_UNITS),
        ("train s", "train_seconds"),
    ]
    for name, g in df.groupby("study", sort=True):
        params = [grid_column(k) for k in g["grid_keys"].iloc[0]]
        columns = shown + _fid_columns(g)
        table = Table(
            "run_id",
            *[p.removeprefix("param.") for p in params],
            "seed",
            "status",
            *[label for label, _ in columns],
            title=f"study {name}",
            caption=_fid_caption(g),
        )
        for _, r in g.iterrows():
            values = [r["run_id"], *[r[p] for p in params], r["seed"], r["status"], *[r[c] for _, c in columns]]
            table.add_row(
                *["—" if v is None or v != v else f"{v:.4g}" if isinstance(v, float) else str(v) for v in values]
            )
        out.print(table)


def _fid_columns(rows) -> list[tuple[str, str]]:
    """The FID column of the `results` table, when some of the study's rows have an FID (metrics/fid.py:
    prior samples vs test images, on the features of the row's `fid_extractor`)."""
    from ..metrics import column_names as C

    return [("FID", C.FID)] if C.FID in rows and rows[C.FID].notna().any() else []


def _fid_caption(rows) -> Optional[str]:
    """Which features the FID column was computed on: the rows' `fid_extractor` (a vaebench classifier
    is not Inception-v3: its FIDs are not comparable with published ones)."""
    from ..metrics import column_names as C

    if not _fid_columns(rows) or C.FID_EXTRACTOR not in rows:
        return None
    extractors = sorted(rows.loc[rows[C.FID].notna(), C.FID_EXTRACTOR].dropna().unique())
    return f"FID on the features of {', '.join(extractors)}" if extractors else None


@app.command()
def report(
    study: Optional[str] = typer.Option(None, "--study", help="one study (default: every study with results)"),
    results: Optional[Path] = ResultsRoot,
    out: Path = typer.Option(Path("reports"), "--out", help="folder for the reports"),
    fmt: ReportFormat = typer.Option(
        "both", "--format", help="md (Markdown + PNG figures), html (one self-contained page) or both"
    ),
    plugin: Optional[list[str]] = Plugins,
) -> None:
    """Write each study's report: reports/<study>.md with reports/<study>/figures/, and/or reports/<study>.html."""
    load_plugin_options(plugin)
    from ..reporting.write import write_reports
    from ..results.rows import resolve_results_root

    root = resolve_results_root(results)
    try:
        written = write_reports(root, out, study, fmt.value)
    except VaebenchError as e:
        fail(e)
    if not written:
        console.print(f"no results under {root}" + (f" for study {study!r}" if study else "") + "; run a sweep first")
        raise typer.Exit(1)
    for path in written:
        console.print(f"wrote {path}")


def main() -> None:
    """The `vaebench` command (and `python -m vaebench.cli`, which worker processes run): the typer
    app, then a prompt exit. After the command has finished, flushed its output and run the atexit
    handlers, the process ends with `os._exit` instead of the interpreter's teardown, which with
    torch (and CUDA builds' libraries) loaded takes seconds: time a sweep pays in its parent and in
    every worker. In-process callers (tests) use `app` itself."""
    import atexit
    import logging

    try:
        app()
        code = 0
    except VaebenchError as e:  # a backstop: every command handles its own (a PluginError from an import)
        print(f"error: {e}", file=sys.stderr)
        code = e.exit_code
    except SystemExit as e:  # typer ends every command this way
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:  # a message: what the interpreter would print
            print(e.code, file=sys.stderr)
            code = 1
    atexit._run_exitfuncs()  # the handlers the interpreter would run (temporary folders, loggers, ...)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
