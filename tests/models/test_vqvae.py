"""The VQ-VAE family (models/vqvae.py) and what it needs from the harness: nearest-neighbour
quantization, the straight-through gradient, the codebook and commitment losses, the EMA codebook,
the constant KL n_positions * log K, the codebook metrics, training and evaluation on digits with
the metrics that do not apply skipped with their reasons, and the spec's checks of its options."""

import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError

import vaebench
from tests.conftest import (
    nearest_codes,
    plain_uint8,
    reference_nll,
    replay_vqvae_neg_elbo,
    scipy_fid,
    skimage_ssim,
)
from vaebench.data import Dataset, load_dataset
from vaebench.engine.train import train
from vaebench.metrics import (
    METRICS,
    METRICS_SKIPPED,
    Column,
    EvalContext,
    MetricNotApplicable,
    evaluate,
    register_metric,
    unregister_metric,
)
from vaebench.metrics import column_names as C
from vaebench.metrics.codebook import code_counts, perplexity, used_fraction
from vaebench.metrics.fid_features import EXTRACTORS
from vaebench.models import build_model
from vaebench.models.vqvae import VQVAE, VectorQuantizer
from vaebench.objectives.likelihoods import Bernoulli
from vaebench.results.artifacts import figure_arrays
from vaebench.spec.sweep_spec import DatasetConfig, ModelConfig, RunConfig

DIGITS = load_dataset(DatasetConfig(name="digits"))
SMALL = {"name": "vqvae", "channels": [16], "latent_dim": 8, "num_embeddings": 32}  # 8x8 digits: a 4x4 grid


def _model(**kw) -> VQVAE:
    torch.manual_seed(0)
    return build_model(ModelConfig(**{**SMALL, **kw}), (1, 8, 8), Bernoulli())


def _cfg(model=None, **sections) -> RunConfig:
    return RunConfig.model_validate(
        {
            "dataset": {"name": "digits"},
            "model": {**SMALL, **(model or {})},
            "train": {"epochs": 2, "batch_size": 64},
            **sections,
        }
    )


# ---- quantization -----------------------------------------------------------------------------------


def test_quantization_picks_the_nearest_code_vector():
    torch.manual_seed(0)
    vq = VectorQuantizer(num_embeddings=20, embedding_dim=5)
    z_e = torch.randn(3, 5, 4, 6)  # (B, D, h, w)
    q = vq(z_e)
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 5).double()
    brute = torch.cdist(flat, vq.embedding.detach().double()).argmin(1)  # float64 reference
    assert q.indices.shape == (3, 4, 6) and q.indices.dtype == torch.long
    assert torch.equal(q.indices.flatten(), brute)
    # position (b, i, j) holds the code of z_e[b, :, i, j], and the code vector itself
    assert torch.equal(q.codes[2, :, 1, 5], vq.embedding[q.indices[2, 1, 5]].detach())
    assert torch.allclose(q.z_q, q.codes)
    # every other code is at least as far from each position
    d = ((flat[:, None, :] - vq.embedding.detach().double()[None]) ** 2).sum(-1)
    assert (d.gather(1, q.indices.flatten()[:, None]) <= d + 1e-12).all()


def test_the_straight_through_gradient_reaches_the_encoder():
    model = _model()
    x = DIGITS.x_test[:6]
    z_e = model.encoder(x).detach().requires_grad_()
    q = model.quantizer(z_e)
    z_q = q.z_q
    z_q.retain_grad()
    model.likelihood.nll(model.decoder(z_q), x).sum().backward()
    assert z_q.grad.abs().sum() > 0
    assert torch.equal(z_e.grad, z_q.grad)  # d z_q / d z_e = identity
    # through the whole model: the reconstruction term trains the encoder, not the codebook
    model.zero_grad()
    model.elbo_terms(x).recon.sum().backward()
    assert model.encoder[0][0].weight.grad.abs().sum() > 0
    assert model.quantizer.embedding.grad is None or not model.quantizer.embedding.grad.any()


