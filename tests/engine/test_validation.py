"""The validation split (dataset.validation) and early stopping (train.early_stopping): which examples
a run trains, validates and is tested on, when it stops, and which weights it is evaluated with."""

import copy
import math

import pytest
import torch

from vaebench.data import load_dataset
from vaebench.data.base import validation_count
from vaebench.engine.execute import Reporter, Setting, execute_run
from vaebench.engine.train import train
from vaebench.errors import DataError
from vaebench.metrics import evaluate
from vaebench.objectives.schedules import settled_epoch
from vaebench.spec.sections import ScheduleConfig
from vaebench.spec.sweep_spec import DatasetConfig, RunConfig, parse_spec

DIGITS = load_dataset(DatasetConfig(name="digits"))
DIGITS_VAL = load_dataset(DatasetConfig(name="digits", validation=300))


def _rows(x: torch.Tensor) -> set[bytes]:
    return {bytes(r.numpy().tobytes()) for r in x.reshape(len(x), -1)}


def test_the_split_holds_out_training_examples_disjoint_from_training_and_test():
    data = DIGITS_VAL
    x_fit, y_fit = data.training_examples()
    assert data.validation_size == len(data.x_val) == len(data.y_val) == 300
    assert len(x_fit) + 300 == len(DIGITS.x_train)  # the rest of the training split is trained on
    # the examples are the training split's rows at the held-out indices, labels included
    assert torch.equal(data.x_val, DIGITS.x_train[data.validation_index])
    assert torch.equal(data.y_val, DIGITS.y_train[data.validation_index])
    assert len(set(data.validation_index.tolist())) == 300
    assert sorted(data.validation_index.tolist()) == data.validation_index.tolist()
    kept = torch.ones(len(DIGITS.x_train), dtype=torch.bool)
    kept[data.validation_index] = False
    assert torch.equal(x_fit, DIGITS.x_train[kept]) and torch.equal(y_fit, DIGITS.y_train[kept])
    # by content: every held-out image is one the trainer does not see (digits repeats no image)
    assert len(_rows(DIGITS.x_train)) == len(DIGITS.x_train)
    assert not _rows(data.x_val) & _rows(x_fit)
    # the test split and the dataset's checksum are those of the source: the split only adds to them
    assert torch.equal(data.x_test, DIGITS.x_test) and data.checksum == DIGITS.checksum
    # the validation view evaluates metrics on the held-out examples
    view = data.validation_split()
    assert torch.equal(view.x_test, data.x_val) and torch.equal(view.y_test, data.y_val)
    with pytest.raises(ValueError, match="no validation split"):
        DIGITS.validation_split()


def test_the_split_is_the_same_for_every_load_and_a_fraction_is_a_count():
    again = load_dataset(DatasetConfig(name="digits", validation=300))
    assert torch.equal(again.validation_index, DIGITS_VAL.validation_index)
    assert again.validation_checksum == DIGITS_VAL.validation_checksum is not None
    n = len(DIGITS.x_train)
    frac = load_dataset(DatasetConfig(name="digits", validation=0.25))
    assert frac.validation_size == round(0.25 * n) == validation_count(0.25, n)
    other = load_dataset(DatasetConfig(name="digits", validation=301))
    assert other.validation_checksum != DIGITS_VAL.validation_checksum
    assert DIGITS.validation_size == 0 and DIGITS.validation_checksum is None


@pytest.mark.parametrize("value", [-1, 1.0, 1.5, -0.1, "ten", True])
def test_a_bad_validation_value_names_the_field(value):
    with pytest.raises(Exception) as e:
        parse_spec({"study": "s", "dataset": {"name": "digits", "validation": value}}, "sweeps/x.yaml")
    assert "sweeps/x.yaml" in str(e.value) and "dataset.validation" in str(e.value)


def test_a_split_that_leaves_nothing_to_train_on_is_a_data_error():
    with pytest.raises(DataError, match="field dataset.validation: 100000 holds out 100000"):
        load_dataset(DatasetConfig(name="digits", validation=100000))


def test_binarized_validation_is_one_fixed_draw():
    a = load_dataset(DatasetConfig(name="digits", validation=300, binarize=True))
    b = load_dataset(DatasetConfig(name="digits", validation=300, binarize=True))
    assert set(a.x_val.unique().tolist()) == {0.0, 1.0} and torch.equal(a.x_val, b.x_val)
    # the training examples stay grayscale (the trainer binarizes each batch afresh)
    assert len(a.training_examples()[0].unique()) > 2


def _cfg(**train) -> RunConfig:
    return RunConfig.model_validate(
        {
            "dataset": {"name": "digits", "validation": 300},
            "model": {"name": "mlp", "hidden_dim": 32, "latent_dim": 4},
            "train": {"batch_size": 128, **train},
        }
    )


def test_with_a_split_the_epochs_record_validation_losses_and_train_on_the_rest(heldout_calls):
    cfg = _cfg(epochs=3)
    res = train(cfg, DIGITS_VAL, seed=0, device="cpu")
    assert all(r["test_loss"] is None for r in res.history if "test_loss" in r) and "test_loss" not in res.history[0]
    assert [r["val_loss"] for r in res.history] == pytest.approx([r["val_recon"] + r["val_kl"] for r in res.history])
    # the recorded val_loss is the single-sample -ELBO of the validation examples under that epoch's
    # weights (recomputed from the weights and RNG state captured just before the trainer's call)
    rng, state, batch_size = heldout_calls[-1]
    model = copy.deepcopy(res.model)
    model.load_state_dict(state)
    model.eval()
    torch.set_rng_state(rng)
    with torch.no_grad():
        total = 0.0
        for s in range(0, 300, batch_size):
            t = model.elbo_terms(DIGITS_VAL.x_val[s : s + batch_size], DIGITS_VAL.y_val[s : s + batch_size])
            total += float(t.recon.sum() + t.kl.sum())
    assert res.history[-1]["val_loss"] == pytest.approx(total / 300, rel=1e-6)
    assert res.stop_reason == "max_epochs" and res.best_epoch == 3  # no early stopping: the last epoch


