import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from tests.conftest import DATA_ROOT, needs_mnist
from vaebench.data import Dataset, load_dataset
from vaebench.metrics import METRICS, EvalContext, evaluate
from vaebench.metrics import column_names as C
from vaebench.metrics.recon import ssim_per_image, ssim_window
from vaebench.models import build_model
from vaebench.objectives.gaussian import gaussian_kl
from vaebench.objectives.likelihoods import Bernoulli
from vaebench.spec.sweep_spec import DatasetConfig, ModelConfig, RunConfig


def _direct_ssim(x, y, sigma):
    return np.array(
        [
            np.mean(
                [
                    structural_similarity(
                        a[c], b[c], data_range=1.0, gaussian_weights=True, sigma=sigma, use_sample_covariance=False
                    )
                    for c in range(a.shape[0])
                ]
            )
            for a, b in zip(x, y)
        ]
    )


@pytest.mark.parametrize("shape", [(37, 1, 28, 28), (20, 1, 8, 8), (5, 3, 16, 13), (4101, 1, 11, 11)])
def test_ssim_equals_direct_scikit_image_calls(shape):
    rng = np.random.default_rng(1)
    x = rng.random(shape)
    y = np.clip(x * 0.7 + 0.3 * rng.random(shape), 0, 1)
    ours, sigma, win = ssim_per_image(x, y)
    assert np.allclose(ours, _direct_ssim(x, y, sigma), atol=1e-12, rtol=0)


def _pairs(x, rng):
    """Reference images against distorted versions of them: noise, blur-like averaging, a shift,
    a contrast change, a constant image, and the images themselves (SSIM 1)."""
    noisy = np.clip(x + 0.2 * rng.standard_normal(x.shape), 0, 1)
    smooth = (x + np.roll(x, 1, -1) + np.roll(x, 1, -2)) / 3
    shifted = np.roll(x, 2, -1)
    contrast = 0.5 * x + 0.25
    const = np.full_like(x, 0.3)
    return [(x, noisy), (x, smooth), (x, shifted), (x, contrast), (x, const), (x, x), (const, const)]


@pytest.mark.parametrize(
    "shape",
    [
        (200, 1, 28, 28),
        (60, 1, 8, 8),
        (30, 3, 16, 13),
        (40, 1, 10, 12),
        (25, 2, 12, 11),
        (30, 1, 3, 5),
        (20, 1, 2, 2),
        (300, 1, 11, 11),
    ],
)
def test_torch_ssim_equals_scikit_image_on_random_images(shape):
    """The torch SSIM against scikit-image's structural_similarity, called per image and channel
    with the pinned settings (scikit-image is the independent reference), on images of every
    size class: Wang's 11x11 window, the reduced windows of small images, down to 1x1."""
    rng = np.random.default_rng(sum(shape))
    x = rng.random(shape) ** 2
    for a, b in _pairs(x, rng):
        ours, sigma, win = ssim_per_image(a, b)
        assert (sigma, win) == ssim_window(*shape[-2:])
        assert np.allclose(ours, _direct_ssim(a, b, sigma), atol=1e-10, rtol=0)


def test_torch_ssim_equals_scikit_image_on_real_digits_and_reconstructions():
    data = load_dataset(DatasetConfig(name="digits"))
    x = data.x_test.numpy().astype(np.float64)
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden_dim=16, latent_dim=4), (1, 8, 8), Bernoulli())
    recon = model.reconstruct(data.x_test).numpy().astype(np.float64)
    rng = np.random.default_rng(0)
    for a, b in [(x, recon), *_pairs(x, rng)]:
        ours, sigma, _ = ssim_per_image(a, b)
        assert np.allclose(ours, _direct_ssim(a, b, sigma), atol=1e-10, rtol=0)
    # torch tensors (float32, as the metric passes them) give the same values as float64 arrays
    ours_t, _, _ = ssim_per_image(data.x_test, model.reconstruct(data.x_test))
    assert np.allclose(ours_t, ssim_per_image(x, recon)[0], atol=1e-12, rtol=0)


@needs_mnist
@pytest.mark.mnist
def test_torch_ssim_equals_scikit_image_on_mnist():
    data = load_dataset(DatasetConfig(name="mnist"), DATA_ROOT, download=False)
    x = data.x_test[:1000].numpy().astype(np.float64)
    rng = np.random.default_rng(1)
    for a, b in _pairs(x, rng)[:4]:
        ours, sigma, win = ssim_per_image(a, b)
        assert (sigma, win) == (1.5, 11)
        assert np.allclose(ours, _direct_ssim(a, b, sigma), atol=1e-10, rtol=0)


