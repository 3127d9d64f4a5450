"""The ladder VAE (models/ladder.py) and the per-layer metrics (metrics/layers.py): the merge and
the two-Gaussian KL against hand computations and torch.distributions, the ELBO's KL against Monte
Carlo, the importance-sampled NLL over all layers against 2-D numerical integration and a brute-force
large k, training, evaluation columns, and the spec's validation of the family's options."""

import math
from pathlib import Path

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from vaebench.data import Dataset, load_dataset
from vaebench.engine import train as training
from vaebench.engine.train import train
from vaebench.errors import SpecError
from vaebench.metrics import METRICS_SKIPPED, EvalContext, evaluate
from vaebench.metrics import column_names as C
from vaebench.metrics.likelihood import nll_per_image
from vaebench.models import build_model, count_parameters
from vaebench.objectives.gaussian import (
    gaussian_kl,
    gaussian_kl_between,
    precision_weighted_merge,
)
from vaebench.objectives.likelihoods import (
    Bernoulli,
    Gaussian,
)
from vaebench.runtime.seeding import seed_everything
from vaebench.spec.sweep_spec import DatasetConfig, ModelConfig, RunConfig, load_spec, parse_spec

F64 = torch.float64
LOG_2PI = math.log(2 * math.pi)
REPO = Path(__file__).resolve().parents[2]
DIGITS = load_dataset(DatasetConfig(name="digits"))


def _ladder_cfg(latent_dims, hidden_dims, **kw) -> ModelConfig:
    return ModelConfig(
        name="ladder", latent_dim=sum(latent_dims), latent_dims=latent_dims, hidden_dims=hidden_dims, **kw
    )


def _ladder(latent_dims, hidden_dims, shape=(1, 4, 4), lik=None, seed=0, **kw):
    torch.manual_seed(seed)
    return build_model(_ladder_cfg(latent_dims, hidden_dims, **kw), shape, lik or Bernoulli()).double().eval()


def _log_normal(z, mu, logvar):
    """log N(z; mu, exp(logvar)) per element, written out (independent of objectives.py)."""
    return -0.5 * (LOG_2PI + logvar + (z - mu) ** 2 / torch.exp(logvar))


def _ctx(model, x, cfg=None, seed=0) -> EvalContext:
    y = torch.zeros(len(x), dtype=torch.long)
    return EvalContext(model, Dataset("test", x, y, x, y), cfg or RunConfig(), seed)


# --- the formulas -----------------------------------------------------------------------------------


def test_precision_weighted_merge_against_a_hand_computation():
    # N(1, 4) x N(-2, 1): precision 1/4 + 1 = 5/4, variance 4/5, mean (1 * 1/4 + (-2) * 1) * 4/5 = -1.4
    mu, logvar = precision_weighted_merge(
        torch.tensor([1.0], dtype=F64),
        torch.tensor([math.log(4.0)], dtype=F64),
        torch.tensor([-2.0], dtype=F64),
        torch.tensor([0.0], dtype=F64),
    )
    assert mu.item() == pytest.approx(-1.4, abs=1e-12) and logvar.exp().item() == pytest.approx(0.8, abs=1e-12)
    # symmetric in its two Gaussians; a very sharp one dominates; extreme log-variances stay finite
    g = torch.Generator().manual_seed(0)
    a, la, b, lb = (torch.randn(5, 3, generator=g, dtype=F64) * 2 for _ in range(4))
    m1, l1 = precision_weighted_merge(a, la, b, lb)
    m2, l2 = precision_weighted_merge(b, lb, a, la)
    assert torch.allclose(m1, m2) and torch.allclose(l1, l2)
    va, vb = la.exp(), lb.exp()
    assert torch.allclose(l1.exp(), 1 / (1 / va + 1 / vb)) and torch.allclose(m1, (a / va + b / vb) / (1 / va + 1 / vb))
    m, lv = precision_weighted_merge(a, torch.full_like(la, 60.0), b, torch.full_like(lb, -60.0))
    assert torch.isfinite(m).all() and torch.allclose(m, b) and torch.allclose(lv, torch.full_like(lv, -60.0))


