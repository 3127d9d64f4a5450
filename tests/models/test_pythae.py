"""The example plugin examples/pythae (pythae's models as the family `pythae`): its spec checks
(config keys against pythae's config classes, the likelihood against pythae's reconstruction
loss, refused models with their reason), the interface read from pythae's networks (logits before
the sigmoid, VAMP's prior), and vaebench's importance-sampled NLL against pythae's own `get_nll`.

pythae is a dependency of the plugin (CI installs it with `-e examples/pythae`); the plugin's folder
goes on sys.path here, as for examples/vampprior, so the tests also run from a checkout."""

import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[2]
PLUGIN_ROOT = REPO / "examples" / "pythae"
PKG = "vaebench_pythae"
F64 = torch.float64
if str(PLUGIN_ROOT) not in sys.path:
    sys.path.insert(0, str(PLUGIN_ROOT))

from pythae.data.datasets import DatasetOutput  # noqa: E402
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal  # noqa: E402

from vaebench.data import load_dataset  # noqa: E402
from vaebench.errors import SpecError  # noqa: E402
from vaebench.metrics import EvalContext  # noqa: E402
from vaebench.metrics.likelihood import nll_per_image  # noqa: E402
from vaebench.models import build_model  # noqa: E402
from vaebench.objectives.likelihoods import build_likelihood  # noqa: E402
from vaebench.spec.sweep_spec import RunConfig, parse_spec  # noqa: E402
from vaebench_pythae.zoo import SUPPORTED, ZOO  # noqa: E402


def _run_config(model: dict, objective: dict | None = None, dataset: str = "digits") -> RunConfig:
    return RunConfig.model_validate(
        {"dataset": {"name": dataset}, "model": {"name": "pythae", **model}, "objective": objective or {}}
    )


def _spec_error(model: dict, objective: dict | None = None, dataset: str = "digits") -> str:
    spec = {
        "study": "pythae_bad",
        "plugins": [PKG],
        "dataset": {"name": dataset},
        "model": {"name": "pythae", **model},
        "objective": objective or {},
        "seeds": [0],
    }
    with pytest.raises(SpecError) as e:
        parse_spec(spec).runs()
    return " ".join(str(e.value).split())


def _build(model: dict, objective: dict | None = None, shape=(1, 8, 8), seed: int = 0):
    cfg = _run_config(model, objective, "digits" if shape == (1, 8, 8) else "mnist")
    torch.manual_seed(seed)
    return build_model(cfg.model, shape, build_likelihood(cfg.objective)), cfg


# -- the spec: model names, config keys, the likelihood -------------------------------------------


def test_the_family_is_registered_with_the_supported_models():
    from vaebench.models import MODELS

    assert "pythae" in MODELS.names()
    assert {"VAE", "BetaTCVAE", "IWAE", "VAMP", "INFOVAE_MMD"} <= set(SUPPORTED)
    cfg = _run_config({"model": "BetaTCVAE", "config": {"beta": 6, "alpha": 1}})
    assert cfg.model.model == "BetaTCVAE" and cfg.model.config == '{"alpha": 1, "beta": 6}'  # canonical JSON


@pytest.mark.parametrize(
    "model, expected",
    [
        (
            {"model": "BetaTCVAE", "config": {"betta": 6}},
            "config key 'betta' is not an option of pythae's BetaTCVAEConfig. Did you mean 'beta'? "
            "Valid: alpha, beta, gamma, reconstruction_loss, use_mss",
        ),
        (
            {"model": "BetaTCVAE", "config": {"beta": "six"}},
            "pythae's BetaTCVAEConfig refuses config key 'beta': Input should be a valid number",
        ),
        ({"model": "IWAE", "config": {"latent_dim": 3}}, "config key 'latent_dim' is set by vaebench"),
        ({"model": "VAE", "config": [1, 2]}, "config must be a mapping of pythae config keys"),
        ({"model": "BetaTCVA"}, "'BetaTCVA' is not a pythae model the adapter knows. Did you mean 'BetaTCVAE'?"),
        ({"model": "VAEGAN"}, "pythae model 'VAEGAN' is not supported: pythae trains it with its "),
        ({"model": "VAEGAN"}, "CoupledOptimizerAdversarialTrainer"),
        (
            {"model": "Adversarial_AE", "config": {"deterministic_posterior": True}},
            "config key 'deterministic_posterior': True is not supported for Adversarial_AE: a point-mass posterior",
        ),
        ({"model": "PoincareVAE"}, "its posterior is not a diagonal Gaussian (a distribution on the Poincare ball)"),
        (
            {"model": "VAE_LinNF", "config": {"flows": ["Planr"]}},
            "pythae's VAE_LinNF_Config refuses the config {'flows': ['Planr']}: Assertion failed",
        ),
        ({"model": "VAE", "networks": "mnist_cnn"}, "Input should be 'default', 'mnist_conv' or 'mnist_resnet'"),
    ],
)
def test_spec_errors_name_the_key_and_the_reason(model, expected):
    assert expected in _spec_error(model)


