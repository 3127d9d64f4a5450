"""Likelihood variants, log-densities, free bits, the ELBO loss and the IWAE bound in
vaebench/objectives.py, each checked against an independent computation (torch.distributions,
hand-computed numbers, or Monte Carlo)."""

import math

import pytest
import torch
from pydantic import ValidationError
from torch.distributions import Laplace as TorchLaplace
from torch.distributions import Normal, kl_divergence

from vaebench.models import build_model
from vaebench.objectives.bounds import (
    LossOut,
    elbo_loss,
    elbo_terms,
    free_bits_kl,
    importance_samples,
    iwae_loss,
    training_loss,
)
from vaebench.objectives.gaussian import (
    gaussian_log_prob,
    std_normal_log_prob,
)
from vaebench.objectives.likelihoods import (
    Gaussian,
    GaussianLearned,
    Laplace,
    build_likelihood,
)
from vaebench.spec.sweep_spec import ModelConfig, ObjectiveConfig

SHAPE = (1, 8, 8)
N_PIX = 64


def _tiny_model(likelihood, latent_dim=3, seed=0):
    torch.manual_seed(seed)
    return build_model(ModelConfig(hidden_dim=16, latent_dim=latent_dim), SHAPE, likelihood)


def _data(b=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, *SHAPE, generator=g)


# ---------------------------------------------------------------------------------------------
# Laplace


@pytest.mark.parametrize("b", [1.0, 0.3])
def test_laplace_nll_matches_torch_distributions(b):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 4, 5, generator=g, dtype=torch.float64)
    m = torch.randn(3, 2, 4, 5, generator=g, dtype=torch.float64)
    ours = Laplace(scale=b).nll(m, x)
    ref = -TorchLaplace(m, torch.full_like(m, b)).log_prob(x).flatten(1).sum(1)
    assert ours.shape == (3,)
    assert torch.allclose(ours, ref, rtol=1e-10, atol=1e-10)


def test_laplace_scale_changes_the_nll():
    x, m = _data(2), torch.zeros(2, *SHAPE)
    assert not torch.allclose(Laplace(scale=1.0).nll(m, x), Laplace(scale=0.3).nll(m, x))


def test_laplace_unit_scale_is_the_tutorial_l1_sum_plus_n_log_2():
    x = _data(3, seed=2)
    m = _data(3, seed=3)
    nll = Laplace(scale=1.0).nll(m, x)
    l1 = (x - m).abs().flatten(1).sum(1)
    assert torch.allclose(nll - l1, torch.full((3,), N_PIX * math.log(2.0)), atol=1e-4)


def test_laplace_built_from_config_uses_laplace_scale():
    lik = build_likelihood(ObjectiveConfig(likelihood="laplace", laplace_scale=0.3))
    x, m = _data(2), torch.zeros(2, *SHAPE)
    ref = -TorchLaplace(m, torch.full_like(m, 0.3)).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(lik.nll(m, x), ref, rtol=1e-5)
    assert torch.equal(lik.mean(m), m)


# ---------------------------------------------------------------------------------------------
# Gaussian with learned variance