def test_evaluate_decodes_the_posterior_means_once():
    """Reconstruction MSE, SSIM, per-class MSE and NLL share one decoder pass over mu."""
    torch.manual_seed(0)
    data = load_dataset(DatasetConfig(name="digits"))
    cfg = RunConfig.model_validate({"dataset": {"name": "digits"}, "eval": {"batch_size": 100}})
    model = build_model(ModelConfig(hidden_dim=16, latent_dim=4), (1, 8, 8), Bernoulli())
    decoded = []
    decode = model.decode
    model.decode = lambda z, y=None: (decoded.append(len(z)), decode(z, y))[1]
    out = evaluate(model, data, cfg, seed=0, names=["recon_mse", "ssim", "per_class"])
    del model.decode
    assert sum(decoded) == len(data.x_test)
    x = data.x_test
    with torch.no_grad():
        logits = model.decode(model.encode(x)[0])
    nll = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    assert out[C.RECON_MSE] == pytest.approx(((x - torch.sigmoid(logits)) ** 2).mean().item(), rel=1e-6)
    y = data.y_test
    assert out[C.RECON_NLL_PER_CLASS][3] == pytest.approx(nll[y == 3].mean().item(), rel=1e-5)


def test_ssim_window_settings():
    assert ssim_window(28, 28) == (1.5, 11)  # Wang et al. 2004
    assert ssim_window(8, 8) == (3 / 3.5, 7)
    x = np.random.default_rng(0).random((3, 1, 28, 28))
    assert np.allclose(ssim_per_image(x, x)[0], 1.0)