def test_every_refused_model_has_a_reason_and_every_zoo_name_is_a_pythae_model():
    import pythae.models

    for name, entry in ZOO.items():
        assert isinstance(getattr(pythae.models, name), type) and isinstance(getattr(pythae.models, entry.config), type)
        assert (name in SUPPORTED) == (entry.refused is None)


# -- the interface: logits before the sigmoid, the prior ------------------------------------------


def test_decode_gives_the_logits_of_pythaes_reconstruction_and_the_bce_of_pythaes_loss():
    model, _ = _build({"model": "VAE", "latent_dim": 4})
    net = model.net.eval()
    z = torch.randn(64, 4)
    logits = model.decode(z)  # (B, 1, 8, 8)
    probs = net.decoder(z)["reconstruction"]
    assert logits.shape == (64, 1, 8, 8)
    torch.testing.assert_close(torch.sigmoid(logits), probs, rtol=0, atol=1e-6)
    x = torch.rand(64, 1, 8, 8)
    pythae_bce = F.binary_cross_entropy(probs.flatten(1), x.flatten(1), reduction="none").sum(1)
    torch.testing.assert_close(model.likelihood.nll(logits, x), pythae_bce, rtol=1e-5, atol=1e-4)


def test_the_one_sample_elbo_is_pythaes_vae_loss_at_the_same_noise():
    model, _ = _build({"model": "VAE", "latent_dim": 4})
    model.eval()
    x = torch.rand(32, 1, 8, 8)
    torch.manual_seed(3)
    out = model.net(DatasetOutput(data=x))
    torch.manual_seed(3)
    t = model.elbo_terms(x)
    # pythae's loss is the batch mean of its per-example -ELBO, recon_loss and reg_loss the means of its terms
    assert t.recon.mean().item() == pytest.approx(out.recon_loss.item(), rel=1e-5)
    assert t.kl.sum(1).mean().item() == pytest.approx(out.reg_loss.item(), rel=1e-5)
    assert (t.recon + t.kl.sum(1)).mean().item() == pytest.approx(out.loss.item(), rel=1e-5)


def test_mse_reads_the_mean_and_matches_a_unit_variance_gaussian():
    model, _ = _build({"model": "VAE", "latent_dim": 4}, {"likelihood": "gaussian", "variance": 1.0})
    assert model.net.model_config.reconstruction_loss == "mse"
    z, x = torch.randn(8, 4), torch.rand(8, 1, 8, 8)
    mean = model.decode(z)
    torch.testing.assert_close(mean, model.net.decoder(z)["reconstruction"])
    pythae_mse = 0.5 * (mean - x).pow(2).flatten(1).sum(1)  # pythae's recon_loss, without the constant
    torch.testing.assert_close(model.likelihood.nll(mean, x), pythae_mse + 32 * math.log(2 * math.pi))


