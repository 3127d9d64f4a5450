"""A sweep on this machine: what `vaebench run` (and `vaebench.run`) does after reading its options.

`run_sweep` loads the spec and the data, creates or resumes the study (study.py), chooses the layout
of worker processes (launch.py) and runs them: one worker in this process, or N `vaebench worker`
processes whose output it relays. What it shows goes to the `SweepDisplay` its caller passes
(display.py): progress bars and the workers' lines on a terminal, nothing by default. For a new
study the worker processes start first and wait for the study (`--wait-for-study`), so their
start-up overlaps the data loading and the study creation here.
"""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional

from ..errors import PREEMPTED_EXIT_CODE, Preempted, StudyError
from ..runtime import stop
from . import launch
from .display import NoDisplay, SweepDisplay
from .join import OpenedStudy, check_precisions, resolve_tracking
from .launch import COMMAND_ENV, TRACKING_ENV
from .storage import DEFAULT_HEARTBEAT, open_store

if TYPE_CHECKING:
    from ..spec.overrides import Overrides
    from ..spec.sweep_spec import SweepSpec

# how long the workers `vaebench run` starts beside a new study wait for it to be made (loading the
# data may download it first); they give up at once when the `vaebench run` process ends
WAIT_FOR_STUDY_SECONDS = 3600


def run_sweep(
    spec,
    *,
    study: Optional[str] = None,
    workers: Optional[int] = None,
    threads: Optional[int] = None,
    storage: Optional[str] = None,
    heartbeat: int = DEFAULT_HEARTBEAT,
    data_root=None,
    results=None,
    device: Optional[str] = None,
    download: bool = True,
    plugins: Iterable[str] = (),
    display: Optional[SweepDisplay] = None,
    workers_per_gpu: Optional[int] = None,
    device_option: str = "device=",
    overrides: Overrides = None,
    track: Iterable[str] = (),
    track_option: str = "track=",
):
    """`run`, returning (final StudyStatus, whether every worker ended cleanly). `workers=0` creates
    (or checks) the study and starts no worker. What happens is shown on `display` (default: nothing).
    `overrides` (KEY=VALUE strings, or a mapping: spec/overrides.py) are set on the spec before it is
    validated; they are part of its identity, recorded with the study, in the command and the rows.
    `track`: tracking URIs over the spec's `tracking:` section (spec/tracking.py; named `track_option`
    in errors), given to every worker of this machine.

    This is the boundary of a sweep on this machine: the device (named `device_option` in errors)
    and the spec's training precisions on it are checked here, once, before anything is written,
    and the checked device is what the worker in this process runs on (worker processes are their
    own boundary: `vaebench worker`)."""
    from ..data import load_dataset
    from ..plugins import load_plugins
    from ..runtime.device import check_device
    from ..spec.overrides import override_texts
    from .study import open_study, study_status

    display = display or NoDisplay()
    t0 = time.perf_counter()
    load_plugins(plugins, "plugins=")
    dev = check_device(device, device_option)  # before anything is written
    spec_path = Path(spec) if isinstance(spec, (str, Path)) else None
    spec = resolve_spec(spec, overrides, study)
    overrides = override_texts(overrides)
    track = list(track)  # --track URIs over the spec's `tracking:`; a tracker not installed: exit 2 here
    spec = spec.model_copy(update={"tracking": resolve_tracking(spec.tracking, track, track_option)})
    if dev.type != "cuda":  # on CUDA each worker checks before its first trial: no CUDA context in this process
        check_precisions(spec, dev)
    if workers_per_gpu is not None and (workers is not None or dev.type != "cuda"):
        why = f"the number of workers is given ({workers})" if workers is not None else f"the device is {dev.type}"
        display.note(f"workers per GPU ({workers_per_gpu}) ignored: {why}")
        workers_per_gpu = None
    if (workers is None or workers > 1) and (local := _registered_in_main(spec)):
        if workers is not None:
            raise StudyError(
                f"{local} is registered in __main__ (a notebook or script): worker processes cannot "
                "import it. Use workers=1, or move it to a module and list it in the spec's `plugins:`"
            )
        display.note(f"{local} is registered in __main__: running one worker in this process")
        workers = 1
    store = open_store(storage, results, spec.study, heartbeat)
    command = " ".join(
        ["vaebench run", str(spec_path) if spec_path else f"<{spec.study} spec from Python>"]
        + [shlex.quote(o) for o in overrides]
        + [
            f"--{k} {v}"
            for k, v in (
                ("study", study),
                ("device", device),
                ("workers", workers),
                ("workers-per-gpu", workers_per_gpu),
                ("threads", threads),
            )
            if v
        ]
        + [f"--plugin {m}" for m in plugins]
        + [f"--track {uri}" for uri in track]
        + (["--storage URL"] if storage else [])
    )

    def start(layout, wait: bool) -> list:
        """This machine's worker processes (none for a one-worker layout: it runs in this process)."""
        store.check_workers(layout.workers)
        if layout.workers == 1:
            if dev.type == "cuda":  # the worker in this process: the CUDA context is this process's
                check_precisions(spec, dev)
            return []
        # on a GPU layout each worker sees only its own GPU (CUDA_VISIBLE_DEVICES): its device is `cuda`
        argv = _worker_argv(
            spec.study, store, "cuda" if layout.gpus else device, data_root, download, list(plugins), wait
        )
        env = {**_worker_env(layout, command, spec_path), TRACKING_ENV: spec.tracking.model_dump_json()}
        return launch.start_workers(argv, layout, env)

    # A new study: every run is pending, so the layout is known now, and the workers start at once,
    # importing torch and vaebench while this process loads the data and creates the study, which
    # they wait for (--wait-for-study). A study that exists: its pending runs decide the layout first.
    layout, procs = None, []
    try:
        if workers != 0 and not store.exists():
            layout = launch.plan_layout(workers, threads, spec.n_runs(), dev, workers_per_gpu=workers_per_gpu)
            procs = start(layout, wait=True)
        data = load_dataset(spec.dataset, data_root, download=download)  # before anything is written
        st = open_study(spec, store, data.checksum, data.validation_checksum, overrides, note=display.note)
        status = study_status(st)
        if workers == 0:
            display.study(
                spec.study,
                f"{status.total} runs, {status.done} done; storage {store.describe()}; no worker started "
                f"(workers 0): join with `vaebench worker --study {spec.study}`",
            )
            return status, True
        if layout is None:
            layout = launch.plan_layout(
                workers, threads, status.total - status.done, dev, workers_per_gpu=workers_per_gpu
            )
            procs = start(layout, wait=False)
        search = (
            f"{len(spec.cells())} cells x {len(spec.seeds)} seeds"
            if not spec.search.sampled
            else f"{spec.search.sampler} sampler, budget {spec.search.n_trials} trials"
        )
        display.study(
            spec.study,
            f"{status.total} runs ({search}), {status.done} already done; dataset {data.name} "
            f"{tuple(data.x_train.shape)} checksum {data.checksum}; storage {store.describe()}; results in "
            f"{store.folder}; layout {layout}",
        )
    except BaseException:  # the workers started for a new study wait for it: they must not outlive a failure
        launch.stop_workers(procs)
        raise
    if layout.workers == 1:
        ok = _run_here(OpenedStudy(st, spec, data), store, dev, layout.threads, command, display)
    else:
        ok = _run_workers(procs, spec.study, store, display)
    final = study_status(st)
    display.finished(final, time.perf_counter() - t0)
    return final, ok