@pytest.mark.parametrize("shape", [(12, 3, 32, 32), (5, 3, 64, 64), (6, 3, 11, 13)])
def test_rgb_ssim_equals_scikit_image_with_channel_axis(shape):
    """RGB batches against scikit-image's own multichannel SSIM (one call per image, channel_axis
    0 on (C, H, W) and -1 on (H, W, C)), Wang et al.'s settings: the independent reference. Each
    distortion hits the channels differently, so a gray conversion or one channel standing for
    all would disagree (checked at the end)."""
    rng = np.random.default_rng(sum(shape))
    x = rng.random(shape) ** 2
    y = x.copy()
    y[:, 0] = np.clip(y[:, 0] + 0.3 * rng.standard_normal(y[:, 0].shape), 0, 1)  # noisy red
    y[:, 1] = (y[:, 1] + np.roll(y[:, 1], 1, -1)) / 2  # blurred green
    y[:, 2] = 0.5 * y[:, 2] + 0.2  # blue at lower contrast
    settings = dict(data_range=1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    for a, b in [(x, y), (y, x), (x, np.roll(x, 1, 1)), (x, x)]:
        ours, sigma, win = ssim_per_image(a, b)
        assert (sigma, win) == (1.5, 11)  # Wang's window fits from 11 px
        chw = np.array([structural_similarity(p, q, channel_axis=0, **settings) for p, q in zip(a, b)])
        hwc = np.array(
            [
                structural_similarity(p.transpose(1, 2, 0), q.transpose(1, 2, 0), channel_axis=-1, **settings)
                for p, q in zip(a, b)
            ]
        )
        assert np.allclose(ours, chw, atol=1e-12, rtol=0) and np.allclose(ours, hwc, atol=1e-12, rtol=0)
        ours_t, _, _ = ssim_per_image(torch.from_numpy(a).float(), torch.from_numpy(b).float())  # tensors, float32
        assert np.allclose(ours_t, chw, atol=1e-6, rtol=0)
    ours, _, _ = ssim_per_image(x, y)
    assert ours.max() < 0.95  # a real distortion
    gray = ssim_per_image(x.mean(1, keepdims=True), y.mean(1, keepdims=True))[0]
    red_only = ssim_per_image(x[:, :1], y[:, :1])[0]
    assert np.abs(ours - gray).mean() > 0.01 and np.abs(ours - red_only).mean() > 0.01


class _FixedEncoder(torch.nn.Module):
    """A 'model' whose posterior is given: mu and logvar per test image; decoder returns zeros."""

    def __init__(self, mu, logvar, shape):
        super().__init__()
        self.mu, self.logvar, self.shape = mu, logvar, shape
        self.likelihood = Bernoulli()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.i = 0

    def encode(self, x, y=None):
        n = len(x)
        out = self.mu[self.i : self.i + n], self.logvar[self.i : self.i + n]
        self.i = (self.i + n) % len(self.mu)
        return out

    def decode(self, z, y=None):
        return torch.zeros(len(z), *self.shape)

    @staticmethod
    def reparameterize(mu, logvar):
        return mu

    @staticmethod
    def kl(mu, logvar, z):
        return gaussian_kl(mu, logvar)


def test_active_units_and_kl_per_dim():
    n = 1000
    g = torch.Generator().manual_seed(0)
    # dim 0: variance of mu ~1 (active); dim 1: ~0.0001 (inactive); dim 2: ~0.04 (active)
    mu = torch.randn(n, 3, generator=g) * torch.tensor([1.0, 0.01, 0.2])
    logvar = torch.randn(n, 3, generator=g) * 0.1
    model = _FixedEncoder(mu, logvar, (1, 4, 4))
    ctx_cfg = RunConfig()
    data = Dataset(
        "fake",
        torch.rand(n, 1, 4, 4),
        torch.zeros(n, dtype=torch.long),
        torch.rand(n, 1, 4, 4),
        torch.zeros(n, dtype=torch.long),
    )
    ctx = EvalContext(model, data, ctx_cfg)
    out = {**METRICS.get("latent")(ctx), **METRICS.get("kl_per_dim")(ctx)}
    assert out[C.ACTIVE_UNITS] == 2 and out[C.ACTIVE_UNITS_THRESHOLD] == 0.01
    expected = gaussian_kl(mu, logvar).mean(0)
    assert np.allclose(out[C.KL_PER_DIM], expected.numpy())


def test_evaluate_on_a_real_model_is_consistent_and_deterministic():
    torch.manual_seed(0)
    cfg = RunConfig()
    model = build_model(ModelConfig(hidden_dim=16, latent_dim=4), (1, 8, 8), Bernoulli())
    data = load_dataset(DatasetConfig(name="digits"))
    x = data.x_test
    a = evaluate(model, data, cfg, seed=3)
    b = evaluate(model, data, cfg, seed=3)
    for k in (C.RECON_MSE, C.KL, C.NEG_ELBO, C.SSIM, C.FID, C.FID_RECON):
        assert a[k] == b[k]
    assert a[C.NEG_ELBO] == pytest.approx(a[C.RECON_NLL] + a[C.KL], rel=1e-6)
    assert sum(a[C.KL_PER_DIM]) == pytest.approx(a[C.KL], rel=1e-5)
    mse = ((x - model.reconstruct(x)) ** 2).mean().item()
    assert a[C.RECON_MSE] == pytest.approx(mse, rel=1e-6)
    ssim_direct = _direct_ssim(x.numpy(), model.reconstruct(x).numpy(), a[C.SSIM_SIGMA]).mean()
    assert a[C.SSIM] == pytest.approx(ssim_direct, abs=1e-6)  # direct call on float32 input runs in float32
    assert all(a[f"eval_seconds_{name}"] >= 0 for name in METRICS.names())


def test_per_class_reconstruction_matches_a_direct_groupby():
    torch.manual_seed(0)
    data = load_dataset(DatasetConfig(name="digits"))
    cfg = RunConfig.model_validate({"dataset": {"name": "digits"}, "eval": {"batch_size": 97}})
    model = build_model(ModelConfig(hidden_dim=16, latent_dim=4), (1, 8, 8), Bernoulli())
    out = evaluate(model, data, cfg, seed=0, names=["per_class"])
    x, y = data.x_test, data.y_test.numpy()
    with torch.no_grad():
        mu, _ = model.encode(x)
        logits = model.decode(mu)
    mse = ((x - torch.sigmoid(logits)) ** 2).flatten(1).mean(1).numpy()
    nll = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1).numpy()
    for c in range(10):
        assert out[C.RECON_MSE_PER_CLASS][c] == pytest.approx(mse[y == c].mean(), rel=1e-5)
        assert out[C.RECON_NLL_PER_CLASS][c] == pytest.approx(nll[y == c].mean(), rel=1e-5)
