"""The one vocabulary of a run's outcome, from the trainer to the results row, the Optuna trial, the
status display and the command line. The values are what rows store in their `status` column.

    ok       trained and evaluated: a row with its metrics; the trial is COMPLETE (counted "complete")
    pruned   training stopped early because the epoch callback (a pruner) asked: a row without metrics;
             the trial is PRUNED
    failed   training diverged (a NaN or infinite loss; the row's `reason` says where): a row without
             metrics; the trial is FAIL and holds the row. A result: never retried
    crashed  the trial raised or its worker died: no row; the trial is FAIL without a row, and the
             run is tried again (a retry trial, or the next `vaebench run`)
"""

from __future__ import annotations

import enum


class RunStatus(str, enum.Enum):
    OK = "ok"
    PRUNED = "pruned"
    FAILED = "failed"
    CRASHED = "crashed"

    def __str__(self) -> str:  # the value, also in f-strings (Python >= 3.11 would print "RunStatus.OK")
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def has_row(self) -> bool:
        """Whether a run with this outcome has a results row (every outcome but a crash)."""
        return self is not RunStatus.CRASHED
