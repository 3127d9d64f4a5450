"""The example plugin examples/vampprior (a VAE with a VampPrior, Tomczak & Welling 2018): its prior
against torch.distributions, its Monte Carlo KL, prior samples' moments, the importance-sampled NLL
against the -ELBO and against numerical integration, training, its sweep spec, and its discovery
through the `vaebench.plugins` entry-point group.

The plugin is not installed in the test environment: its folder goes on sys.path here."""

import importlib.metadata as metadata
import math
import sys
from pathlib import Path

import pytest
import torch
from scipy import integrate
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

REPO = Path(__file__).resolve().parents[2]
PLUGIN_ROOT = REPO / "examples" / "vampprior"
PKG = "vaebench_vampprior"
if str(PLUGIN_ROOT) not in sys.path:
    sys.path.insert(0, str(PLUGIN_ROOT))

from vaebench import plugins  # noqa: E402
from vaebench.data import Dataset, load_dataset  # noqa: E402
from vaebench.engine.train import train  # noqa: E402
from vaebench.errors import SpecError  # noqa: E402
from vaebench.metrics import METRICS, EvalContext, evaluate  # noqa: E402
from vaebench.metrics import column_names as C  # noqa: E402
from vaebench.metrics.likelihood import nll_per_image  # noqa: E402
from vaebench.models import MODELS, build_model, count_parameters  # noqa: E402
from vaebench.objectives.bounds import elbo_terms  # noqa: E402
from vaebench.objectives.gaussian import gaussian_kl  # noqa: E402
from vaebench.objectives.likelihoods import Bernoulli, Gaussian  # noqa: E402
from vaebench.spec.sweep_spec import ModelConfig, RunConfig, load_spec, parse_spec  # noqa: E402

F64 = torch.float64
LOG_2PI = math.log(2 * math.pi)


def _is_plugin_module(name: str) -> bool:
    return name == PKG or name.startswith(PKG + ".")


def _forget_plugin() -> None:
    """Undo the plugin's import: its modules, its registry entry, its plugin record."""
    for name in [n for n in sys.modules if _is_plugin_module(n)]:
        del sys.modules[name]
    if "vampprior" in MODELS:
        MODELS.unregister("vampprior")
    plugins._loaded.pop(PKG, None)


@pytest.fixture(scope="module", autouse=True)
def vp():
    """The plugin module, imported (and `vampprior` registered) for this module's tests only: the
    rest of the session sees the families it saw before (test_variants.py checks that set). When
    the plugin was already loaded (installed, found through its entry point), it is left as found."""
    if PKG in sys.modules:
        yield sys.modules[PKG]
        return
    plugins.load_plugin(PKG, "tests/models/test_vampprior.py")
    yield sys.modules[PKG]
    _forget_plugin()


# -- helpers ----------------------------------------------------------------------------------------


def _model(latent_dim=3, shape=(1, 4, 4), n_pseudo=5, likelihood=None, hidden_dim=16, seed=0, spread=True, **options):
    """A float64 VampPrior VAE built through the registry. `spread`: diverse pseudo-inputs and a
    wider fc_mu / narrower fc_logvar, so the K components are distinct (the tests have power)."""
    torch.manual_seed(seed)
    cfg = ModelConfig.model_validate(
        {"name": "vampprior", "latent_dim": latent_dim, "hidden_dim": hidden_dim, "n_pseudo": n_pseudo, **options}
    )
    model = build_model(cfg, shape, likelihood or Bernoulli()).double()
    if spread:
        with torch.no_grad():
            model.pseudo_raw.copy_(torch.rand_like(model.pseudo_raw) * 1.2 - 0.1)  # some clamped by hardtanh
            model.fc_mu.weight.mul_(6.0)
            model.fc_logvar.bias.fill_(-1.5)
    return model.eval()


def _dataset(x) -> Dataset:
    """`x` as the test split (and the training split) of a Dataset, labels 0."""
    y = torch.zeros(len(x), dtype=torch.long)
    return Dataset("test", x, y, x, y)


def _reference_prior(model) -> MixtureSameFamily:
    """p(z) written with torch.distributions from the encoder's outputs at the pseudo-inputs
    (hardtanh(u, 0, 1) == clamp(u, 0, 1)), in eval mode."""
    with torch.no_grad():
        mu, logvar = model.encode(model.pseudo_raw.clamp(0.0, 1.0))
    k = len(mu)
    return MixtureSameFamily(
        Categorical(logits=torch.zeros(k, dtype=mu.dtype)), Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)
    )


