"""The Python API: what the `vaebench` command does, as functions (the CLI wraps these).

    import vaebench
    status = vaebench.run("sweeps/smoke.yaml", workers=1, results="results")
    df = vaebench.load_results("smoke", results="results")          # one row per run (pandas)
    model, config = vaebench.load_model(df.run_id[0], results="results")
    row = vaebench.evaluate(model, config)                          # the same metric columns
    vaebench.report(results="results", out="reports")

Units: every loss, KL and NLL is in nats per example (summed over pixels and latent dimensions,
averaged over examples); recon MSE is per pixel; times in seconds.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterable, Optional

from rich.console import Console
from rich.progress import Progress

from .errors import StudyError
from .progress import RunClock, WorkerLines, duration, sweep_progress
from .results import grid_column, resolve_results_root

COMMAND_ENV = "VAEBENCH_COMMAND"  # set by `vaebench run --workers N` for its worker processes
# how long the workers `vaebench run` starts beside a new study wait for it to be made (loading the
# data may download it first); they give up at once when the `vaebench run` process ends
WAIT_FOR_STUDY_SECONDS = 3600


class RichReporter:
    """Shows runs done / total with the estimated time left, and the epochs of the current run."""

    def __init__(self, progress: Progress, total_runs: int, done: int) -> None:
        self.p = progress
        self.clock = RunClock()
        self.runs = progress.add_task("runs", total=total_runs, completed=done, eta=None)
        self.epochs = progress.add_task("epochs", total=1, visible=False, eta=None)

    def _update_eta(self) -> None:
        task = self.p.tasks[self.runs]
        self.p.update(self.runs, eta=self.clock.eta(int((task.total or 0) - task.completed)))

    def trial_start(self, number, run_id, config, seed) -> None:
        desc = f"run {run_id} seed {seed}"
        self.clock.trial_start(config.train.epochs)
        self.p.reset(self.epochs, total=config.train.epochs, description=desc, visible=True, eta=None)

    def epoch(self, record: dict) -> None:
        self.clock.epoch()
        self.p.update(self.epochs, advance=1, description=f"epoch {record['epoch']} test loss {record['test_loss']:.2f}",
                      eta=self.clock.eta(1))
        self._update_eta()

    def trial_end(self, row: dict) -> None:
        self.clock.trial_end()
        self.p.update(self.runs, advance=1)
        self._update_eta()
        done, total = int(self.p.tasks[self.runs].completed), int(self.p.tasks[self.runs].total or 0)
        cell = " ".join(f"{k}={row[grid_column(k)]}" for k in row["grid_keys"])
        count = f"[{done}/{total}] " if total else ""
        head = f"{count}trial {row.get('trial_number', '?')} run {row['run_id']} {cell} seed {row['seed']}:"
        if row["status"] == "ok":
            self.p.console.print(
                f"{head} -ELBO {row['neg_elbo']:.2f} nats, KL {row['kl']:.2f}, recon MSE {row['recon_mse']:.4f}; "
                f"train {row['train_seconds']:.0f} s, eval {row['eval_seconds']:.1f} s", highlight=False)
        else:
            self.p.console.print(f"{head} [yellow]{row['status']}:[/] {row['reason']}", highlight=False)


def open_store(url: Optional[str], results: Optional[Path], study: str, heartbeat: int = 60):
    from .storage import StudyStore, scheme_of

    scheme_of(url)  # an unsupported URL is an error before anything is written
    return StudyStore(url, resolve_results_root(results), study, heartbeat)


def print_status(st, console: Console) -> None:
    """One line of progress counts plus the estimate of the time left."""
    eta = st.eta_seconds
    eta_text = "unknown until a trial has finished an epoch" if eta is None else duration(eta)
    if eta and st.eta_basis == "epochs":
        eta_text += " (from the epochs done so far, training only: no trial has completed yet)"
    console.print(
        f"study [bold]{st.study}[/] ({st.sampler}): {st.done}/{st.total} done — {st.complete} complete, "
        f"{st.pruned} pruned, {st.diverged} diverged; {len(st.running)} running, {st.waiting} waiting, "
        f"{st.failed} crashed/stale (retried); time left ≈ {eta_text}", highlight=False)


def _run_here(st, spec, data, store, device, threads, quiet, status, command, console) -> bool:
    """One worker in this process, with progress bars."""
    import torch

    from .study import run_worker

    torch.set_num_threads(threads)
    with sweep_progress(console, disable=quiet or not console.is_terminal) as progress:
        summary = run_worker(st, spec, data, store, device, RichReporter(progress, status.total, status.done), command)
    console.print(
        f"this worker: {len(summary.finished)} finished, {len(summary.pruned)} pruned, "
        f"{len(summary.failed)} failed (diverged), {len(summary.errors)} error(s)"
    )
    for err in summary.errors:
        console.print(f"[red]error in run {err}[/] (will be retried by the next `vaebench run`)", highlight=False)
    return not summary.errors


def _worker_argv(study: str, store, device, data_root, download, plugins: list[str], wait: bool) -> list[str]:
    """The `vaebench worker` command line of this machine's workers (`--wait-for-study`: started
    beside the `vaebench run` that is still creating the study)."""
    argv = ["worker", "--study", study, "--results", str(store.results_root), "--heartbeat", str(store.heartbeat), "-q"]
    for flag, value in (("--storage", store.url), ("--device", device), ("--data-root", data_root)):
        if value is not None:
            argv += [flag, str(value)]
    if not download:
        argv.append("--no-download")
    for module in plugins:
        argv += ["--plugin", module]
    if wait:
        argv += ["--wait-for-study", str(WAIT_FOR_STUDY_SECONDS)]
    return argv


def _worker_env(layout, command: str, spec_path: Optional[Path]) -> dict[str, str]:
    # local plugin modules beside the spec: importable by the workers as they are here
    folders = (str(Path(spec_path).resolve().parent) if spec_path else None, os.getcwd(), os.environ.get("PYTHONPATH"))
    return {COMMAND_ENV: f"{command} (worker of {layout})", "PYTHONPATH": os.pathsep.join(p for p in folders if p)}


def _run_workers(procs, study: str, store, quiet, console) -> bool:
    """Supervise this machine's worker processes `procs` (`launch.start_workers`): their output
    lines, and progress from the storage."""
    import optuna

    from .launch import supervise
    from .storage import StudyStore
    from .study import study_status

    with sweep_progress(console, disable=quiet or not console.is_terminal) as progress:
        task = progress.add_task("runs", total=None, eta=None)
        lines = WorkerLines(progress)  # one line per worker: its trial's epochs, from the storage
        watched = StudyStore(store.url, store.results_root, study, store.heartbeat)
        view = optuna.load_study(study_name=study, storage=watched.open())

        def poll() -> None:
            s = study_status(view)
            progress.update(task, total=s.total, completed=s.done, eta=s.eta_seconds,
                            description=f"runs ({len(s.running)} running, {s.waiting} waiting)")
            lines.update(s)

        def emit(line: str) -> None:  # a worker's output line, "[w1 pid 1234] ...", as it is
            lines.note(line)
            progress.console.print(line, highlight=False, markup=False)

        codes = supervise(procs, emit, poll)
    for i, code in enumerate(codes, 1):
        if code != 0:
            why = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            console.print(f"[yellow]worker w{i} ended abnormally ({why})[/]", highlight=False)
    return all(c == 0 for c in codes)


def run_sweep(spec, *, study: Optional[str] = None, workers: Optional[int] = None, threads: Optional[int] = None,
              storage: Optional[str] = None, heartbeat: int = 60, data_root=None, results=None,
              device: Optional[str] = None, download: bool = True, plugins: Iterable[str] = (), quiet: bool = True,
              console: Optional[Console] = None, workers_per_gpu: Optional[int] = None):
    """`run`, returning (final StudyStatus, whether every worker ended cleanly). `workers=0` creates
    (or checks) the study and starts no worker."""
    from .data import load_dataset
    from .launch import plan_layout, start_workers, stop_workers
    from .plugins import load_plugins
    from .runtime import check_device
    from .spec import SweepSpec, load_spec, parse_spec
    from .study import open_study, study_status

    console = console or Console(stderr=True, soft_wrap=True, quiet=quiet)
    t0 = time.perf_counter()
    load_plugins(plugins, "plugins=")
    spec_path = Path(spec) if isinstance(spec, (str, Path)) else None
    if spec_path is not None:
        spec = load_spec(spec_path)
    elif isinstance(spec, dict):
        spec = parse_spec(spec, "spec mapping")
    elif not isinstance(spec, SweepSpec):
        raise StudyError(f"run: expected a spec path, mapping or SweepSpec, got {type(spec).__name__}")
    if study:
        spec = parse_spec({**spec.model_dump(), "study": study}, f"--study {study}")
    dev = check_device(device, "device=")  # before anything is written
    if dev.type != "cuda":  # on CUDA each worker checks before its first trial: no CUDA context in this process
        check_precisions(spec, dev)
    if workers_per_gpu is not None and (workers is not None or dev.type != "cuda"):
        why = f"the number of workers is given ({workers})" if workers is not None else f"the device is {dev.type}"
        console.print(f"workers per GPU ({workers_per_gpu}) ignored: {why}", highlight=False)
        workers_per_gpu = None
    if (workers is None or workers > 1) and (local := _registered_in_main(spec)):
        if workers is not None:
            raise StudyError(f"{local} is registered in __main__ (a notebook or script): worker processes cannot "
                             "import it. Use workers=1, or move it to a module and list it in the spec's `plugins:`")
        console.print(f"{local} is registered in __main__: running one worker in this process")
        workers = 1
    store = open_store(storage, results, spec.study, heartbeat)
    command = " ".join(["vaebench run", str(spec_path) if spec_path else f"<{spec.study} spec from Python>"] + [
        f"--{k} {v}" for k, v in (("study", study), ("device", device), ("workers", workers),
                                  ("workers-per-gpu", workers_per_gpu), ("threads", threads)) if v
    ] + [f"--plugin {m}" for m in plugins] + (["--storage URL"] if storage else []))

    def start(layout, wait: bool) -> list:
        """This machine's worker processes (none for a one-worker layout: it runs in this process)."""
        if layout.workers > 1 and not store.kind.parallel:
            raise StudyError(f"--storage {store.describe()}: SQLite is unsafe for several writers; use --workers 1, "
                             "the embedded journal (no --storage) or PostgreSQL")
        if layout.workers == 1:
            return []
        # on a GPU layout each worker sees only its own GPU (CUDA_VISIBLE_DEVICES): its device is `cuda`
        argv = _worker_argv(spec.study, store, "cuda" if layout.gpus else device, data_root, download,
                            list(plugins), wait)
        return start_workers(argv, layout, _worker_env(layout, command, spec_path))

    # A new study: every run is pending, so the layout is known now, and the workers start at once,
    # importing torch and vaebench while this process loads the data and creates the study, which
    # they wait for (--wait-for-study). A study that exists: its pending runs decide the layout first.
    layout, procs = None, []
    try:
        if workers != 0 and not store.exists():
            layout = plan_layout(workers, threads, spec.n_runs(), dev, workers_per_gpu=workers_per_gpu)
            procs = start(layout, wait=True)
        data = load_dataset(spec.dataset, data_root, download=download)  # before anything is written
        st = open_study(spec, store, data.checksum)
        status = study_status(st)
        if workers == 0:
            console.print(f"study [bold]{spec.study}[/]: {status.total} runs, {status.done} done; storage "
                          f"{store.describe()}; no worker started (workers 0): join with `vaebench worker --study "
                          f"{spec.study}`", highlight=False)
            return status, True
        if layout is None:
            layout = plan_layout(workers, threads, status.total - status.done, dev, workers_per_gpu=workers_per_gpu)
            procs = start(layout, wait=False)
        search = (f"{len(spec.cells())} cells x {len(spec.seeds)} seeds" if not spec.search.sampled
                  else f"{spec.search.sampler} sampler, budget {spec.search.n_trials} trials")
        console.print(
            f"study [bold]{spec.study}[/]: {status.total} runs ({search}), {status.done} already done; "
            f"dataset {data.name} {tuple(data.x_train.shape)} checksum {data.checksum}; storage {store.describe()}; "
            f"results in {store.folder}; layout {layout}", highlight=False
        )
    except BaseException:  # the workers started for a new study wait for it: they must not outlive a failure
        stop_workers(procs)
        raise
    if layout.workers == 1:
        ok = _run_here(st, spec, data, store, device, layout.threads, quiet, status, command, console)
    else:
        ok = _run_workers(procs, spec.study, store, quiet, console)
    final = study_status(st)
    print_status(final, console)
    console.print(f"wall time {duration(time.perf_counter() - t0)}", highlight=False)
    return final, ok


