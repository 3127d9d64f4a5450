"""KL-weight schedules in vaebench/objectives/schedules.py against the published formulas, written out here
independently, plus the registry, config validation and the schedule's use in the training loop."""

import math
from fractions import Fraction

import pytest
import torch
from pydantic import ValidationError

import vaebench.engine.train as train_mod
import vaebench.objectives.training as objective_mod  # the trainer's losses go through its training_loss
from vaebench.data import load_dataset
from vaebench.errors import RegistryError
from vaebench.objectives.schedules import SCHEDULES, kl_weight
from vaebench.spec.sweep_spec import RunConfig, ScheduleConfig

ALL_CONFIGS = [
    ScheduleConfig(name="constant"),
    ScheduleConfig(name="linear", warmup=3),
    ScheduleConfig(name="linear", unit="steps", warmup=17),
    ScheduleConfig(name="logistic", midpoint=2, steepness=2.5),
    ScheduleConfig(name="logistic", unit="steps", midpoint=40, steepness=0.2),
    ScheduleConfig(name="cyclical", cycles=3, ratio=0.7),
    ScheduleConfig(name="cyclical", cycles=1, ratio=1.0),
]


# ---------------------------------------------------------------------------------------------
# constant


@pytest.mark.parametrize("step", [0, 1, 99, 100, 12345, 10**9])
def test_constant_is_one(step):
    assert kl_weight(ScheduleConfig(name="constant"), step, 7, 1000) == 1.0


def test_default_schedule_is_constant():
    assert ScheduleConfig().name == "constant"
    assert kl_weight(ScheduleConfig(), 0, 10, 100) == 1.0


# ---------------------------------------------------------------------------------------------
# linear (Bowman et al. 2016): w = min(1, t / warmup)


@pytest.mark.parametrize(
    "step, expected",
    [(0, 0.0), (1, 0.001), (250, 0.25), (999, 0.999), (1000, 1.0), (1001, 1.0), (5000, 1.0)],
)
def test_linear_in_epochs(step, expected):
    cfg = ScheduleConfig(name="linear", warmup=10)  # unit defaults to epochs
    assert cfg.unit == "epochs"
    assert kl_weight(cfg, step, 100, 10**6) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("step, expected", [(0, 0.0), (25, 0.5), (49, 0.98), (50, 1.0), (51, 1.0), (10**6, 1.0)])
def test_linear_in_steps(step, expected):
    cfg = ScheduleConfig(name="linear", unit="steps", warmup=50)
    # steps_per_epoch must not matter when the unit is steps
    for spe in (1, 7, 100):
        assert kl_weight(cfg, step, spe, 10**6) == pytest.approx(expected, abs=1e-12)


def test_linear_epochs_depend_on_steps_per_epoch():
    cfg = ScheduleConfig(name="linear", warmup=2)
    # step 3 is 3/4 of an epoch at 4 steps per epoch, 3/8 at 8
    assert kl_weight(cfg, 3, 4, 100) == pytest.approx(0.375)
    assert kl_weight(cfg, 3, 8, 100) == pytest.approx(0.1875)


def test_linear_fractional_warmup():
    cfg = ScheduleConfig(name="linear", warmup=0.5)
    assert kl_weight(cfg, 1, 10, 100) == pytest.approx(0.2)
    assert kl_weight(cfg, 5, 10, 100) == 1.0


# ---------------------------------------------------------------------------------------------
# logistic: w = 1 / (1 + exp(-k (t - t0)))


def _logistic(t, k, t0):
    return 1.0 / (1.0 + math.exp(-k * (t - t0)))