def _posterior(mu, logvar) -> Independent:
    return Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)


# -- the prior ------------------------------------------------------------------------------------


def test_log_prior_is_the_mixture_of_the_encoder_at_the_pseudo_inputs(vp):
    model = _model(latent_dim=3, n_pseudo=7)
    ref = _reference_prior(model)
    torch.manual_seed(1)
    near = ref.sample((6, 5))  # (6, 5, 3): where the prior's mass is
    far = torch.randn(6, 5, 3, dtype=F64) * 8.0
    for z in (near, far, torch.full((2, 3), 300.0, dtype=F64)):  # far from every component: logsumexp keeps it finite
        with torch.no_grad():
            ours = model.log_prior(z)
        assert ours.shape == z.shape[:-1] and ours.dtype == F64
        assert torch.isfinite(ours).all()
        assert torch.allclose(ours, ref.log_prob(z), rtol=1e-10, atol=1e-8)
    # any leading shape, a bare (D,) included; and the prior is not N(0, I) (the test has power)
    assert torch.allclose(model.log_prior(near[0, 0]), ref.log_prob(near[0, 0]), atol=1e-8)
    assert model.log_prior(near.reshape(30, 3)).shape == (30,)
    std = -0.5 * (near.pow(2) + LOG_2PI).sum(-1)
    assert (ref.log_prob(near) - std).abs().max().item() > 1.0
    # the components: one encoder pass over the K pseudo-inputs per call, however many rows z has
    # (the rows go a bounded number at a time); one row at a time gives the same values
    calls = []
    encode = model.encode
    model.encode = lambda x, y=None: (calls.append(len(x)), encode(x, y))[1]
    try:
        many = torch.randn(40, 1000, 3, dtype=F64)
        with torch.no_grad():
            assert torch.allclose(model.log_prior(many), ref.log_prob(many), rtol=1e-10, atol=1e-8)
    finally:
        del model.encode
    assert calls == [7]
    mu, logvar = model.prior_components()
    one_row = vp.mixture_log_prob(far, mu, logvar, chunk_elements=1)
    assert torch.allclose(one_row, ref.log_prob(far), rtol=1e-10, atol=1e-8)
    # log p(z) trains the pseudo-inputs and the encoder
    model.log_prior(near).sum().backward()
    assert model.pseudo_raw.grad.abs().sum().item() > 0 and model.fc_mu.weight.grad.abs().sum().item() > 0


def test_log_prior_in_float32_is_close_to_float64_for_sharp_far_components(vp):
    """The expanded-square evaluation loses float32 digits when |mu| >> sd; centering and the exact
    top component keep it within 2e-3 nats of float64 (without them: ~0.1 nats here)."""
    torch.manual_seed(0)
    k, d = 500, 32
    mu = torch.randn(k, d, dtype=F64) * 3.0 + 1.0
    logvar = torch.randn(k, d, dtype=F64) * 0.5 - 6.0  # sd ~ 0.05
    z = mu[torch.randint(k, (4000,))] + 0.1 * torch.randn(4000, d, dtype=F64)
    exact = _mixture_by_differences(z, mu, logvar)
    assert torch.allclose(vp.mixture_log_prob(z, mu, logvar), exact, rtol=0, atol=1e-8)
    f32 = vp.mixture_log_prob(z.float(), mu.float(), logvar.float())
    assert f32.dtype == torch.float32
    assert (f32.double() - exact).abs().max().item() < 2e-3


def _mixture_by_differences(z, mu, logvar):
    """log 1/K sum_k N(z; mu_k, var_k) from the differences z - mu_k (the direct formula)."""
    sq = ((z.unsqueeze(-2) - mu).pow(2) * torch.exp(-logvar)).sum(-1)
    return torch.logsumexp(-0.5 * (sq + logvar.sum(-1) + mu.shape[1] * LOG_2PI), -1) - math.log(len(mu))


