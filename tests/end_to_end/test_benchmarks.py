"""The performance benchmark's own arithmetic: the FLOP count it divides by is checked against
torch's FlopCounterMode (an independent count of the matmuls and convolutions actually run)."""

import sys

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import perf  # noqa: E402

from vaebench.models import build_model  # noqa: E402
from vaebench.objectives.likelihoods import build_likelihood  # noqa: E402
from vaebench.spec.sweep_spec import RunConfig  # noqa: E402


@pytest.mark.parametrize(
    "model_cfg, shape",
    [
        (perf.MLP, (1, 28, 28)),
        (perf.CONV, (1, 28, 28)),
        ({"name": "resnet", "channels": [8, 16], "latent_dim": 4}, (1, 12, 10)),
        ({"name": "mlp", "hidden_dim": 40, "depth": 3, "latent_dim": 5}, (3, 6, 7)),
    ],
)
def test_forward_flops_match_torch_flop_counter(model_cfg, shape):
    model = build_model(RunConfig(model=model_cfg).model, shape, build_likelihood(RunConfig().objective), 10)
    x = torch.rand(3, *shape)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(x)
    assert perf.forward_flops(model, x) == pytest.approx(counter.get_total_flops() / 3, rel=1e-9)


@pytest.mark.parametrize(
    "model_cfg, shape",
    [
        (perf.MLP, (1, 28, 28)),
        (perf.CONV, (1, 28, 28)),
        ({"name": "mlp", "hidden_dim": 40, "depth": 3, "latent_dim": 5}, (3, 6, 7)),
    ],
)
def test_training_flops_match_torch_flop_counter_over_forward_and_backward(model_cfg, shape):
    """A training step's FLOPs, as torch counts the products and convolutions autograd really runs."""
    from vaebench.objectives.bounds import elbo_terms

    model = build_model(RunConfig(model=model_cfg).model, shape, build_likelihood(RunConfig().objective), 10).train()
    x = torch.rand(4, *shape)
    with FlopCounterMode(display=False) as counter:
        t = elbo_terms(model, model.likelihood, x)
        (t.recon.mean() + t.kl.sum(1).mean()).backward()
    assert perf.training_flops(model, x) == pytest.approx(counter.get_total_flops() / 4, rel=1e-9)
    assert perf.training_flops(model, x) < 3 * perf.forward_flops(model, x)  # the images need no gradient


def test_mlp_flops_are_the_layer_shapes():
    # 784-256-256-(32, 32) encoder, 32-256-256-784 decoder: 2 FLOPs per multiply-add
    macs = 784 * 256 + 256 * 256 + 2 * 256 * 32 + 32 * 256 + 256 * 256 + 256 * 784
    model = build_model(RunConfig(model=perf.MLP).model, (1, 28, 28), build_likelihood(RunConfig().objective), 10)
    assert perf.forward_flops(model, torch.rand(5, 1, 28, 28)) == 2 * macs


def test_spread_reports_median_min_max():
    assert perf.spread([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3, "values": [3.0, 1.0, 2.0]}


def test_gemm_bound_times_exactly_the_counted_flops():
    """The GEMM-only bound runs every Linear layer's products with the shapes of a real batch: their
    FLOPs (2·B·in·out per product, three products per training image) are the ones the benchmark
    counts for an MLP epoch, so the bound is the epoch's matrix work and nothing else."""
    model = build_model(RunConfig(model=perf.MLP).model, (1, 28, 28), build_likelihood(RunConfig().objective), 10)
    x = torch.rand(128, 1, 28, 28)
    shapes = perf.linear_shapes(model, x)
    assert [s[1:3] for s in shapes] == [(784, 256), (256, 256), (256, 32), (256, 32), (32, 256), (256, 256), (256, 784)]
    assert [s[3] for s in shapes] == [False] + [True] * 6  # only the first layer's input (the images) needs no gradient
    assert all(b == 128 for b, *_ in shapes)
    assert sum(2 * b * i * o for b, i, o, _ in shapes) / 128 == perf.forward_flops(model, x)
    assert sum(2 * b * i * o * (3 if g else 2) for b, i, o, g in shapes) / 128 == perf.training_flops(model, x)
    bound = perf.gemm_bound(model, x, n_train=256, n_test=128, repeats=2)
    assert bound["n"] == 2 and 0 < bound["min"] <= bound["median"] <= bound["max"]


def test_overhead_phases_from_trial_times():
    """Start-up, in-trial harness time and shutdown come from the trials' start and end times."""
    import datetime as dt
    from types import SimpleNamespace

    import pandas as pd
    import worker_layout

    t0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    trials = [
        SimpleNamespace(datetime_start=t0 + dt.timedelta(seconds=a), datetime_complete=t0 + dt.timedelta(seconds=b))
        for a, b in [(10, 40), (12, 45), (41, 70)]
    ]
    trials.append(SimpleNamespace(datetime_start=None, datetime_complete=None))  # a trial never claimed: ignored
    df = pd.DataFrame({"train_seconds": [25.0, 30.0, 20.0], "eval_seconds": [3.0, 2.0, 5.0]})
    phases = worker_layout.overhead_phases_of(trials, df, t0.timestamp(), t0.timestamp() + 75)
    assert phases == pytest.approx(
        {"startup_seconds": 10.0, "shutdown_seconds": 5.0, "in_trial_harness_seconds": (30 + 33 + 29) - (28 + 32 + 25)}
    )