@pytest.mark.parametrize("step", [0, 10, 37, 40, 41, 55, 80, 200])
def test_logistic_in_steps_matches_formula(step):
    cfg = ScheduleConfig(name="logistic", unit="steps", midpoint=40, steepness=0.15)
    assert kl_weight(cfg, step, 13, 1000) == pytest.approx(_logistic(step, 0.15, 40), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("step", [0, 5, 19, 20, 21, 33, 100])
def test_logistic_in_epochs_matches_formula(step):
    cfg = ScheduleConfig(name="logistic", midpoint=2, steepness=1.5)
    # 10 steps per epoch: t = step / 10 epochs
    assert kl_weight(cfg, step, 10, 1000) == pytest.approx(_logistic(step / 10, 1.5, 2), rel=1e-12, abs=1e-15)


def test_logistic_is_one_half_at_the_midpoint():
    assert kl_weight(ScheduleConfig(name="logistic", unit="steps", midpoint=40, steepness=0.3), 40, 1, 100) == 0.5
    assert kl_weight(ScheduleConfig(name="logistic", midpoint=5), 500, 100, 1000) == 0.5
    assert kl_weight(ScheduleConfig(name="logistic", midpoint=0), 0, 100, 1000) == 0.5


@pytest.mark.parametrize("d", [1, 3, 10, 25, 40])
def test_logistic_is_symmetric_around_the_midpoint(d):
    cfg = ScheduleConfig(name="logistic", unit="steps", midpoint=40, steepness=0.2)
    assert kl_weight(cfg, 40 + d, 1, 100) + kl_weight(cfg, 40 - d, 1, 100) == pytest.approx(1.0, abs=1e-12)
    assert kl_weight(cfg, 40 + d, 1, 100) > 0.5 > kl_weight(cfg, 40 - d, 1, 100)


def test_logistic_is_monotone_increasing():
    cfg = ScheduleConfig(name="logistic", midpoint=3, steepness=2.0)
    ws = [kl_weight(cfg, s, 10, 1000) for s in range(0, 100)]
    assert all(b > a for a, b in zip(ws, ws[1:]))  # strictly, while far from saturation in float
    ws = [kl_weight(cfg, s, 10, 10**6) for s in range(0, 10**4, 37)]
    assert all(b >= a for a, b in zip(ws, ws[1:]))
    assert all(0.0 <= w <= 1.0 for w in ws)


def test_logistic_extreme_steps_do_not_overflow():
    # far before the midpoint: -k (t - t0) is huge and positive; exp would overflow without care
    cfg = ScheduleConfig(name="logistic", unit="steps", midpoint=1e6, steepness=10.0)
    w = kl_weight(cfg, 0, 1, 10)
    assert 0.0 <= w < 1e-300
    # just around the float overflow of exp (709.78): still no error, still ~0
    for x in (699.0, 705.0, 709.0, 710.0, 800.0):
        c = ScheduleConfig(name="logistic", unit="steps", midpoint=x, steepness=1.0)
        w = kl_weight(c, 0, 1, 10)
        assert 0.0 <= w < 1e-300
    # far after the midpoint: the exponent is very negative, w -> 1
    cfg = ScheduleConfig(name="logistic", unit="steps", midpoint=0, steepness=10.0)
    assert kl_weight(cfg, 10**9, 1, 10) == 1.0


# ---------------------------------------------------------------------------------------------
# cyclical (Fu et al. 2019): period T / M, tau = (t mod period) / period, w = min(1, tau / R)


def _cyclical(t, total, cycles, ratio):
    period = Fraction(total, cycles)
    tau = (Fraction(t) % period) / period
    return float(min(Fraction(1), tau / Fraction(ratio).limit_denominator(1000)))


@pytest.mark.parametrize(
    "step, expected",
    [
        (0, 0.0),
        (62, 0.496),
        (124, 0.992),
        (125, 1.0),
        (249, 1.0),
        (250, 0.0),
        (312, 0.496),
        (374, 0.992),
        (375, 1.0),
        (500, 0.0),
        (750, 0.0),
        (875, 1.0),
        (999, 1.0),
    ],
)
def test_cyclical_hand_values(step, expected):
    cfg = ScheduleConfig(name="cyclical", cycles=4, ratio=0.5)
    w = kl_weight(cfg, step, 17, 1000)
    assert w == pytest.approx(expected, abs=1e-12)
    assert w == pytest.approx(_cyclical(step, 1000, 4, 0.5), abs=1e-12)


def test_cyclical_restarts_and_saturates_every_cycle():
    cfg = ScheduleConfig(name="cyclical", cycles=4, ratio=0.5)
    period = 250
    for c in range(4):
        start = c * period
        assert kl_weight(cfg, start, 10, 1000) == 0.0
        rising = [kl_weight(cfg, s, 10, 1000) for s in range(start, start + 125)]
        assert all(b > a for a, b in zip(rising, rising[1:]))
        assert all(w < 1.0 for w in rising)
        assert all(kl_weight(cfg, s, 10, 1000) == 1.0 for s in range(start + 125, start + period))


@pytest.mark.parametrize("total, cycles, ratio", [(1000, 3, 0.7), (96, 4, 0.25), (64, 1, 1.0), (100, 7, 0.5)])
def test_cyclical_matches_formula_everywhere(total, cycles, ratio):
    cfg = ScheduleConfig(name="cyclical", cycles=cycles, ratio=ratio)
    for step in range(total):
        assert kl_weight(cfg, step, 5, total) == pytest.approx(_cyclical(step, total, cycles, ratio), abs=1e-9), step


def test_cyclical_ignores_steps_per_epoch():
    cfg = ScheduleConfig(name="cyclical", cycles=2, ratio=0.5)
    assert {kl_weight(cfg, 30, spe, 200) for spe in (1, 3, 50)} == {0.6}


def test_cyclical_single_cycle_full_ratio_is_a_linear_ramp_over_the_run():
    cfg = ScheduleConfig(name="cyclical", cycles=1, ratio=1.0)
    for step in (0, 10, 50, 99):
        assert kl_weight(cfg, step, 4, 100) == pytest.approx(step / 100)


# ---------------------------------------------------------------------------------------------
# range, registry and config validation


@pytest.mark.parametrize("cfg", ALL_CONFIGS, ids=lambda c: f"{c.name}-{c.unit}")
def test_every_schedule_stays_in_unit_interval(cfg):
    for step in range(0, 600, 7):
        w = kl_weight(cfg, step, 10, 600)
        assert isinstance(w, float)
        assert 0.0 <= w <= 1.0


def test_registry_names():
    assert SCHEDULES.names() == ["constant", "cyclical", "linear", "logistic"]


def test_registry_unknown_name_suggests():
    with pytest.raises(RegistryError, match="Did you mean 'cyclical'"):
        SCHEDULES.get("cyclic")
    with pytest.raises(KeyError):
        kl_weight(ScheduleConfig(name="linear").model_copy(update={"name": "nope"}), 0, 1, 1)


def test_unknown_schedule_name_in_config():
    with pytest.raises(ValidationError, match="Did you mean 'linear'"):
        ScheduleConfig(name="lineer")


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"name": "linear", "cycles": 3}, "cycles"),
        ({"name": "linear", "midpoint": 2.0}, "midpoint"),
        ({"name": "logistic", "warmup": 3.0}, "warmup"),
        ({"name": "logistic", "ratio": 0.3}, "ratio"),
        ({"name": "cyclical", "unit": "steps"}, "unit"),
        ({"name": "cyclical", "warmup": 3.0}, "warmup"),
        ({"name": "constant", "warmup": 3.0}, "warmup"),
        ({"name": "constant", "unit": "steps"}, "unit"),
    ],
)
def test_unused_schedule_fields_are_rejected(kwargs, field):
    with pytest.raises(ValidationError, match="is not used by") as e:
        ScheduleConfig(**kwargs)
    assert repr(field) in str(e.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "linear", "unit": "steps", "warmup": 100},
        {"name": "logistic", "unit": "steps", "midpoint": 10, "steepness": 0.5},
        {"name": "cyclical", "cycles": 2, "ratio": 0.25},
    ],
)
def test_used_schedule_fields_are_accepted(kwargs):
    cfg = ScheduleConfig(**kwargs)
    for k, v in kwargs.items():
        assert getattr(cfg, k) == v


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "linear", "warmup": 0},
        {"name": "logistic", "steepness": 0},
        {"name": "logistic", "midpoint": -1},
        {"name": "cyclical", "cycles": 0},
        {"name": "cyclical", "ratio": 0},
        {"name": "cyclical", "ratio": 1.5},
        {"name": "linear", "unit": "minutes"},
    ],
)
def test_out_of_range_schedule_values_are_rejected(kwargs):
    with pytest.raises(ValidationError):
        ScheduleConfig(**kwargs)


