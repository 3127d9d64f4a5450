import math

import pytest
import torch

from tests.conftest import replay_gaussian_neg_elbo
from vaebench.data import load_dataset
from vaebench.engine.train import train
from vaebench.metrics import evaluate
from vaebench.models import build_model
from vaebench.objectives.likelihoods import Bernoulli
from vaebench.results.fields import HISTORY_FIELDS
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


def _assert_test_losses_are_the_neg_elbo(res, cfg, data, heldout_calls):
    """Every epoch's recorded test_loss, test_recon and test_kl equal the -ELBO terms of that epoch's
    weights on the test split, recomputed independently (tests/conftest.py) with the same draws."""
    assert len(heldout_calls) == len(res.history)
    model = build_model(cfg.model, data.shape, Bernoulli()).eval()
    for record, (rng_state, weights, batch_size) in zip(res.history, heldout_calls):
        model.load_state_dict(weights)
        recon, kl = replay_gaussian_neg_elbo(model, cfg.objective, data.x_test, data.y_test, batch_size, rng_state)
        assert record["test_recon"] == pytest.approx(recon, rel=1e-5), record["epoch"]
        assert record["test_kl"] == pytest.approx(kl, rel=1e-5), record["epoch"]
        assert record["test_loss"] == pytest.approx(recon + kl, rel=1e-5), record["epoch"]
    # the last weights recorded are the returned model's
    assert all(torch.equal(v, res.model.state_dict()[k]) for k, v in heldout_calls[-1][1].items())


def test_training_lowers_the_loss_and_keeps_history(heldout_calls):
    cfg = _cfg(epochs=8)
    res = train(cfg, DIGITS, seed=0, device="cpu")
    assert res.status == "ok" and res.reason is None
    assert [r["epoch"] for r in res.history] == list(range(1, 9))
    assert set(res.history[0]) == set(HISTORY_FIELDS) - {"val_loss", "val_recon", "val_kl"}  # no validation split
    assert res.history[-1]["train_loss"] < 0.8 * res.history[0]["train_loss"]
    assert res.history[-1]["test_loss"] < res.history[0]["test_loss"]
    for r in res.history:  # the loss is the sum of its terms (beta = 1)
        assert math.isclose(r["train_loss"], r["train_recon"] + r["train_kl"], rel_tol=1e-4)
    _assert_test_losses_are_the_neg_elbo(res, cfg, DIGITS, heldout_calls)


def test_dynamic_binarization_trains(monkeypatch, heldout_calls):
    from vaebench.objectives import training  # the trainer's losses go through its training_loss

    cfg = RunConfig.model_validate({**_cfg().model_dump(), "dataset": {"name": "digits", "binarize": True}})
    data = load_dataset(cfg.dataset)
    batches = []
    real = training.training_loss

    def spy(objective, model, x, y, kl_weight):
        batches.append(x.detach().clone())
        return real(objective, model, x, y, kl_weight)

    monkeypatch.setattr(training, "training_loss", spy)
    res = train(cfg, data, seed=0, device="cpu")
    assert res.status == "ok" and len(res.history) == 3
    # the test split is one fixed binarization, the training batches binary draws ...
    assert set(data.x_test.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(data.x_train, DIGITS.x_train)  # the training split itself stays grayscale
    steps = math.ceil(len(DIGITS.x_train) / 64)
    assert len(batches) == 3 * steps and all(set(b.unique().tolist()) <= {0.0, 1.0} for b in batches)
    # ... of the grayscale pixels: each epoch sees every image once, so its count of ones is
    # Binomial-like around the sum of the grayscale values, and a fresh draw each epoch
    ones = [int(sum(b.sum() for b in batches[e * steps : (e + 1) * steps]).item()) for e in range(3)]
    p = DIGITS.x_train.double()
    expected, sd = p.sum().item(), (p * (1 - p)).sum().sqrt().item()
    assert all(abs(n - expected) < 5 * sd for n in ones), (ones, expected, sd)
    assert len(set(ones)) == 3  # not one fixed binarization (e.g. a threshold) reused every epoch
    _assert_test_losses_are_the_neg_elbo(res, cfg, data, heldout_calls)


def test_divergence_stops_the_run_with_a_reason():
    res = train(_cfg(lr=1e6, grad_clip=None, epochs=5), DIGITS, seed=0, device="cpu")
    assert res.status == "failed"
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