def test_the_model_merges_bottom_up_and_top_down_gaussians_below_the_top_layer():
    model = _ladder([3, 2, 2], [16, 8, 8])
    x = torch.rand(6, 1, 4, 4, dtype=F64)
    with torch.no_grad():
        up = model.bottom_up(x)
        layers = model.top_down(up, sample=True)
        # the top layer: q(z_L|x) is the bottom-up Gaussian itself
        assert torch.equal(layers[-1].mu_q, up[-1][0]) and torch.equal(layers[-1].logvar_q, up[-1][1])
        for l in range(2):  # below: sigma_q^2 = 1/(sigma_hat^-2 + sigma_p^-2), mu_q = (...) sigma_q^2
            mu_p, logvar_p = model.prior_params(l, layers[l + 1].z)
            s_hat, s_p = up[l][1].exp(), logvar_p.exp()
            var = 1.0 / (1.0 / s_hat + 1.0 / s_p)
            assert torch.allclose(layers[l].logvar_q.exp(), var, rtol=1e-10)
            assert torch.allclose(layers[l].mu_q, (up[l][0] / s_hat + mu_p / s_p) * var, rtol=1e-10)
            assert not torch.allclose(layers[l].mu_q, up[l][0], atol=1e-3)  # the prior did move it


def test_two_gaussian_kl_against_torch_distributions():
    g = torch.Generator().manual_seed(1)
    mu_q, lv_q, mu_p, lv_p = (torch.randn(7, 5, generator=g, dtype=F64) * s for s in (2.0, 1.5, 2.0, 1.5))
    ours = gaussian_kl_between(mu_q, lv_q, mu_p, lv_p)
    ref = kl_divergence(Normal(mu_q, (0.5 * lv_q).exp()), Normal(mu_p, (0.5 * lv_p).exp()))
    assert ours.shape == (7, 5) and torch.allclose(ours, ref, rtol=1e-10, atol=1e-12)
    assert (ours >= 0).all() and torch.allclose(gaussian_kl_between(mu_q, lv_q, mu_q, lv_q), torch.zeros_like(ours))
    zero = torch.zeros_like(mu_p)
    assert torch.allclose(gaussian_kl_between(mu_q, lv_q, zero, zero), gaussian_kl(mu_q, lv_q), rtol=1e-12)


# --- the interface ------------------------------------------------------------------------------------


