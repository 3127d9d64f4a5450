"""Checkpoints inside a run (engine/checkpoint.py, the loop's state in engine/train.py): a run
interrupted after a checkpoint, at an epoch boundary or at a step within an epoch, and resumed,
writes a row whose metrics and history (but the wall-clock seconds) equal an uninterrupted run's
bit for bit; a checkpoint that belongs to another run or setup is ignored with the reason; the
policy (`train.checkpoint_every`) and its absence from run ids and fingerprints."""

import logging
import math

import pytest
import torch

from vaebench.data import load_dataset
from vaebench.engine import checkpoint as checkpoint_mod
from vaebench.engine import train as train_mod
from vaebench.engine.checkpoint import Checkpoints, checkpoint_path, remove_checkpoint
from vaebench.engine.execute import Reporter, Setting, execute_run
from vaebench.errors import Preempted, SpecError
from vaebench.results.rows import metric_types
from vaebench.runtime import stop
from vaebench.spec.sweep_spec import parse_spec

CPU = torch.device("cpu")
FAST_EVAL = {"fid_extractor": None, "nll_examples": 50, "nll_k": 10}
BASE = {
    "study": "ckpt",
    "dataset": {"name": "digits"},
    "model": {"name": "mlp", "hidden_dim": 32, "latent_dim": 4},
    "train": {"epochs": 4, "batch_size": 128},
    "eval": FAST_EVAL,
}
# the digits' 1,797 - 360 test = 1,437 training examples: 12 steps of 128 per epoch (the last one short)
STEPS = 12


def _steps(spec) -> int:
    """Training steps per epoch of `spec`'s first run (a validation split takes examples away)."""
    x, _ = load_dataset(spec.dataset, None).training_examples()
    return math.ceil(len(x) / spec.base().train.batch_size)


def _spec(**sections):
    return parse_spec({**BASE, **{k: {**BASE.get(k, {}), **v} for k, v in sections.items()}})


class _Notes(Reporter):
    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        self.notes.append(text)


def _execute(spec, root, reporter=None, stop_check=None):
    data = load_dataset(spec.dataset, None)
    run = spec.runs()[0]
    row = execute_run(run, Setting(spec, data, CPU, root), reporter or _Notes(), stop_check=stop_check)
    remove_checkpoint(root, spec.study, run.run_id)  # as the worker does once the row is written
    return row


def _results(row: dict) -> dict:
    """What must not change: every metric column, the objective values, the history but its seconds."""
    out = {k: row[k] for k in metric_types()}
    out["history"] = [{k: v for k, v in e.items() if k != "seconds"} for e in row["history"]]
    for k in ("objective_values", "epochs_completed", "stop_reason", "best_epoch", "status", "n_params"):
        out[k] = row[k]
    return out


@pytest.fixture
def stop_at_step(monkeypatch):
    """stop_at_step(n): one stop request (what SIGTERM does) during training step n (0-based, counted
    over the run): the loop writes a checkpoint at the next step boundary and raises Preempted."""
    stop.reset()

    real = train_mod.kl_weight

    def arm(n: int) -> None:
        fired = []

        def kl_weight(schedule, step, *args):
            if step == n and not fired:  # once: the resumed run passes step n again
                fired.append(step)
                stop.request()
            return real(schedule, step, *args)

        monkeypatch.setattr(train_mod, "kl_weight", kl_weight)

    yield arm
    stop.reset()


class _Crash(Exception):
    pass


def _crash_at(epoch: int):
    """An epoch callback that raises at the end of `epoch` (before that epoch's checkpoint): the
    process dies with the previous epoch-boundary checkpoint on disk."""

    def check(record):
        if record["epoch"] == epoch:
            raise _Crash(f"killed in epoch {epoch}")
        return None

    return check


