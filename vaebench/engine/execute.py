"""One run, start to row: train it, evaluate it, save its model and artifacts, and return its
results row (with its provenance). Knows nothing of Optuna: the worker loop (sweep/worker.py) hands it a
`Run` and an epoch callback, and stores the row it gets back.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from ..data import Dataset
from ..metrics import declared_columns, evaluate
from ..models import count_parameters
from ..results.artifacts import save_trial_artifacts
from ..results.build import build_row
from ..results.status import RunStatus
from ..runtime import stop
from ..runtime.device import tf32
from ..spec.sweep_spec import Run, RunConfig, SweepSpec
from .checkpoint import Checkpoints, checkpoint_path, run_identity
from .train import EpochCallback, train


class Reporter:
    """Progress hooks a worker calls, in this order for each run: `trial_start`, `epoch` after each
    epoch, `evaluating` as each metric of the trained model starts, `trial_end`. The CLI passes a
    rich-backed one. No-ops here, but `note` (a checkpoint resumed from or ignored, and why), which
    goes to the `vaebench` logger. The engine calls the reporter; a reporter never calls back."""

    def trial_start(
        self, trial_number: int, run_id: str, config: RunConfig, seed: int, labels: Optional[dict] = None
    ) -> None:
        """A run starts: `labels` are its cell's grid values (key -> value; {} without a grid)."""

    def epoch(self, record: dict) -> None: ...

    def evaluating(self, metric: str) -> None:
        """Training is over and the metric `metric` (a registered name: fid, likelihood, ...) is
        being computed on the trained model."""

    def trial_end(self, row: dict) -> None: ...

    def note(self, text: str) -> None:
        log_note(text)


def log_note(text: str) -> None:
    """A note to the `vaebench` logger: where a reporter without `note` (a display's own) sends one."""
    logging.getLogger("vaebench").warning(text)


def _nothing(*_: Any) -> None: ...


@dataclass(frozen=True)
class Attempt:
    """What the caller (sweep/worker.py) knows of this run's earlier attempts, and hears of this
    one's checkpoints. `number`: the trials of the study that have carried the run, this one
    included (the row's `attempts`). `earlier_checkpoint`: the last checkpoint an earlier attempt
    announced ({"path", "host", "epoch", "step"}), to say why it is missing. `resumed(history)`: the
    epochs a checkpoint restored; `checkpointed(info)`: after each checkpoint written;
    `evaluating(metric)`: as each metric of the trained model starts (the reporter hears it too)."""

    number: int = 1
    earlier_checkpoint: Optional[dict] = None
    resumed: Callable[[list[dict]], None] = _nothing
    checkpointed: Callable[[dict], None] = _nothing
    evaluating: Callable[[str], None] = _nothing


@dataclass(frozen=True)
class Setting:
    """What every run of one worker shares. `results_root` None: the model and the figure arrays
    are not saved (`vaebench train` without --results)."""

    spec: SweepSpec
    data: Dataset
    device: torch.device
    results_root: Optional[Path]
    command: str = ""
    overrides: tuple[str, ...] = ()  # the command-line KEY=VALUE overrides the spec was made with


def execute_run(
    run: Run,
    setting: Setting,
    reporter: Reporter,
    trial_number: int = -1,
    stop_check: Optional[EpochCallback] = None,
    attempt: Attempt = Attempt(),
) -> dict[str, Any]:
    """Train and evaluate one run; return its results row (status ok, failed or pruned: RunStatus).
    `stop_check` is asked after every epoch (after the reporter) whether to stop training. With a
    results folder the run resumes from its checkpoint there and writes checkpoints as its
    `train.checkpoint_every` asks (engine/checkpoint.py; the caller removes it once the row is
    written); a stop request (SIGTERM) raises `errors.Preempted` after writing one."""
    spec, data, run_id = setting.spec, setting.data, run.run_id

    def on_epoch(record: dict) -> Optional[str]:
        reporter.epoch(record)
        return stop_check(record) if stop_check is not None else None

    checkpoints = None
    if setting.results_root is not None:
        every_epochs, every_seconds = run.config.train.checkpoint_interval()
        checkpoints = Checkpoints(
            checkpoint_path(setting.results_root, spec.study, run_id),
            run_identity(run_id, run.config, data, setting.device),
            every_epochs,
            every_seconds,
            note=getattr(reporter, "note", log_note),
            written=attempt.checkpointed,
            earlier=attempt.earlier_checkpoint,
        )
    result = train(
        run.config,
        data,
        run.seed,
        setting.device,
        on_epoch=on_epoch,
        checkpoints=checkpoints,
        on_resume=attempt.resumed,
    )
    measured: dict[str, Any] = {}
    eval_seconds, paths, targets = None, {"model_path": None, "artifacts_path": None}, None
    split = "validation" if data.validation_size else "test"
    if result.status is RunStatus.OK:
        heard = getattr(reporter, "evaluating", None)  # a display's own reporter may not have the hook

        def on_metric(name: str) -> None:
            attempt.evaluating(name)
            if heard is not None:
                heard(name)

        t0 = time.perf_counter()
        with tf32(setting.device, False):  # evaluation in full float32, whatever the training precision
            measured = evaluate(result.model, data, run.config, run.seed, on_metric=on_metric)
            targets = objective_values(result.model, data, run.config, run.seed, spec.search.metrics, measured)
            eval_seconds = time.perf_counter() - t0
            if setting.results_root is not None:
                paths = save_trial_artifacts(result.model, data, run.seed, setting.results_root, spec.study, run_id)
    stop.kill_point("before-row")
    return build_row(
        run_id=run_id,
        study=spec.study,
        seed=run.seed,
        status=result.status,
        reason=result.reason,
        variant=run.variant,
        cell_index=run.cell_index,
        trial_number=trial_number,
        config=run.config,
        grid_keys=list(spec.search.space) if spec.search.sampled else list(spec.grid),
        sampler=spec.search.sampler,
        objective_metrics=spec.search.metrics,
        objective_directions=spec.search.directions,
        objective_values=targets,
        objective_split=split,
        allow_test_selection=spec.search.allow_test_selection,
        n_params=count_parameters(result.model),
        epochs_completed=len(result.history),
        stop_reason=result.stop_reason,
        best_epoch=result.best_epoch,
        resumed_from_epoch=result.resumed_from_epoch,
        attempts=attempt.number,
        train_seconds=result.seconds,
        eval_seconds=eval_seconds,
        **paths,
        metrics=measured,
        history=result.history,
        precision=result.precision,
        tf32=result.tf32,
        command=setting.command,
        overrides=list(setting.overrides),
        device=setting.device,
        dataset=data.name,
        dataset_checksum=data.checksum,
        validation_size=data.validation_size,
        validation_checksum=data.validation_checksum,
        spec_fingerprint=spec.fingerprint(),
    )


def objective_values(
    model, data: Dataset, config: RunConfig, seed: int, columns: list[str], measured: dict[str, Any]
) -> Optional[list[float]]:
    """The values of the search's target `columns` that the trial tells Optuna: measured on the
    validation split when `data` has one (only the metrics that fill those columns run again, on it),
    else the test split's (`measured`). None when a column is null or not finite (the trial fails)."""
    if data.validation_size:
        metrics = list(dict.fromkeys(declared_columns()[c][0] for c in columns))
        measured = evaluate(model, data.validation_split(), config, seed, names=metrics)
    values = [measured.get(c) for c in columns]
    if any(not isinstance(v, (int, float)) or not math.isfinite(v) for v in values):
        return None
    return [float(v) for v in values]