def check_precisions(spec, device) -> None:
    """Refuse (DeviceError, exit code 2), before anything is written, a `train.precision` of the
    spec's cells (or of its search space) that this torch cannot train in on `device`."""
    from .runtime import check_precision
    from .spec import CategoricalParam

    precisions = {cfg.train.precision for cfg in spec.cells()}
    space = spec.search.space.get("train.precision")
    if isinstance(space, CategoricalParam):
        precisions |= set(space.values())
    for precision in sorted(precisions):
        check_precision(precision, device)


def _registered_in_main(spec) -> str:
    """'model NAME' / 'dataset NAME' when the spec's family was registered in `__main__` (a notebook
    or a script): it exists only in this process, and worker processes cannot import it."""
    from .data import DATASETS
    from .models import MODELS

    for kind, registry, name in (("model", MODELS, spec.model.name), ("dataset", DATASETS, spec.dataset.name)):
        entry = registry.get(name)
        if getattr(getattr(entry, "build", None) or getattr(entry, "load", None), "__module__", "") == "__main__":
            return f"{kind} {name!r}"
    return ""


def run(spec, *, workers: Optional[int] = None, results=None, storage: Optional[str] = None, **options):
    """Run (or resume) a sweep: `spec` is a YAML path, a mapping or a `SweepSpec`. One Optuna trial
    per grid cell x seed (or per draw of a sampled search), on `workers` processes (default: one
    1-thread worker per core on CPU; on CUDA `workers_per_gpu` (1) per visible GPU, each seeing
    only its own; 0: create the study and start none). Other keywords as the command's options:
    study, threads, workers_per_gpu, heartbeat, data_root, device, download, plugins, quiet
    (default True).

    Returns the study's `StudyStatus` (`status.done == status.total` when every run is finished).
    Bad input raises a `VaebenchError` subclass (nothing is written)."""
    status, _ = run_sweep(spec, workers=workers, results=results, storage=storage, **options)
    return status