def _expected_stop(losses: list[float], patience: int, min_delta: float, first: int) -> tuple[int, int]:
    """(the epoch training stops after, the best epoch) by the rule, from the recorded losses."""
    best, best_epoch, waited = math.inf, None, 0
    for epoch, loss in enumerate(losses, start=1):
        if epoch < first:
            continue
        if loss < best - min_delta:
            best, best_epoch, waited = loss, epoch, 0
        else:
            waited += 1
            if waited >= patience:
                return epoch, best_epoch
    return len(losses), best_epoch


def test_early_stopping_stops_at_the_expected_epoch_and_evaluates_the_best_epochs_weights(heldout_calls):
    # lr 3e-2 on digits: the validation -ELBO falls fast, then wanders; min_delta 0.5 nats ends it early
    cfg = _cfg(epochs=60, lr=3e-2, early_stopping={"patience": 3, "min_delta": 0.5})
    spec = parse_spec({"study": "es", **cfg.model_dump(mode="json")})
    row = execute_run(spec.runs()[0], Setting(spec, DIGITS_VAL, torch.device("cpu"), None), Reporter())
    losses = [r["val_loss"] for r in row["history"]]
    stop, best = _expected_stop(losses, 3, 0.5, first=1)
    assert stop < 60, "the test needs a run that converges before its maximum"
    assert row["stop_reason"] == "converged" and row["epochs_completed"] == stop and row["best_epoch"] == best
    assert best < stop  # the weights come from an earlier epoch than the last one trained
    # the row's test metrics are an evaluation of the best epoch's weights: rebuild them and evaluate
    _, best_state, _ = heldout_calls[best - 1]  # weights at the end of epoch `best`
    res = train(cfg, DIGITS_VAL, seed=0, device="cpu")  # the same run again: its final model
    for k, v in best_state.items():
        assert torch.equal(res.model.state_dict()[k], v), k
    last_state = heldout_calls[stop - 1][1]  # (the first run's calls) the last epoch's weights differ
    assert any(not torch.equal(best_state[k], last_state[k]) for k in best_state)
    model = copy.deepcopy(res.model)
    model.load_state_dict(best_state)
    again = evaluate(model, DIGITS_VAL, cfg, seed=0)
    assert row["neg_elbo"] == again["neg_elbo"] and row["recon_mse"] == again["recon_mse"]
    # what the trial tells Optuna is the target measured on the validation split, not on test
    assert row["objective_split"] == "validation"
    on_val = evaluate(model, DIGITS_VAL.validation_split(), cfg, seed=0, names=["elbo"])
    assert row["objective_values"] == [on_val["neg_elbo"]] and row["objective_values"][0] != row["neg_elbo"]
    assert row["validation_size"] == 300 and row["validation_checksum"] == DIGITS_VAL.validation_checksum


def test_a_warm_up_cannot_trigger_an_early_stop_before_it_has_finished():
    # min_delta so large that no epoch after the first counted one improves: the run stops exactly
    # `patience` epochs after the schedule settles (warm-up of 6 epochs: epoch 7 is the first counted)
    cfg = RunConfig.model_validate(
        {
            **_cfg().model_dump(mode="json"),
            "schedule": {"name": "linear", "warmup": 6},
            "train": {"epochs": 30, "batch_size": 128, "early_stopping": {"patience": 2, "min_delta": 1000.0}},
        }
    )
    res = train(cfg, DIGITS_VAL, seed=0, device="cpu")
    assert res.stop_reason == "converged" and len(res.history) == 7 + 2 and res.best_epoch == 7
    assert res.history[5]["kl_weight"] < 1.0 == res.history[6]["kl_weight"]


@pytest.mark.parametrize(
    "schedule,epochs,expected",
    [
        ({"name": "constant"}, 20, 1),
        ({"name": "linear", "warmup": 10}, 20, 11),  # w reaches 1 at the end of epoch 10
        ({"name": "linear", "warmup": 2.5}, 20, 4),  # ... in the middle of epoch 3
        # logistic: w >= 1 - 1e-3 from t = midpoint + ln(999) / k = 5 + 6.907 epochs, inside epoch 12
        ({"name": "logistic", "midpoint": 5, "steepness": 1}, 40, 13),
        # cyclical, 4 cycles of 10 epochs rising over half of each: the last rise ends with epoch 35
        ({"name": "cyclical", "cycles": 4, "ratio": 0.5}, 40, 36),
        ({"name": "cyclical", "cycles": 2, "ratio": 1.0}, 40, 41),  # never settles: early stopping never acts
    ],
)
def test_the_schedule_settles_where_its_formula_says(schedule, epochs, expected):
    steps_per_epoch = 7
    assert settled_epoch(ScheduleConfig(**schedule), steps_per_epoch, steps_per_epoch * epochs) == expected


def test_without_a_split_the_epochs_record_test_losses_as_before():
    res = train(_cfg(epochs=2).model_copy(update={"dataset": DatasetConfig(name="digits")}), DIGITS, 0, "cpu")
    assert "val_loss" not in res.history[0] and res.history[0]["test_loss"] > 0
