"""The disentangling objectives (objectives/disentangle.py) against independent references: β-TCVAE's
TC estimates against the closed-form TC of a Gaussian aggregate posterior and a brute-force estimate
over the whole dataset; DIP-VAE's covariances against numpy; FactorVAE's discriminator density-ratio TC
on a correlated Gaussian whose TC is known; AnnealedVAE's capacity schedule; and the training mechanism
(an objective's auxiliary network trained by its own optimizer, never by the model's)."""

import math

import numpy as np
import pytest
import torch

from vaebench.data import load_dataset
from vaebench.engine.train import train
from vaebench.errors import SpecError
from vaebench.models import build_model
from vaebench.objectives import build_likelihood
from vaebench.objectives.disentangle import (
    capacity,
    density_ratio_tc,
    dip_covariance,
    dip_penalty,
    discriminator,
    discriminator_loss,
    kl_decomposition,
    log_qz_estimates,
    permute_dims,
    stratified_log_weights,
)
from vaebench.objectives.gaussian import gaussian_log_prob, std_normal_log_prob
from vaebench.objectives.training import Step, TrainingInfo
from vaebench.spec.sweep_spec import RunConfig, parse_spec


def gaussian_tc(cov: np.ndarray) -> float:
    """TC of N(0, cov) in closed form: 1/2 (sum_d log cov_dd - log det cov), nats."""
    return 0.5 * (np.log(np.diag(cov)).sum() - np.linalg.slogdet(cov)[1])


def _aggregate_case(n=2000, seed=0):
    """Posterior means mu_j = A u_j (u ~ N(0, I)), variance s^2: the aggregate posterior tends to
    N(0, A A^T + s^2 I). Codes z_j ~ q(z|x_j), one per example."""
    g = torch.Generator().manual_seed(seed)
    a = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, 0.5, 1.0]], dtype=torch.float64)
    mu = torch.randn(n, 3, generator=g, dtype=torch.float64) @ a.T
    logvar = torch.full_like(mu, math.log(0.3))
    z = mu + torch.randn(n, 3, generator=g, dtype=torch.float64) * math.sqrt(0.3)
    cov = (a @ a.T).numpy() + 0.3 * np.eye(3)
    return z, mu, logvar, cov


def _brute_force_tc(z, mu, logvar) -> float:
    """E_i[log q(z_i) - sum_d log q(z_id)] with q the exact mixture over every example, by scipy."""
    from scipy.special import logsumexp
    from scipy.stats import norm

    zn, mn, sn = z.numpy(), mu.numpy(), np.exp(0.5 * logvar.numpy())
    per_dim = norm.logpdf(zn[:, None, :], mn[None, :, :], sn[None, :, :])  # [i, j, d]
    n = len(zn)
    log_qz = logsumexp(per_dim.sum(2), axis=1) - math.log(n)
    log_prod = (logsumexp(per_dim, axis=1) - math.log(n)).sum(1)
    return float((log_qz - log_prod).mean())


def test_tc_estimates_against_the_closed_form_and_a_brute_force_aggregate():
    z, mu, logvar, cov = _aggregate_case()
    n, d = len(z), z.shape[1]
    truth, brute = gaussian_tc(cov), _brute_force_tc(z, mu, logvar)
    assert truth == pytest.approx(0.2753, abs=1e-3)  # the case is not trivial
    assert brute == pytest.approx(truth, abs=0.05)  # 2,000 examples: the mixture is close to the Gaussian
    # the whole dataset as one batch: stratified sampling weighs the others 1/(N - 1) but one (1/(N (N - 1))),
    # close to the exact aggregate's 1/N each
    mi, tc, dwkl = kl_decomposition(z, mu, logvar, n, "mss")
    assert tc.mean().item() == pytest.approx(brute, abs=1e-3)
    # minibatch-weighted sampling: the same up to its constant, (D - 1) log B (Chen et al.'s -log(N B))
    _, tc_mws, _ = kl_decomposition(z, mu, logvar, n, "mws")
    assert tc_mws.mean().item() - (d - 1) * math.log(n) == pytest.approx(brute, abs=1e-9)
    # minibatches of 200 of the 2,000 with the dataset size N: the stratified estimate stays near the truth
    est = [
        kl_decomposition(z[s : s + 200], mu[s : s + 200], logvar[s : s + 200], n, "mss")[1].mean()
        for s in range(0, n, 200)
    ]
    assert torch.stack(est).mean().item() == pytest.approx(truth, abs=0.15)