def test_vamps_prior_is_the_mixture_of_its_pseudo_input_posteriors():
    model, _ = _build({"model": "VAMP", "latent_dim": 3, "config": {"number_components": 7}})
    model.eval()
    mu, logvar = model._components()  # (K, D)
    assert mu.shape == (7, 3)
    mixture = MixtureSameFamily(
        Categorical(logits=torch.zeros(7)), Independent(Normal(mu.detach(), torch.exp(0.5 * logvar.detach())), 1)
    )
    z = torch.randn(5, 11, 3) * 2
    torch.testing.assert_close(model.log_prior(z), mixture.log_prob(z), rtol=1e-5, atol=1e-4)
    gen = torch.Generator().manual_seed(0)
    samples = model.sample_prior(20000, gen)
    torch.testing.assert_close(samples.mean(0), mixture.mean, atol=0.05, rtol=0)
    # the KL column: log q(z|x) - log p(z) at the sample, pythae's VAMP KLD per example
    x = torch.rand(6, 1, 8, 8)
    torch.manual_seed(1)
    out = model.net(DatasetOutput(data=x))
    torch.manual_seed(1)
    t = model.elbo_terms(x)
    assert t.kl.shape == (6, 1)
    assert t.kl.mean().item() == pytest.approx(out.reg_loss.item(), rel=1e-4, abs=1e-4)


# pythae's planar layer takes log(|1 + u^T psi| + 1e-4): its log|det| is the Jacobian's to ~1e-3 only
@pytest.mark.parametrize("name, det_tol", [("VAE_IAF", 1e-4), ("VAE_LinNF", 2e-3)])
def test_a_flows_log_weights_and_kl_are_the_base_gaussian_pushed_through_the_flow(name, det_tol):
    """log q(z|x) = log q0(z0|x) - log|det df/dz0| at z = f(z0): checked against the change of
    variables computed here with autograd's Jacobian, for the weights vaebench's NLL averages."""
    model, _ = _build({"model": name, "latent_dim": 3})
    model.eval()
    assert not model.gaussian_posterior and not model.kl_per_dim
    x = torch.rand(4, 1, 8, 8)
    mu, logvar = model.base_posterior(x)
    z0 = mu[0] + 0.3
    z, log_det = model.flow(z0[None])
    jac = torch.autograd.functional.jacobian(lambda v: model.flow(v[None])[0][0], z0)  # (D, D)
    assert log_det.item() == pytest.approx(torch.linalg.slogdet(jac)[1].item(), abs=det_tol)
    torch.manual_seed(0)
    log_w = model.importance_log_weights(x, None, 7)
    torch.manual_seed(0)
    z0s = mu + torch.randn(7, *mu.shape) * torch.exp(0.5 * logvar)  # the same draws
    zs, dets = model.flow(z0s.reshape(-1, 3))
    log_q = normal_log_prob(z0s, mu, logvar) - dets.view(7, 4)
    log_px = -model.likelihood.nll(model.decode(zs), x.repeat(7, 1, 1, 1)).view(7, 4)
    expected = log_px + normal_log_prob(zs, torch.zeros(3), torch.zeros(3)).view(7, 4) - log_q
    torch.testing.assert_close(log_w, expected, rtol=1e-5, atol=1e-4)
    # encode gives the decoder's code at the base mean
    torch.testing.assert_close(model.encode(x)[0], model.flow(mu)[0])


def test_svaes_von_mises_fisher_density_and_uniform_prior_are_normalized_on_the_sphere():
    """On S^2 (D = 3) the vMF density has the closed form kappa / (4 pi sinh kappa) exp(kappa mu.z)
    and the uniform density is 1 / (4 pi); the KL (pythae's closed form) is the expectation of
    log q - log p under q, checked by Monte Carlo with pythae's sampler."""
    model, _ = _build({"model": "SVAE", "latent_dim": 3})
    model.eval()
    assert not model.gaussian_posterior and not model.kl_per_dim
    loc = F.normalize(torch.randn(4, 3), dim=-1)
    kappa = torch.tensor([[1.5], [4.0], [10.0], [30.0]])
    z = F.normalize(torch.randn(4, 3), dim=-1)
    expected = torch.log(kappa / (4 * math.pi * torch.sinh(kappa))).squeeze(1) + kappa.squeeze(1) * (loc * z).sum(1)
    torch.testing.assert_close(model.vmf_log_prob(z, loc, kappa), expected, rtol=1e-5, atol=1e-4)
    assert model.log_prior(z).tolist() == pytest.approx([-math.log(4 * math.pi)] * 4, abs=1e-6)
    torch.manual_seed(0)
    draws = model.net._sample_von_mises(loc.repeat(20000, 1), kappa.repeat(20000, 1))  # (20000 * 4, 3)
    mc_kl = model.vmf_log_prob(draws, loc.repeat(20000, 1), kappa.repeat(20000, 1)) - model.log_prior(draws)
    kl = model.kl(loc, (-kappa.log()).expand(4, 3), None).squeeze(1)
    torch.testing.assert_close(mc_kl.view(20000, 4).mean(0), kl, rtol=0.02, atol=0.02)
    samples = model.sample_prior(20000, torch.Generator().manual_seed(0))
    torch.testing.assert_close(samples.norm(dim=1), torch.ones(20000))
    torch.testing.assert_close(samples.mean(0), torch.zeros(3), atol=0.02, rtol=0)