def test_batch_norm_prior_uses_running_statistics_and_leaves_them_alone():
    model = _model(latent_dim=2, n_pseudo=6, batch_norm=True)
    torch.manual_seed(2)
    with torch.no_grad():  # running statistics that are not the identity
        model.train()
        for _ in range(5):
            model.encode(torch.rand(32, 1, 4, 4, dtype=F64) * 0.5)
    model.eval()
    ref = _reference_prior(model)  # eval mode: running statistics
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    z = ref.sample((40,))
    model.train()  # the model's mode does not change the prior
    with torch.no_grad():
        in_train = model.log_prior(z)
        model.sample_prior(10)
        model.kl(z, torch.zeros_like(z), z)
    assert torch.allclose(in_train, ref.log_prob(z), atol=1e-8)
    assert all(torch.equal(stats[k], v) for k, v in model.state_dict().items() if k in stats)
    assert all(m.training for m in model.encoder.modules())  # the mode is restored
    # a data pass in training mode does update them (the check above has power)
    with torch.no_grad():
        model.encode(torch.rand(8, 1, 4, 4, dtype=F64))
    assert not all(torch.equal(stats[k], v) for k, v in model.state_dict().items() if k in stats)


def test_monte_carlo_kl_matches_a_torch_distributions_estimate():
    model = _model(latent_dim=3, n_pseudo=5, seed=3)
    x = torch.rand(4, 1, 4, 4, dtype=F64, generator=torch.Generator().manual_seed(0))
    prior = _reference_prior(model)
    n = 20000
    with torch.no_grad():
        mu, logvar = model.encode(x)  # (4, 3)
        q = _posterior(mu, logvar)
        # pointwise: log q(z|x) - log p(z) at the given z, one (B, 1) column
        z = q.sample()
        kl = model.kl(mu, logvar, z)
        assert kl.shape == (4, 1) and model.kl_per_dim is False
        assert torch.allclose(kl[:, 0], q.log_prob(z) - prior.log_prob(z), atol=1e-8)
        # averaged over many reparameterized draws vs independent torch.distributions draws
        torch.manual_seed(10)
        mu_n, lv_n = mu.repeat(n, 1), logvar.repeat(n, 1)  # (n*4, 3), sample-major
        ours = model.kl(mu_n, lv_n, model.reparameterize(mu_n, lv_n)).view(n, 4)
        torch.manual_seed(11)
        zr = q.sample((n,))  # (n, 4, 3)
        ref = q.log_prob(zr) - prior.log_prob(zr)  # (n, 4)
    se = torch.sqrt(ours.var(0) / n + ref.var(0) / n)
    assert ((ours.mean(0) - ref.mean(0)).abs() < 4 * se).all(), (ours.mean(0), ref.mean(0), se)
    assert (ref.mean(0) > 0).all()  # a KL
    # power: it is not the closed-form KL to N(0, I) (what a Gaussian-prior model would return)
    closed = gaussian_kl(mu, logvar).sum(1)
    assert ((ours.mean(0) - closed).abs() > 20 * se).all()


def test_prior_samples_have_the_mixture_mean_and_covariance():
    model = _model(latent_dim=2, n_pseudo=4, seed=4)
    with torch.no_grad():
        mu, logvar = model.encode(model.pseudo_raw.clamp(0, 1))  # (K, 2)
        var = logvar.exp()
        mean = mu.mean(0)
        second = (torch.diag_embed(var) + mu.unsqueeze(2) * mu.unsqueeze(1)).mean(0)  # E[z z^T]
        cov = second - torch.outer(mean, mean)
        n = 200_000
        z = model.sample_prior(n, torch.Generator().manual_seed(0))
        again = model.sample_prior(n, torch.Generator().manual_seed(0))
        other = model.sample_prior(n, torch.Generator().manual_seed(1))
    assert z.shape == (n, 2) and z.dtype == F64
    assert torch.equal(z, again) and not torch.equal(z, other)
    se_mean = (cov.diagonal() / n).sqrt()
    assert ((z.mean(0) - mean).abs() < 4 * se_mean).all(), (z.mean(0), mean, se_mean)
    zc = z - z.mean(0)
    products = zc.unsqueeze(2) * zc.unsqueeze(1)  # (n, 2, 2)
    se_cov = products.std(0) / math.sqrt(n)
    assert ((products.mean(0) - cov).abs() < 5 * se_cov).all(), (products.mean(0), cov, se_cov)
    # power: the components are far apart (sampling only one of them, or N(0, I), would fail)
    assert ((mu - mean).norm(dim=1) > 20 * se_mean.max()).all()
    assert (cov - torch.eye(2, dtype=F64)).abs().max() > 20 * se_cov.max()
    # images from the prior: the likelihood's mean of decoded prior samples
    imgs = model.sample(5, generator=torch.Generator().manual_seed(0))
    assert imgs.shape == (5, 1, 4, 4) and ((imgs >= 0) & (imgs <= 1)).all()


