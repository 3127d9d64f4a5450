"""The Python API: what the `vaebench` command does, as functions (the CLI wraps the same code).

    import vaebench
    status = vaebench.run("sweeps/smoke.yaml", results="results")     # or a dict; progress in a notebook
    df = vaebench.load_results("smoke", results="results")            # one row per run (pandas)
    curves = vaebench.load_history("smoke", results="results")        # one row per run and epoch
    model, config = vaebench.load_model(df.run_id[0], results="results")
    image = vaebench.sample_grid(model, 16)                           # plt.imshow(image, cmap="gray")
    row = vaebench.evaluate(model, config=config, seed=int(df.seed[0]), threads=int(df.torch_threads[0]))
    vaebench.report("smoke", results="results", out="reports", format="md")

A walk-through on the smoke spec, every block of it executed by a test: docs/python.md.

Units: every loss, KL and NLL is in nats per example (summed over pixels and latent dimensions,
averaged over examples); recon MSE is per pixel; times in seconds.

Errors meant for the user are `VaebenchError` subclasses whose message says what to do; a misspelled
keyword is a TypeError naming the function and its keywords. `run` is a thin wrapper: the sweep's
orchestration (layout, worker processes, progress) is sweep/run.py.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional

from .errors import StudyError
from .registry import did_you_mean
from .results.rows import resolve_results_root
from .sweep.run import run_sweep
from .sweep.storage import DEFAULT_HEARTBEAT

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def _refuse_unknown_keywords(name: str, func, given: dict) -> None:
    """A TypeError naming the public function `name`, each unknown keyword (with the closest valid
    one) and every valid keyword: a typo must not reach (and be reported by) an internal function."""
    if not given:
        return
    params = inspect.signature(func).parameters.values()
    valid = [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    bad = " ".join(f"{k!r}.{did_you_mean(k, valid)}" for k in given)
    raise TypeError(f"{name}() got an unexpected keyword argument {bad} Its keywords: {', '.join(valid)}")


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (rich's detection: IPython's ZMQ shell, Colab or
    Databricks), where `run` shows its progress by default."""
    from rich.console import Console

    return Console(quiet=True).is_jupyter


def _run_display(quiet: Optional[bool], console):
    """What `run` shows, on which console: nothing when `quiet`; by default (None) the progress in a
    notebook or on a `console` given, nothing elsewhere (a script)."""
    from rich.console import Console

    from .cli.display import RunDisplay

    if quiet is None:
        quiet = console is None and not in_notebook()
    if quiet:
        return RunDisplay(Console(quiet=True), quiet=True)
    return RunDisplay(console or Console(stderr=True, soft_wrap=True))


def run(
    spec=None,
    *,
    workers: Optional[int] = None,
    results=None,
    storage: Optional[str] = None,
    study: Optional[str] = None,
    threads: Optional[int] = None,
    workers_per_gpu: Optional[int] = None,
    heartbeat: int = DEFAULT_HEARTBEAT,
    data_root=None,
    device: Optional[str] = None,
    download: bool = True,
    plugins: Iterable[str] = (),
    overrides=None,
    track: Iterable[str] = (),
    quiet: Optional[bool] = None,
    console=None,
    **unknown,
):
    """Run (or resume) a sweep, as `vaebench run` does: one Optuna trial per grid cell x seed (or per
    draw of a sampled search), each training one VAE and writing one results row.

    Parameters:
        spec: a YAML path, a spec mapping (a dict as the YAML file would hold) or a `SweepSpec`.
        workers: worker processes (default: one 1-thread worker per core on CPU; on CUDA
            `workers_per_gpu` per visible GPU; 1: one worker in this process; 0: create the study and
            start none).
        results: the results folder (default: $VAEBENCH_RESULTS, else ./results).
        storage: an Optuna storage URL shared by machines (default: the journal file in the results folder).
        study: another study name than the spec's.
        threads: torch threads per worker.
        workers_per_gpu: workers sharing each GPU, on CUDA.
        heartbeat: seconds between a worker's heartbeats (RDB storages).
        data_root: the datasets' folder (default: $VAEBENCH_DATA_ROOT, else ./data).
        device: cpu, cuda, cuda:N or auto (default: auto).
        download: whether a missing dataset may be downloaded.
        plugins: plugin modules to import first (as `--plugin`).
        overrides: KEY=VALUE strings (`["train.epochs=3"]`) or a mapping (`{"train.epochs": 3}`), set
            on the spec before it is validated, as on the command line; they are part of the study's
            identity and recorded in its rows.
        track: tracking URIs over the spec's `tracking:` section, as `--track`: `tensorboard:DIR`, an
            MLflow tracking URI (`sqlite:///mlflow.db`, `http://HOST:PORT`), or `none`; a tracker not
            installed raises `TrackingError` (with the pip command of its extra) before anything is written.
        quiet: show nothing (True) or the progress (False): live bars on a terminal or in a notebook
            with ipywidgets installed, else a line per finished run. Default: the progress in a
            Jupyter notebook or when a `console` is given, nothing elsewhere (a script).
        console: the rich Console to show it on (default: standard error, or the notebook).

    Returns:
        StudyStatus: the study's progress (`status.done == status.total` when every run is finished).

    Bad input raises a `VaebenchError` subclass, and nothing is written; a misspelled keyword is a
    TypeError naming `vaebench.run` and its keywords.

    Example:
        >>> status = vaebench.run("sweeps/smoke.yaml", results="results")
        >>> status.done, status.total
        (4, 4)
    """
    _refuse_unknown_keywords("vaebench.run", run, unknown)
    if spec is None:
        raise TypeError("vaebench.run() needs a spec: a YAML path, a spec mapping or a SweepSpec")
    options = dict(study=study, threads=threads, workers_per_gpu=workers_per_gpu, heartbeat=heartbeat)
    options.update(data_root=data_root, device=device, download=download, plugins=plugins, overrides=overrides)
    options.update(track=track, track_option="track=")
    display = _run_display(quiet, console)
    status, _ = run_sweep(spec, workers=workers, results=results, storage=storage, display=display, **options)
    return status


