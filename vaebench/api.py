"""The Python API: what the `vaebench` command does, as functions (the CLI wraps these).

    import vaebench
    status = vaebench.run("sweeps/smoke.yaml", workers=1, results="results")
    df = vaebench.load_results("smoke", results="results")          # one row per run (pandas)
    model, config = vaebench.load_model(df.run_id[0], results="results")
    row = vaebench.evaluate(model, config)                          # the same metric columns
    vaebench.report(results="results", out="reports")

Units: every loss, KL and NLL is in nats per example (summed over pixels and latent dimensions,
averaged over examples); recon MSE is per pixel; times in seconds.

`run` is a thin wrapper: the sweep's orchestration (layout, worker processes, progress) is sweep/run.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from .errors import StudyError
from .results.rows import resolve_results_root
from .sweep.run import run_sweep


def run(
    spec,
    *,
    workers: Optional[int] = None,
    results=None,
    storage: Optional[str] = None,
    quiet: bool = True,
    console=None,
    **options,
):
    """Run (or resume) a sweep: `spec` is a YAML path, a mapping or a `SweepSpec`. One Optuna trial
    per grid cell x seed (or per draw of a sampled search), on `workers` processes (default: one
    1-thread worker per core on CPU; on CUDA `workers_per_gpu` (1) per visible GPU, each seeing
    only its own; 0: create the study and start none). Other keywords as the command's options:
    study, threads, workers_per_gpu, heartbeat, data_root, device, download, plugins. `quiet`
    (default True) shows nothing; else what `vaebench run` shows, on `console` (a rich Console;
    default: standard error).

    Returns the study's `StudyStatus` (`status.done == status.total` when every run is finished).
    Bad input raises a `VaebenchError` subclass (nothing is written)."""
    from rich.console import Console

    from .cli.display import RunDisplay

    console = console or Console(stderr=True, soft_wrap=True, quiet=quiet)
    display = RunDisplay(console, quiet)
    status, _ = run_sweep(spec, workers=workers, results=results, storage=storage, display=display, **options)
    return status


def load_results(study: Optional[str] = None, results=None):
    """Every results row of `study` (or of every study under the results folder) as one pandas
    DataFrame: one row per finished run; columns as documented in results/rows.py (metrics in nats per
    example, recon MSE per pixel, times in seconds). The plugins the rows record are imported; one the
    rows need (their model family, dataset or a metric column) that cannot be imported raises a
    `PluginError` naming it, as `vaebench results` exits 2."""
    from .results.row_plugins import import_row_plugins
    from .results.rows import load_results as _load

    root = resolve_results_root(results)
    df = _load(root, study)
    import_row_plugins(df, f"study {study!r}" if study else f"the results under {root}")
    return df


def _find_row(run_id: str, results, study: Optional[str]) -> tuple[dict, str]:
    from .results.rows import list_studies, read_row, row_path

    root = resolve_results_root(results)
    studies = [study] if study else list_studies(root)
    found = [s for s in studies if row_path(root, s, run_id).is_file()]
    if not found:
        raise StudyError(f"no run {run_id!r} under {root}" + (f" in study {study!r}" if study else ""))
    if len(found) > 1:
        raise StudyError(f"run {run_id!r} is in several studies ({', '.join(found)}): pass study=")
    return read_row(root, found[0], run_id), found[0]


def row_config(row: dict):
    """The RunConfig a results row was made with (its `config` column)."""
    from .spec.sweep_spec import RunConfig

    return RunConfig.model_validate_json(row["config"])


def load_model(run_id: str, results=None, *, study: Optional[str] = None, data_root=None, device: Optional[str] = None):
    """The trained model of a finished run and its RunConfig: `(model, config)`. The model is
    rebuilt from the row's config (its family may come from a plugin the row records), its weights
    read from results/<study>/models/<run_id>.pt, in eval mode on `device` (default: auto).
    `evaluate(model, config=config, seed=row.seed)` reproduces the row's metrics."""
    import torch

    from .data import load_dataset
    from .models import build_model
    from .objectives.likelihoods import build_likelihood
    from .plugins import load_plugins
    from .runtime.device import resolve_device

    row, study_name = _find_row(run_id, results, study)
    load_plugins([p["module"] for p in row.get("plugins") or []], f"run {run_id}'s plugins column")
    if not row.get("model_path"):
        raise StudyError(f"run {run_id} ({row.get('status')}) has no saved model")
    config = row_config(row)
    data = load_dataset(config.dataset, data_root, download=False)
    model = build_model(config.model, data.shape, build_likelihood(config.objective), data.num_classes)
    path = resolve_results_root(results) / study_name / row["model_path"]
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.to(resolve_device(device)).eval(), config


