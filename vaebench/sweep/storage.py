"""Where a study lives: Optuna storages by URL, and a lock that every process of a study shares.

- no URL: the embedded default, an Optuna JournalStorage in results/<study>/journal.log. Safe for
  several processes on one machine; it has no heartbeat, so vaebench leases trials itself (leases.py).
- postgresql://USER@HOST:PORT/DB: Optuna's RDBStorage, for many machines. Workers send a heartbeat
  every `heartbeat` seconds; a RUNNING trial silent for 3 heartbeats is failed and retried.
- sqlite:///PATH: RDBStorage on a file, for one process only (SQLite locks up under parallel writers:
  `StudyStore.check_workers` refuses more).

The lock serializes what must happen once per study (creation, enqueueing the grid, recovering
stale trials, drawing a sampled trial within the budget): a file lock for the embedded storages, a
PostgreSQL advisory lock (released by the server if the holder dies) for PostgreSQL.

Optuna is imported on first use: the command line reads this module's settings at start-up.
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Optional

from ..errors import StudyError
from ..registry import Registry
from ..results.rows import resolve_results_root
from ..runtime.files import file_lock

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage

JOURNAL_FILE = "journal.log"
STORAGE_ENV = "VAEBENCH_STORAGE"  # what --storage defaults to
HEARTBEAT_ENV = "VAEBENCH_HEARTBEAT"  # what --heartbeat defaults to
DEFAULT_HEARTBEAT = 60  # seconds between heartbeats of a running trial (RDB storages)
GRACE_HEARTBEATS = 3  # a trial is stale after this many missed heartbeats


@dataclass(frozen=True)
class StorageKind:
    open: Callable[["StudyStore", bool], BaseStorage]  # (store, create) -> storage
    lock: Callable[["StudyStore"], contextlib.AbstractContextManager]
    parallel: bool  # safe for several worker processes


STORAGES: Registry[StorageKind] = Registry("storage")


@dataclass(frozen=True)
class StudyStore:
    """One study's storage: the URL (None: embedded journal), the results root and the study name."""

    url: Optional[str]
    results_root: Path
    study: str
    heartbeat: int = DEFAULT_HEARTBEAT

    @property
    def kind_name(self) -> str:
        return scheme_of(self.url)

    @property
    def kind(self) -> StorageKind:
        return STORAGES.get(self.kind_name)

    @property
    def folder(self) -> Path:
        """results/<study>/: rows, spec.json and, for the embedded storage, the journal."""
        return Path(self.results_root) / self.study

    def open(self, create: bool = True) -> BaseStorage:
        """The Optuna storage. With create=False an embedded journal that does not exist yet is a
        StudyError (readers such as `status` and `worker` must not leave empty files behind)."""
        return self.kind.open(self, create)

    def lock(self) -> contextlib.AbstractContextManager:
        return self.kind.lock(self)

    def load_study(self, missing: str = "") -> "optuna.Study":
        """The study as it is in the storage (to read it, or to join it with Optuna's default
        sampler). A study that is not there is a StudyError "no study ..." ending with `missing`."""
        import optuna

        storage = self.open(create=False)
        try:
            return optuna.load_study(study_name=self.study, storage=storage)
        except KeyError:
            raise StudyError(f"no study {self.study!r} in {self.describe()}{missing}") from None

    def check_workers(self, workers: int) -> None:
        """Refuse (StudyError) `workers` processes writing at once to a storage unsafe for several
        (`StorageKind.parallel` False: SQLite)."""
        if workers > 1 and not self.kind.parallel:
            raise StudyError(
                f"--storage {self.describe()}: SQLite is unsafe for several writers; use --workers 1, "
                "the embedded journal (no --storage) or PostgreSQL"
            )

    def exists(self) -> bool:
        """Whether the study is in the storage already (writes nothing for the embedded journal)."""
        if self.url is None:
            return (self.folder / JOURNAL_FILE).is_file()
        import optuna

        return self.study in optuna.get_all_study_names(storage=self.open(create=False))

    def describe(self) -> str:
        if self.url is None:
            return f"journal {self.folder / JOURNAL_FILE}"
        from sqlalchemy.engine import make_url

        return make_url(self.url).render_as_string(hide_password=True)

    def with_study(self, study: str) -> "StudyStore":
        return StudyStore(self.url, self.results_root, study, self.heartbeat)