def load_results(study: Optional[str] = None, results=None):
    """Every results row of `study` (or of every study under the results folder) as one pandas
    DataFrame: one row per finished run; columns as documented in results.py (metrics in nats per
    example, recon MSE per pixel, times in seconds). Plugins named in the rows are imported."""
    from .results import load_results as _load

    df = _load(resolve_results_root(results), study)
    load_row_plugins(df)
    return df


def load_row_plugins(df) -> None:
    """Import the plugin modules the rows record (their families and metrics are named in them);
    a plugin that cannot be imported is a PluginError naming it."""
    from .plugins import load_plugins

    if "plugins" not in getattr(df, "columns", ()):
        return
    modules = []
    for entries in df["plugins"]:
        for entry in entries if entries is not None else []:
            if entry["module"] not in modules:
                modules.append(entry["module"])
    load_plugins(modules, "the results rows' plugins column")


def _find_row(run_id: str, results, study: Optional[str]) -> tuple[dict, str]:
    from .results import list_studies, read_row, row_path

    root = resolve_results_root(results)
    studies = [study] if study else list_studies(root)
    found = [s for s in studies if row_path(root, s, run_id).is_file()]
    if not found:
        raise StudyError(f"no run {run_id!r} under {root}" + (f" in study {study!r}" if study else ""))
    if len(found) > 1:
        raise StudyError(f"run {run_id!r} is in several studies ({', '.join(found)}): pass study=")
    return read_row(root, found[0], run_id), found[0]