def test_concatenated_codes_prior_decode_and_kl_are_consistent():
    model = _ladder([3, 2, 2], [16, 8, 8])
    d1 = 3
    x = torch.rand(6, 1, 4, 4, dtype=F64)
    with torch.no_grad():
        layers = model.top_down(model.bottom_up(x), sample=True)
        z = torch.cat([t.z for t in layers], -1)
        mu = torch.cat([t.mu_q for t in layers], -1)
        logvar = torch.cat([t.logvar_q for t in layers], -1)
        # kl(mu, logvar, z) at the sampled path: each layer against p(z_l | z_{l+1}) at z's layer above
        kl = model.kl(mu, logvar, z)
        assert kl.shape == (6, 7) and torch.allclose(kl, torch.cat([t.kl() for t in layers], -1))
        mu_p, lv_p = model.prior_params(0, z[:, 3:5])
        hand = kl_divergence(Normal(mu[:, :3], (0.5 * logvar[:, :3]).exp()), Normal(mu_p, (0.5 * lv_p).exp()))
        assert torch.allclose(kl[:, :3], hand)
        # log p(z) = log N(z_3; 0, I) + log p(z_2 | z_3) + log p(z_1 | z_2), by hand; any leading shape
        z1, z2, z3 = z[:, :3], z[:, 3:5], z[:, 5:]
        ref = (
            _log_normal(z3, 0 * z3, 0 * z3).sum(1)
            + _log_normal(z2, *model.prior_params(1, z3)).sum(1)
            + _log_normal(z1, *model.prior_params(0, z2)).sum(1)
        )
        assert torch.allclose(model.log_prior(z), ref) and model.log_prior(z.view(2, 3, 7)).shape == (2, 3)
        # decode reads the bottom layer only; reconstruct decodes encode's mean path
        other = torch.cat([z1, torch.randn(6, 4, dtype=F64)], -1)
        assert torch.equal(model.decode(z), model.decode(other)) and torch.equal(model.decode(z), model.decode(z1))
        with pytest.raises(ValueError, match="decode takes"):
            model.decode(z[:, :5])
        mean_mu, mean_lv = model.encode(x)
        mean_path = model.top_down(model.bottom_up(x), sample=False)
        assert torch.equal(mean_mu, torch.cat([t.mu_q for t in mean_path], -1)) and mean_lv.shape == (6, 7)
        assert torch.equal(mean_path[1].z, mean_path[1].mu_q)  # means, not samples, go down the path
        assert torch.allclose(model.reconstruct(x), torch.sigmoid(model.decode(mean_mu[:, :d1])))
        # ancestral samples: z_3 ~ N(0, I) marginally; z_2 | z_3 has the prior network's mean
        s = model.sample_prior(20000, torch.Generator().manual_seed(0))
        assert s.shape == (20000, 7) and abs(s[:, 5:].mean().item()) < 0.03 and abs(s[:, 5:].var().item() - 1) < 0.05
        resid = s[:, 3:5] - model.prior_params(1, s[:, 5:])[0]
        assert resid.mean(0).abs().max().item() < 0.05
        assert model.sample(4, generator=torch.Generator().manual_seed(0)).shape == (4, 1, 4, 4)
    assert model.latent_layers == (3, 2, 2) and model.latent_dim == 7 and model.kl_per_dim


def test_elbo_kl_equals_a_monte_carlo_estimate_of_log_q_minus_log_p():
    """elbo_terms' KL (closed form per layer at the sampled layers above) averaged over many draws
    against an independent estimate of E_q[log q(z|x) - log p(z)]: ancestral sampling of q with
    torch.distributions and the merge written out."""
    model = _ladder([2, 2, 1], [16, 8, 8], seed=3)
    with torch.no_grad():  # priors that depend clearly on the layer above
        for head in model.down_head:
            head.weight.mul_(3.0)
    x = torch.rand(3, 1, 4, 4, dtype=F64)
    s = 20000
    torch.manual_seed(0)
    with torch.no_grad():
        t = model.elbo_terms(x.repeat(s, 1, 1, 1))
        ours = t.kl.sum(1).view(s, 3)
        naive = gaussian_kl(t.mu, t.logvar).sum(1).view(s, 3)  # every layer against N(0, I): wrong
        up = [(m.repeat(s, 1), (0.5 * lv).exp().repeat(s, 1)) for m, lv in model.bottom_up(x)]
        z = Normal(*up[2]).sample()
        log_ratio = Normal(*up[2]).log_prob(z).sum(1) - Normal(0.0, 1.0).log_prob(z).sum(1)
        for l in (1, 0):
            mu_p, lv_p = model.prior_params(l, z)
            prec_hat, prec_p = up[l][1] ** -2, (-lv_p).exp()
            sd_q = (prec_hat + prec_p) ** -0.5
            mu_q = (up[l][0] * prec_hat + mu_p * prec_p) * sd_q**2
            z = Normal(mu_q, sd_q).sample()
            log_ratio += Normal(mu_q, sd_q).log_prob(z).sum(1) - Normal(mu_p, (0.5 * lv_p).exp()).log_prob(z).sum(1)
        ref = log_ratio.view(s, 3)
    se = ((ours.var(0) + ref.var(0)) / s).sqrt()
    assert ((ours.mean(0) - ref.mean(0)).abs() < 4 * se).all(), (ours.mean(0), ref.mean(0), se)
    assert ((naive.mean(0) - ref.mean(0)).abs() > 10 * se).all()  # the check can tell a wrong KL apart
    assert ours.var(0).max() < ref.var(0).min()  # and the closed form per layer has less noise