def test_the_kl_decomposition_sums_to_the_monte_carlo_kl():
    z, mu, logvar, _ = _aggregate_case(n=64, seed=1)
    for sampling in ("mws", "mss"):
        mi, tc, dwkl = kl_decomposition(z, mu, logvar, 5000, sampling)
        mc_kl = gaussian_log_prob(z, mu, logvar) - std_normal_log_prob(z)
        assert torch.allclose(mi + tc + dwkl, mc_kl, atol=1e-10)


def test_stratified_weights_sum_to_one_per_row_with_the_stated_entries():
    w = stratified_log_weights(5, 100).exp()
    assert torch.allclose(w.sum(1), torch.ones(5))
    assert torch.allclose(torch.diagonal(w), torch.full((5,), 1 / 100))
    assert w[0, 1].item() == pytest.approx((100 - 4) / (100 * 4)) and w[4, 0].item() == pytest.approx(96 / 400)
    assert w[0, 2].item() == pytest.approx(1 / 4)
    # the same with log q(z|x_j) for the estimate: logsumexp_j (log w_ij + log q(z_i|x_j))
    z, mu, logvar, _ = _aggregate_case(n=5, seed=2)
    log_qz, _ = log_qz_estimates(z, mu, logvar, 100, "mss")
    dens = torch.stack([gaussian_log_prob(z[i], mu, logvar).exp() for i in range(5)])  # [i, j]
    assert torch.allclose(log_qz, (dens * w.double()).sum(1).log(), atol=1e-10)


def test_dip_covariances_against_numpy_and_the_penalty_by_hand():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(50, 4, generator=g, dtype=torch.float64) @ torch.randn(4, 4, generator=g, dtype=torch.float64)
    logvar = torch.randn(50, 4, generator=g, dtype=torch.float64) * 0.3
    cov_i = dip_covariance(mu, logvar, "i").numpy()
    assert np.allclose(cov_i, np.cov(mu.numpy().T, bias=True))
    cov_ii = dip_covariance(mu, logvar, "ii").numpy()
    assert np.allclose(cov_ii, np.cov(mu.numpy().T, bias=True) + np.diag(np.exp(logvar.numpy()).mean(0)))
    off = cov_i - np.diag(np.diag(cov_i))
    by_hand = 3.0 * (off**2).sum() + 7.0 * ((np.diag(cov_i) - 1) ** 2).sum()
    assert dip_penalty(torch.from_numpy(cov_i), 3.0, 7.0).item() == pytest.approx(by_hand)


def test_the_discriminator_density_ratio_estimates_a_known_tc():
    # codes from N(0, [[1, .8], [.8, 1]]): TC = -1/2 log(1 - .64) = 0.5108 nats
    torch.manual_seed(0)
    cov = torch.tensor([[1.0, 0.8], [0.8, 1.0]])
    chol = torch.linalg.cholesky(cov)
    disc = discriminator(2, 64, 2)
    opt = torch.optim.Adam(disc.parameters(), lr=1e-3)
    for _ in range(1500):
        z = torch.randn(256, 2) @ chol.T
        opt.zero_grad()
        discriminator_loss(disc, z).backward()
        opt.step()
    with torch.no_grad():
        estimate = density_ratio_tc(disc(torch.randn(20000, 2) @ chol.T)).mean().item()
    assert estimate == pytest.approx(gaussian_tc(cov.numpy()), abs=0.08)


def test_permute_dims_keeps_each_marginal_and_breaks_the_dependence():
    torch.manual_seed(0)
    z = torch.randn(4000, 1).repeat(1, 3)  # perfectly dependent dimensions
    p = permute_dims(z)
    for d in range(3):
        assert torch.equal(p[:, d].sort().values, z[:, d].sort().values)
    assert abs(np.corrcoef(p.numpy().T)[0, 1]) < 0.05


