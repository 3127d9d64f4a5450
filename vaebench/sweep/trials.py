"""What an Optuna trial of a vaebench study holds, and the one way to write and read it.

A trial stands for one `Run`: five user attributes (`encode_run` writes them, `decode_run` reads
them back), enqueued with a grid trial or set on a sampled draw. A finished run adds its results row
(`ATTR_ROW`, plain JSON) and the row's scalars as short attributes (`m.<column>`, what
optuna-dashboard shows); its state says its outcome (`status_of`: COMPLETE ok, PRUNED pruned, FAIL
with a row failed, FAIL without one crashed). The lease and the failure reason are leases.py's (`ATTR_WORKER`,
`ATTR_FAIL`).
"""

from __future__ import annotations

from typing import Any, Optional

from optuna.trial import FrozenTrial, TrialState

from ..results.status import RunStatus
from ..spec.sweep_spec import Run, RunConfig

ATTR_RUN_ID, ATTR_CONFIG, ATTR_SEED = "run_id", "config", "seed"
ATTR_LABELS, ATTR_CELL = "labels", "cell_index"
ATTR_ROW = "row"  # the finished run's results row
# {"trial": number, "metric": name}: the metric the trial's run is being evaluated on (training is
# over); the trial number, because a retried trial inherits its predecessor's attributes
ATTR_EVALUATING = "evaluating"


def evaluating_metric(trial: FrozenTrial) -> Optional[str]:
    """The metric a running trial's run is being evaluated on, or None while it trains."""
    phase = trial.user_attrs.get(ATTR_EVALUATING)
    return phase["metric"] if isinstance(phase, dict) and phase.get("trial") == trial.number else None


def encode_run(run: Run) -> dict[str, Any]:
    """The user attributes of a trial that stands for `run`: its run id, its config (JSON), its seed,
    its grid labels (the cell's grid values) and its cell index."""
    return {
        ATTR_RUN_ID: run.run_id,
        ATTR_CONFIG: run.config.model_dump(mode="json"),
        ATTR_SEED: run.seed,
        ATTR_LABELS: run.labels,
        ATTR_CELL: run.cell_index,
    }


def decode_run(attrs: dict[str, Any]) -> Run:
    """The run whose `encode_run` attributes are `attrs` (a trial's user attributes)."""
    return Run(RunConfig.model_validate(attrs[ATTR_CONFIG]), attrs[ATTR_SEED], attrs[ATTR_LABELS], attrs[ATTR_CELL])


def has_run(attrs: dict[str, Any]) -> bool:
    """Whether the trial already stands for a run (a sampled trial has none until its draw)."""
    return ATTR_CONFIG in attrs


def status_of(trial: FrozenTrial) -> Optional[RunStatus]:
    """The outcome a trial records (results/status.py), or None while it is waiting or running."""
    if trial.state == TrialState.COMPLETE:
        return RunStatus.OK
    if trial.state == TrialState.PRUNED:
        return RunStatus.PRUNED
    if trial.state == TrialState.FAIL:
        return RunStatus.FAILED if ATTR_ROW in trial.user_attrs else RunStatus.CRASHED
    return None