def row_config(row: dict):
    """The RunConfig a results row was made with: its `config` column, or (rows written before that
    column existed) its `param.*` columns, leaving out nulls (options of other families)."""
    from .results import PARAM_PREFIX
    from .spec import RunConfig

    if row.get("config"):
        return RunConfig.model_validate_json(row["config"])
    sections: dict[str, dict] = {}
    for key, value in row.items():
        if key.startswith(PARAM_PREFIX) and value is not None and value == value:  # NaN != NaN
            section, *path = key[len(PARAM_PREFIX):].split(".")  # eval.<metric>.<option>: a metric's options
            target = sections.setdefault(section, {})
            for part in path[:-1]:
                target = target.setdefault(part, {})
            target[path[-1]] = value.tolist() if hasattr(value, "tolist") else value
    return RunConfig.model_validate(sections)


def load_model(run_id: str, results=None, *, study: Optional[str] = None, data_root=None,
               device: Optional[str] = None):
    """The trained model of a finished run and its RunConfig: `(model, config)`. The model is
    rebuilt from the row's config (its family may come from a plugin the row records), its weights
    read from results/<study>/models/<run_id>.pt, in eval mode on `device` (default: auto).
    `evaluate(model, config=config, seed=row.seed)` reproduces the row's metrics."""
    import torch

    from .data import load_dataset
    from .models import build_model
    from .objectives import build_likelihood
    from .plugins import load_plugins
    from .runtime import resolve_device

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


