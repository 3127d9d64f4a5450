"""The `tracking:` section: where a sweep's runs are mirrored (MLflow, TensorBoard), and `--track URI`.

    tracking:
      mlflow: {tracking_uri: sqlite:///mlflow.db, experiment: beta}   # experiment: default the study
      tensorboard: {dir: runs/tensorboard}                             # one event-file folder per run

Tracking says where results are mirrored, not what is computed: the section is in no run id, no
study fingerprint and no parameter column (`SweepSpec.fingerprint` leaves it out), so adding,
changing or removing it never orphans a run nor refuses a study. The backends themselves live in
vaebench/tracking/; this module is only the validated settings.

`--track URI` (`vaebench run`, `vaebench worker`; repeatable) sets one backend, replacing the spec's
setting for that backend: `tensorboard:DIR` picks TensorBoard, `mlflow:URI` or any other URI an
MLflow tracking URI (`sqlite:///mlflow.db`, `http://127.0.0.1:5000`, `file:///tmp/mlruns`, ...), the
experiment then being the study's name. `--track none` turns tracking off.
"""

from __future__ import annotations

from typing import Optional

from pydantic import Field, ValidationError, field_validator

from .sections import StrictModel

TENSORBOARD_PREFIX, MLFLOW_PREFIX, NO_TRACKING = "tensorboard:", "mlflow:", "none"


class MlflowSettings(StrictModel):
    """One MLflow run per vaebench run, nested under one parent run per study."""

    tracking_uri: str = Field(
        ...,
        description="MLflow tracking URI: sqlite:///FILE.db, http://HOST:PORT, file:///DIR, ... (with a database "
        "URI MLflow keeps the artifacts in ./mlruns of the working directory, its default)",
    )
    experiment: Optional[str] = Field(None, description="MLflow experiment name (default: the study's name)")

    @field_validator("tracking_uri", "experiment")
    @classmethod
    def _not_blank(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not v.strip():
            raise ValueError("must not be empty")
        return v


class TensorboardSettings(StrictModel):
    """One event-file folder per vaebench run: `<dir>/<study>/<run_id>/`."""

    dir: str = Field(..., description="the folder TensorBoard is pointed at (`tensorboard --logdir DIR`)")

    @field_validator("dir")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v


class TrackingConfig(StrictModel):
    """The trackers a sweep mirrors its runs to; none by default."""

    mlflow: Optional[MlflowSettings] = Field(None, description="mirror each run to MLflow")
    tensorboard: Optional[TensorboardSettings] = Field(None, description="write TensorBoard event files per run")

    def backends(self) -> list[str]:
        """The names of the backends set (the keys of `vaebench.tracking.TRACKERS`)."""
        return [name for name in type(self).model_fields if getattr(self, name) is not None]


def with_track_uris(tracking: TrackingConfig, uris: list[str], option: str = "--track") -> TrackingConfig:
    """`tracking` with each `--track URI` applied (see the module docstring); a bad URI is a
    ValueError naming `option`."""
    if not uris:
        return tracking
    if NO_TRACKING in uris:
        if len(uris) > 1:
            raise ValueError(f"{option} {NO_TRACKING} turns tracking off: give it alone")
        return TrackingConfig()
    settings = tracking.model_dump()
    for uri in uris:
        if uri.startswith(TENSORBOARD_PREFIX):
            settings["tensorboard"] = {"dir": uri.removeprefix(TENSORBOARD_PREFIX)}
        else:
            settings["mlflow"] = {"tracking_uri": uri.removeprefix(MLFLOW_PREFIX), "experiment": None}
    try:
        return TrackingConfig.model_validate(settings)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{option} {' '.join(uris)}: {where}: {first['msg'].removeprefix('Value error, ')}") from None
