"""Checkpoints inside a run: where a run's checkpoint lives, when it is written, what identifies it.

One checkpoint per run, `results/<study>/checkpoints/<run_id>.pt` (beside `models/` and
`artifacts/`), replaced atomically at each write (runtime.files.atomic_path: a temporary file,
fsync, rename; a kill during a write leaves the previous checkpoint), removed once the run's row is
written. What it holds is the training loop's (train.py, `_LoopState`): the weights, the optimizer,
LR-scheduler and gradient-scaler states, the step (the KL schedule's t), the position in the epoch
with its permutation and loss sums, every random generator the loop draws from, the history,
early stopping's state and the training seconds so far. It also holds the run's identity
(`run_identity`): a checkpoint whose identity differs from the run's (another config, data,
validation split, vaebench or torch version, device type) or that cannot be read is ignored, with
the reason noted, and the run starts from epoch 1.

Loaded with `torch.load(weights_only=True)`: tensors and plain Python values only, no pickled code.
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from .._version import __version__
from ..runtime import stop
from ..runtime.files import atomic_path

FORMAT = 1  # the layout of a checkpoint's dict; another value is a mismatch


def checkpoints_dir(results_root: Path, study: str) -> Path:
    return Path(results_root) / study / "checkpoints"


def checkpoint_path(results_root: Path, study: str, run_id: str) -> Path:
    return checkpoints_dir(results_root, study) / f"{run_id}.pt"


def remove_checkpoint(results_root: Optional[Path], study: str, run_id: str) -> None:
    """Delete the run's checkpoint (its row is written: it is not needed any more)."""
    if results_root is not None:
        checkpoint_path(results_root, study, run_id).unlink(missing_ok=True)


def run_identity(run_id: str, config, data, device: torch.device) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: the run id, a digest of the config's identity
    (sections.RunConfig.identity: every value that can change a result), the training data's and the
    validation split's checksums, vaebench's and torch's versions, and the device type (random
    generator states do not carry across devices)."""
    digest = hashlib.sha256(json.dumps(config.identity(), sort_keys=True).encode()).hexdigest()
    return {
        "run_id": run_id,
        "config": digest,
        "dataset_checksum": data.checksum,
        "validation_checksum": data.validation_checksum,
        "vaebench_version": __version__,
        "torch_version": str(torch.__version__),
        "device": torch.device(device).type,
        "format": FORMAT,
    }


def _nothing(*_: Any) -> None: ...


@dataclass
class Checkpoints:
    """A run's checkpoint: its file, how often to write it (`every_epochs` epochs, or `every_seconds`
    seconds of training; neither: only when a stop is requested), the run's identity, where notes go
    (`note`: a resume, a checkpoint ignored and why), and who hears of each write (`written`, with
    {"path", "host", "epoch", "step"}: the worker records it on the trial). `earlier` is what an
    earlier attempt announced of its last checkpoint (same keys), to say why it is missing here."""

    path: Path
    identity: dict[str, Any]
    every_epochs: Optional[int] = None
    every_seconds: Optional[float] = None
    note: Callable[[str], None] = _nothing
    written: Callable[[dict], None] = _nothing
    earlier: Optional[dict] = None
    last_write: float = field(default_factory=lambda: time.perf_counter())  # perf_counter of the last write (or start)
    write_seconds: list[float] = field(default_factory=list)  # wall seconds of each write, this process

    def load(self) -> Optional[dict]:
        """The checkpoint's state when it belongs to this run, else None (with a note saying why,
        unless there is simply none and no earlier attempt announced one)."""
        run = self.identity["run_id"]
        if not self.path.is_file():
            if self.earlier:
                e = self.earlier
                self.note(
                    f"run {run}: the checkpoint of epoch {e.get('epoch')} written by {e.get('host')} at "
                    f"{e.get('path')} is not in this results folder ({self.path.parent}; folders not shared?): "
                    "starting from epoch 1"
                )
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as e:  # truncated, not a torch file, unpicklable content
            why = (str(e).strip().splitlines() or [""])[0][:200]
            self.note(
                f"run {run}: checkpoint {self.path} unreadable ({type(e).__name__}: {why}); starting from epoch 1"
            )
            return None
        theirs = state.get("identity", {}) if isinstance(state, dict) else {}
        differ = [f"{k} {theirs.get(k)!r} != {v!r}" for k, v in self.identity.items() if theirs.get(k) != v]
        if differ:
            self.note(
                f"run {run}: checkpoint {self.path} ignored, it belongs to another run or setup "
                f"({'; '.join(differ)}); starting from epoch 1"
            )
            return None
        return state

    def due(self, epoch_end: Optional[int] = None) -> bool:
        """Whether the policy asks for a checkpoint now: at the end of epoch `epoch_end` (a multiple of
        `every_epochs`), or (either kind of boundary) `every_seconds` after the last write."""
        if self.every_epochs is not None:
            return epoch_end is not None and epoch_end % self.every_epochs == 0
        return self.every_seconds is not None and time.perf_counter() - self.last_write >= self.every_seconds

    def save(self, state: dict, epoch: int, step: int) -> None:
        """Write `state` (with the identity) atomically over the run's checkpoint."""
        t0 = time.perf_counter()
        with atomic_path(self.path) as tmp:
            torch.save({"identity": self.identity, **state}, tmp)
            stop.kill_point("checkpoint-write")
        self.last_write = time.perf_counter()
        self.write_seconds.append(self.last_write - t0)
        self.written({"path": str(self.path), "host": socket.gethostname(), "epoch": epoch, "step": step})