def normal_log_prob(z, mu, logvar):
    return Independent(Normal(mu, torch.exp(0.5 * logvar)), 1).log_prob(z)


@pytest.mark.parametrize(
    "objective, model, expected",
    [
        ({"likelihood": "laplace"}, {}, "objective.likelihood 'laplace' has no pythae reconstruction loss"),
        ({"likelihood": "gaussian"}, {}, "the Gaussian likelihood with variance 1; objective.variance is 0.5"),
        (
            {"likelihood": "bernoulli"},
            {"config": {"reconstruction_loss": "mse"}},
            "model.config.reconstruction_loss 'mse' does not match objective.likelihood 'bernoulli'",
        ),
        (
            {"beta": 4.0, "free_bits": 0.5},
            {},
            "pythae model 'VAE' trains on its own loss, which does not read objective.beta (4.0), "
            "objective.free_bits (0.5): remove them",
        ),
        ({"estimator": "iwae", "iwae_k": 5}, {}, "which does not read objective.estimator ('iwae')"),
    ],
)
def test_the_run_is_checked_against_pythaes_loss_when_the_spec_is(objective, model, expected):
    assert expected in _spec_error({"model": "VAE", **model}, objective)


def test_an_ignored_kl_schedule_is_refused_and_a_matching_likelihood_is_taken():
    spec = {"study": "s", "plugins": [PKG], "dataset": {"name": "digits"}, "model": {"name": "pythae"}}
    with pytest.raises(SpecError, match=r"train.precision 'bf16': pythae's bce loss is F.binary_cross_entropy"):
        parse_spec({**spec, "train": {"precision": "bf16"}})
    with pytest.raises(SpecError, match=r"does not read schedule.name \('linear'\)"):
        parse_spec({**spec, "schedule": {"name": "linear"}})
    cfg = parse_spec({**spec, "objective": {"likelihood": "gaussian", "variance": 1.0}}).cells()[0]
    assert (
        build_model(cfg.model, (1, 8, 8), build_likelihood(cfg.objective)).net.model_config.reconstruction_loss == "mse"
    )


def test_a_bad_config_key_exits_2_naming_the_file_and_the_key(tmp_path):
    import yaml
    from typer.testing import CliRunner

    from vaebench.cli.commands import app

    path = tmp_path / "bad.yaml"
    spec = {"study": "bad", "plugins": [PKG], "dataset": {"name": "digits"}, "seeds": [0]}
    path.write_text(yaml.safe_dump({**spec, "model": {"name": "pythae", "model": "BetaTCVAE", "config": {"gama": 2}}}))
    r = CliRunner().invoke(app, ["run", str(path), "--results", str(tmp_path / "results"), "-q"])
    out = " ".join(r.output.split())
    assert r.exit_code == 2 and f"{path}: invalid sweep spec" in out, r.output
    assert "config key 'gama' is not an option of pythae's BetaTCVAEConfig. Did you mean 'gamma'?" in out
    assert not (tmp_path / "results").exists()


def test_the_benchmark_networks_need_mnist_shaped_images():
    expected = "networks 'mnist_conv' are pythae's MNIST benchmark networks, for 1x28x28 images; the dataset's images are 1x8x8"
    assert expected in _spec_error({"model": "VAE", "networks": "mnist_conv"})  # digits: known by name
    mnist = _run_config({"model": "VAE", "networks": "mnist_conv"}, dataset="mnist")
    with pytest.raises(ValueError, match="the dataset's images are 1x8x8"):  # when the model is built
        build_model(mnist.model, (1, 8, 8), build_likelihood(mnist.objective))
    model, _ = _build({"model": "BetaTCVAE", "networks": "mnist_resnet", "latent_dim": 4}, shape=(1, 28, 28))
    assert type(model.net.encoder).__name__ == "Encoder_ResNet_VAE_MNIST"
    assert model.decode(torch.zeros(2, 4)).shape == (2, 1, 28, 28)