VARIANTS = {
    "plain": {},
    # early stopping on a validation split, dynamic binarization and a KL warm-up: every state the loop keeps
    "early-stopping+binarize+warmup": {
        "dataset": {"binarize": True, "validation": 200},
        "schedule": {"name": "linear", "warmup": 2},
        # counted from epoch 3 (the warm-up's end); no later epoch improves by 50 nats: stops after epoch 5
        "train": {"epochs": 6, "early_stopping": {"patience": 2, "min_delta": 50.0}, "lr_schedule": "plateau"},
        "search": {"allow_test_selection": False},
    },
    # an objective with an auxiliary network and optimizer (FactorVAE's discriminator): both in the checkpoint
    "factorvae": {
        "objective": {"estimator": "factorvae", "discriminator_hidden": 16, "discriminator_layers": 2},
    },
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_resumed_run_equals_an_uninterrupted_one_bit_for_bit(tmp_path, variant, stop_at_step):
    sections = {k: v for k, v in VARIANTS[variant].items() if k != "search"}
    spec = _spec(**{**sections, "train": {**sections.get("train", {}), "checkpoint_every": 1}})
    reference = _execute(spec, tmp_path / "reference")
    assert reference["resumed_from_epoch"] is None and reference["attempts"] == 1

    # killed during epoch k, after the checkpoint at the end of epoch k - 1: resumed at epoch k (under early
    # stopping the best epoch's weights, 3, are in that checkpoint and restored after the stop at epoch 5)
    k = 5 if variant.startswith("early") else 3
    root = tmp_path / "killed"
    with pytest.raises(_Crash):
        _execute(spec, root, stop_check=_crash_at(k))
    assert checkpoint_path(root, "ckpt", reference["run_id"]).is_file()
    notes = _Notes()
    resumed = _execute(spec, root, notes)
    assert resumed["resumed_from_epoch"] == k and notes.notes == [
        f"run {reference['run_id']}: resumed from its checkpoint at epoch {k}"
    ]
    assert _results(resumed) == _results(reference)

    # a stop request (SIGTERM) during step 5 of epoch 2: a checkpoint at the next step boundary
    root = tmp_path / "stopped"
    steps = _steps(spec)
    stop_at_step(steps + 4)
    with pytest.raises(Preempted, match=f"at epoch 2, step 6/{steps}"):
        _execute(spec, root)
    stop.reset()
    notes = _Notes()
    resumed = _execute(spec, root, notes)
    assert resumed["resumed_from_epoch"] == 2 and notes.notes == [
        f"run {reference['run_id']}: resumed from its checkpoint at epoch 2, step 6"
    ]
    assert _results(resumed) == _results(reference)
    if variant.startswith("early"):  # what the comparison covered: a stop, and the best epoch's weights evaluated
        assert (reference["stop_reason"], reference["epochs_completed"], reference["best_epoch"]) == ("converged", 5, 3)


def test_the_train_seconds_of_a_resumed_run_continue_from_its_checkpoint(tmp_path, stop_at_step):
    spec = _spec(train={"epochs": 2})
    stop_at_step(STEPS + 1)
    with pytest.raises(Preempted):
        _execute(spec, tmp_path)
    stop.reset()
    state = torch.load(checkpoint_path(tmp_path, "ckpt", spec.runs()[0].run_id), weights_only=True)
    before = state["seconds"]
    assert before >= state["history"][0]["seconds"] > 0
    row = _execute(spec, tmp_path)
    assert row["history"][0]["seconds"] == state["history"][0]["seconds"]  # restored, not measured again
    assert row["train_seconds"] > before


def _checkpoint_of(tmp_path, spec, stop_at_step) -> None:
    stop_at_step(STEPS + 1)
    with pytest.raises(Preempted):
        _execute(spec, tmp_path)
    stop.reset()


@pytest.mark.parametrize(
    "change, reason",
    [
        ("config", "config "),
        ("dataset", "dataset_checksum 'elsewhere' != "),
        ("version", "vaebench_version '0.0.1' != "),
        ("truncated", "unreadable ("),
    ],
)
def test_a_checkpoint_of_another_run_or_setup_is_ignored_with_the_reason(
    tmp_path, monkeypatch, stop_at_step, change, reason
):
    spec = _spec(train={"epochs": 2})
    reference = _execute(spec, tmp_path / "reference")
    _checkpoint_of(tmp_path, spec, stop_at_step)
    path = checkpoint_path(tmp_path, "ckpt", reference["run_id"])
    if change == "config":  # another config's checkpoint under this run's name (a different model size)
        other = _spec(train={"epochs": 2}, model={"hidden_dim": 16})
        _checkpoint_of(tmp_path / "other", other, stop_at_step)
        checkpoint_path(tmp_path / "other", "ckpt", other.runs()[0].run_id).rename(path)
    elif change == "truncated":  # half a file (written by something else than atomic_path, which cannot leave one)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        state = torch.load(path, weights_only=True)
        key = {"dataset": "dataset_checksum", "version": "vaebench_version"}[change]
        state["identity"][key] = {"dataset": "elsewhere", "version": "0.0.1"}[change]
        torch.save(state, path)
    notes = _Notes()
    row = _execute(spec, tmp_path, notes)
    assert len(notes.notes) == 1 and reason in notes.notes[0] and notes.notes[0].endswith("starting from epoch 1")
    assert row["resumed_from_epoch"] is None
    assert _results(row) == _results(reference)


def test_notes_go_to_the_vaebench_logger_by_default(tmp_path, caplog, stop_at_step):
    spec = _spec(train={"epochs": 2})
    _checkpoint_of(tmp_path, spec, stop_at_step)
    with caplog.at_level(logging.WARNING, logger="vaebench"):
        _execute(spec, tmp_path, Reporter())
    assert "resumed from its checkpoint at epoch 2, step 3" in caplog.text


def test_the_checkpoint_policy(monkeypatch, tmp_path):
    ident = {"run_id": "r"}
    by_epochs = Checkpoints(tmp_path / "a.pt", ident, every_epochs=3)
    assert [e for e in range(1, 10) if by_epochs.due(epoch_end=e)] == [3, 6, 9] and not by_epochs.due()
    clock = [100.0]
    monkeypatch.setattr(checkpoint_mod.time, "perf_counter", lambda: clock[0])
    by_time = Checkpoints(tmp_path / "b.pt", ident, every_seconds=600.0)
    clock[0] = 699.9
    assert not by_time.due() and not by_time.due(epoch_end=1)
    clock[0] = 700.0
    assert by_time.due() and by_time.due(epoch_end=1)
    by_time.save({"x": torch.zeros(1)}, epoch=1, step=5)
    assert not by_time.due()  # counted from the last write
    never = Checkpoints(tmp_path / "c.pt", ident)
    clock[0] = 1e9
    assert not never.due() and not never.due(epoch_end=1)


def test_checkpoint_every_parses_and_stays_out_of_run_ids_and_fingerprints():
    assert _spec().base().train.checkpoint_interval() == (None, 600.0)  # the default, "10min"
    assert _spec(train={"checkpoint_every": 5}).base().train.checkpoint_interval() == (5, None)
    assert _spec(train={"checkpoint_every": "2.5min"}).base().train.checkpoint_interval() == (None, 150.0)
    assert _spec(train={"checkpoint_every": None}).base().train.checkpoint_interval() == (None, None)
    a, b = _spec(), _spec(train={"checkpoint_every": 1})
    assert a.runs()[0].run_id == b.runs()[0].run_id and a.fingerprint() == b.fingerprint()
    assert "train" not in parse_spec({**BASE, "train": {"checkpoint_every": 2}}).base().identity()
    for bad, why in (
        (0, "a number of epochs must be >= 1"),
        ("10 minutes", '"<N>min"'),
        ("0min", '"<N>min"'),
        (1.5, "valid"),
    ):
        with pytest.raises(SpecError, match=why):
            _spec(train={"checkpoint_every": bad})
    with pytest.raises(SpecError, match="cannot vary"):
        parse_spec({**BASE, "grid": {"train.checkpoint_every": [1, 2]}})


def test_a_short_run_at_the_default_writes_no_checkpoint(tmp_path, monkeypatch):
    written = []
    monkeypatch.setattr(Checkpoints, "save", lambda self, *a, **k: written.append(a))
    _execute(_spec(train={"epochs": 2}), tmp_path)  # seconds, not 10 minutes
    assert written == [] and not (tmp_path / "ckpt" / "checkpoints").exists()
