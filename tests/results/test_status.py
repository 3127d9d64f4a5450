"""One vocabulary of a run's outcome (results/status.py): the trainer says what the row stores,
and the committed rows hold only values of it."""

import math

import pandas as pd

from tests.conftest import REPO
from vaebench.data import load_dataset
from vaebench.engine.train import train
from vaebench.results.status import RunStatus
from vaebench.spec.sweep_spec import RunConfig

CFG = {"dataset": {"name": "digits"}, "model": {"name": "mlp", "hidden_dim": 16, "latent_dim": 2}}


def test_the_values_are_strings_the_rows_store():
    assert [s.value for s in RunStatus] == ["ok", "pruned", "failed", "crashed"]
    assert RunStatus("failed") is RunStatus.FAILED and RunStatus.FAILED == "failed"
    assert f"{RunStatus.PRUNED}: x" == "pruned: x" and str(RunStatus.OK) == "ok"
    assert [s for s in RunStatus if not s.has_row] == [RunStatus.CRASHED]


def test_committed_rows_hold_only_statuses_of_the_vocabulary():
    statuses = {
        s for f in sorted((REPO / "results").glob("*/runs/*.parquet")) for s in pd.read_parquet(f)["status"].tolist()
    }
    assert statuses and statuses <= {s.value for s in RunStatus if s.has_row}


def test_the_trainer_says_failed_and_pruned():
    data = load_dataset(RunConfig.model_validate(CFG).dataset)
    diverging = RunConfig.model_validate({**CFG, "train": {"epochs": 3, "lr": 1e6, "grad_clip": None}})
    res = train(diverging, data, seed=0, device="cpu")
    assert res.status is RunStatus.FAILED and "non-finite" in res.reason
    assert all(math.isfinite(r["test_loss"]) for r in res.history)
    stopped = RunConfig.model_validate({**CFG, "train": {"epochs": 3}})
    res = train(stopped, data, seed=0, device="cpu", on_epoch=lambda record: "enough" if record["epoch"] == 2 else None)
    assert (res.status, res.reason, len(res.history)) == (RunStatus.PRUNED, "enough", 2)
    assert train(stopped, data, seed=0, device="cpu").status is RunStatus.OK