def test_codebook_and_commitment_losses_against_a_direct_computation():
    model = _model(commitment_cost=0.7)
    x = DIGITS.x_test[:5]
    z_e = model.encoder(x).detach().requires_grad_()
    q = model.quantizer(z_e)
    e = model.quantizer.embedding
    codes = e.detach()[q.indices].permute(0, 3, 1, 2)  # (B, D, h, w)
    per_example = ((z_e.detach() - codes) ** 2).sum(dim=(1, 2, 3))  # summed over positions and dims
    assert torch.allclose(q.codebook_loss, per_example) and torch.allclose(q.commitment_loss, per_example)
    aux = (q.codebook_loss + 0.7 * q.commitment_loss).mean()  # what elbo_terms adds: mean over the batch
    aux.backward()
    # the commitment loss pulls z_e towards sg[e], the codebook loss e towards sg[z_e]
    assert torch.allclose(z_e.grad, 0.7 * 2 * (z_e.detach() - codes) / 5, atol=1e-6)
    expected = torch.zeros_like(e).index_add_(
        0, q.indices.flatten(), (2 * (codes - z_e.detach()) / 5).permute(0, 2, 3, 1).reshape(-1, 8)
    )
    assert torch.allclose(e.grad, expected, atol=1e-6)
    with torch.no_grad():
        t = model.elbo_terms(x)
    assert t.aux.item() == pytest.approx(aux.item(), rel=1e-5)


def test_ema_codebook_update_by_hand():
    vq = VectorQuantizer(num_embeddings=3, embedding_dim=2, ema=True, decay=0.9, epsilon=0.01)
    assert not list(vq.parameters())  # the EMA codebook is not trained by the optimizer
    with torch.no_grad():
        vq.embedding.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]))
    # batch 1: positions (1, 1), (-1, 1), (9, 1) -> codes 0, 0, 1; code 2 unused
    z1 = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [9.0, 1.0]]).T.reshape(1, 2, 1, 3)
    q = vq(z1)
    assert q.indices.flatten().tolist() == [0, 0, 1]
    assert torch.equal(q.codes, torch.tensor([[0.0, 0.0], [0.0, 0.0], [10.0, 0.0]]).T.reshape(1, 2, 1, 3))
    assert not q.codebook_loss.any()  # no codebook loss with EMA
    # N = 0.1 * (2, 1, 0), m = 0.1 * ((0, 2), (9, 1), (0, 0)); debiased by 1 - 0.9 = 0.1
    size, total, n = [2.0, 1.0, 0.0], [[0.0, 2.0], [9.0, 1.0], [0.0, 0.0]], 3.0
    smoothed = [(s + 0.01) / (n + 3 * 0.01) * n for s in size]
    expected = [[t / s for t in row] for row, s in zip(total, smoothed)]
    assert torch.allclose(vq.embedding, torch.tensor(expected), atol=1e-6)
    assert not vq.embedding[2].any()  # the unused code moved to the origin (as in Sonnet)
    # batch 2, quantized with the updated codebook
    e1 = vq.embedding.clone()
    z2 = torch.tensor([[0.0, 3.0], [8.0, 0.0]]).T.reshape(1, 2, 1, 2)
    q2 = vq(z2)
    idx2 = [int(((e1 - p) ** 2).sum(1).argmin()) for p in torch.tensor([[0.0, 3.0], [8.0, 0.0]])]
    assert q2.indices.flatten().tolist() == idx2 == [0, 1]
    n1, n2 = [0.1 * c for c in (2, 1, 0)], [0.1 * c for c in (1, 1, 0)]
    N = [0.9 * a + b for a, b in zip(n1, n2)]
    m1 = [[0.1 * v for v in row] for row in ([0.0, 2.0], [9.0, 1.0], [0.0, 0.0])]
    s2 = ([0.0, 3.0], [8.0, 0.0], [0.0, 0.0])
    M = [[0.9 * a + 0.1 * b for a, b in zip(r1, r2)] for r1, r2 in zip(m1, s2)]
    debias = 1 - 0.9**2
    size = [v / debias for v in N]
    n = sum(size)
    smoothed = [(s + 0.01) / (n + 3 * 0.01) * n for s in size]
    expected = [[v / debias / s for v in row] for row, s in zip(M, smoothed)]
    assert torch.allclose(vq.embedding, torch.tensor(expected), atol=1e-6)
    # evaluation mode: no update
    vq.eval()
    before = vq.embedding.clone()
    vq(z1)
    assert torch.equal(vq.embedding, before) and int(vq.ema_updates) == 2