# --- the importance-sampled NLL over all layers -----------------------------------------------------


def _trapezoid(a: float, b: float, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.linspace(a, b, n, dtype=F64)
    w = torch.full((n,), (b - a) / (n - 1), dtype=F64)
    w[0] = w[-1] = w[0] / 2
    return z, w.log()


def _exact_log_px(model, lik, x, n: int, z1_range=(-10.0, 10.0), z2_range=(-8.0, 8.0)) -> tuple[torch.Tensor, float]:
    """log p(x) = log int int p(x|z1) p(z1|z2) N(z2; 0, 1) dz1 dz2 for 1-D z1, z2, by the trapezoid
    rule on an n x n grid, in log space; also log of the prior's mass on the grid (should be 0)."""
    g1, w1 = _trapezoid(*z1_range, n)
    g2, w2 = _trapezoid(*z2_range, n)
    with torch.no_grad():
        params = model.decode(g1.unsqueeze(1))  # (n, C', H, W): p(x | z1_i)
        log_lik = torch.stack([-lik.nll(params, xi.expand(n, *xi.shape)) for xi in x])  # (B, n_i)
        mu_p, lv_p = model.prior_params(0, g2.unsqueeze(1))  # (n_j, 1)
        log_cond = _log_normal(g1.unsqueeze(1), mu_p.T, lv_p.T)  # (n_i, n_j): log p(z1_i | z2_j)
        log_z2 = _log_normal(g2, 0 * g2, 0 * g2)  # (n_j,)
        joint_prior = log_cond + log_z2 + w1.unsqueeze(1) + w2  # (n_i, n_j), with the grid weights
        mass = torch.logsumexp(joint_prior.flatten(), 0).item()
        out = torch.stack([torch.logsumexp((ll.unsqueeze(1) + joint_prior).flatten(), 0) for ll in log_lik])
    return out, mass


@pytest.fixture(scope="module")
def tiny_2x1d():
    """A float64 2-layer ladder with 1-D z1, z2 on 4x4 images: fixed random generative networks (a
    Gaussian decoder with small variance, so the posterior is narrow and not Gaussian), the bottom-up
    networks trained briefly on the model's own samples and then perturbed, so q is a reasonable
    proposal but not the posterior. Returns (model, likelihood, 16 images drawn from the model)."""
    lik = Gaussian(variance=0.05)
    model = _ladder([1, 1], [16, 16], lik=lik, seed=0)
    with torch.no_grad():
        model.decoder[-1].weight.mul_(2.0)
        model.decoder[-1].bias.fill_(0.5)
        model.down_head[0].weight.mul_(2.0)
    generative = [*model.decoder.parameters(), *model.down.parameters(), *model.down_head.parameters()]
    for p in generative:
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(0)

    def images(m):
        with torch.no_grad():
            z = model.sample_prior(m, g)
            return (model.decode(z) + 0.05 * torch.randn(m, 1, 4, 4, generator=g, dtype=F64)).clamp(0, 1)

    params = [*model.up.parameters(), *model.up_head.parameters()]
    opt = torch.optim.Adam(params, lr=3e-3)
    model.train()
    for _ in range(300):
        t = model.elbo_terms(images(128))
        loss = (t.recon + t.kl.sum(1)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():  # then made clearly worse: wider, shifted bottom-up Gaussians
        for head in model.up_head:
            head.bias[:1] += 0.3
            head.bias[1:] += 0.7
    return model.eval(), lik, images(16)


def test_importance_sampled_nll_matches_2d_numerical_integration(tiny_2x1d):
    model, lik, x = tiny_2x1d
    exact, mass = _exact_log_px(model, lik, x, 2001)
    assert abs(mass) < 1e-6  # the grid holds the prior's mass
    coarse, _ = _exact_log_px(model, lik, x, 1001)
    wide, _ = _exact_log_px(model, lik, x, 2401, (-12.0, 12.0), (-9.6, 9.6))
    assert torch.allclose(exact, coarse, atol=1e-4, rtol=0) and torch.allclose(exact, wide, atol=1e-4, rtol=0)
    ctx = _ctx(model, x)
    torch.manual_seed(123)
    est = -nll_per_image(ctx, k=5000)  # through the model's importance_log_weights (encode's summary ignored)
    assert est.dtype == F64 and est.shape == (16,)
    assert abs((est - exact).mean().item()) < 0.02, est - exact
    assert (est - exact).abs().max().item() < 0.1
    # the check has power: q is not the posterior, so the ELBO (k = 1, 200 draws each) is far below
    torch.manual_seed(7)
    elbo = -nll_per_image(_ctx(model, x.repeat(200, 1, 1, 1)), k=1).view(200, 16).mean(0)
    assert (exact - elbo).mean().item() > 0.3  # 15x the tolerance


@pytest.fixture(scope="module")
def trained_digits():
    """A 2-layer ladder trained 2 epochs on digits (KL warm-up), with its config and history."""
    cfg = RunConfig.model_validate(
        {
            "dataset": {"name": "digits"},
            "model": {"name": "ladder", "latent_dim": 6, "latent_dims": [4, 2], "hidden_dims": [64, 32]},
            "schedule": {"name": "linear", "warmup": 1},
            "train": {"epochs": 2, "batch_size": 64, "lr": 3e-3},
            "eval": {"nll_k": 50, "batch_size": 128},
        }
    )
    seed_everything(0)  # what train() does first: the same initial weights
    initial = build_model(cfg.model, DIGITS.shape, Bernoulli())
    torch.manual_seed(1)
    before = training.heldout_loss(initial, DIGITS.x_test, DIGITS.y_test, 500)["test_loss"]
    res = train(cfg, DIGITS, seed=0, device="cpu")
    return cfg, res, before


def test_two_epochs_on_digits_lower_the_loss(trained_digits):
    _, res, before = trained_digits
    assert res.status == "ok" and len(res.history) == 2
    after = res.history[-1]["test_loss"]
    assert after < before - 5.0, (before, after)  # nats per example; the untrained model is ~45
    assert res.history[-1]["train_recon"] < res.history[0]["train_recon"]
    assert res.history[0]["kl_weight"] < 1.0 == res.history[1]["kl_weight"]  # the linear warm-up ran


def test_small_k_nll_is_above_the_brute_force_large_k_and_both_below_the_neg_elbo(trained_digits):
    _, res, _ = trained_digits
    model = res.model.double().eval()
    x = DIGITS.x_test[:40].double()
    ctx = _ctx(model, x)
    torch.manual_seed(0)
    small = torch.stack([nll_per_image(ctx, 20) for _ in range(5)]).mean(0)  # k = 20, averaged over 5 draws
    torch.manual_seed(1)
    large = nll_per_image(ctx, 20000, codes_per_pass=10_000)  # k = 20000: the brute-force reference
    torch.manual_seed(2)
    with torch.no_grad():
        reps = 400
        t = model.elbo_terms(x.repeat(reps, 1, 1, 1))
        neg_elbo = (t.recon + t.kl.sum(1)).view(reps, len(x)).mean(0)
    d = small - large  # paired over images
    se = d.std().item() / math.sqrt(len(d))
    assert d.mean().item() > -3 * se  # k = 20 is not better than k = 20000, within MC error
    assert d.mean().item() > 0.0  # and in fact worse on average
    gap = neg_elbo - small
    assert gap.mean().item() > 3 * gap.std().item() / math.sqrt(len(gap)) and gap.mean().item() > 0.05
    assert (neg_elbo - large).mean().item() > gap.mean().item()
    model.float()


# --- evaluation -----------------------------------------------------------------------------------------


def test_evaluate_gives_kl_and_active_units_per_layer(trained_digits):
    cfg, res, _ = trained_digits
    model = res.model.float().eval()
    out = evaluate(model, DIGITS, cfg, seed=3, names=["elbo", "kl_per_dim", "latent", "layers", "nll"])
    assert not [s for s in out[METRICS_SKIPPED] if s.startswith(("layers", "kl_per_dim", "latent", "nll"))]
    kl_layers, au_layers = out[C.KL_PER_LAYER], out[C.ACTIVE_UNITS_PER_LAYER]
    assert len(kl_layers) == 2 and len(au_layers) == 2 and all(isinstance(a, int) for a in au_layers)
    # per layer = the per-dimension KLs of that layer's dimensions (both from the same seeded draws)
    per_dim = out[C.KL_PER_DIM]
    assert len(per_dim) == 6
    assert kl_layers == pytest.approx([sum(per_dim[:4]), sum(per_dim[4:])], rel=1e-5)
    # the sum is the row's kl up to Monte Carlo noise: within 4 standard errors of one-draw-per-image means
    with torch.no_grad():
        torch.manual_seed(0)
        draws = torch.stack([model.elbo_terms(DIGITS.x_test).kl.sum(1) for _ in range(2)])
    se = draws.std().item() / math.sqrt(DIGITS.x_test.shape[0])
    assert sum(kl_layers) == pytest.approx(out[C.KL], abs=4 * math.sqrt(2) * se + 1e-4)
    assert kl_layers[0] > 0 and kl_layers[1] > 0
    # active units per layer: encode's mean path, the latent metric's input, split by layer
    with torch.no_grad():
        mu, _ = model.encode(DIGITS.x_test)
    active = mu.var(0, unbiased=False) > cfg.eval.active_threshold
    assert au_layers == [int(active[:4].sum()), int(active[4:].sum())]
    assert sum(au_layers) == out[C.ACTIVE_UNITS]
    assert out[C.NLL_IS] < out[C.NEG_ELBO]


def test_single_layer_families_skip_the_per_layer_metric_with_a_reason():
    cfg = RunConfig.model_validate({"dataset": {"name": "digits"}, "model": {"hidden_dim": 16, "latent_dim": 4}})
    torch.manual_seed(0)
    model = build_model(cfg.model, DIGITS.shape, Bernoulli())
    out = evaluate(model, DIGITS, cfg, seed=0, names=["layers", "kl_per_dim"])
    assert out[C.KL_PER_LAYER] is None and out[C.ACTIVE_UNITS_PER_LAYER] is None
    assert out[METRICS_SKIPPED] == ["layers: MLPVAE has a single stochastic layer (no `latent_layers`)"]
    assert len(out[C.KL_PER_DIM]) == 4
    # a one-layer ladder does declare its layer: one-element lists, equal to the totals
    one = build_model(
        ModelConfig(name="ladder", latent_dim=4, latent_dims=[4], hidden_dims=[16]), DIGITS.shape, Bernoulli()
    )
    out = evaluate(one, DIGITS, cfg, seed=0, names=["elbo", "latent", "layers"])
    assert len(out[C.KL_PER_LAYER]) == 1 and out[C.ACTIVE_UNITS_PER_LAYER] == [out[C.ACTIVE_UNITS]]
    assert out[C.KL_PER_LAYER][0] == pytest.approx(out[C.KL], rel=1e-5)  # the top layer's KL is exact


# --- the spec ---------------------------------------------------------------------------------------------


def _spec(model: dict, **extra) -> dict:
    return {"study": "t", "dataset": {"name": "digits"}, "model": model, **extra}


@pytest.mark.parametrize(
    "model, says",
    [
        ({"name": "ladder"}, "field model: model 'ladder': latent_dim must equal sum(latent_dims) = 96"),
        (
            {"name": "ladder", "latent_dim": 40, "latent_dims": [32, 16], "hidden_dims": [256, 128]},
            (
                "latent_dim must equal sum(latent_dims) = 48 (z is the concatenation of all layers, latent_dims [32, 16]); "
                "got latent_dim 40. Set latent_dim: 48"
            ),
        ),
        (
            {"name": "ladder", "latent_dim": 96, "latnt_dims": [64, 32]},
            "field model.latnt_dims: unknown key: 'latnt_dims' is not an option of model 'ladder'. Did you mean 'latent_dims'?",
        ),
        ({"name": "ladder", "latent_dim": 96, "hidden_dim": 256}, "an option of model 'cvae', 'mlp'"),
        ({"name": "ladder", "latent_dim": 96, "hidden_dim": 256}, "Did you mean 'hidden_dims'?"),
        (
            {"name": "ladder", "latent_dim": 96, "hidden_dims": [512]},
            "hidden_dims needs one width per stochastic layer: latent_dims [64, 32] has 2 layer(s), hidden_dims [512] 1",
        ),
        (
            {"name": "ladder", "latent_dim": 4, "latent_dims": [4, 0]},
            "field model.latent_dims: every size must be >= 1",
        ),
        (
            {"name": "ladder", "latent_dim": 4, "latent_dims": []},
            "field model.latent_dims: List should have at least 1 item",
        ),
        (
            {"name": "ladder", "latent_dim": 96, "depth": 0},
            "field model.depth: Input should be greater than or equal to 1",
        ),
        ({"name": "mlp", "latent_dim": 8, "latent_dims": [4, 4]}, "an option of model 'ladder'"),
    ],
)
def test_spec_errors_name_the_field_and_suggest(model, says):
    with pytest.raises(SpecError) as e:
        parse_spec(_spec(model))
    assert says in str(e.value)


def test_valid_ladder_specs_and_a_mismatched_grid_variant():
    spec = parse_spec(
        _spec(
            {"name": "ladder", "latent_dim": 6, "latent_dims": [4, 2], "hidden_dims": [32, 16], "batch_norm": True},
            objective={"free_bits": 0.1},
        )
    )  # free bits: the KL is per dim
    assert spec.model.latent_dims == [4, 2] and spec.model.batch_norm and spec.objective.free_bits == 0.1
    model = build_model(spec.model, DIGITS.shape, Bernoulli())
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())
    grid = {
        "variant": [
            {"name": "ok", "model": {"name": "ladder", "latent_dim": 3, "latent_dims": [2, 1], "hidden_dims": [8, 8]}},
            {"name": "bad", "model": {"name": "ladder", "latent_dim": 3, "latent_dims": [2, 2], "hidden_dims": [8, 8]}},
        ]
    }
    with pytest.raises(
        SpecError, match=r"grid cell \{'variant': 'bad'\}.*latent_dim must equal sum\(latent_dims\) = 4"
    ):
        parse_spec(_spec({"name": "mlp"}, grid=grid))


def test_the_hierarchical_sweep_compares_depths_at_a_comparable_size():
    spec = load_spec(REPO / "sweeps" / "hierarchical.yaml")
    runs = spec.runs()
    assert len(runs) == 9 and spec.seeds == [0, 1, 2]
    assert [r.variant for r in runs[::3]] == ["1 layer", "2 layers", "3 layers"]
    assert spec.dataset.name == "mnist" and spec.objective.likelihood == "bernoulli" and spec.schedule.name == "linear"
    sizes = {}
    for r in runs[::3]:
        assert r.config.model.name == "ladder"
        sizes[r.variant] = count_parameters(build_model(r.config.model, (1, 28, 28), Bernoulli()))
        assert len(r.config.model.latent_dims) == int(r.variant[0])
    assert max(sizes.values()) / min(sizes.values()) < 1.02, sizes  # within 2%
    # everything but the model is shared
    others = {r.config.model_copy(update={"model": ModelConfig()}).model_dump_json() for r in runs}
    assert len(others) == 1