# ---------------------------------------------------------------------------------------------
# the schedule in the training loop


def _run_cfg(schedule, beta=2.0):
    return RunConfig.model_validate(
        {
            "dataset": {"name": "synthetic"},
            "model": {"hidden_dim": 16, "latent_dim": 2},
            "train": {"epochs": 4, "batch_size": 128},
            "objective": {"beta": beta},
            "schedule": schedule,
        }
    )


@pytest.fixture
def one_thread():
    """Tiny models train ~50x faster on one intra-op thread when the 2 cores are shared."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset(RunConfig.model_validate({"dataset": {"name": "synthetic"}}).dataset)


def test_train_history_kl_weight_follows_linear_warmup(synthetic, monkeypatch, one_thread):
    cfg = _run_cfg({"name": "linear", "warmup": 2})
    assert len(synthetic.x_train) == 512  # 4 steps per epoch at batch 128
    seen = []
    real = objective_mod.training_loss

    def spy(obj_cfg, model, x, y, w):
        seen.append(w)
        return real(obj_cfg, model, x, y, w)

    monkeypatch.setattr(objective_mod, "training_loss", spy)
    result = train_mod.train(cfg, synthetic, seed=0, device="cpu")
    assert result.status == "ok"
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    # per step: beta * min(1, (step / 4) / 2)
    expected_steps = [2.0 * min(1.0, (s / 4) / 2) for s in range(16)]
    assert seen == pytest.approx(expected_steps, abs=1e-12)
    expected_epochs = [
        2.0 * (0 + 0.125 + 0.25 + 0.375) / 4,
        2.0 * (0.5 + 0.625 + 0.75 + 0.875) / 4,
        2.0,
        2.0,
    ]
    assert [r["kl_weight"] for r in result.history] == pytest.approx(expected_epochs, abs=1e-12)


def test_train_history_kl_weight_follows_cyclical_over_the_whole_run(synthetic, one_thread):
    # 16 steps in all, 4 cycles: period 4 = one epoch; within it tau = 0, .25, .5, .75 -> w 0, .5, 1, 1
    cfg = _run_cfg({"name": "cyclical", "cycles": 4, "ratio": 0.5}, beta=1.0)
    result = train_mod.train(cfg, synthetic, seed=0, device="cpu")
    assert [r["kl_weight"] for r in result.history] == pytest.approx([0.625] * 4, abs=1e-12)
    # 2 cycles: period 8 = two epochs; epoch 1: tau 0..3/8 -> w 0, .25, .5, .75; epoch 2: 1
    cfg = _run_cfg({"name": "cyclical", "cycles": 2, "ratio": 0.5}, beta=1.0)
    result = train_mod.train(cfg, synthetic, seed=0, device="cpu")
    assert [r["kl_weight"] for r in result.history] == pytest.approx([0.375, 1.0, 0.375, 1.0], abs=1e-12)
