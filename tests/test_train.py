import math

import torch

from vaebench.data import load_dataset
from vaebench.engine.train import HISTORY_FIELDS, train
from vaebench.metrics import evaluate
from vaebench.spec.sweep_spec import DatasetConfig, RunConfig


def _cfg(**train_kw) -> RunConfig:
    return RunConfig.model_validate(
        {
            "dataset": {"name": "digits"},
            "model": {"hidden_dim": 32, "latent_dim": 4},
            "train": {"epochs": 3, "batch_size": 64, **train_kw},
        }
    )


DIGITS = load_dataset(DatasetConfig(name="digits"))


def test_same_seed_same_numbers_and_other_seed_differs():
    cfg = _cfg()
    a, b, c = (
        train(cfg, DIGITS, seed=0, device="cpu"),
        train(cfg, DIGITS, seed=0, device="cpu"),
        train(cfg, DIGITS, seed=1, device="cpu"),
    )
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(a.history) == strip(b.history)
    assert strip(a.history) != strip(c.history)
    ma = evaluate(a.model, DIGITS, cfg, seed=0)
    mb = evaluate(b.model, DIGITS, cfg, seed=0)
    assert {k: v for k, v in ma.items() if "seconds" not in k} == {k: v for k, v in mb.items() if "seconds" not in k}


def test_training_lowers_the_loss_and_keeps_history():
    res = train(_cfg(epochs=8), DIGITS, seed=0, device="cpu")
    assert res.status == "ok" and res.reason is None
    assert [r["epoch"] for r in res.history] == list(range(1, 9))
    assert set(res.history[0]) == set(HISTORY_FIELDS)
    assert res.history[-1]["train_loss"] < 0.8 * res.history[0]["train_loss"]
    assert res.history[-1]["test_loss"] < res.history[0]["test_loss"]
    for r in res.history:  # the loss is the sum of its terms (beta = 1)
        assert math.isclose(r["train_loss"], r["train_recon"] + r["train_kl"], rel_tol=1e-4)


def test_dynamic_binarization_trains():
    cfg = RunConfig.model_validate({**_cfg().model_dump(), "dataset": {"name": "digits", "binarize": True}})
    res = train(cfg, load_dataset(cfg.dataset), seed=0, device="cpu")
    assert res.status == "ok" and len(res.history) == 3


def test_divergence_stops_the_run_with_a_reason():
    res = train(_cfg(lr=1e6, grad_clip=None, epochs=5), DIGITS, seed=0, device="cpu")
    assert res.status == "diverged"
    assert "non-finite" in res.reason and "epoch" in res.reason
    assert len(res.history) < 5
    assert all(math.isfinite(v) for r in res.history for v in r.values())


def test_grad_clip_is_applied_every_step_only_when_set(monkeypatch):
    calls = []
    real = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm, **kw):
        calls.append(max_norm)
        return real(params, max_norm, **kw)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    train(_cfg(epochs=1, grad_clip=0.5), DIGITS, seed=0, device="cpu")
    steps = math.ceil(len(DIGITS.x_train) / 64)
    assert calls == [0.5] * steps
    calls.clear()
    train(_cfg(epochs=1, grad_clip=None), DIGITS, seed=0, device="cpu")
    assert calls == []