def test_the_annealed_capacity_rises_linearly_then_stays():
    step = lambda t: Step(t, 10, 1000, 1.0, 1000)  # noqa: E731  10 steps per epoch
    assert [capacity(step(t), 25.0, 4.0) for t in (0, 10, 20, 40, 400)] == pytest.approx([0.0, 6.25, 12.5, 25.0, 25.0])


def _objective(estimator: dict, latent_dim=3):
    cfg = RunConfig.model_validate(
        {
            "dataset": {"name": "digits"},
            "model": {"name": "mlp", "hidden_dim": 16, "latent_dim": latent_dim},
            "objective": estimator,
        }
    )
    model = build_model(cfg.model, (1, 8, 8), build_likelihood(cfg.objective))
    info = TrainingInfo(1000, 10, 100, 1e-3, torch.device("cpu"))
    return cfg, model, model.training_objective(cfg.objective, info)


def test_each_loss_equals_its_formula_at_the_same_draws():
    x = torch.rand(32, 1, 8, 8)
    step = Step(5, 10, 100, 0.5, 1000)  # w(t) = 0.5
    cases = {
        "btcvae": ({"estimator": "btcvae", "beta": 6.0, "tc_sampling": "mws"}, lambda t, o: 0.5 * (lambda m, c, d: m + 6 * c + d)(*kl_decomposition(t.z, t.mu, t.logvar, 1000, "mws")).mean()),
        "dipvae": ({"estimator": "dipvae", "dip_type": "ii", "lambda_od": 2.0}, lambda t, o: 0.5 * (t.kl.sum(1).mean() + dip_penalty(dip_covariance(t.mu, t.logvar, "ii"), 2.0, 2.0))),
        "annealed": ({"estimator": "annealed", "capacity_max": 20.0, "capacity_warmup": 1.0, "capacity_gamma": 100.0}, lambda t, o: 0.5 * 100.0 * (t.kl.sum(1).mean() - 10.0).abs()),
        "factorvae": ({"estimator": "factorvae", "tc_weight": 3.0, "discriminator_hidden": 8, "discriminator_layers": 1}, lambda t, o: 0.5 * (t.kl.sum(1) + 3.0 * density_ratio_tc(o.discriminator(t.z))).mean()),
    }  # fmt: skip
    for name, (section, regularizer) in cases.items():
        _, model, objective = _objective(section)
        torch.manual_seed(1)
        out = objective(model, x, None, step)
        torch.manual_seed(1)
        t = model.elbo_terms(x)
        expected = t.recon.mean() + regularizer(t, objective)
        assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6), name


def test_btcvae_at_beta_1_is_the_elbo_with_a_monte_carlo_kl():
    _, model, objective = _objective({"estimator": "btcvae", "beta": 1.0})
    x = torch.rand(16, 1, 8, 8)
    torch.manual_seed(3)
    out = objective(model, x, None, Step(0, 10, 100, 1.0, 1000))
    torch.manual_seed(3)
    t = model.elbo_terms(x)
    mc = t.recon + gaussian_log_prob(t.z, t.mu, t.logvar) - std_normal_log_prob(t.z)
    assert out.loss.item() == pytest.approx(mc.mean().item(), rel=1e-6)