# -- options, building, the spec --------------------------------------------------------------------


def test_options_defaults_and_init_and_same_mlp_as_the_mlp_family(vp):
    opts = ModelConfig(name="vampprior").family_options()
    assert (opts.n_pseudo, opts.pseudo_init_std, opts.hidden_dim, opts.depth) == (500, 0.01, 256, 2)
    assert opts.batch_norm is False and opts.spectral_norm is False
    for bad in ({"n_pseudo": 0}, {"pseudo_init_std": -1.0}, {"n_pseudos": 3}):
        with pytest.raises(SpecError, match=next(iter(bad))):
            parse_spec({"study": "x", "model": {"name": "vampprior", **bad}})
    with pytest.raises(SpecError, match="n_pseudo.*vampprior"):  # an option of another family
        parse_spec({"study": "x", "model": {"name": "mlp", "n_pseudo": 3}})
    shape = (1, 28, 28)
    torch.manual_seed(0)
    mlp = build_model(ModelConfig(name="mlp", latent_dim=32), shape, Bernoulli())
    torch.manual_seed(0)
    vamp = build_model(ModelConfig(name="vampprior", latent_dim=32), shape, Bernoulli())
    assert isinstance(vamp, vp.VampPriorVAE) and vamp.n_pseudo == 500
    assert count_parameters(vamp) == count_parameters(mlp) + 500 * 784
    mlp_state, vamp_state = mlp.state_dict(), vamp.state_dict()
    assert set(vamp_state) - set(mlp_state) == {"pseudo_raw"}
    assert all(torch.equal(mlp_state[k], vamp_state[k]) for k in mlp_state)  # same seed: same MLP
    u = vamp.pseudo_raw.detach()
    assert u.shape == (500, *shape)
    assert u.mean().item() == pytest.approx(0.05, abs=1e-3) and u.std().item() == pytest.approx(0.01, rel=0.02)
    assert torch.equal(vamp.pseudo_inputs(), u.clamp(0, 1))


def test_sweep_spec_compares_mlp_and_vampprior_at_the_same_size_and_budget():
    spec = load_spec(REPO / "sweeps" / "vampprior.yaml")
    assert spec.study == "vampprior" and spec.plugins == [PKG]
    cells = spec.cells()
    assert [c.model.name for c in cells] == ["mlp", "vampprior"]
    assert len(spec.runs()) == 2 * len(spec.seeds) and len(spec.seeds) >= 3
    a, b = (c.model_dump(mode="json") for c in cells)
    model_a, model_b = a.pop("model"), b.pop("model")
    assert a == b  # data, objective, schedule, training budget, evaluation: the same
    assert {k: v for k, v in model_b.items() if k not in ("name", "n_pseudo", "pseudo_init_std")} == {
        k: v for k, v in model_a.items() if k != "name"
    }
    assert cells[0].dataset.name == "mnist" and cells[0].objective.likelihood == "bernoulli"
    torch.manual_seed(0)
    sizes = [count_parameters(build_model(c.model, (1, 28, 28), Bernoulli())) for c in cells]
    assert sizes[1] - sizes[0] == cells[1].model.n_pseudo * 784  # the pseudo-inputs, nothing else


# -- training and the bounds on digits ------------------------------------------------------------

DIGITS_SPEC = {
    "study": "vampprior_digits",
    "plugins": [PKG],
    "dataset": {"name": "digits"},
    "model": {"name": "vampprior", "latent_dim": 8, "hidden_dim": 64, "n_pseudo": 20},
    "train": {"epochs": 2, "batch_size": 64},
}


@pytest.fixture(scope="module")
def digits_run(vp):
    cfg = parse_spec(DIGITS_SPEC).cells()[0]
    data = load_dataset(cfg.dataset)
    torch.manual_seed(0)  # the pseudo-inputs before training: train() seeds, then builds the model
    before = build_model(cfg.model, data.shape, Bernoulli()).pseudo_raw.detach().clone()
    return cfg, data, train(cfg, data, seed=0, device="cpu"), before


