"""MLflow: one MLflow run per vaebench run, nested under one parent run per study.

In the experiment `tracking.mlflow.experiment` (default: the study's name):
- the study's parent run (tags `vaebench.kind = study`, `vaebench.study`), made once, under the
  study's lock, by the first worker that needs it;
- one child run per vaebench run (tag `mlflow.parentRunId` = the parent's id), named
  `<run_id> (cell C, seed S)`, with
  - params: the run's resolved config flattened (`model.latent_dim`, `objective.beta`, ...);
  - metrics: each epoch's history fields (`train_loss`, `val_loss`, `kl_weight`, ...) at step =
    the epoch, then every scalar column of the row (`neg_elbo`, `fid`, `train_seconds`, ...) at
    step = the epochs trained;
  - tags: `vaebench.run_id`, `vaebench.study`, `vaebench.cell`, `vaebench.seed`, `vaebench.version`,
    `vaebench.spec_fingerprint`, `vaebench.kind = run`, and at the end `vaebench.status`;
  - artifacts: `row.json` (the row, strict JSON) and, where the sweep kept them, the weights
    (`model/<run_id>.pt`).
A retried or resumed trial finds its run by the `vaebench.run_id` tag and continues it: no second
run, and the epochs the earlier attempt logged are not logged again.

Why not optuna-integration's `MLflowCallback`: it is a `study.optimize` callback, called once per
finished trial, that creates a new MLflow run per trial and logs the trial's params and objective
values. vaebench's workers claim trials instead of calling `optimize`, a run may take several trials
(retries, resumes) that must share one MLflow run, and the per-epoch losses, the row's metrics, the
nesting and the artifacts are not the trial's: so the backend talks to `MlflowClient` directly.

All writes go through `MlflowClient` (no fluent API: no process-global active run), one
`log_batch` per epoch. HTTP servers: unless set already, `MLFLOW_HTTP_REQUEST_MAX_RETRIES` is 2 and
`MLFLOW_HTTP_REQUEST_TIMEOUT` 20 s in a worker, so that a server that is down costs a run seconds,
not minutes, before it is skipped (tracking/__init__.py).
"""

from __future__ import annotations

import json
import os
import time
from contextlib import AbstractContextManager
from typing import Callable, Optional

from .._version import __version__
from ..results.rows import plain_json, scalar_columns
from ..results.status import RunStatus
from ..spec.tracking import MlflowSettings
from .base import RunInfo, RunTracker, Tracker

TAG = "vaebench."
KIND_STUDY, KIND_RUN = "study", "run"
PARENT_TAG = "mlflow.parentRunId"
MAX_PARAMS_PER_BATCH = 100  # MLflow's log_batch limit
FINAL_STATE = {RunStatus.OK: "FINISHED", RunStatus.PRUNED: "FINISHED", RunStatus.FAILED: "FAILED"}
STEP_PROBE = "train_loss"  # a history field every epoch has: its logged steps are the epochs logged
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def _now_ms() -> int:
    return int(time.time() * 1000)