def resolve_spec(spec, overrides: "Overrides" = None, study: Optional[str] = None) -> "SweepSpec":
    """The spec a sweep runs: `spec` (a YAML path, a mapping or a `SweepSpec`) with the `overrides`
    (KEY=VALUE strings or a mapping) set on its mapping before validation, then renamed to `study`
    when given (--study). What `vaebench run --print-spec` prints."""
    from ..spec.sweep_spec import SweepSpec, load_spec, parse_spec

    if isinstance(spec, (str, Path)):
        spec = load_spec(Path(spec), overrides)
    elif isinstance(spec, dict):
        spec = parse_spec(spec, "spec mapping", overrides)
    elif isinstance(spec, SweepSpec):
        if overrides:
            spec = parse_spec(spec.model_dump(mode="json", exclude_defaults=True), f"spec {spec.study!r}", overrides)
    else:
        raise StudyError(f"run: expected a spec path, mapping or SweepSpec, got {type(spec).__name__}")
    if study:
        spec = parse_spec({**spec.model_dump(), "study": study}, f"--study {study}")
    return spec


def _registered_in_main(spec) -> str:
    """'model NAME' / 'dataset NAME' when the spec's family was registered in `__main__` (a notebook
    or a script): it exists only in this process, and worker processes cannot import it."""
    from ..data import DATASETS
    from ..models import MODELS

    for kind, registry, name in (("model", MODELS, spec.model.name), ("dataset", DATASETS, spec.dataset.name)):
        entry = registry.get(name)
        if getattr(getattr(entry, "build", None) or getattr(entry, "load", None), "__module__", "") == "__main__":
            return f"{kind} {name!r}"
    return ""


def _run_here(opened, store, device, threads: int, command: str, display: SweepDisplay) -> bool:
    """One worker in this process: it joins the study opened here."""
    from .join import join_study

    summary = join_study(store, device, display, opened=opened, threads=threads, command=command)
    return not summary.crashed


def _run_workers(procs, study: str, store, display: SweepDisplay) -> bool:
    """Supervise this machine's worker processes `procs` (`launch.start_workers`): their output
    lines, and the study's progress from the storage when the display shows it."""
    from .study import study_status

    with display.workers() as view:
        poll = None
        # the storage is read only for a display: piped or quiet, the workers' lines are the whole
        # output, and reading the study every 2 s would take CPU from the workers
        if display.reads_storage:
            stored = store.with_study(study).load_study()

            def poll() -> None:
                view.status(study_status(stored))

        codes = launch.supervise(procs, view.line, poll)
    for i, code in enumerate(codes, 1):
        if code != 0 and not (code == PREEMPTED_EXIT_CODE and stop.requested()):  # 3 after SIGTERM: as asked
            display.worker_ended(f"w{i}", code)
    if stop.requested():  # SIGTERM, passed on to the workers: they checkpointed and handed their trials back
        raise Preempted(f"stopped by SIGTERM; worker exit codes {codes}")
    return all(c == 0 for c in codes)


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
