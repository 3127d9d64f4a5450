"""Unit tests of the study and the worker on Optuna's in-memory storage: a `memory://` storage kind
registered for the test (every store of one test shares one InMemoryStorage), so the real
StudyStore, open_study, claim_next and run_worker run with no file and no server."""

import contextlib

import optuna
import pytest

from vaebench.sweep.storage import STORAGES, StorageKind, StudyStore


@pytest.fixture
def memory_store(tmp_path):
    """memory_store(study) -> a StudyStore of `study` on this test's InMemoryStorage, with the results
    folder tmp_path/results."""
    storage = optuna.storages.InMemoryStorage()
    STORAGES.register(
        "memory", StorageKind(lambda store, create: storage, lambda store: contextlib.nullcontext(), True)
    )
    try:
        yield lambda study: StudyStore("memory://", tmp_path / "results", study)
    finally:
        STORAGES.unregister("memory")
