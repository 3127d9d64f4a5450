"""DCI, the FactorVAE and β-VAE scores, modularity/explicitness and the unsupervised scores
(vaebench/metrics/factor_scores.py): known answers, the registered metrics end to end on a tiny
shapes dataset, and "not applicable, with the reason" without factors. Their agreement with the
field's own code is tests/metrics/test_disentanglement_crosscheck.py."""

import numpy as np
import pytest
import torch

from vaebench.data import load_dataset
from vaebench.engine.train import train
from vaebench.metrics import METRICS, evaluate
from vaebench.metrics import column_names as C
from vaebench.metrics import factor_scores as F
from vaebench.spec.sweep_spec import RunConfig

NEW = ("dci", "factorvae_score", "betavae_score", "modularity", "unsupervised")
TINY = {"name": "shapes", "image_size": 16, "scales": 2, "orientations": 2, "positions": 4}


def _cfg(dataset, eval_kw=None):
    return RunConfig.model_validate(
        {
            "dataset": dataset,
            "model": {"name": "mlp", "hidden_dim": 32, "latent_dim": 4},
            "train": {"epochs": 1, "batch_size": 32},
            "eval": {"fid_extractor": None, **(eval_kw or {})},
        }
    )


def test_gaussian_total_correlation_is_the_closed_form():
    # a bivariate Gaussian with correlation r: TC = -1/2 log(1 - r^2)
    r = 0.6
    cov = np.array([[2.0, r * np.sqrt(2 * 3)], [r * np.sqrt(2 * 3), 3.0]])
    assert F.gaussian_total_correlation(cov) == pytest.approx(-0.5 * np.log(1 - r * r), abs=1e-12)
    assert F.gaussian_total_correlation(np.diag([1.0, 4.0, 9.0])) == pytest.approx(0.0, abs=1e-12)
    assert F.gaussian_wasserstein_correlation(np.diag([1.0, 4.0])) == pytest.approx(0.0, abs=1e-9)


def test_dci_of_a_diagonal_and_a_uniform_importance():
    assert F.dci_disentanglement(np.eye(3)) == pytest.approx(1.0, abs=1e-6)
    assert F.dci_completeness(np.eye(3)) == pytest.approx(1.0, abs=1e-6)
    assert F.dci_disentanglement(np.ones((3, 3))) == pytest.approx(0.0, abs=1e-6)
    # one latent explains two factors: completeness 1, disentanglement 0 (it is all in that latent)
    two = np.array([[1.0, 1.0], [0.0, 0.0]])
    assert F.dci_completeness(two) == pytest.approx(1.0, abs=1e-6)
    assert F.dci_disentanglement(two) == pytest.approx(0.0, abs=1e-6)


def test_modularity_of_known_mi_matrices():
    assert F.modularity(np.eye(3)) == 1.0
    assert F.modularity(np.array([[1.0, 1.0], [0.0, 0.0]])) == 0.0  # one latent on two factors, one dead


def test_factor_sampler_keeps_the_fixed_factor_and_is_uniform_over_the_rest():
    factors = np.stack(np.unravel_index(np.arange(3 * 4 * 5), (3, 4, 5)), axis=1)
    sampler = F.FactorSampler(factors)
    rng = np.random.default_rng(0)
    rows = np.zeros((3000, 1), dtype=np.int64) + 7
    k = np.full(3000, 1)
    drawn = sampler.same_value(k, rows, rng)[:, 0]
    assert (factors[drawn, 1] == factors[7, 1]).all()
    counts = np.bincount(factors[drawn, 2], minlength=5)  # the free factor: uniform
    assert counts.min() > 500 and counts.max() < 700


@pytest.fixture(scope="module")
def tiny():
    cfg = _cfg(TINY)
    data = load_dataset(cfg.dataset)
    model = train(cfg, data, seed=0, device="cpu").model
    return cfg, data, model


def test_the_metrics_end_to_end_record_their_settings(tiny):
    cfg, data, model = tiny
    cfg = _cfg(TINY, {"dci": {"train_samples": 30, "test_samples": 18}, "factorvae_score": {"train_votes": 200}})
    out = evaluate(model, data, cfg, seed=0, names=list(NEW))
    assert out["metrics_skipped"] == []
    for column in METRICS.get("dci").column_names + METRICS.get("unsupervised").column_names:
        assert out[column] is not None, column
    assert (out[C.DCI_TRAIN_SAMPLES], out[C.DCI_TEST_SAMPLES]) == (30, 18)
    assert out[C.DCI_IMPORTANCE].startswith("GradientBoostingClassifier")
    assert out[C.FACTORVAE_TRAIN_VOTES] == 200 and out[C.FACTORVAE_VARIANCE_SAMPLES] == 48  # the whole split
    assert (out[C.MODULARITY_TRAIN_SAMPLES], out[C.MODULARITY_TEST_SAMPLES]) == (32, 16)  # 10,000/5,000 scaled
    assert out[C.UNSUPERVISED_REPRESENTATION] == "sampled" and out[C.UNSUPERVISED_SAMPLES] == 48
    for c in (C.DCI_DISENTANGLEMENT, C.DCI_COMPLETENESS, C.FACTORVAE_SCORE, C.BETAVAE_SCORE, C.MODULARITY):
        assert 0.0 <= out[c] <= 1.0, c
    assert out[C.GAUSSIAN_TOTAL_CORRELATION] >= 0
    # the unsupervised scores of the mean representation are those of the posterior means
    mean = evaluate(model, data, _cfg(TINY, {"unsupervised": {"representation": "mean"}}), 0, ["unsupervised"])
    with torch.no_grad():
        mu = model.encode(data.x_test, data.y_test)[0].double().numpy()
    order = np.random.default_rng(0).permutation(len(mu))
    expected = F.unsupervised_scores(mu[order])
    assert mean[C.GAUSSIAN_TOTAL_CORRELATION] == pytest.approx(expected["gaussian_total_correlation"], abs=1e-9)
    assert mean[C.GAUSSIAN_TOTAL_CORRELATION] != out[C.GAUSSIAN_TOTAL_CORRELATION]
    again = evaluate(model, data, cfg, seed=5, names=list(NEW))  # seeded by eval.disentanglement_seed
    assert {k: v for k, v in again.items() if "seconds" not in k} == {
        k: v for k, v in out.items() if "seconds" not in k
    }


def test_not_applicable_on_a_dataset_without_factors():
    cfg = RunConfig.model_validate(
        {
            "dataset": {"name": "digits"},
            "model": {"name": "mlp", "hidden_dim": 16, "latent_dim": 3},
            "train": {"epochs": 1},
        }
    )
    data = load_dataset(cfg.dataset)
    model = train(cfg, data, seed=0, device="cpu").model
    out = evaluate(model, data, cfg, seed=0, names=list(NEW))
    assert out.pop("metrics_skipped") == [f"{m}: dataset 'digits' has no ground-truth factors" for m in NEW]
    assert all(out[k] is None for k in out if not k.startswith("eval_seconds"))