# -- vaebench's importance-sampled NLL against pythae's get_nll -----------------------------------


@pytest.fixture(scope="module")
def digits():
    return load_dataset(_run_config({"model": "VAE"}).dataset)


def _trained(model: str, config: dict, digits, objective: dict | None = None, epochs: int = 3):
    from vaebench.engine.train import train

    cfg = _run_config({"model": model, "latent_dim": 4, "config": config}, objective)
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": epochs, "batch_size": 64})})
    return train(cfg, digits, seed=0, device="cpu").model.eval(), cfg


@pytest.mark.parametrize(
    "model, config, objective",
    [
        ("VAE", {}, None),
        ("IWAE", {"number_samples": 5}, None),
        ("VAMP", {"number_components": 10}, None),
        ("VAE", {}, {"likelihood": "gaussian", "variance": 1.0}),
        ("VAE_IAF", {"n_made_blocks": 2, "hidden_size": 32}, None),
        ("VAE_LinNF", {"flows": ["Planar", "Radial", "Planar"]}, None),
        ("SVAE", {}, None),
    ],
)
def test_the_importance_sampled_nll_is_pythaes_get_nll_within_monte_carlo_error(
    model, config, objective, digits, monkeypatch
):
    """Both estimate -log p(x) as -logmeanexp_j log w_j with k draws z_j ~ q(z|x) per image, from
    independent draws: per image their difference has mean 0 (pythae's BCE clamp at -100 does not
    bind on these images) and a spread the two estimators' Monte Carlo noise sets. The mean
    difference over n images must lie within 4 standard errors of 0, the standard error being the
    differences' own standard deviation / sqrt(n); and that error must be small against the NLL."""
    trained, cfg = _trained(model, config, digits, objective)
    k, n = 50, 150
    ours = nll_per_image(EvalContext(trained, digits, cfg, seed=0), k, n).double()
    x = digits.x_test[:n]
    if model == "SVAE":  # pythae's SVAE.get_nll leaves out the + 1 its forward adds to the concentration
        softplus = F.softplus
        monkeypatch.setattr(F, "softplus", lambda t, *a, **k: softplus(t, *a, **k) + 1)
    torch.manual_seed(1)
    with torch.no_grad():
        # get_nll draws batch_size codes per pass (even when n_samples is smaller): batch_size = k gives k
        theirs = torch.tensor([-trained.net.get_nll(xi[None], n_samples=k, batch_size=k) for xi in x], dtype=F64)
    diff = ours - theirs
    stderr = diff.std().item() / math.sqrt(n)
    assert abs(diff.mean().item()) < 4 * stderr, (diff.mean().item(), stderr)
    assert stderr < 0.01 * ours.mean().abs().item()  # the test can tell: the MC error is small


# -- the docs: the adapter README's tables, the install line ----------------------------------------


def test_the_readme_tables_list_every_model_of_the_zoo_as_supported_or_refused():
    readme = (PLUGIN_ROOT / "README.md").read_text()
    supported_table, refused_table = readme.split("## Supported models")[1].split("Refused at spec time")
    refused_table = refused_table.split("## How the interface")[0]

    def names(table: str) -> set[str]:
        rows = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
        return {name.strip(" `") for row in rows for name in row.split(",")}

    assert names(supported_table) == set(SUPPORTED)
    assert names(refused_table) == set(ZOO) - set(SUPPORTED)


def test_readme_and_ci_install_the_adapter_with_the_same_line():
    def install_args(text: str, marker: str) -> list[str]:
        line = next(line for line in text.splitlines() if line.strip().startswith(marker))
        return [a for a in line.split("#")[0].split("2>&1")[0].split()[2:] if a != "-q"]

    readme = install_args((REPO / "README.md").read_text(), "pip install -e")
    ci = install_args((REPO / ".ci" / "run").read_text(), "pip install -q -e")
    assert readme == ci and ci[-2:] == ["-e", "examples/pythae"], (readme, ci)
