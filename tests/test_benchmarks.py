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
from vaebench.objectives import build_likelihood  # noqa: E402
from vaebench.spec import RunConfig  # noqa: E402


@pytest.mark.parametrize("model_cfg, shape", [
    (perf.MLP, (1, 28, 28)),
    (perf.CONV, (1, 28, 28)),
    ({"name": "resnet", "channels": [8, 16], "latent_dim": 4}, (1, 12, 10)),
    ({"name": "mlp", "hidden_dim": 40, "depth": 3, "latent_dim": 5}, (3, 6, 7)),
])
def test_forward_flops_match_torch_flop_counter(model_cfg, shape):
    model = build_model(RunConfig(model=model_cfg).model, shape, build_likelihood(RunConfig().objective), 10)
    x = torch.rand(3, *shape)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(x)
    assert perf.forward_flops(model, x) == pytest.approx(counter.get_total_flops() / 3, rel=1e-9)


def test_mlp_flops_are_the_layer_shapes():
    # 784-256-256-(32, 32) encoder, 32-256-256-784 decoder: 2 FLOPs per multiply-add
    macs = 784 * 256 + 256 * 256 + 2 * 256 * 32 + 32 * 256 + 256 * 256 + 256 * 784
    model = build_model(RunConfig(model=perf.MLP).model, (1, 28, 28), build_likelihood(RunConfig().objective), 10)
    assert perf.forward_flops(model, torch.rand(5, 1, 28, 28)) == 2 * macs


def test_spread_reports_median_min_max():
    assert perf.spread([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3, "values": [3.0, 1.0, 2.0]}
