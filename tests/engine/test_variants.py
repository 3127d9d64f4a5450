"""Every registered variant trains for real on the digits data (contract tests over the registries).

What the trainer records is checked against independent recomputations (tests/conftest.py and the
references below: torch.distributions and hand formulas, sharing nothing with vaebench/objectives/):
the last epoch's test loss is the -ELBO of the trained model on the test split, with the same draws;
each objective variant's training loss is that objective computed by hand on the same batch and draws;
the evaluated -ELBO terms, recon MSE and SSIM are those of the trained model."""

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from tests.conftest import (
    reference_mean,
    reference_nll,
    replay_gaussian_neg_elbo,
    replay_vqvae_neg_elbo,
    skimage_ssim,
)
from vaebench.data import load_dataset
from vaebench.engine.train import train
from vaebench.metrics import evaluate
from vaebench.models import MODELS, build_model
from vaebench.objectives.likelihoods import LIKELIHOODS, Bernoulli
from vaebench.spec.sweep_spec import DatasetConfig, ModelConfig, RunConfig

DIGITS = load_dataset(DatasetConfig(name="digits"))

SMALL_MODEL = {
    "mlp": {"hidden_dim": 32, "latent_dim": 4},
    "cvae": {"hidden_dim": 32, "latent_dim": 4},
    "conv": {"channels": [8, 16], "latent_dim": 4},
    "resnet": {"channels": [8, 16], "latent_dim": 4},
    "ladder": {"latent_dims": [3, 1], "hidden_dims": [32, 16], "latent_dim": 4},
    "vqvae": {"channels": [8, 16], "latent_dim": 4, "num_embeddings": 16},
}


def _cfg(model=None, objective=None, train_kw=None, schedule=None) -> RunConfig:
    return RunConfig.model_validate(
        {
            "dataset": {"name": "digits"},
            "model": model or {"name": "mlp", **SMALL_MODEL["mlp"]},
            "objective": objective or {},
            "schedule": schedule or {},
            "train": {"epochs": 4, "batch_size": 64, **(train_kw or {})},
        }
    )


def _seeded_rng_state(seed: int) -> torch.Tensor:
    """torch's CPU generator state right after `evaluate`'s seeding with `seed`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.get_rng_state()


def _replay_ladder(model, objective, x, batch_size, rng_state) -> tuple[float, float]:
    """A ladder VAE's single-sample -ELBO terms (recon, kl), nats per example, with the draws of
    `rng_state`: one joint sample top-down (one randn_like per layer, top first), each lower
    layer's q the precision-weighted product of the bottom-up Gaussian and p(z_l | z_{l+1}) written
    out, and each layer's KL from torch.distributions. Uses only the model's networks."""
    recon, kl = [], []
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.set_rng_state(rng_state)
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size]
            up = model.bottom_up(xb)
            z_above, kls = None, []
            for level in reversed(range(len(up))):
                mu_hat, logvar_hat = up[level]
                if z_above is None:  # the top layer: q is the bottom-up Gaussian, p = N(0, I)
                    mu_q, var_q = mu_hat, logvar_hat.exp()
                    prior = Normal(0.0, 1.0)
                else:
                    mu_p, logvar_p = model.prior_params(level, z_above)
                    precision = 1 / logvar_hat.exp() + 1 / logvar_p.exp()
                    var_q = 1 / precision
                    mu_q = (mu_hat / logvar_hat.exp() + mu_p / logvar_p.exp()) * var_q
                    prior = Normal(mu_p.double(), logvar_p.double().exp().sqrt())
                z_above = mu_q + torch.randn_like(mu_q) * var_q.sqrt()
                kls.append(kl_divergence(Normal(mu_q.double(), var_q.double().sqrt()), prior).sum(1))
            recon.append(reference_nll(objective, model.decode(z_above), xb))  # z_above is z_1 now
            kl.append(sum(kls))
    return torch.cat(recon).mean().item(), torch.cat(kl).mean().item()


def _reference_neg_elbo_terms(model, cfg, x, y, batch_size, rng_state) -> tuple[float, float]:
    """(recon, kl) of the model's single-sample -ELBO on (x, y), recomputed independently."""
    if cfg.model.name == "ladder":
        return _replay_ladder(model, cfg.objective, x, batch_size, rng_state)
    if cfg.model.name == "vqvae":
        return replay_vqvae_neg_elbo(model, cfg.objective, x, batch_size)
    return replay_gaussian_neg_elbo(model, cfg.objective, x, y, batch_size, rng_state)


