"""TensorBoard: one event-file folder per vaebench run, `<tracking.tensorboard.dir>/<study>/<run_id>/`.

Written with `torch.utils.tensorboard.SummaryWriter` (it needs the `tensorboard` package):
- scalars `epoch/<field>` (`epoch/train_loss`, `epoch/val_loss`, `epoch/kl_weight`, ...) at step =
  the epoch;
- scalars `final/<column>`, every scalar column of the row (`final/neg_elbo`, `final/fid`, ...), at
  step = the epochs trained;
- an hparams summary in the run's own folder: the swept values (the cell's grid keys, or a sampled
  search's params, and the seed) against the `final/*` metrics, so that TensorBoard's HParams tab
  compares the cells (`tensorboard --logdir DIR/<study>`).
A retried or resumed run writes a new event file into the same folder with `purge_step` at the
first epoch it logs (the restored epochs are logged again), so TensorBoard drops what the interrupted
attempt logged from that epoch on: no epoch twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from ..results.rows import scalar_columns
from ..spec.tracking import TensorboardSettings
from .base import RunInfo, RunTracker, Tracker


class TensorboardTracker(Tracker):
    def __init__(self, settings: TensorboardSettings) -> None:
        self.root = Path(settings.dir)

    def start(self, info: RunInfo) -> RunTracker:
        folder = self.root / info.study / info.run_id
        folder.mkdir(parents=True, exist_ok=True)  # here, so that an unwritable folder fails the start
        return _TensorboardRun(folder, info)


def _hparam_value(value: Any) -> Any:
    """An hparams value TensorBoard takes: a number, a string or a bool (anything else as JSON text)."""
    return value if isinstance(value, (int, float, str, bool)) else json.dumps(value)


class _TensorboardRun(RunTracker):
    def __init__(self, folder: Path, info: RunInfo) -> None:
        self.folder, self.info = folder, info
        self.writer = None

    def _open(self, first_step: int):
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            earlier = any(self.folder.glob("events.out.tfevents.*"))  # an interrupted attempt's file
            self.writer = SummaryWriter(str(self.folder), purge_step=first_step if earlier else None)
        return self.writer

    def epoch(self, record: dict) -> None:
        step = int(record["epoch"])
        writer = self._open(step)
        for key, value in record.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                writer.add_scalar(f"epoch/{key}", float(value), step)

    def finish(self, row: dict) -> None:
        from torch.utils.tensorboard.summary import hparams

        step = int(row.get("epochs_completed") or 0)
        writer = self._open(step + 1)
        final = {f"final/{k}": float(v) for k, v in scalar_columns(row).items()}
        for tag, value in final.items():
            writer.add_scalar(tag, value, step)
        swept = {k: _hparam_value(v) for k, v in self.info.swept.items()}
        for summary in hparams(swept, final):  # experiment, session start, session end
            writer.file_writer.add_summary(summary)
        self._close()

    def abort(self, reason: str) -> None:
        self._close()

    def _close(self) -> None:
        writer: Optional[Any] = self.writer
        self.writer = None
        if writer is not None:
            writer.close()
