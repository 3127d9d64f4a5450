"""Command line: thin wrappers over spec -> study -> worker -> results -> report. No logic here."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .errors import DataError, VaebenchError
from .results import grid_column

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Benchmark and sweep harness for VAEs.")
console = Console(stderr=True, soft_wrap=True)  # long lines stay whole in logs

DataRoot = typer.Option(None, "--data-root", help="dataset folder (else $VAEBENCH_DATA_ROOT, else ./data)")
ResultsRoot = typer.Option(None, "--results", help="results folder (else $VAEBENCH_RESULTS, else ./results)")


def _fail(e: VaebenchError) -> None:
    console.print(f"[bold red]error:[/] {e}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(e.exit_code)


class _RichReporter:
    """Shows runs done / total and the epochs of the current run."""

    def __init__(self, progress: Progress, total_runs: int, done: int) -> None:
        self.p = progress
        self.runs = progress.add_task("runs", total=total_runs, completed=done)
        self.epochs = progress.add_task("epochs", total=1, visible=False)

    def trial_start(self, number, run_id, config, seed) -> None:
        desc = f"run {run_id} seed {seed}"
        self.p.reset(self.epochs, total=config.train.epochs, description=desc, visible=True)

    def epoch(self, record: dict) -> None:
        self.p.update(self.epochs, advance=1, description=f"epoch {record['epoch']} test loss {record['test_loss']:.2f}")

    def trial_end(self, row: dict) -> None:
        self.p.update(self.runs, advance=1)
        done = int(self.p.tasks[self.runs].completed)
        cell = " ".join(f"{k}={row[grid_column(k)]}" for k in row["grid_keys"])
        head = f"[{done}/{int(self.p.tasks[self.runs].total)}] run {row['run_id']} {cell} seed {row['seed']}:"
        if row["status"] == "ok":
            self.p.console.print(
                f"{head} -ELBO {row['neg_elbo']:.2f} nats, KL {row['kl']:.2f}, recon MSE {row['recon_mse']:.4f}; "
                f"train {row['train_seconds']:.0f} s, eval {row['eval_seconds']:.1f} s", highlight=False)
        else:
            self.p.console.print(f"{head} [yellow]failed:[/] {row['reason']}", highlight=False)


@app.command()
def run(
    spec_path: Path = typer.Argument(..., metavar="SPEC.yaml", help="sweep spec"),
    study: Optional[str] = typer.Option(None, "--study", help="study name (default: the spec's `study`)"),
    data_root: Optional[Path] = DataRoot,
    results: Optional[Path] = ResultsRoot,
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda[:N] (else $VAEBENCH_DEVICE, else auto)"),
    download: bool = typer.Option(True, help="download a missing dataset when the network allows"),
    inception_weights: Optional[Path] = typer.Option(
        None, "--inception-weights", help="local Inception-v3 weights for eval.fid_extractor: inception "
        "(else $VAEBENCH_INCEPTION_WEIGHTS, else torch-fidelity downloads them)"
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
) -> None:
    """Run (or resume) the sweep SPEC.yaml: one Optuna trial per grid cell x seed."""
    from .data import load_dataset
    from .metrics.fid import INCEPTION_WEIGHTS_ENV
    from .results import resolve_results_root
    from .spec import load_spec, parse_spec
    from .study import open_study, run_worker
    from optuna.trial import TrialState

    t0 = time.perf_counter()
    if inception_weights is not None:
        if not inception_weights.is_file():
            _fail(DataError(f"--inception-weights {inception_weights}: no such file"))
        os.environ[INCEPTION_WEIGHTS_ENV] = str(inception_weights.resolve())
    try:
        spec = load_spec(spec_path)
        if study:
            spec = parse_spec({**spec.model_dump(), "study": study}, f"--study {study}")
        data = load_dataset(spec.dataset, data_root, download=download)  # before anything is written
        root = resolve_results_root(results)
        st = open_study(spec, root)
    except VaebenchError as e:
        _fail(e)
    total = len(spec.runs())
    done = len(st.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    console.print(
        f"study [bold]{spec.study}[/]: {total} runs ({len(spec.cells())} cells x {len(spec.seeds)} seeds), "
        f"{done} already complete; dataset {data.name} {tuple(data.x_train.shape)} checksum {data.checksum}; "
        f"results in {root / spec.study}"
    )
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=quiet or not console.is_terminal,
    ) as progress:
        command = " ".join(
            ["vaebench run", str(spec_path)] + [f"--{k} {v}" for k, v in (("study", study), ("device", device)) if v]
        )
        summary = run_worker(st, spec, data, root, device, _RichReporter(progress, total, done), command)
    console.print(
        f"finished {len(summary.finished)} run(s), {len(summary.failed)} failed (diverged), "
        f"{len(summary.errors)} error(s) in {time.perf_counter() - t0:.1f} s"
    )
    for err in summary.errors:
        console.print(f"[red]error in run {err}[/] (will be retried by the next `vaebench run`)")
    if summary.errors:
        raise typer.Exit(1)


@app.command()
def results(
    study: Optional[str] = typer.Option(None, "--study", help="one study (default: all)"),
    results: Optional[Path] = ResultsRoot,
    csv: bool = typer.Option(False, "--csv", help="print every column as CSV instead of a table"),
) -> None:
    """Print the results rows (one per finished run)."""
    from .metrics import columns as C
    from .results import load_results, resolve_results_root

    df = load_results(resolve_results_root(results), study)
    if df.empty:
        console.print(f"no results under {resolve_results_root(results)}" + (f" for study {study!r}" if study else ""))
        raise typer.Exit(1)
    if csv:
        df.drop(columns=["history"]).to_csv(sys.stdout, index=False)
        return
    out = Console()
    if not out.is_terminal:
        out = Console(width=200)  # pipes and files get whole tables, not 80-column ellipses
    shown = [("recon_mse", C.RECON_MSE), ("KL", C.KL), ("-ELBO", C.NEG_ELBO), ("SSIM", C.SSIM),
             ("AU", C.ACTIVE_UNITS), ("train s", "train_seconds")]
    for name, g in df.groupby("study", sort=True):
        params = [grid_column(k) for k in g["grid_keys"].iloc[0]]
        table = Table("run_id", *[p.removeprefix("param.") for p in params], "seed", "status",
                      *[label for label, _ in shown], title=f"study {name}")
        for _, r in g.iterrows():
            values = [r["run_id"], *[r[p] for p in params], r["seed"], r["status"], *[r[c] for _, c in shown]]
            table.add_row(*["—" if v is None or v != v else f"{v:.4g}" if isinstance(v, float) else str(v)
                            for v in values])
        out.print(table)


@app.command()
def report(
    study: Optional[str] = typer.Option(None, "--study", help="one study (default: every study with results)"),
    results: Optional[Path] = ResultsRoot,
    out: Path = typer.Option(Path("reports"), "--out", help="folder for the reports"),
) -> None:
    """Write a Markdown report per study to reports/<study>.md."""
    from .report import write_reports
    from .results import resolve_results_root

    root = resolve_results_root(results)
    written = write_reports(root, out, study)
    if not written:
        console.print(f"no results under {root}" + (f" for study {study!r}" if study else "") + "; run a sweep first")
        raise typer.Exit(1)
    for path in written:
        console.print(f"wrote {path}")


if __name__ == "__main__":
    app()