def test_factorvae_trains_its_discriminator_with_its_own_optimizer_only():
    spec = parse_spec(
        {
            "study": "fvae",
            "dataset": {"name": "digits"},
            "model": {"name": "mlp", "hidden_dim": 16, "latent_dim": 3},
            "objective": {"estimator": "factorvae", "discriminator_hidden": 16, "discriminator_layers": 2},
            "train": {"epochs": 2, "batch_size": 256},
        }
    )
    run = spec.runs()[0]
    data = load_dataset(spec.dataset, None)
    seen = {}
    real = torch.optim.Adam.__init__

    def spy(self, params, *a, **k):
        params = list(params)
        seen.setdefault("sizes", []).append(sum(p.numel() for p in params if isinstance(p, torch.Tensor)))
        real(self, params, *a, **k)

    torch.optim.Adam.__init__ = spy
    try:
        result = train(run.config, data, seed=0, device="cpu")
    finally:
        torch.optim.Adam.__init__ = real
    model_size = sum(p.numel() for p in result.model.parameters())
    disc_size = sum(p.numel() for p in discriminator(3, 16, 2).parameters())
    assert sorted(seen["sizes"]) == sorted([model_size, disc_size])  # two optimizers, disjoint parameters
    assert [r["epoch"] for r in result.history] == [1, 2]
    losses = [r["train_discriminator_loss"] for r in result.history]
    assert all(0.0 < v < 2 * math.log(2) for v in losses)  # a cross-entropy near log 2 = 0.693 at the start


def test_the_spec_refuses_unread_fields_and_models_the_objectives_cannot_train():
    base = {"study": "x", "dataset": {"name": "digits"}}
    with pytest.raises(SpecError, match="'tc_weight' is not used by estimator 'btcvae'"):
        parse_spec({**base, "objective": {"estimator": "btcvae", "tc_weight": 3}})
    with pytest.raises(SpecError, match="'beta' is not used by estimator 'factorvae'"):
        parse_spec({**base, "objective": {"estimator": "factorvae", "beta": 3}})
    with pytest.raises(SpecError, match="'reduction' is not used by estimator 'dipvae'"):
        parse_spec({**base, "objective": {"estimator": "dipvae", "reduction": "mean"}})
    with pytest.raises(SpecError, match="estimator 'annealed' cannot train model 'vqvae'"):
        parse_spec({**base, "model": {"name": "vqvae"}, "objective": {"estimator": "annealed"}})


def test_the_plugin_guides_training_objective_registers_and_trains():
    """docs/plugins.md's "A training objective" example, run as written: registered, validated by its
    declared fields, and trained for one epoch on digits."""
    import re

    from tests.conftest import REPO
    from vaebench.objectives import ESTIMATORS

    page = (REPO / "docs" / "plugins.md").read_text()
    section = page.split("## A training objective", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"^```python\n(.*?)^```$", section, re.M | re.S)
    try:
        exec(compile(code, "docs/plugins.md", "exec"), {})
        spec = {
            "study": "x",
            "dataset": {"name": "digits"},
            "model": {"name": "mlp", "hidden_dim": 16, "latent_dim": 3},
        }
        with pytest.raises(SpecError, match="'iwae_k' is not used by estimator 'l1code'"):
            parse_spec({**spec, "objective": {"estimator": "l1code", "iwae_k": 3}})
        parsed = parse_spec({**spec, "objective": {"estimator": "l1code", "beta": 2.0}, "train": {"epochs": 1}})
        result = train(parsed.runs()[0].config, load_dataset(parsed.dataset, None), seed=0, device="cpu")
        assert result.status == "ok" and math.isfinite(result.history[0]["train_loss"])
    finally:
        ESTIMATORS._items.pop("l1code", None)


def test_each_estimator_names_the_model_it_trains_as_the_papers_do():
    from vaebench.objectives import ESTIMATORS, Estimator
    from vaebench.objectives.training import estimator_label

    names = {n: estimator_label(n) for n in ("elbo", "iwae", "btcvae", "factorvae", "dipvae", "annealed")}
    assert names == {
        "elbo": "β-VAE",
        "iwae": "IWAE",
        "btcvae": "β-TCVAE",
        "factorvae": "FactorVAE",
        "dipvae": "DIP-VAE",
        "annealed": "AnnealedVAE",
    }
    assert estimator_label("not_registered") == "not_registered"
    ESTIMATORS.register("unlabelled_test_estimator", Estimator(lambda cfg, model, info: None))
    try:
        assert estimator_label("unlabelled_test_estimator") == "unlabelled_test_estimator"  # no label: its name
    finally:
        ESTIMATORS.unregister("unlabelled_test_estimator")