def evaluate(model, dataset=None, *, config=None, metrics: Optional[list[str]] = None, seed: int = 0,
             data_root=None) -> dict[str, Any]:
    """Score a model (trained by vaebench or in your own loop; it implements `models.base.VAE`) on
    the test split, with the registered metrics (or the named ones) and the evaluation settings of
    `config` (a RunConfig or spec mapping; default: vaebench's defaults). `dataset` is a `Dataset`,
    a dataset section mapping ({"name": "mnist"}) or None for `config`'s dataset.

    Returns the metric columns (units as declared by each metric: nats per example, recon MSE per
    pixel, ...), `eval_seconds_<metric>` and `metrics_skipped` (metrics that do not apply, with the
    reason). The same model, config and seed give the same numbers as the run's row."""
    from .data import Dataset, load_dataset
    from .metrics import evaluate as _evaluate
    from .runtime import tf32
    from .spec import RunConfig

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
    from .report import write_reports

    root = resolve_results_root(results)
    df = load_results(study, root)  # imports the rows' plugins (their metrics' declarations)
    if df.empty:
        return []
    return write_reports(root, Path(out), study, fmt)


EXTERNAL_PREFIX = "ext-"  # run ids of rows added with `add_result`


def add_result(study: str, metrics: dict[str, Any], label: str, *, results=None, model=None, config=None,
               seed: int = 0, note: str = "") -> str:
    """Join a result made outside the sweep (e.g. `evaluate` on a model trained in your own loop) to
    `study`'s report as one more row of its table. The study's grid must have `variant`s: the row
    becomes the variant "<label> (external)", and the report lists it with `note` as its provenance.
    `metrics` is what `evaluate` returned; `config` (a RunConfig) and `model` fill the parameter
    and parameter-count columns when given. Returns the new row's run id ("ext-...")."""
    import datetime as _dt
    import hashlib
    import platform
    import socket

    from . import __version__
    from .plugins import loaded_plugins
    from .report.render import EXTERNAL_COMMAND
    from .results import load_results as _load, param_columns, write_row

    root = resolve_results_root(results)
    rows = _load(root, study)
    if rows.empty:
        raise StudyError(f"add_result: study {study!r} has no rows under {root}")
    grid_keys = list(rows["grid_keys"].iloc[0])
    if "variant" not in grid_keys:
        raise StudyError(f"add_result: study {study!r} varies {grid_keys}, not named variants; an outside result "
                         "joins a study whose grid is `variant: [...]` (it becomes one more variant)")
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    run_id = EXTERNAL_PREFIX + hashlib.sha256(f"{study}|{label}|{seed}|{created}".encode()).hexdigest()[:8]
    import optuna
    import torch

    row = {
        "run_id": run_id, "study": study, "seed": int(seed), "status": "ok", "reason": None,
        "variant": f"{label} (external)", "cell_index": int(rows["cell_index"].max()) + 1, "trial_number": -1,
        **(param_columns(config) if config is not None else {}),
        "config": config.model_dump_json() if config is not None else None,
        "grid_keys": grid_keys, "sampler": None, "objective_metrics": [], "objective_directions": [],
        "n_params": sum(p.numel() for p in model.parameters() if p.requires_grad) if model is not None else None,
        "epochs_completed": None, "train_seconds": None, "eval_seconds": None,
        "model_path": None, "artifacts_path": None, "history": [],
        **{k: v for k, v in metrics.items()},
        "command": EXTERNAL_COMMAND, "provenance_note": note or "added with vaebench.add_result",
        "vaebench_version": __version__, "torch_version": torch.__version__, "optuna_version": optuna.__version__,
        "python_version": platform.python_version(), "device": None, "torch_threads": None,
        "hostname": socket.gethostname(), "dataset": rows["dataset"].iloc[0] if config is None else config.dataset.name,
        "dataset_checksum": None, "spec_fingerprint": None, "created_at": created, "plugins": loaded_plugins(),
    }
    write_row(root, study, row)
    return run_id