def _assert_last_test_loss_is_the_neg_elbo(res, cfg, heldout_calls):
    """The last epoch's recorded test_loss (and its terms) equal the trained model's -ELBO on the
    test split recomputed independently with the trainer's draws (the returned model is the one
    the last held-out loss was computed with)."""
    assert len(heldout_calls) == len(res.history)
    rng_state, _, batch_size = heldout_calls[-1]
    recon, kl = _reference_neg_elbo_terms(res.model.eval(), cfg, DIGITS.x_test, DIGITS.y_test, batch_size, rng_state)
    last = res.history[-1]
    assert last["test_recon"] == pytest.approx(recon, rel=1e-5)
    assert last["test_kl"] == pytest.approx(kl, rel=1e-5)
    assert last["test_loss"] == pytest.approx(recon + kl, rel=1e-5)


def _builtin_families() -> set[str]:
    """vaebench's own model families (installed plugins, e.g. the VampPrior example, add others)."""
    return {n for n in MODELS.names() if MODELS.get(n).build.__module__.startswith("vaebench.")}


def test_every_model_family_has_a_small_config():
    assert set(SMALL_MODEL) == _builtin_families() == {"mlp", "cvae", "conv", "resnet", "ladder", "vqvae"}


@pytest.mark.parametrize("name", sorted(SMALL_MODEL))
def test_every_architecture_lowers_the_loss_on_digits(name, heldout_calls):
    cfg = _cfg({"name": name, **SMALL_MODEL[name]})
    res = train(cfg, DIGITS, seed=0, device="cpu")
    assert res.status == "ok"
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert res.history[-1]["test_loss"] < res.history[0]["test_loss"]
    _assert_last_test_loss_is_the_neg_elbo(res, cfg, heldout_calls)


@pytest.mark.parametrize("spectral_norm", [False, True])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_mlp_norm_options_train(batch_norm, spectral_norm, heldout_calls):
    model = {"name": "mlp", **SMALL_MODEL["mlp"], "batch_norm": batch_norm, "spectral_norm": spectral_norm}
    cfg = _cfg(model, train_kw={"epochs": 2})
    res = train(cfg, DIGITS, seed=0, device="cpu")
    assert res.status == "ok"
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in res.model.modules()) == batch_norm
    assert torch.nn.utils.parametrize.is_parametrized(res.model.decoder[-1]) == spectral_norm
    if spectral_norm:  # every decoder layer's weight is divided by (an estimate of) its largest singular value
        for layer in (m for m in res.model.decoder.modules() if isinstance(m, torch.nn.Linear)):
            assert torch.linalg.matrix_norm(layer.weight.detach(), ord=2).item() == pytest.approx(1.0, abs=0.05)
    if batch_norm:  # the running statistics moved from their initial (0, 1) towards the batches' own
        bn = res.model.encoder[1]
        assert isinstance(bn, torch.nn.BatchNorm1d)
        with torch.no_grad():
            h = res.model.encoder[0](DIGITS.x_train.flatten(1))  # the first layer's pre-activations
        assert torch.allclose(bn.running_mean, h.mean(0), atol=0.1 * h.std(0).max().item())
    _assert_last_test_loss_is_the_neg_elbo(res, cfg, heldout_calls)


@pytest.mark.parametrize("likelihood", LIKELIHOODS.names())
def test_every_likelihood_trains_and_evaluates(likelihood, heldout_calls):
    cfg = _cfg(objective={"likelihood": likelihood})
    res = train(cfg, DIGITS, seed=0, device="cpu")
    assert res.status == "ok"
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    _assert_last_test_loss_is_the_neg_elbo(res, cfg, heldout_calls)
    model, x, y = res.model, DIGITS.x_test, DIGITS.y_test
    m = evaluate(model, DIGITS, cfg, seed=0, names=["elbo", "recon_mse", "ssim"])
    # -ELBO: the elbo metric's draws are the first after evaluate seeds torch with the run seed
    recon, kl = replay_gaussian_neg_elbo(model, cfg.objective, x, y, cfg.eval.batch_size, _seeded_rng_state(0))
    assert m["recon_nll"] == pytest.approx(recon, rel=1e-5) and m["kl"] == pytest.approx(kl, rel=1e-5)
    assert m["neg_elbo"] == pytest.approx(recon + kl, rel=1e-5)
    # the deterministic reconstruction: the likelihood's mean at z = mu(x)
    with torch.no_grad():
        x_hat = reference_mean(cfg.objective, model.decode(model.encode(x)[0]))
    assert m["recon_mse"] == pytest.approx(((x.double() - x_hat) ** 2).mean().item(), rel=1e-5)
    assert m["recon_mse"] < 0.2
    # SSIM: scikit-image's, per image, with the largest Gaussian window that fits 8x8 (radius 3, sigma 3 / 3.5)
    assert m["ssim"] == pytest.approx(skimage_ssim(x, x_hat), abs=1e-6) and m["ssim_sigma"] == pytest.approx(3 / 3.5)