def test_training_on_digits_lowers_the_loss_and_learns_the_pseudo_inputs(digits_run, vp):
    _, _, res, before = digits_run
    assert res.status == "ok" and res.reason is None and len(res.history) == 2
    for rec in res.history:
        assert all(math.isfinite(v) for v in rec.values())
        assert rec["test_loss"] == pytest.approx(rec["test_recon"] + rec["test_kl"], rel=1e-6)
    h0, h1 = res.history
    assert h1["train_loss"] < h0["train_loss"] and h1["test_loss"] < h0["test_loss"]
    assert isinstance(res.model, vp.VampPriorVAE)
    moved = (res.model.pseudo_raw.detach() - before).abs().max().item()
    assert moved > 1e-3  # the pseudo-inputs are trained


def test_free_bits_is_refused_for_the_vampprior(digits_run):
    data = digits_run[1]
    spec = {**DIGITS_SPEC, "objective": {"free_bits": 0.5}, "train": {"epochs": 1, "batch_size": 64}}
    with pytest.raises(SpecError, match="free_bits clamps the KL of each latent dimension; model 'vampprior'"):
        parse_spec(spec, "vp.yaml")  # refused in the spec, before a study exists
    cfg = parse_spec({**spec, "objective": {}}).cells()[0]
    cfg.objective.free_bits = 0.5  # past the spec (a config built in code): the loss refuses it too
    with pytest.raises(ValueError, match="free_bits"):
        train(cfg, data, seed=0, device="cpu")


def test_importance_sampled_nll_is_below_the_neg_elbo_on_digits(digits_run):
    cfg, data, res, _ = digits_run
    model = res.model.eval()
    ctx = EvalContext(model, data, cfg, seed=0)
    x, y = ctx.x, ctx.y
    torch.manual_seed(0)
    nll = nll_per_image(ctx, k=1000).double()  # (N,)
    draws = 50
    with torch.no_grad():  # the single-sample -ELBO (Monte Carlo KL), averaged over draws per image
        terms = [elbo_terms(model, model.likelihood, x, y) for _ in range(draws)]
        neg_elbo = torch.stack([t.recon + t.kl.sum(1) for t in terms]).double()  # (draws, N)
    d = neg_elbo.mean(0) - nll  # per image, >= 0 in expectation
    se = d.std().item() / math.sqrt(len(d))
    assert d.mean().item() > -3 * se
    assert d.mean().item() > 0.2 and d.mean().item() > 5 * se  # a real gap: the order is tested
    # at k = 1 the importance weight is the single-sample ELBO: the same value in expectation
    torch.manual_seed(1)
    k1 = nll_per_image(EvalContext(model, _dataset(x.repeat(draws, 1, 1, 1)), cfg, seed=0), k=1)
    k1 = k1.double().view(draws, len(x)).mean(0)
    d1 = k1 - neg_elbo.mean(0)
    se1 = d1.std().item() / math.sqrt(len(d1))
    assert abs(d1.mean().item()) < 4 * se1, (d1.mean().item(), se1)
    # and the metric runs on this model
    out = METRICS.get("nll")(ctx)
    assert out[C.NLL_IS] == pytest.approx(nll[: out[C.NLL_EXAMPLES]].mean().item(), abs=5 * out[C.NLL_IS_STDERR])


def test_elbo_metric_uses_the_models_kl_and_kl_per_dim_does_not_apply(digits_run):
    """The -ELBO metric's KL is the model's (the Monte Carlo estimate at the decoded z), not the
    closed-form KL to N(0, I); the per-dimension KL column is null for this model."""
    cfg, data, res, _ = digits_run
    model = res.model.eval()
    out = evaluate(model, data, cfg, seed=3, names=["elbo", "kl_per_dim"])
    torch.manual_seed(3)  # evaluate seeds, encodes (no draws), then the metric draws z once
    with torch.no_grad():
        x = data.x_test
        mu, logvar = model.encode(x)
        z = model.reparameterize(mu, logvar)
        kl = model.kl(mu, logvar, z)[:, 0]
        recon = model.likelihood.nll(model.decode(z), x)
    assert out[C.KL] == pytest.approx(kl.mean().item(), abs=1e-4)
    assert out[C.RECON_NLL] == pytest.approx(recon.mean().item(), abs=1e-3)
    assert out[C.NEG_ELBO] == pytest.approx((recon + kl).mean().item(), abs=1e-3)
    assert abs(kl.mean().item() - gaussian_kl(mu, logvar).sum(1).mean().item()) > 0.05  # the check has power
    assert out.get(C.KL_PER_DIM) is None