def _softplus(t):  # independent of F.softplus: log(1 + e^t), in float64
    return torch.log1p(torch.exp(t))


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("floor", [1e-3, 0.2])
def test_gaussian_learned_nll_matches_torch_normal(channels, floor):
    g = torch.Generator().manual_seed(channels)
    x = torch.rand(2, channels, 4, 3, generator=g, dtype=torch.float64)
    mean = torch.randn(2, channels, 4, 3, generator=g, dtype=torch.float64)
    raw = 2 * torch.randn(2, channels, 4, 3, generator=g, dtype=torch.float64)
    params = torch.cat([mean, raw], dim=1)  # first half means, second half raw variance
    var = floor + _softplus(raw)
    ref = -Normal(mean, var.sqrt()).log_prob(x).flatten(1).sum(1)
    ours = GaussianLearned(floor=floor).nll(params, x)
    assert ours.shape == (2,)
    assert torch.allclose(ours, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("channels", [1, 3])
def test_gaussian_learned_mean_is_the_first_half(channels):
    params = torch.arange(2 * 2 * channels * 3 * 3, dtype=torch.float32).view(2, 2 * channels, 3, 3)
    m = GaussianLearned().mean(params)
    assert m.shape == (2, channels, 3, 3)
    assert torch.equal(m, params[:, :channels])
    assert GaussianLearned.param_channels == 2


def test_gaussian_learned_variance_never_below_floor():
    floor = 0.05
    lik = GaussianLearned(floor=floor)
    raw = torch.tensor([-1e4, -100.0, -20.0, 0.0, 30.0])
    params = torch.cat([torch.zeros(1, 1, 1, 5), raw.view(1, 1, 1, 5)], dim=1)
    _, var = lik.split(params)
    assert torch.all(var >= floor)
    assert var[0, 0, 0, 0].item() == pytest.approx(floor, rel=1e-6)  # softplus(-1e4) = 0
    assert var[0, 0, 0, 3].item() == pytest.approx(floor + math.log(2.0), rel=1e-6)
    # the nll at the floor is finite and equals the Normal's at variance = floor
    x = torch.full((1, 1, 1, 5), 0.5)
    nll = lik.nll(params, x)
    assert torch.isfinite(nll).all()
    x1 = torch.tensor([[[[0.3]]]])
    p1 = torch.tensor([[[[0.0]], [[-1e4]]]])
    ref1 = -Normal(0.0, math.sqrt(floor)).log_prob(torch.tensor(0.3)).item()
    assert lik.nll(p1, x1).item() == pytest.approx(ref1, rel=1e-5)


def test_gaussian_learned_trains_through_a_model_with_two_output_channels():
    lik = build_likelihood(ObjectiveConfig(likelihood="gaussian_learned", variance_floor=0.01))
    assert isinstance(lik, GaussianLearned) and lik.floor == 0.01
    model = _tiny_model(lik)
    x = _data(3)
    params = model.decode(torch.zeros(3, 3))
    assert params.shape == (3, 2, 8, 8)
    assert lik.nll(params, x).shape == (3,)


# ---------------------------------------------------------------------------------------------
# log-densities


def test_gaussian_log_prob_matches_torch_normal():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(5, 4, 3, generator=g, dtype=torch.float64)
    mu = torch.randn(4, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(4, 3, generator=g, dtype=torch.float64)
    ref = Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    ours = gaussian_log_prob(z, mu, logvar)
    assert ours.shape == (5, 4)
    assert torch.allclose(ours, ref, rtol=1e-10, atol=1e-10)


def test_std_normal_log_prob_matches_torch_normal():
    z = torch.randn(7, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 3
    ref = Normal(torch.zeros(()), torch.ones(())).log_prob(z).sum(-1)
    ours = std_normal_log_prob(z)
    assert ours.shape == (7,)
    assert torch.allclose(ours, ref, rtol=1e-10, atol=1e-10)
    # hand value: log N(0; 0, I_3) = -3/2 log(2 pi)
    assert std_normal_log_prob(torch.zeros(1, 3)).item() == pytest.approx(-1.5 * math.log(2 * math.pi))


# ---------------------------------------------------------------------------------------------
# free bits

KL = torch.tensor([[0.1, 0.5, 2.0], [0.3, 0.0, 1.0]])


def test_free_bits_none_is_the_plain_kl():
    # (0.1 + 0.5 + 2.0 + 0.3 + 0.0 + 1.0) / 2 = 1.95
    for mode in ("example", "batch"):
        assert free_bits_kl(KL, None, mode).item() == pytest.approx(1.95)


def test_free_bits_example_mode_hand_computed():
    # lambda 0.4: row 0 -> 0.4 + 0.5 + 2.0 = 2.9; row 1 -> 0.4 + 0.4 + 1.0 = 1.8; mean 2.35
    assert free_bits_kl(KL, 0.4, "example").item() == pytest.approx(2.35)


def test_free_bits_batch_mode_hand_computed():
    # batch means per dim: 0.2, 0.25, 1.5; lambda 0.4 -> 0.4 + 0.4 + 1.5 = 2.3
    assert free_bits_kl(KL, 0.4, "batch").item() == pytest.approx(2.3)


def test_free_bits_modes_differ_when_examples_straddle_lambda():
    # dim 0: 0.1 and 0.3, mean 0.2 >= lambda 0.15: batch keeps 0.2, example clamps 0.1 -> 0.15
    # example: row 0 -> 0.15 + 0.5 + 2.0 = 2.65; row 1 -> 0.3 + 0.15 + 1.0 = 1.45; mean 2.05
    # batch: 0.2 + 0.25 + 1.5 = 1.95 (every mean is >= 0.15: nothing clamped)
    assert free_bits_kl(KL, 0.15, "example").item() == pytest.approx(2.05)
    assert free_bits_kl(KL, 0.15, "batch").item() == pytest.approx(1.95)


def test_free_bits_zero_lambda_is_the_plain_kl_and_large_lambda_is_d_lambda():
    assert free_bits_kl(KL, 0.0, "example").item() == pytest.approx(1.95)
    assert free_bits_kl(KL, 0.0, "batch").item() == pytest.approx(1.95)
    assert free_bits_kl(KL, 5.0, "example").item() == pytest.approx(15.0)
    assert free_bits_kl(KL, 5.0, "batch").item() == pytest.approx(15.0)


def test_free_bits_clamped_dims_have_no_gradient():
    kl = KL.clone().requires_grad_(True)
    free_bits_kl(kl, 0.4, "example").backward()
    # clamped entries (0.1, 0.3, 0.0) get zero gradient, the others 1 / B
    assert torch.allclose(kl.grad, torch.tensor([[0.0, 0.5, 0.5], [0.0, 0.0, 0.5]]))


# ---------------------------------------------------------------------------------------------
# the ELBO loss


def _closed_form_kl(mu, logvar):  # (B, D) via torch.distributions, independent of gaussian_kl
    q = Normal(mu, torch.exp(0.5 * logvar))
    p = Normal(torch.zeros_like(mu), torch.ones_like(mu))
    return kl_divergence(q, p)


@pytest.mark.parametrize("kl_weight", [1.0, 0.37])
def test_elbo_loss_is_recon_plus_weighted_kl(kl_weight):
    cfg = ObjectiveConfig(likelihood="gaussian", variance=0.2)
    lik = build_likelihood(cfg)
    model = _tiny_model(lik)
    x = _data(4)
    torch.manual_seed(11)
    t = elbo_terms(model, lik, x, None)
    torch.manual_seed(11)
    out = elbo_loss(cfg, model, x, None, kl_weight)
    assert isinstance(out, LossOut)
    kl = _closed_form_kl(t.mu, t.logvar).sum(1).mean()
    assert out.loss.item() == pytest.approx((t.recon.mean() + kl_weight * kl).item(), rel=1e-5)
    assert torch.allclose(out.recon, t.recon) and torch.allclose(out.kl, t.kl)
    # and the same through the estimator registry
    torch.manual_seed(11)
    assert training_loss(cfg, model, x, None, kl_weight).loss.item() == pytest.approx(out.loss.item(), rel=1e-6)


def test_elbo_terms_recon_is_the_likelihood_at_the_reparameterized_sample():
    lik = Gaussian(variance=0.3)
    model = _tiny_model(lik)
    x = _data(3)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        torch.manual_seed(5)
        z = mu + torch.randn(mu.shape) * torch.exp(0.5 * logvar)
        ref = -Normal(model.decode(z), math.sqrt(0.3)).log_prob(x).flatten(1).sum(1)
        torch.manual_seed(5)
        t = elbo_terms(model, lik, x, None)
    assert torch.allclose(t.recon, ref, rtol=1e-5)
    assert torch.allclose(t.kl, _closed_form_kl(mu, logvar), rtol=1e-5, atol=1e-6)


def test_elbo_loss_mean_reduction_divides_recon_by_pixels():
    cfg_sum = ObjectiveConfig(likelihood="bernoulli")
    cfg_mean = ObjectiveConfig(likelihood="bernoulli", reduction="mean")
    lik = build_likelihood(cfg_sum)
    model = _tiny_model(lik)
    x = _data(4).round()
    torch.manual_seed(3)
    t = elbo_terms(model, lik, x, None)
    torch.manual_seed(3)
    out = elbo_loss(cfg_mean, model, x, None, 0.5)
    kl = _closed_form_kl(t.mu, t.logvar).sum(1).mean()
    expected = (t.recon / N_PIX).mean() + 0.5 * kl
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # the reported recon stays in nats per example, not per pixel
    assert torch.allclose(out.recon, t.recon)
    torch.manual_seed(3)
    out_sum = elbo_loss(cfg_sum, model, x, None, 0.5)
    assert out_sum.loss.item() == pytest.approx((t.recon.mean() + 0.5 * kl).item(), rel=1e-5)
    assert out_sum.loss.item() > out.loss.item()


@pytest.mark.parametrize("mode", ["example", "batch"])
def test_elbo_loss_free_bits_clamps_the_loss_but_reports_raw_terms(mode):
    lam = 2.0  # an untrained tiny model has per-dim KLs well below 2 nats: the floor binds
    cfg = ObjectiveConfig(likelihood="bernoulli", free_bits=lam, free_bits_mode=mode)
    lik = build_likelihood(cfg)
    model = _tiny_model(lik)
    x = _data(4).round()
    torch.manual_seed(7)
    t = elbo_terms(model, lik, x, None)
    raw_kl = _closed_form_kl(t.mu, t.logvar)  # (B, D)
    assert (raw_kl < lam).any()
    if mode == "example":
        clamped = raw_kl.clamp(min=lam).sum(1).mean()
    else:
        clamped = raw_kl.mean(0).clamp(min=lam).sum()
    torch.manual_seed(7)
    out = elbo_loss(cfg, model, x, None, 0.8)
    assert out.loss.item() == pytest.approx((t.recon.mean() + 0.8 * clamped).item(), rel=1e-5)
    # bookkeeping: raw, unclamped and unweighted
    assert out.kl.shape == (4, 3)
    assert torch.allclose(out.kl, raw_kl, rtol=1e-5, atol=1e-6)
    assert torch.allclose(out.recon, t.recon)
    assert out.kl.sum(1).mean().item() < clamped.item()


# ---------------------------------------------------------------------------------------------
# importance sampling and IWAE


def test_importance_samples_shapes():
    lik = Gaussian(variance=0.1)
    model = _tiny_model(lik)
    x = _data(2)
    with torch.no_grad():
        s = importance_samples(model, lik, x, None, 7)
    for t in (s.log_px, s.log_pz, s.log_qz, s.log_w):
        assert t.shape == (7, 2)
    assert torch.allclose(s.log_w, s.log_px + s.log_pz - s.log_qz)


def test_importance_samples_k1_is_the_single_sample_elbo_with_mc_kl():
    lik = Gaussian(variance=0.1)
    model = _tiny_model(lik)
    x = _data(3)
    with torch.no_grad():
        torch.manual_seed(21)
        t = elbo_terms(model, lik, x, None)
        # the same z, independently: mu + eps * sigma with the seed's first normal draws
        torch.manual_seed(21)
        eps = torch.randn(3, 3)
        z = t.mu + eps * torch.exp(0.5 * t.logvar)
        log_q = Normal(t.mu, torch.exp(0.5 * t.logvar)).log_prob(z).sum(-1)
        log_p = Normal(0.0, 1.0).log_prob(z).sum(-1)
        ref_recon = -Normal(model.decode(z), math.sqrt(0.1)).log_prob(x).flatten(1).sum(1)
        assert torch.allclose(t.recon, ref_recon, rtol=1e-5)
        torch.manual_seed(21)
        s = importance_samples(model, lik, x, None, 1)
    assert s.log_w.shape == (1, 3)
    expected = -t.recon - (log_q - log_p)
    assert torch.allclose(s.log_w[0], expected, rtol=1e-5, atol=1e-4)
    assert torch.allclose(s.log_px[0], -t.recon, rtol=1e-5)


def test_importance_samples_sample_major_layout_matches_per_sample_decoding():
    """log_px[j, i] must score sample j of example i against example i (not another example)."""
    lik = Gaussian(variance=0.1)
    model = _tiny_model(lik)
    x = _data(3)
    k = 4
    with torch.no_grad():
        mu, logvar = model.encode(x)
        torch.manual_seed(8)
        z = mu + torch.randn(k, 3, 3) * torch.exp(0.5 * logvar)
        ref = torch.stack([Normal(model.decode(z[j]), math.sqrt(0.1)).log_prob(x).flatten(1).sum(1) for j in range(k)])
        torch.manual_seed(8)
        s = importance_samples(model, lik, x, None, k)
    assert torch.allclose(s.log_px, ref, rtol=1e-5)
    assert torch.allclose(s.log_qz, Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1), rtol=1e-5, atol=1e-5)
    assert torch.allclose(s.log_pz, Normal(0.0, 1.0).log_prob(z).sum(-1), rtol=1e-5, atol=1e-5)


def test_expected_log_weight_matches_the_analytic_elbo():
    lik = Gaussian(variance=0.1)
    model = _tiny_model(lik)
    x = _data(2)
    n = 20000
    with torch.no_grad():
        torch.manual_seed(0)
        s = importance_samples(model, lik, x, None, n)
        mu, logvar = model.encode(x)
    kl = _closed_form_kl(mu, logvar).sum(1)  # (2,)
    analytic = s.log_px.mean(0) - kl  # E_q log p(x|z) estimated from the same draws, exact KL
    mc = s.log_w.mean(0)
    # the difference is (KL_mc - KL) whose standard error we estimate from the draws
    se = (s.log_qz - s.log_pz).std(0) / math.sqrt(n)
    assert torch.all((mc - analytic).abs() < 5 * se + 1e-4), (mc, analytic, se)
    assert torch.all(kl > 0)


def test_iwae_bound_tightens_with_k():
    lik = Gaussian(variance=0.05)
    model = _tiny_model(lik)
    x = _data(2, seed=4)
    total = 20000
    bounds, ses = [], []
    with torch.no_grad():
        torch.manual_seed(1)
        for k in (1, 5, 50):
            reps = total // k
            s = importance_samples(model, lik, x.repeat(reps, 1, 1, 1), None, k)
            log_w = s.log_w.view(k, reps, 2)
            b = torch.logsumexp(log_w, 0) - math.log(k)  # (reps, 2)
            bounds.append(b.mean(0))
            ses.append(b.std(0) / math.sqrt(reps))
    for (lo, se_lo), (hi, se_hi) in zip(zip(bounds, ses), zip(bounds[1:], ses[1:])):
        assert torch.all(hi - lo > 4 * torch.sqrt(se_lo**2 + se_hi**2)), bounds


def test_iwae_loss_value_and_gradient():
    cfg = ObjectiveConfig(likelihood="gaussian", variance=0.1, estimator="iwae", iwae_k=5)
    lik = build_likelihood(cfg)
    model = _tiny_model(lik)
    x = _data(3)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        torch.manual_seed(4)
        z = mu + torch.randn(5, 3, 3) * torch.exp(0.5 * logvar)  # (k, B, D)
        log_px = torch.stack(
            [Normal(model.decode(z[j]), math.sqrt(0.1)).log_prob(x).flatten(1).sum(1) for j in range(5)]
        )
        log_w = log_px + Normal(0.0, 1.0).log_prob(z).sum(-1) - Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
        expected = -(torch.logsumexp(log_w, 0) - math.log(5)).mean()
    torch.manual_seed(4)
    out = iwae_loss(cfg, model, x, None, 1.0)
    assert out.loss.requires_grad
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    with torch.no_grad():  # bookkeeping: the model's one-sample ELBO terms, drawn after the k samples
        torch.manual_seed(4)
        torch.randn(5, 3, 3)
        z1 = mu + torch.randn(3, 3) * torch.exp(0.5 * logvar)
        recon1 = -Normal(model.decode(z1), math.sqrt(0.1)).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(out.recon, recon1, rtol=1e-5)
    assert torch.allclose(out.kl, _closed_form_kl(mu, logvar), rtol=1e-5, atol=1e-6)
    model.zero_grad()
    out.loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    # dispatched by the estimator registry
    torch.manual_seed(4)
    assert training_loss(cfg, model, x, None, 1.0).loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_iwae_k1_loss_equals_elbo_with_mc_kl_not_closed_form():
    cfg = ObjectiveConfig(likelihood="gaussian", variance=0.1, estimator="iwae", iwae_k=1)
    lik = build_likelihood(cfg)
    model = _tiny_model(lik)
    x = _data(3)
    torch.manual_seed(9)
    out = iwae_loss(cfg, model, x, None, 1.0)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        torch.manual_seed(9)
        z = mu + torch.randn(3, 3) * torch.exp(0.5 * logvar)
        recon = -Normal(model.decode(z), math.sqrt(0.1)).log_prob(x).flatten(1).sum(1)
        mc_kl = Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1) - Normal(0.0, 1.0).log_prob(z).sum(-1)
    assert out.loss.item() == pytest.approx((recon + mc_kl).mean().item(), rel=1e-5)


# ---------------------------------------------------------------------------------------------
# ObjectiveConfig validation


@pytest.mark.parametrize(
    "extra", [{"beta": 0.5}, {"beta": 2.0}, {"free_bits": 0.1}, {"free_bits": 0.0}, {"reduction": "mean"}]
)
def test_iwae_rejects_weighted_or_clamped_objectives(extra):
    with pytest.raises(ValidationError, match="iwae"):
        ObjectiveConfig(estimator="iwae", iwae_k=5, **extra)


def test_iwae_config_accepted_plain():
    cfg = ObjectiveConfig(estimator="iwae", iwae_k=5)
    assert cfg.iwae_k == 5 and cfg.beta == 1.0


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"likelihood": "bernoulli", "variance": 0.3}, "variance"),
        ({"likelihood": "bernoulli", "laplace_scale": 0.3}, "laplace_scale"),
        ({"likelihood": "gaussian", "laplace_scale": 2.0}, "laplace_scale"),
        ({"likelihood": "laplace", "variance": 0.3}, "variance"),
        ({"likelihood": "laplace", "variance_floor": 0.1}, "variance_floor"),
        ({"likelihood": "gaussian_learned", "variance": 0.3}, "variance"),
        ({"likelihood": "bernoulli", "iwae_k": 5}, "iwae_k"),  # iwae_k needs estimator iwae
        ({"likelihood": "bernoulli", "free_bits_mode": "batch"}, "free_bits_mode"),  # needs free_bits
    ],
)
def test_unused_field_at_non_default_value_raises(kwargs, field):
    with pytest.raises(ValidationError, match="is not used by") as e:
        ObjectiveConfig(**kwargs)
    assert repr(field) in str(e.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"likelihood": "gaussian", "variance": 0.3},
        {"likelihood": "laplace", "laplace_scale": 0.3},
        {"likelihood": "gaussian_learned", "variance_floor": 0.1},
        {"likelihood": "bernoulli", "free_bits": 0.5, "free_bits_mode": "batch"},
    ],
)
def test_used_fields_are_accepted(kwargs):
    cfg = ObjectiveConfig(**kwargs)
    for k, v in kwargs.items():
        assert getattr(cfg, k) == v


def test_unknown_likelihood_and_estimator_are_rejected():
    with pytest.raises(ValidationError, match="Did you mean 'laplace'"):
        ObjectiveConfig(likelihood="laplac")
    with pytest.raises(ValidationError, match="Did you mean 'iwae'"):
        ObjectiveConfig(estimator="iwa")