def open_store(
    url: Optional[str], results: Optional[Path], study: str, heartbeat: int = DEFAULT_HEARTBEAT
) -> StudyStore:
    """The store of `study` at the storage `url` (None: the embedded journal) with the results folder
    `results` (else $VAEBENCH_RESULTS, else ./results). An unsupported URL is a StudyError before
    anything is written."""
    scheme_of(url)
    return StudyStore(url, resolve_results_root(results), study, heartbeat)


def scheme_of(url: Optional[str]) -> str:
    if url is None:
        return "journal"
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme not in STORAGES:
        raise StudyError(
            f"--storage {url!r}: unsupported storage. Use postgresql://USER@HOST:PORT/DB (many machines), "
            "sqlite:///PATH (one process), or leave --storage out for the embedded journal "
            "(results/<study>/journal.log, several processes on one machine)"
        )
    return scheme


def _journal(store: StudyStore, create: bool) -> BaseStorage:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if not create and not (store.folder / JOURNAL_FILE).is_file():
        raise StudyError(
            f"no study {store.study!r} in {store.describe()}; create it with `vaebench run SPEC.yaml` first"
        )
    store.folder.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(store.folder / JOURNAL_FILE)))


def _rdb(store: StudyStore, create: bool) -> BaseStorage:
    import optuna
    from optuna.storages import RDBStorage

    from .leases import retry_stale_trial  # the callback Optuna runs for each heartbeat-stale trial

    try:
        with warnings.catch_warnings():  # heartbeat_interval is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                store.url,
                heartbeat_interval=store.heartbeat,
                grace_period=store.heartbeat * GRACE_HEARTBEATS,
                heartbeat_stale_trial_callback=retry_stale_trial,
                engine_kwargs={"pool_pre_ping": True},
            )
    except Exception as e:  # sqlalchemy's OperationalError, a missing driver, a malformed URL
        raise _unreachable(store, e) from None


def _folder_lock(store: StudyStore):
    return file_lock(store.folder / ".lock")


def advisory_key(study: str) -> int:
    """A signed 64-bit key for pg_advisory_lock, stable for a study name."""
    return int.from_bytes(hashlib.sha256(f"vaebench:{study}".encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def _postgres_lock(store: StudyStore) -> Iterator[None]:
    """A session-level PostgreSQL advisory lock on its own connection: the server releases it when
    the connection ends, so a worker killed while holding it blocks nobody."""
    import sqlalchemy

    key = {"k": advisory_key(store.study)}
    try:
        engine = sqlalchemy.create_engine(store.url, poolclass=sqlalchemy.pool.NullPool)
        conn = engine.connect()
        conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), key)
    except Exception as e:  # no server, no driver, bad credentials
        raise _unreachable(store, e) from None
    try:
        yield
    finally:
        try:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), key)
        finally:
            conn.close()
            engine.dispose()


def _unreachable(store: StudyStore, e: Exception) -> StudyError:
    first = (str(e).strip().splitlines() or [""])[0]
    return StudyError(f"--storage {store.describe()}: cannot open the study storage: {type(e).__name__}: {first}")


STORAGES.register("journal", StorageKind(_journal, _folder_lock, parallel=True))
STORAGES.register("postgresql", StorageKind(_rdb, _postgres_lock, parallel=True))
STORAGES.register("sqlite", StorageKind(_rdb, _folder_lock, parallel=False))


def study_names(store: StudyStore) -> list[str]:
    """Every study in the storage (for the embedded journal: every results/<study>/journal.log)."""
    if store.url is None:
        root = Path(store.results_root)
        return sorted(p.parent.name for p in root.glob(f"*/{JOURNAL_FILE}"))
    import optuna

    return sorted(optuna.get_all_study_names(storage=store.open(create=False)))