def _studies_error(study: str, root: Path, studies: list[str]) -> StudyError:
    """No study `study` under `root`: the message names the ones there are, or where rows would be."""
    if studies:
        return StudyError(
            f"no study {study!r} under {root}.{did_you_mean(study, studies)} Studies there: {', '.join(studies)}"
        )
    return StudyError(
        f"no study {study!r} under {root}: it holds no results rows. Pass results= the folder "
        "`vaebench run` wrote to (default: $VAEBENCH_RESULTS, else ./results)"
    )


def load_results(study: Optional[str] = None, results=None) -> "pd.DataFrame":
    """Every results row of a study, or of every study under the results folder, as one DataFrame.

    Parameters:
        study: the study's name (default: every study with rows).
        results: the results folder (default: $VAEBENCH_RESULTS, else ./results).

    Returns:
        pandas.DataFrame: one row per finished run; columns as documented in results/rows.py (metrics
        in nats per example, recon MSE per pixel, times in seconds; `param.<key>` the configuration,
        `grid_keys` the varied keys). The plugins the rows record are imported; one the rows need
        (their model family, dataset or a metric column) that cannot be imported raises a
        `PluginError` naming it, as `vaebench results` exits 2.

    A study without rows (a misspelled name, another results folder) raises `StudyError` naming the
    studies that do exist.

    Example:
        >>> df = vaebench.load_results("smoke", results="results")
        >>> df.groupby("param.objective.beta")["neg_elbo"].mean()
    """
    from .results.row_plugins import import_row_plugins
    from .results.rows import list_studies
    from .results.rows import load_results as _load

    root = resolve_results_root(results)
    studies = list_studies(root)
    if (study is not None and study not in studies) or not studies:
        raise (
            _studies_error(study, root, studies)
            if study is not None
            else StudyError(
                f"no results rows under {root}. Pass results= the folder `vaebench run` wrote to "
                "(default: $VAEBENCH_RESULTS, else ./results)"
            )
        )
    df = _load(root, study)
    import_row_plugins(df, f"study {study!r}" if study else f"the results under {root}")
    return df


def load_history(study: Optional[str] = None, results=None) -> "pd.DataFrame":
    """The per-epoch training histories of a study's runs in long format, for plotting curves.

    Parameters:
        study: the study's name (default: every study with rows).
        results: the results folder (default: $VAEBENCH_RESULTS, else ./results).

    Returns:
        pandas.DataFrame: one row per run and epoch: `study`, `run_id`, `seed`, `status`,
        `cell_index`, the run's grid values (the results rows' columns: `param.<key>`, `variant`),
        then the history fields (results/fields.py): `epoch`, `kl_weight`, `lr`, the losses
        `train_*`, `test_*` or `val_*` (nats per example; the held-out split's fields, the other
        split's are null) and `seconds` since training began. Rows added with `add_result` have no
        history and no rows here. Errors as `load_results`.

    Example:
        >>> h = vaebench.load_history("smoke", results="results")
        >>> h.groupby(["param.objective.beta", "epoch"])["test_loss"].mean().unstack(0).plot()
    """
    import pandas as pd

    from .results.fields import HISTORY_FIELDS
    from .results.rows import grid_column

    df = load_results(study, results)
    grid = list(dict.fromkeys(grid_column(k) for keys in df["grid_keys"] for k in keys))
    keys = ["study", "run_id", "seed", "status", "cell_index", *grid]
    records = [
        {**{k: row.get(k) for k in keys}, **epoch}
        for row in df.to_dict("records")
        for epoch in (row["history"] if row["history"] is not None else [])
    ]
    return pd.DataFrame(records, columns=[*keys, *HISTORY_FIELDS])


