"""Deleting a study: `vaebench delete --study NAME`, the one way to start a study over.

A study is its Optuna study in the storage (for the embedded journal: results/<study>/journal.log)
and its results folder results/<study>/: rows, spec.json, models, figure arrays, checkpoints. Both
go. A study with a running trial is refused (its worker would write into the deleted study); a
trial whose worker on this machine is gone is recovered first, as any process opening the study
does.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import StudyError
from ..results.rows import list_studies
from .leases import recover_stale_trials
from .storage import StudyStore, study_names


def study_parts(store: StudyStore) -> list[str]:
    """What the study of `store` consists of, one description each (what `delete_study` removes);
    a study with none of them is a StudyError listing the studies there are."""
    parts = []
    if store.exists():
        parts.append(f"the Optuna study in {store.describe()}")
    if store.folder.is_dir():
        files = [p for p in store.folder.rglob("*") if p.is_file()]
        rows = [p for p in files if p.parent.name == "runs" and p.suffix == ".parquet"]
        parts.append(f"{store.folder} ({len(rows)} result row(s), {len(files)} file(s) in all)")
    if not parts:
        known = sorted(set(_storage_studies(store)) | set(list_studies(store.results_root)))
        raise StudyError(
            f"no study {store.study!r} in {store.describe()} or {Path(store.results_root)}; studies: "
            f"{', '.join(known) or '(none)'}"
        )
    return parts


def _storage_studies(store: StudyStore) -> list[str]:
    try:
        return study_names(store)
    except StudyError:
        return []


def delete_study(store: StudyStore) -> list[str]:
    """Remove the study of `store`: its Optuna study and its results folder. Returns what was removed
    (`study_parts`). A running trial (a live worker) is a StudyError, and nothing is removed."""
    import optuna
    from optuna.trial import TrialState

    parts = study_parts(store)
    if store.exists():
        with store.lock():
            study = store.load_study()
            recover_stale_trials(study)  # trials of workers on this machine that died are not running
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if running:
                raise StudyError(
                    f"study {store.study!r} has {len(running)} running trial(s) (trial "
                    f"{', '.join(str(t.number) for t in running)}): stop their workers first "
                    "(`vaebench status` names them); nothing deleted"
                )
            if store.url is not None:  # the journal is a file of the results folder
                optuna.delete_study(study_name=store.study, storage=store.open(create=False))
    if store.folder.is_dir():
        shutil.rmtree(store.folder)
    return parts