def test_kl_is_n_positions_log_k_and_the_interface_around_it():
    model = _model().eval()
    assert model.grid == (4, 4) and model.latent_dim == 16 * 8
    x = DIGITS.x_test[:7]
    with torch.no_grad():
        t = model.elbo_terms(x)
        mu, logvar = model.encode(x)
    assert t.kl.shape == (7, 1) and torch.allclose(t.kl, torch.full((7, 1), 16 * math.log(32)))
    assert torch.allclose(model.kl(mu, logvar, mu), t.kl)
    assert torch.allclose(model.log_prior(mu), torch.full((7,), -16 * math.log(32)))
    # 28x28 with the default two stages: a 7x7 grid
    m28 = build_model(ModelConfig(name="vqvae", latent_dim=4, num_embeddings=64), (1, 28, 28), Bernoulli())
    assert m28.grid == (7, 7) and m28.elbo_terms(torch.rand(2, 1, 28, 28)).kl[0, 0].item() == pytest.approx(
        49 * math.log(64), rel=1e-6
    )
    # encode: a point mass at the quantized grid, so decode(mu) is the reconstruction
    assert torch.all(logvar == float("-inf")) and torch.equal(model.reparameterize(mu, logvar), mu)
    codes = model.quantize(x).codes
    assert torch.equal(mu, codes.flatten(1))
    with torch.no_grad():
        assert torch.allclose(model.reconstruct(x), torch.sigmoid(model.decoder(codes)))
        assert torch.allclose(model.likelihood.mean(t.params), model.reconstruct(x), atol=1e-6)
        # every importance weight is the ELBO
        w = model.importance_log_weights(x, None, 5, (mu, logvar))
    assert w.shape == (5, 7) and torch.allclose(w, -(t.recon + t.kl[:, 0]).expand(5, -1), atol=1e-4)
    with pytest.raises(NotImplementedError, match="can_sample"):
        model.sample(2)


# ---- codebook metrics --------------------------------------------------------------------------------


def _numpy_perplexity(indices: np.ndarray, k: int) -> float:
    p = np.bincount(indices.ravel(), minlength=k) / indices.size
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def test_perplexity_and_codes_used_against_numpy():
    k = 16
    uniform = torch.arange(k).repeat(5)  # every code 5 times
    assert perplexity(code_counts(uniform, k)) == pytest.approx(k)
    assert used_fraction(code_counts(uniform, k)) == 1.0
    one = torch.full((3, 4, 4), 7)
    assert perplexity(code_counts(one, k)) == pytest.approx(1.0)
    assert used_fraction(code_counts(one, k)) == 1 / k
    rng = np.random.default_rng(0)
    idx = rng.choice(12, size=(50, 4, 4), p=np.arange(1, 13) / 78)  # codes 12..15 never used
    counts = code_counts(torch.from_numpy(idx), k)
    assert perplexity(counts) == pytest.approx(_numpy_perplexity(idx, k), rel=1e-12)
    assert used_fraction(counts) == len(np.unique(idx)) / k == 12 / 16


class _KnownCodes(torch.nn.Module):
    """A stub with a codebook: hands out precomputed code grids, batch after batch."""

    def __init__(self, indices, k):
        super().__init__()
        self.indices, self.num_embeddings, self.i = indices, k, 0
        self.likelihood = Bernoulli()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def code_indices(self, x, y=None):
        out = self.indices[self.i : self.i + len(x)]
        self.i += len(x)
        return out