def _find_row(run_id: str, results, study: Optional[str]) -> tuple[dict, str]:
    from .results.rows import list_studies, read_row, row_path

    root = resolve_results_root(results)
    studies = list_studies(root)
    if study is not None and study not in studies:
        raise _studies_error(study, root, studies)
    found = [s for s in ([study] if study else studies) if row_path(root, s, run_id).is_file()]
    if not found:
        where = f"study {study!r}" if study else f"the studies there ({', '.join(studies) or 'none'})"
        raise StudyError(
            f"no run {run_id!r} under {root} in {where}: run ids are the `run_id` column of `load_results`"
        )
    if len(found) > 1:
        raise StudyError(f"run {run_id!r} is in several studies ({', '.join(found)}): pass study=")
    return read_row(root, found[0], run_id), found[0]


def row_config(row: dict):
    """The RunConfig a results row was made with (its `config` column)."""
    from .spec.sweep_spec import RunConfig

    return RunConfig.model_validate_json(row["config"])


def _missing_weights(row: dict, path: Path) -> StudyError:
    """Why a row has no weights to load, and how to get them."""
    run_id, status = row["run_id"], row.get("status")
    if status != "ok":
        return StudyError(
            f"run {run_id} is {status} ({row.get('reason')}): only runs that finished ok keep their "
            "weights; pick a run with status 'ok' from `load_results`"
        )
    retrain = (
        f"`vaebench train SPEC.yaml --cell {row.get('cell_index')} --seed {row.get('seed')} --results DIR` "
        "writes them again (the same run id)"
    )
    if row.get("model_path"):
        return StudyError(
            f"run {run_id}: its weights file {path} is missing. Weights stay in the results folder of the "
            f"machine that ran the run (rows copied by `vaebench pull` or committed without models/ have "
            f"none); load it there, or {retrain}"
        )
    return StudyError(
        f"run {run_id} keeps no weights: it was not run by a sweep into a results folder (an added "
        f"or outside row, no model_path); {retrain}"
    )


def load_model(run_id: str, results=None, *, study: Optional[str] = None, data_root=None, device: Optional[str] = None):
    """The trained model of a finished run, rebuilt from its row's config with its saved weights.

    Parameters:
        run_id: the run's id (the `run_id` column of `load_results`).
        results: the results folder (default: $VAEBENCH_RESULTS, else ./results).
        study: the run's study, when the same run id is in several.
        data_root: the datasets' folder, for the data's shape (default: $VAEBENCH_DATA_ROOT, else ./data).
        device: where to put the model (default: auto).

    Returns:
        tuple[VAE, RunConfig]: the model, in eval mode (its family may come from a plugin the row
        records), with the weights of results/<study>/models/<run_id>.pt; and its configuration.
        `evaluate(model, config=config, seed=row.seed, threads=row.torch_threads)` reproduces the
        row's metrics exactly.

    A run with no weights (pruned or failed, or rows copied from another machine) raises
    `StudyError` saying why and how to get them.

    Example:
        >>> model, config = vaebench.load_model(df.run_id[0], results="results")
        >>> config.objective.beta
    """
    import torch

    from .data import load_dataset
    from .models import build_model
    from .objectives.likelihoods import build_likelihood
    from .plugins import load_plugins
    from .runtime.device import resolve_device

    row, study_name = _find_row(run_id, results, study)
    load_plugins([p["module"] for p in row.get("plugins") or []], f"run {run_id}'s plugins column")
    path = resolve_results_root(results) / study_name / (row.get("model_path") or f"models/{run_id}.pt")
    if row.get("status") != "ok" or not row.get("model_path") or not path.is_file():
        raise _missing_weights(row, path)
    config = row_config(row)
    data = load_dataset(config.dataset, data_root, download=False)
    model = build_model(config.model, data.shape, build_likelihood(config.objective), data.num_classes)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.to(resolve_device(device)).eval(), config


