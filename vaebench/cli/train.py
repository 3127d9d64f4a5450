"""`vaebench train SPEC --cell I --seed S`: one run of a spec's grid cell, in this process, with no
Optuna study and no worker process: the training loop and the evaluation a sweep's worker runs
(engine.execute_run), where a debugger can step through them. It writes nothing unless `--results
DIR` is given; then the run's row, model and figure arrays land where a sweep's worker puts them,
under the same run id.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional

import typer

from ..errors import VaebenchError
from .options import (
    DataRoot,
    Device,
    Download,
    InceptionWeights,
    LpipsWeights,
    Overrides,
    Plugins,
    Threads,
    bad_usage,
    console,
    fail,
    load_plugin_options,
    set_inception_weights,
    set_lpips_weights,
)
from .progress import RichReporter, sweep_progress


class _OneRun(RichReporter):
    """The epochs of the one run on an interactive terminal; its result is printed by the command."""

    def trial_end(self, row: dict) -> None:
        self.clock.trial_end()


def train(
    spec_path: Path = typer.Argument(..., metavar="SPEC.yaml", help="sweep spec"),
    overrides: Optional[list[str]] = Overrides,
    cell: int = typer.Option(..., "--cell", help="the grid cell to run: 0-based, in the spec's grid order"),
    seed: int = typer.Option(..., "--seed", help="the seed of the run"),
    results: Optional[Path] = typer.Option(
        None,
        "--results",
        help="write the run's row, model and figure arrays to this results folder, as a sweep's worker "
        "would (default: write nothing)",
    ),
    data_root: Optional[Path] = DataRoot,
    device: Optional[str] = Device,
    download: bool = Download,
    inception_weights: Optional[Path] = InceptionWeights,
    lpips_weights: Optional[Path] = LpipsWeights,
    plugin: Optional[list[str]] = Plugins,
    threads: Optional[int] = Threads,
) -> None:
    """Train and evaluate one run, the spec's grid cell I with seed S, in this process (no study, no
    worker processes): print its run id and main metrics; write its row only with --results."""
    load_plugin_options(plugin)
    import torch

    from ..data import load_dataset
    from ..engine.checkpoint import remove_checkpoint
    from ..engine.execute import Setting, execute_run
    from ..results.rows import row_path, write_row
    from ..results.status import RunStatus
    from ..runtime.device import check_device, check_precision
    from ..spec.sweep_spec import Run, load_spec
    from ..sweep.launch import plan_layout

    set_inception_weights(inception_weights)
    set_lpips_weights(lpips_weights)
    try:
        dev = check_device(device, "--device")  # the boundary: checked here, once
        spec = load_spec(spec_path, overrides)
    except VaebenchError as e:
        fail(e)
    if spec.search.sampled:
        bad_usage(
            f"--cell: {spec_path} is a sampled search (search.sampler {spec.search.sampler}): its runs are "
            "drawn by the sampler, it has no grid cells"
        )
    cells = spec.grid_cells()
    if not 0 <= cell < len(cells):
        bad_usage(f"--cell {cell}: {spec_path} has {len(cells)} grid cell(s), --cell 0 to {len(cells) - 1}")
    labels, config = cells[cell]
    run = Run(config, seed, labels, cell)
    try:
        check_precision(config.train.precision, dev)
        data = load_dataset(config.dataset, data_root, download=download)
    except VaebenchError as e:
        fail(e)
    values = ", ".join(f"{k}={v}" for k, v in labels.items()) or "no grid"
    console.print(
        f"run {run.run_id}: study {spec.study}, cell {cell} of {len(cells)} ({values}), seed {seed}, device {dev}",
        highlight=False,
    )
    command = " ".join(
        ["vaebench train", str(spec_path), *map(shlex.quote, overrides or []), f"--cell {cell} --seed {seed}"]
    )
    setting = Setting(spec, data, dev, results, command, tuple(overrides or []))
    before = torch.get_num_threads()  # the threads of a one-worker sweep, so that its row is that row
    torch.set_num_threads(plan_layout(1, threads, 1, dev).threads)
    try:
        with sweep_progress(console, disable=not console.is_terminal) as progress:
            reporter = _OneRun(progress, 1, 0)
            reporter.trial_start(-1, run.run_id, config, seed, labels=labels)
            row = execute_run(run, setting, reporter)
    finally:
        torch.set_num_threads(before)
    if row["status"] == RunStatus.OK:
        console.print(
            f"run {run.run_id} {row['status']}: -ELBO {row['neg_elbo']:.2f} nats, KL {row['kl']:.2f}, "
            f"recon MSE {row['recon_mse']:.4f}; train {row['train_seconds']:.1f} s, eval {row['eval_seconds']:.1f} s; "
            f"{row['epochs_completed']} epochs, {row['stop_reason']}, weights of epoch {row['best_epoch']}",
            highlight=False,
        )
    else:
        console.print(f"run {run.run_id} [yellow]{row['status']}:[/] {row['reason']}", highlight=False)
    if results is not None:
        write_row(results, spec.study, row)
        remove_checkpoint(results, spec.study, run.run_id)
        console.print(f"wrote {row_path(results, spec.study, run.run_id)}", highlight=False)
    if row["status"] != RunStatus.OK:
        raise typer.Exit(1)