def test_codebook_metric_on_known_code_assignments_and_not_applicable_without_a_codebook():
    n, k = 300, 10
    idx = torch.from_numpy(np.random.default_rng(1).integers(0, 6, size=(n, 3, 3)))
    data = Dataset(
        "fake",
        torch.rand(n, 1, 4, 4),
        torch.zeros(n, dtype=torch.long),
        torch.rand(n, 1, 4, 4),
        torch.zeros(n, dtype=torch.long),
    )
    cfg = RunConfig.model_validate({"eval": {"batch_size": 64}})
    out = METRICS.get("codebook")(EvalContext(_KnownCodes(idx, k), data, cfg))
    assert out[C.CODEBOOK_PERPLEXITY] == pytest.approx(_numpy_perplexity(idx.numpy(), k), rel=1e-12)
    assert out[C.CODES_USED_FRACTION] == 0.6
    conv = build_model(ModelConfig(name="conv", latent_dim=2, channels=[4]), (1, 4, 4), Bernoulli())
    with pytest.raises(MetricNotApplicable, match="no codebook"):
        METRICS.get("codebook")(EvalContext(conv, data, cfg))


def test_a_metric_can_skip_part_of_its_columns_with_a_reason():
    @register_metric("half_applies", columns=[Column("half_a", "float"), Column("half_b", "float")])
    def half_applies(ctx):
        ctx.skip("b", "b does not apply here")
        return {"half_a": 1.0}

    try:
        model = _model()
        out = evaluate(model, DIGITS, _cfg(), seed=0, names=["half_applies", "nll"])
    finally:
        unregister_metric("half_applies")
    assert out["half_a"] == 1.0 and out["half_b"] is None
    assert out[METRICS_SKIPPED][0] == "half_applies (b): b does not apply here"
    assert out[METRICS_SKIPPED][1].startswith("nll: VQVAE's posterior is deterministic")


# ---- training, evaluation, the spec ---------------------------------------------------------------------


def _by_hand_step_loss(model, objective, x, kl_weight) -> float:
    """One training step's loss written out, nats per example: -log p(x | nearest codes) + w * n_positions
    * log K + the mean over the batch of ||z_e - e||^2 (codebook; none with EMA) + beta ||z_e - e||^2
    (commitment), the squared distances summed over positions and dimensions."""
    z_e, idx, codes = nearest_codes(model, x)
    recon = reference_nll(objective, model.decoder(codes), x).mean()
    sq = ((z_e.double() - codes.double()) ** 2).sum(dim=(1, 2, 3))
    codebook = 0 if model.quantizer.ema else sq
    rate = idx[0].numel() * math.log(model.num_embeddings)
    return (recon + kl_weight * rate + (codebook + model.commitment_cost * sq).mean()).item()


@pytest.mark.parametrize("ema", [False, True])
def test_two_epochs_on_digits_lower_the_loss(ema, monkeypatch, heldout_calls):
    import copy

    from vaebench.objectives import training  # the trainer's losses go through its training_loss

    cfg = _cfg({"ema": ema})
    steps = []  # (recorded loss, by-hand loss) of every training step
    real = training.training_loss

    def spy(objective, model, x, y, kl_weight):
        # the by-hand loss on a copy in the same (training) mode: its BatchNorm and EMA updates stay there
        with torch.no_grad():
            by_hand = _by_hand_step_loss(copy.deepcopy(model), objective, x, kl_weight)
        out = real(objective, model, x, y, kl_weight)
        steps.append((out.loss.item(), by_hand))
        return out

    monkeypatch.setattr(training, "training_loss", spy)
    res = train(cfg, DIGITS, seed=0, device="cpu")
    assert res.status == "ok" and len(res.history) == 2
    first, last = res.history
    assert last["train_loss"] < first["train_loss"] and last["test_loss"] < first["test_loss"]
    assert first["test_kl"] == pytest.approx(16 * math.log(32), rel=1e-6)
    params = dict(res.model.named_parameters())
    assert ("quantizer.embedding" in params) != ema
    # every step's loss is the VQ-VAE objective by hand: -ELBO + codebook + commitment terms
    assert len(steps) == 2 * math.ceil(len(DIGITS.x_train) / 64)
    for recorded, by_hand in steps:
        assert recorded == pytest.approx(by_hand, rel=1e-5)
    assert first["train_loss"] > first["train_recon"] + first["train_kl"] + 1e-3  # the aux terms are in it
    # every epoch's test loss is the -ELBO of that epoch's weights (deterministic: no draws)
    model = build_model(cfg.model, DIGITS.shape, Bernoulli()).eval()
    for record, (_, weights, batch_size) in zip(res.history, heldout_calls, strict=True):
        model.load_state_dict(weights)
        recon, kl = replay_vqvae_neg_elbo(model, cfg.objective, DIGITS.x_test, batch_size)
        assert record["test_recon"] == pytest.approx(recon, rel=1e-5)
        assert record["test_kl"] == pytest.approx(kl, rel=1e-6)
        assert record["test_loss"] == pytest.approx(recon + kl, rel=1e-5)