def evaluate(
    model, dataset=None, *, config=None, metrics: Optional[list[str]] = None, seed: int = 0, data_root=None
) -> dict[str, Any]:
    """Score a model (trained by vaebench or in your own loop; it implements `models.base.VAE`) on
    the test split, with the registered metrics (or the named ones) and the evaluation settings of
    `config` (a RunConfig or spec mapping; default: vaebench's defaults). `dataset` is a `Dataset`,
    a dataset section mapping ({"name": "mnist"}) or None for `config`'s dataset.

    Returns the metric columns (units as declared by each metric: nats per example, recon MSE per
    pixel, ...), `eval_seconds_<metric>` and `metrics_skipped` (metrics that do not apply, with the
    reason). The same model, config and seed give the same numbers as the run's row."""
    from .data import Dataset, load_dataset
    from .metrics import evaluate as _evaluate
    from .runtime.device import tf32
    from .spec.sweep_spec import RunConfig

    if config is None:
        config = RunConfig(dataset=dataset) if isinstance(dataset, dict) else RunConfig()
    elif isinstance(config, dict):
        config = RunConfig.model_validate(config)
    if isinstance(dataset, Dataset):
        data = dataset
    else:
        section = config.dataset if dataset is None else RunConfig(dataset=dataset).dataset
        data = load_dataset(section, data_root, download=False)
    with tf32(next(model.parameters()).device, False):  # full float32, as the sweep evaluates
        return _evaluate(model, data, config, seed, metrics)


def report(study: Optional[str] = None, results=None, out="reports", fmt: str = "both") -> list[Path]:
    """Write the Markdown and/or HTML report of `study` (default: every study with results, plus the
    index) to `out`; returns the paths written. Reads only the results rows (and their figure arrays)."""
    from .reporting.write import report as _report

    return _report(study, results, out, fmt)


EXTERNAL_PREFIX = "ext-"  # run ids of rows added with `add_result`


def add_result(
    study: str,
    metrics: dict[str, Any],
    label: str,
    *,
    results=None,
    model=None,
    config=None,
    seed: int = 0,
    note: str = "",
) -> str:
    """Join a result made outside the sweep (e.g. `evaluate` on a model trained in your own loop) to
    `study`'s report as one more row of its table. The study's grid must have `variant`s: the row
    becomes the variant "<label> (external)", and the report lists it with `note` as its provenance.
    `metrics` is what `evaluate` returned; `config` (a RunConfig) and `model` fill the parameter
    and parameter-count columns when given. Returns the new row's run id ("ext-...")."""
    import hashlib

    from .reporting.settings import EXTERNAL_COMMAND
    from .results.build import build_row, utc_now
    from .results.rows import load_results as _load
    from .results.rows import write_row
    from .results.status import RunStatus

    root = resolve_results_root(results)
    rows = _load(root, study)
    if rows.empty:
        raise StudyError(f"add_result: study {study!r} has no rows under {root}")
    grid_keys = list(rows["grid_keys"].iloc[0])
    if "variant" not in grid_keys:
        raise StudyError(
            f"add_result: study {study!r} varies {grid_keys}, not named variants; an outside result "
            "joins a study whose grid is `variant: [...]` (it becomes one more variant)"
        )
    created = utc_now()
    run_id = EXTERNAL_PREFIX + hashlib.sha256(f"{study}|{label}|{seed}|{created}".encode()).hexdigest()[:8]
    row = build_row(
        run_id=run_id,
        study=study,
        seed=seed,
        status=RunStatus.OK,
        reason=None,
        variant=f"{label} (external)",
        cell_index=int(rows["cell_index"].max()) + 1,
        trial_number=-1,
        config=config,
        grid_keys=grid_keys,
        sampler=None,
        objective_metrics=[],
        objective_directions=[],
        n_params=sum(p.numel() for p in model.parameters() if p.requires_grad) if model is not None else None,
        epochs_completed=None,
        train_seconds=None,
        eval_seconds=None,
        metrics=metrics,
        history=[],
        precision=None,  # trained in the caller's own loop: unknown
        tf32=None,
        command=EXTERNAL_COMMAND,
        device=None,
        dataset=rows["dataset"].iloc[0] if config is None else config.dataset.name,
        dataset_checksum=None,
        spec_fingerprint=None,
        created_at=created,
        note=note or "added with vaebench.add_result",
    )
    write_row(root, study, row)
    return run_id
