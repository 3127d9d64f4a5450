"""Files that several processes share: one advisory lock, atomic writes, and the cleanup of
writes a killed process left behind."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (fcntl) on `path`, shared by all processes on this machine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; once the block has written it, fsync it and rename it
    over `path`. A crash leaves either the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


TEMP_MIN_AGE = 5.0  # seconds: a write takes milliseconds; a temp file this old is not being written


def remove_abandoned_temp_files(folder: Path, max_age: float = 600.0) -> list[Path]:
    """Delete the temp files `atomic_path` left in `folder` when its process was killed mid-write
    (SIGKILL skips the cleanup): those of a process that no longer exists on this host and older
    than TEMP_MIN_AGE, and any older than `max_age` (a shared folder's file from another host).
    Returns the paths removed. The finished file they were to replace is untouched."""
    import time

    removed = []
    now = time.time()
    for tmp in Path(folder).glob(".*.tmp") if Path(folder).is_dir() else []:
        try:
            pid, age = int(tmp.name.rsplit(".", 2)[-2]), now - tmp.stat().st_mtime
        except (ValueError, OSError):
            continue
        if age > max_age or (age > TEMP_MIN_AGE and not _process_exists(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