# -- the NLL against numerical integration (1-D latent) ---------------------------------------------

QUAD_SHAPE = (1, 2, 2)


@pytest.fixture(scope="module")
def model_1d(vp):
    """A float64 VampPrior VAE with D = 1, 3 pseudo-inputs and a fixed random decoder; encoder and
    pseudo-inputs fitted briefly (ELBO with the Monte Carlo KL) to images decoded from z ~ N(0, 1),
    then the encoder made worse, so q(z|x) is a reasonable proposal but not the posterior.
    Returns (model, likelihood, 24 test images)."""
    g = torch.Generator().manual_seed(0)
    lik = Gaussian(variance=0.05)
    model = _model(latent_dim=1, shape=QUAD_SHAPE, n_pseudo=3, likelihood=lik, spread=False, seed=0)
    with torch.no_grad():
        model.decoder[-1].weight.mul_(3.0)
        model.decoder[-1].bias.fill_(0.5)
        model.pseudo_raw.copy_(torch.rand(model.pseudo_raw.shape, generator=g, dtype=F64))
    for p in model.decoder.parameters():
        p.requires_grad_(False)

    def images(m):
        with torch.no_grad():
            z = torch.randn(m, 1, generator=g, dtype=F64) * 1.5
            return (model.decode(z) + 0.05 * torch.randn(m, *QUAD_SHAPE, generator=g, dtype=F64)).clamp(0, 1)

    model.train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for _ in range(300):
        t = elbo_terms(model, lik, images(128))
        loss = (t.recon + t.kl.sum(1)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():  # a wider, shifted q (the prior's components move with it: same encoder)
        model.fc_logvar.bias.add_(0.7)
        model.fc_mu.bias.add_(0.3)
    return model.eval(), lik, images(24)


def _log_joint_on_grid(model, lik, x, z: torch.Tensor, log_prior=None) -> torch.Tensor:
    """log p(x|z) + log p(z) for every image and grid point: (B, G)."""
    with torch.no_grad():
        params = model.decode(z.unsqueeze(1))
        log_lik = torch.stack([-lik.nll(params, xi.expand(len(z), *xi.shape)) for xi in x])
        lp = model.log_prior(z.unsqueeze(1)) if log_prior is None else log_prior(z)
    return log_lik + lp


def _trapezoid_log_px(model, lik, x, a: float, b: float, n: int, log_prior=None) -> torch.Tensor:
    z = torch.linspace(a, b, n, dtype=F64)
    logw = torch.full((n,), (b - a) / (n - 1), dtype=F64).log()
    logw[0] = logw[-1] = logw[0] - math.log(2)
    return torch.logsumexp(_log_joint_on_grid(model, lik, x, z, log_prior) + logw, 1)


def test_nll_matches_numerical_integration_with_the_vampprior(model_1d):
    model, lik, x = model_1d
    # the prior is a real mixture, not N(0, 1): integrating with N(0, 1) gives other values
    mu_k, _ = model.prior_components()
    assert mu_k.shape == (3, 1) and (mu_k.max() - mu_k.min()).item() > 0.5
    exact = _trapezoid_log_px(model, lik, x, -12.0, 12.0, 24001)
    coarse = _trapezoid_log_px(model, lik, x, -12.0, 12.0, 12001)
    assert torch.allclose(exact, coarse, atol=1e-6, rtol=0)
    std_normal = _trapezoid_log_px(model, lik, x, -12.0, 12.0, 24001, lambda z: -0.5 * (z.pow(2) + LOG_2PI))
    assert (exact - std_normal).abs().mean().item() > 0.15 and (exact - std_normal).abs().max().item() > 0.4
    # the grid agrees with adaptive quadrature (scipy.integrate.quad) on a few images
    for i in (0, 7, 19):
        xi = x[i : i + 1]
        grid = torch.linspace(-12.0, 12.0, 24001, dtype=F64)
        joint = _log_joint_on_grid(model, lik, xi, grid)[0]
        peak, top = joint.max().item(), grid[joint.argmax()].item()

        def f(v, xi=xi, peak=peak):
            return math.exp(_log_joint_on_grid(model, lik, xi, torch.tensor([v], dtype=F64))[0, 0].item() - peak)

        val, _ = integrate.quad(f, -12.0, 12.0, points=[top, *mu_k[:, 0].tolist()], limit=400, epsabs=0, epsrel=1e-6)
        assert math.log(val) + peak == pytest.approx(exact[i].item(), abs=1e-5)  # measured: ~3e-8
    # the importance-sampled estimate with k = 5000 converges to it
    ctx = EvalContext(model, _dataset(x), RunConfig(), seed=0)
    torch.manual_seed(123)
    est = -nll_per_image(ctx, k=5000)
    assert est.dtype == F64 and est.shape == (len(x),)
    assert abs((est - exact).mean().item()) < 0.02  # measured with 3 seeds: <= 0.005
    assert (est - exact).abs().max().item() < 0.1  # measured: <= 0.03
    # power: the single-sample bound (the ELBO, averaged over 100 draws) is clearly below log p(x)
    torch.manual_seed(123)
    xs = x.repeat(100, 1, 1, 1)
    elbo = -nll_per_image(EvalContext(model, _dataset(xs), RunConfig(), seed=0), k=1).view(100, len(x)).mean(0)
    assert (exact - elbo).mean().item() > 0.15


# -- discovery through the entry-point group ----------------------------------------------------------


@pytest.fixture
def unloaded_plugin():
    """This process as if vaebench_vampprior had never been imported (module, registry entry,
    plugin record); the previous state is put back afterwards."""
    modules = {k: v for k, v in sys.modules.items() if _is_plugin_module(k)}
    family = MODELS.unregister("vampprior") if "vampprior" in MODELS else None
    record = plugins._loaded.pop(PKG, None)
    for k in modules:
        del sys.modules[k]
    yield
    _forget_plugin()
    sys.modules.update(modules)
    if family is not None:
        MODELS.register("vampprior", family)
    if record is not None:
        plugins._loaded[PKG] = record


@pytest.fixture
def installed_metadata(tmp_path, monkeypatch):
    """The metadata `pip install examples/vampprior` writes (the parts vaebench reads), in a
    temporary folder on sys.path: METADATA, entry_points.txt, top_level.txt."""
    info = tmp_path / "site" / "vaebench_vampprior-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vaebench-vampprior\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[vaebench.plugins]\nvampprior = vaebench_vampprior\n")
    (info / "top_level.txt").write_text("vaebench_vampprior\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return info


def test_entry_point_is_discovered_and_loads_the_family(unloaded_plugin, installed_metadata):
    eps = [ep for ep in metadata.entry_points(group=plugins.ENTRY_POINT_GROUP) if ep.name == "vampprior"]
    assert [ep.value for ep in eps] == [PKG]
    assert "vampprior" not in MODELS and PKG not in sys.modules
    record = plugins.load_plugin(eps[0].value, f"entry point 'vampprior' of {plugins.ENTRY_POINT_GROUP}")
    assert record["module"] == PKG
    assert (record["distribution"], record["version"]) == ("vaebench-vampprior", "0.1.0")
    assert len(record["source_sha256"]) == 64
    assert plugins.load_plugin(PKG) is record  # once per process: no second registration
    assert record in plugins.loaded_plugins()
    family = MODELS.get("vampprior")
    model = family.build(
        ModelConfig(name="vampprior", latent_dim=2, hidden_dim=8, n_pseudo=3), (1, 4, 4), Bernoulli(), 10
    )
    assert type(model) is sys.modules[PKG].VampPriorVAE and model.n_pseudo == 3
    assert model.log_prior(torch.zeros(5, 2)).shape == (5,)


def test_registry_lookup_imports_the_installed_entry_point(unloaded_plugin, installed_metadata, monkeypatch):
    """The first registry lookup of a process imports every `vaebench.plugins` entry point
    (registry -> plugins.load_installed_plugins): here re-armed for this test."""
    monkeypatch.setattr(plugins, "_installed_done", False)
    assert PKG not in sys.modules
    assert "vampprior" in MODELS.names()
    assert PKG in sys.modules and plugins._loaded[PKG]["distribution"] == "vaebench-vampprior"