def evaluate(
    model,
    dataset=None,
    *,
    config=None,
    metrics: Optional[list[str]] = None,
    seed: int = 0,
    threads: Optional[int] = None,
    data_root=None,
) -> dict[str, Any]:
    """Score a model on the test split with the registered metrics, as a sweep scores its runs.

    Parameters:
        model: a `vaebench.VAE` (trained by vaebench, or in your own loop: build it with the model
            interface, e.g. a registered family's class), in eval mode.
        dataset: a `Dataset`, a dataset section mapping ({"name": "mnist"}), or None for `config`'s.
        config: the evaluation settings: a RunConfig (as `load_model` returns) or a spec mapping
            (default: vaebench's defaults).
        metrics: the metric names to run (default: every registered metric that applies).
        seed: the seed of the stochastic metrics (a run's row used the run's seed).
        threads: torch threads to evaluate on, the caller's count restored after (default: as they
            are). Floating-point sums depend on the thread count: pass a row's `torch_threads` to
            reproduce it exactly; at another count values may differ in the 7th digit (~1e-7 relative).
        data_root: the datasets' folder (default: $VAEBENCH_DATA_ROOT, else ./data).

    Returns:
        dict: the metric columns (units as each metric declares: nats per example, recon MSE per
        pixel, ...), `eval_seconds_<metric>` and `metrics_skipped` (metrics that do not apply, with
        the reason). The same model, config, seed and threads give the numbers of the run's row.

    Example:
        >>> out = vaebench.evaluate(model, config=config, seed=0, threads=1)
        >>> out["neg_elbo"], out["fid"]
    """
    import torch

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
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        with tf32(next(model.parameters()).device, False):  # full float32, as the sweep evaluates
            return _evaluate(model, data, config, seed, metrics)
    finally:
        torch.set_num_threads(before)


def sample_grid(model, n: int = 64, *, cols: Optional[int] = None, seed: int = 0, labels=None) -> "np.ndarray":
    """`n` images decoded from the model's prior, tiled into one image for `plt.imshow`.

    Parameters:
        model: a `vaebench.VAE` that can sample (`model.can_sample`; a VQ-VAE cannot).
        n: the number of samples.
        cols: images per row of the grid (default: the square root of `n`, rounded up).
        seed: the seed of the prior draws: the same seed gives the same grid.
        labels: the classes a conditional model draws (a (n,) tensor; default: 0, 1, 2, ... cycling).

    Returns:
        numpy.ndarray: float32 in [0, 1] (the likelihood's mean, clipped), (rows*H + gaps, cols*W + gaps)
        for grey-level data (show with `cmap="gray"`), with a trailing 3 for RGB; 1-pixel white gaps.

    Example:
        >>> image = vaebench.sample_grid(model, 16, seed=0)
        >>> plt.imshow(image, cmap="gray", vmin=0, vmax=1)
    """
    import math

    import torch

    from .reporting.figures import grid_image

    if not getattr(model, "can_sample", True):
        raise ValueError(f"sample_grid: {type(model).__name__} cannot sample from a prior (can_sample = False)")
    if n < 1:
        raise ValueError(f"sample_grid: n must be at least 1, got {n}")
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            images = model.sample(n, labels, generator=gen)
    finally:
        model.train(training)
    return grid_image(images.detach().float().cpu().numpy(), cols or math.ceil(math.sqrt(n)))


def report(
    study: Optional[str] = None, results=None, out="reports", format: str = "both", *, fmt: Optional[str] = None
) -> list[Path]:
    """Write the reports of a study, as `vaebench report` does. Reads only the results rows (and
    their figure arrays): nothing is retrained.

    Parameters:
        study: the study's name (default: every study with rows, plus the index).
        results: the results folder (default: $VAEBENCH_RESULTS, else ./results).
        out: the folder to write to: <out>/<study>.md and its figures, <out>/<study>.html.
        format: the command's words (`vaebench report --format`): md (Markdown + PNG figures), html
            (one self-contained page) or both. `fmt` is its older name.

    Returns:
        list[Path]: the files written.

    Example:
        >>> paths = vaebench.report("smoke", results="results", out="reports", format="md")
    """
    from .reporting.formats import REPORT_FORMATS
    from .reporting.write import report as _report

    format = fmt if fmt is not None else format
    if format not in REPORT_FORMATS:
        raise ValueError(f"report: format must be one of {', '.join(REPORT_FORMATS)}, got {format!r}")
    if study is not None:
        load_results(study, results)  # a study without rows raises, naming the ones there are
    return _report(study, results, out, format)


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
    a study's report, as one more row of its table.

    Parameters:
        study: the study to join; its grid must be `variant`s: the row becomes the variant
            "<label> (external)".
        metrics: what `evaluate` returned.
        label: the variant's name in the report.
        results: the results folder (default: $VAEBENCH_RESULTS, else ./results).
        model: the model, for the parameter count.
        config: its RunConfig, for the parameter columns.
        seed: the seed it was evaluated with.
        note: its provenance, listed in the report.

    Returns:
        str: the new row's run id ("ext-...").

    Example:
        >>> vaebench.add_result("arch", out, "my loop", model=model, note="60 Adam steps")
    """
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