class MlflowTracker(Tracker):
    def __init__(self, settings: MlflowSettings, lock: Callable[[], AbstractContextManager]) -> None:
        for key, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        from mlflow import MlflowClient

        self.settings = settings
        with lock():  # a new SQLite backend is created (its tables migrated) here: by one process at a time
            self.client = MlflowClient(tracking_uri=settings.tracking_uri)
            self.client.search_experiments(max_results=1)
        self._lock = lock
        self._parents: dict[str, tuple[str, str]] = {}  # study -> (experiment id, parent run id)

    def _parent(self, study: str) -> tuple[str, str]:
        """(experiment id, the study's parent run id), made once per study (under the study's lock:
        two workers starting together make one)."""
        if study not in self._parents:
            name = self.settings.experiment or study
            with self._lock():
                experiment = self.client.get_experiment_by_name(name)
                experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
                found = self._find(experiment_id, study, KIND_STUDY)
                if found is None:
                    run = self.client.create_run(
                        experiment_id,
                        run_name=study,
                        tags={f"{TAG}kind": KIND_STUDY, f"{TAG}study": study, f"{TAG}version": __version__},
                    )
                    self.client.set_terminated(run.info.run_id, "FINISHED")  # a container: its runs are the children
                    found = run.info.run_id
            self._parents[study] = (experiment_id, found)
        return self._parents[study]

    def _find(self, experiment_id: str, study: str, kind: str, run_id: Optional[str] = None) -> Optional[str]:
        """The MLflow run id tagged with this study, kind (and vaebench run id), or None."""
        query = f"tags.`{TAG}study` = '{study}' and tags.`{TAG}kind` = '{kind}'"
        if run_id is not None:
            query += f" and tags.`{TAG}run_id` = '{run_id}'"
        runs = self.client.search_runs([experiment_id], filter_string=query, max_results=2, order_by=["start_time"])
        return runs[0].info.run_id if runs else None

    def start(self, info: RunInfo) -> RunTracker:
        from mlflow.entities import Param, RunTag

        experiment_id, parent = self._parent(info.study)
        existing = self._find(experiment_id, info.study, KIND_RUN, info.run_id)
        logged: set[int] = set()
        if existing is None:
            tags = {
                PARENT_TAG: parent,
                f"{TAG}kind": KIND_RUN,
                f"{TAG}run_id": info.run_id,
                f"{TAG}study": info.study,
                f"{TAG}cell": str(info.cell),
                f"{TAG}seed": str(info.seed),
                f"{TAG}version": __version__,
                f"{TAG}spec_fingerprint": info.spec_fingerprint,
            }
            mlflow_run = self.client.create_run(
                experiment_id, run_name=f"{info.run_id} (cell {info.cell}, seed {info.seed})", tags=tags
            )
            mlflow_id = mlflow_run.info.run_id
            params = [Param(k, str(v)) for k, v in sorted(info.params.items())]
            for i in range(0, len(params), MAX_PARAMS_PER_BATCH):
                self.client.log_batch(mlflow_id, params=params[i : i + MAX_PARAMS_PER_BATCH])
        else:  # a retried or resumed run: continue it, without logging its epochs twice
            mlflow_id = existing
            self.client.update_run(mlflow_id, status="RUNNING")
            self.client.log_batch(mlflow_id, tags=[RunTag(f"{TAG}resumed", "true")])
            logged = {m.step for m in self.client.get_metric_history(mlflow_id, STEP_PROBE)}
        return _MlflowRun(self.client, mlflow_id, info, logged)


class _MlflowRun(RunTracker):
    def __init__(self, client, mlflow_id: str, info: RunInfo, logged: set[int]) -> None:
        self.client, self.mlflow_id, self.info, self.logged = client, mlflow_id, info, logged

    def epoch(self, record: dict) -> None:
        from mlflow.entities import Metric

        step = int(record["epoch"])
        if step in self.logged:
            return
        now = _now_ms()
        metrics = [
            Metric(k, float(v), now, step)
            for k, v in record.items()
            if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
        self.client.log_batch(self.mlflow_id, metrics=metrics)
        self.logged.add(step)

    def finish(self, row: dict) -> None:
        from mlflow.entities import Metric, RunTag

        now, step = _now_ms(), int(row.get("epochs_completed") or 0)
        metrics = [Metric(k, float(v), now, step) for k, v in scalar_columns(row).items()]
        status = RunStatus(row["status"])
        self.client.log_batch(self.mlflow_id, metrics=metrics, tags=[RunTag(f"{TAG}status", status.value)])
        text = json.dumps(plain_json(row, finite=True), ensure_ascii=False, allow_nan=False, indent=1, default=str)
        self.client.log_text(self.mlflow_id, text, "row.json")
        if row.get("model_path") and self.info.results_folder is not None:
            weights = self.info.results_folder / row["model_path"]
            if weights.is_file():
                self.client.log_artifact(self.mlflow_id, str(weights), "model")
        self.client.set_terminated(self.mlflow_id, FINAL_STATE[status])

    def abort(self, reason: str) -> None:
        self.client.set_tag(self.mlflow_id, f"{TAG}aborted", reason[:5000])
        self.client.set_terminated(self.mlflow_id, "KILLED")