def _by_hand_training_loss(objective, model, x, y, kl_weight) -> torch.Tensor:
    """The training loss of one batch for an ObjectiveConfig, nats per example, written out (the
    draws: encode, then one randn per sample set, as the trainer makes them)."""
    mu, logvar = model.encode(x, y)
    sd = torch.exp(0.5 * logvar)
    if objective.estimator == "iwae":  # -mean_x logmeanexp_j [log p(x|z_j) + log p(z_j) - log q(z_j|x)]
        k = objective.iwae_k
        z = mu + torch.randn(k, *mu.shape) * sd  # (k, B, D)
        log_px = -reference_nll(objective, model.decode(z.reshape(-1, mu.shape[1])), x.repeat(k, 1, 1, 1))
        log_pz = Normal(0.0, 1.0).log_prob(z.double()).sum(-1)
        log_qz = Normal(mu.double(), sd.double()).log_prob(z.double()).sum(-1)
        log_w = log_px.view(k, len(x)) + log_pz - log_qz
        return -(torch.logsumexp(log_w, 0) - math.log(k)).mean()
    z = mu + torch.randn_like(mu) * sd
    recon = reference_nll(objective, model.decode(z, y), x)  # (B,)
    if objective.reduction == "mean":
        recon = recon / x[0].numel()
    kl = kl_divergence(Normal(mu.double(), sd.double()), Normal(0.0, 1.0))  # (B, D)
    fb = objective.free_bits
    if fb is None:
        kl_term = kl.sum(1).mean()
    elif objective.free_bits_mode == "example":  # each example's each dimension at least fb
        kl_term = torch.maximum(kl, torch.tensor(fb)).sum(1).mean()
    else:  # each dimension's batch mean at least fb
        kl_term = torch.maximum(kl.mean(0), torch.tensor(fb)).sum()
    return recon.mean() + kl_weight * kl_term


@pytest.mark.parametrize(
    "objective",
    [
        {"estimator": "iwae", "iwae_k": 4},
        {"reduction": "mean"},
        {"free_bits": 0.2},
        {"free_bits": 0.2, "free_bits_mode": "batch"},
        {"beta": 0.3},
    ],
    ids=["iwae", "mean", "free_bits_example", "free_bits_batch", "beta"],
)
def test_every_objective_variant_trains_on_its_own_loss(objective, monkeypatch, heldout_calls):
    """Each objective variant trains, and every step's loss is that objective computed by hand on
    the step's batch with the step's draws; the epoch's train_loss is their example-weighted mean."""
    from vaebench.objectives import training  # the trainer's losses go through its training_loss

    cfg = _cfg(objective=objective, train_kw={"epochs": 2})
    steps = []  # (recorded loss, by-hand loss, batch size)
    real = training.training_loss

    def spy(obj, model, x, y, kl_weight):
        state = torch.get_rng_state()
        out = real(obj, model, x, y, kl_weight)
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.set_rng_state(state)
            steps.append((out.loss.item(), _by_hand_training_loss(obj, model, x, y, kl_weight).item(), len(x)))
        return out

    monkeypatch.setattr(training, "training_loss", spy)
    res = train(cfg, DIGITS, seed=0, device="cpu")
    assert res.status == "ok", objective
    per_epoch = math.ceil(len(DIGITS.x_train) / 64)
    assert len(steps) == 2 * per_epoch
    for recorded, by_hand, _ in steps:
        assert recorded == pytest.approx(by_hand, rel=1e-5), objective
    for e, record in enumerate(res.history):
        epoch = steps[e * per_epoch : (e + 1) * per_epoch]
        mean = sum(by_hand * b for _, by_hand, b in epoch) / len(DIGITS.x_train)
        assert record["train_loss"] == pytest.approx(mean, rel=1e-5)
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    # the recorded test loss is the plain -ELBO, whatever the training objective
    _assert_last_test_loss_is_the_neg_elbo(res, cfg, heldout_calls)