@pytest.fixture(scope="module")
def trained():
    cfg = _cfg(eval={"fid_samples": 300, "nll_k": 4, "nll_examples": 50})
    return train(cfg, DIGITS, seed=0, device="cpu").model, cfg


def test_evaluate_fills_reconstruction_and_codebook_columns_and_skips_the_rest_with_reasons(trained):
    model, cfg = trained
    out = evaluate(model, DIGITS, cfg, seed=0)
    assert out[C.FID_EXTRACTOR] is not None
    for col in (C.FID, C.KID, C.IS, C.IS_STD, C.SAMPLE_CLASS_FREQ, C.ACTIVE_UNITS, C.NLL_IS, C.KL_PER_DIM, C.MIG):
        assert out[col] is None, col
    skipped = {s.split(":")[0]: s for s in out[METRICS_SKIPPED]}
    assert {"fid (samples)", "latent", "nll", "kl_per_dim", "disentanglement"} <= set(skipped), skipped
    assert not {"fid", "codebook", "recon_mse", "ssim", "per_class", "elbo"} & set(skipped), skipped
    assert "can_sample = False" in skipped["fid (samples)"]
    assert "gaussian_posterior = False" in skipped["latent"]
    assert "deterministic" in skipped["nll"]
    # the values, recomputed from the test split's code assignments found by brute force
    x, y = DIGITS.x_test, DIGITS.y_test
    with torch.no_grad():
        _, idx, codes = nearest_codes(model, x)
        x_hat = torch.sigmoid(model.decoder(codes)).double()
    assert out[C.CODEBOOK_PERPLEXITY] == pytest.approx(_numpy_perplexity(idx.numpy(), 32), rel=1e-9)
    assert out[C.CODES_USED_FRACTION] == len(np.unique(idx.numpy())) / 32
    assert 1 < out[C.CODEBOOK_PERPLEXITY] < 32  # neither collapsed to one code nor uniform
    recon, kl = replay_vqvae_neg_elbo(model, cfg.objective, x, cfg.eval.batch_size)
    assert out[C.KL] == pytest.approx(kl, rel=1e-6) and kl == pytest.approx(16 * math.log(32))
    assert out[C.RECON_NLL] == pytest.approx(recon, rel=1e-5)
    assert out[C.NEG_ELBO] == pytest.approx(recon + kl, rel=1e-5)
    per_pixel = ((x.double() - x_hat) ** 2).flatten(1).mean(1).numpy()
    assert out[C.RECON_MSE] == pytest.approx(per_pixel.mean(), rel=1e-5)
    by_class = [per_pixel[y.numpy() == k].mean() for k in range(10)]
    assert out[C.RECON_MSE_PER_CLASS] == pytest.approx(by_class, rel=1e-5)
    assert out[C.SSIM] == pytest.approx(skimage_ssim(x, x_hat), abs=1e-6)
    extractor = EXTRACTORS.get("classifier")(DIGITS, "cpu")  # FID of reconstructions of the first 300
    feats = lambda images: extractor.features(plain_uint8(images[:300]))["penultimate"].numpy()  # noqa: E731
    assert out[C.FID_RECON] == pytest.approx(scipy_fid(feats(x_hat.float()), feats(x)), rel=1e-4)
    # the figure arrays: no prior samples, the rest as for any model
    arrays = figure_arrays(model, DIGITS, seed=0)
    assert "samples" not in arrays and "latent_mu" not in arrays
    assert arrays["reconstructions"].shape == (8, 1, 8, 8) and arrays["interpolation"].shape == (10, 1, 8, 8)


def test_a_vqvae_sweep_runs_reloads_and_reports(tmp_path):
    spec = {
        "study": "vq-tiny",
        "dataset": {"name": "digits"},
        "model": SMALL,
        "train": {"epochs": 1, "batch_size": 128},
        "eval": {"fid_samples": 200},
        "grid": {"model.ema": [False, True]},
        "seeds": [0],
    }
    results = tmp_path / "results"
    status = vaebench.run(spec, workers=1, results=results)
    assert status.done == status.total == 2
    df = vaebench.load_results("vq-tiny", results=results)
    assert (df["status"] == "ok").all() and df["fid"].isna().all() and df["fid_recon"].notna().all()
    assert df["codebook_perplexity"].notna().all() and df["nll_is"].isna().all()
    row = df[df["param.model.ema"]].iloc[0]
    model, config = vaebench.load_model(row["run_id"], results=results)  # the EMA buffers come back too
    out = vaebench.evaluate(model, config=config, seed=int(row["seed"]))
    assert out["recon_mse"] == row["recon_mse"] and out["codebook_perplexity"] == row["codebook_perplexity"]
    with torch.no_grad():
        _, idx, _ = nearest_codes(model, DIGITS.x_test)  # the reloaded model's code assignments, counted
    assert row["codebook_perplexity"] == pytest.approx(_numpy_perplexity(idx.numpy(), 32), rel=1e-9)
    assert row["codes_used_fraction"] == len(np.unique(idx.numpy())) / 32
    assert row["neg_elbo"] == pytest.approx(row["recon_nll"] + row["kl"], rel=1e-6)
    assert row["kl"] == pytest.approx(16 * math.log(32), rel=1e-6)
    paths = vaebench.report("vq-tiny", results=results, out=tmp_path / "reports", fmt="md")
    text = "\n".join(p.read_text() for p in paths if p.suffix == ".md")
    assert "Codebook perplexity" in text and "images" in text  # the images figure drawn without samples


def test_the_spec_validates_vqvae_options():
    with pytest.raises(ValidationError, match="Did you mean 'num_embeddings'"):
        ModelConfig(name="vqvae", num_embedding=64)
    with pytest.raises(ValidationError, match="Did you mean 'commitment_cost'"):
        ModelConfig(name="vqvae", commitment_costs=1.0)
    with pytest.raises(ValidationError, match="latent_dim"):
        ModelConfig(name="vqvae", embedding_dim=64)  # D is latent_dim: there is no second field to disagree
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        ModelConfig(name="vqvae", commitment_cost=-0.1)
    with pytest.raises(ValidationError, match="less than 1"):
        ModelConfig(name="vqvae", decay=1.0)
    with pytest.raises(ValidationError, match="channels must be >= 1"):
        ModelConfig(name="vqvae", channels=[16, 0])
    with pytest.raises(ValidationError, match="does not decompose by dimension"):
        RunConfig.model_validate({"model": {"name": "vqvae"}, "objective": {"free_bits": 0.5}})
    cfg = ModelConfig(name="vqvae", num_embeddings=512, commitment_cost=0.25)  # defaults: not in run ids
    assert cfg.model_dump(exclude_defaults=True) == {"name": "vqvae"}
    assert (cfg.channels, cfg.num_embeddings, cfg.commitment_cost, cfg.ema, cfg.decay) == (
        [32, 64],
        512,
        0.25,
        False,
        0.99,
    )


def test_the_vqvae_sweep_is_codebook_size_by_commitment_cost():
    from tests.conftest import REPO
    from vaebench.spec.sweep_spec import load_spec

    spec = load_spec(REPO / "sweeps" / "vqvae.yaml")
    assert spec.grid == {"model.num_embeddings": [64, 512], "model.commitment_cost": [0.25, 1.0]}
    assert len(spec.runs()) == 12 and spec.seeds == [0, 1, 2]
    assert spec.dataset.name == "mnist" and spec.objective.likelihood == "bernoulli"
    model = build_model(spec.runs()[0].config.model, (1, 28, 28), Bernoulli())
    assert isinstance(model, VQVAE) and model.grid == (7, 7) and model.embedding_dim == 16