def test_reported_kl_is_raw_under_free_bits():
    # Free bits raise the training objective's KL term, never the recorded one: with a floor far
    # above the real KL, the logged loss exceeds recon + KL by about the floor.
    res = train(
        _cfg(objective={"free_bits": 5.0, "free_bits_mode": "batch"}, train_kw={"epochs": 1}),
        DIGITS,
        seed=0,
        device="cpu",
    )
    r = res.history[0]
    assert r["train_loss"] > r["train_recon"] + r["train_kl"] + 4 * 5.0 * 0.5


def test_cvae_conditions_on_labels():
    torch.manual_seed(0)
    m = build_model(ModelConfig(name="cvae", **SMALL_MODEL["cvae"]), (1, 8, 8), Bernoulli(), num_classes=10).eval()
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    a = m.sample(5, torch.full((5,), 3), generator=g())
    b = m.sample(5, torch.full((5,), 7), generator=g())
    assert a.shape == (5, 1, 8, 8) and not torch.allclose(a, b)  # same z, other label: other image
    default = m.sample(12, generator=g())
    explicit = m.sample(12, torch.arange(12) % 10, generator=g())
    assert torch.equal(default, explicit)  # default labels cycle 0..9
    x = torch.rand(4, 1, 8, 8)
    with pytest.raises(ValueError, match="needs class labels"):
        m.encode(x)
    mu3, _ = m.encode(x, torch.full((4,), 3))
    mu7, _ = m.encode(x, torch.full((4,), 7))
    assert not torch.allclose(mu3, mu7)


def test_plateau_schedule_cuts_the_learning_rate():
    # an lr so small the training loss stalls: with patience 0 the plateau schedule halves it
    kw = {"lr": 1e-6, "epochs": 6}
    res = train(
        _cfg(train_kw={**kw, "lr_schedule": "plateau", "plateau_patience": 0, "plateau_factor": 0.5}),
        DIGITS,
        seed=0,
        device="cpu",
    )
    lrs = [r["lr"] for r in res.history]
    assert lrs[0] == 1e-6 and lrs[-1] < lrs[0] and all(b in (a, a / 2) for a, b in zip(lrs, lrs[1:]))
    steady = train(_cfg(train_kw=kw), DIGITS, seed=0, device="cpu")
    assert [r["lr"] for r in steady.history] == [1e-6] * 6


def test_weight_decay_shrinks_the_weights():
    norm = lambda res: sum(p.pow(2).sum() for p in res.model.parameters()).item()  # noqa: E731
    free = train(_cfg(train_kw={"epochs": 2}), DIGITS, seed=0, device="cpu")
    decayed = train(_cfg(train_kw={"epochs": 2, "weight_decay": 1.0}), DIGITS, seed=0, device="cpu")
    assert norm(decayed) < 0.5 * norm(free)


def test_parameter_count_is_recorded_per_run(tmp_path, write_spec):
    from typer.testing import CliRunner

    from vaebench.cli.commands import app
    from vaebench.results.rows import load_results

    spec = {
        "study": "arch",
        "dataset": {"name": "digits"},
        "train": {"epochs": 1},
        "seeds": [0],
        "grid": {
            "variant": [
                {"name": "mlp", "model": {"name": "mlp", **SMALL_MODEL["mlp"]}},
                {"name": "conv", "model": {"name": "conv", **SMALL_MODEL["conv"]}},
            ]
        },
    }
    r = CliRunner().invoke(app, ["run", str(write_spec(spec)), "-q", "--results", str(tmp_path)])
    assert r.exit_code == 0, r.output
    df = load_results(tmp_path, "arch").set_index("variant")
    for name in ("mlp", "conv"):
        cfg = ModelConfig(name=name, **SMALL_MODEL[name])
        expected = sum(p.numel() for p in build_model(cfg, (1, 8, 8), Bernoulli()).parameters())
        assert df.loc[name, "n_params"] == expected
    assert df.loc["conv", "param.model.channels"].tolist() == [8, 16]
    # the rows' metrics are those of the saved models: -ELBO = its terms, recon MSE recomputed by hand
    import vaebench

    x = DIGITS.x_test
    for name, row in df.iterrows():
        assert row["status"] == "ok" and row["epochs_completed"] == len(row["history"]) == 1
        assert row["neg_elbo"] == pytest.approx(row["recon_nll"] + row["kl"], rel=1e-6)
        model, config = vaebench.load_model(row["run_id"], results=tmp_path)
        with torch.no_grad():
            x_hat = reference_mean(config.objective, model.decode(model.encode(x)[0]))
        assert row["recon_mse"] == pytest.approx(((x.double() - x_hat) ** 2).mean().item(), rel=1e-5), name
