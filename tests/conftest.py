import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("VAEBENCH_DATA_ROOT") or REPO.parent / "shared" / "data")
HAS_MNIST = (DATA_ROOT / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()
needs_mnist = pytest.mark.skipif(
    not HAS_MNIST, reason=f"MNIST raw files not found under {DATA_ROOT} (set VAEBENCH_DATA_ROOT)"
)

# A tiny but real sweep on the digits data: 2 cells x 2 seeds, a few seconds in all.
TINY_SPEC = {
    "study": "tiny",
    "dataset": {"name": "digits"},
    "model": {"name": "mlp", "hidden_dim": 32, "latent_dim": 4},
    "train": {"epochs": 2, "batch_size": 128},
    "grid": {"objective.beta": [0.5, 2.0]},
    "seeds": [0, 1],
}


@pytest.fixture
def write_spec(tmp_path):
    """write_spec(dict or text, name) -> path of a YAML spec file in tmp_path."""

    def _write(content, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False))
        return path

    return _write


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tests train tiny models: one thread each avoids oversubscribing a shared 2-core machine
    (two busy threads competing with other processes made steps 50x slower in our measurements)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True, scope="session")
def _one_worker_by_default():
    """`vaebench run` in tests runs one in-process worker unless a test asks for --workers N."""
    old = os.environ.get("VAEBENCH_WORKERS")
    os.environ["VAEBENCH_WORKERS"] = "1"
    yield
    if old is None:
        os.environ.pop("VAEBENCH_WORKERS", None)
    else:
        os.environ["VAEBENCH_WORKERS"] = old


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Classifiers trained for FID go to a per-session cache, not the user's ~/.cache."""
    old = os.environ.get("VAEBENCH_CACHE")
    os.environ["VAEBENCH_CACHE"] = str(tmp_path_factory.mktemp("vaebench-cache"))
    yield
    if old is None:
        os.environ.pop("VAEBENCH_CACHE", None)
    else:
        os.environ["VAEBENCH_CACHE"] = old


# ---------------------------------------------------------------------------------------------
# Independent references for the tests that check a recorded loss or metric against the model:
# written out with torch.distributions and by hand, sharing no formula with vaebench/objectives/.


def reference_nll(objective, params, x):
    """-log p(x|z) per example (B,), nats, float64, for the likelihood an ObjectiveConfig names:
    Bernoulli by hand (x log sigmoid(l) + (1 - x) log sigmoid(-l): a cross-entropy on grayscale x),
    the others with torch.distributions."""
    import torch
    import torch.nn.functional as F
    from torch.distributions import Laplace, Normal

    p, x = params.double(), x.double()
    name = objective.likelihood
    if name == "bernoulli":
        log_p = x * F.logsigmoid(p) + (1 - x) * F.logsigmoid(-p)
    elif name == "gaussian":
        log_p = Normal(p, objective.variance**0.5).log_prob(x)
    elif name == "laplace":
        log_p = Laplace(p, objective.laplace_scale).log_prob(x)
    elif name == "gaussian_learned":
        c = p.shape[1] // 2
        var = objective.variance_floor + torch.log1p(torch.exp(p[:, c:]))  # softplus, written out
        log_p = Normal(p[:, :c], var.sqrt()).log_prob(x)
    else:
        raise AssertionError(f"no reference for likelihood {name!r}")
    return -log_p.flatten(1).sum(1)


def reference_mean(objective, params):
    """E[x|z] of the likelihood an ObjectiveConfig names: (B, C, H, W), float64."""
    p = params.double()
    if objective.likelihood == "bernoulli":
        return 1 / (1 + (-p).exp())
    if objective.likelihood == "gaussian_learned":
        return p[:, : p.shape[1] // 2]
    return p


def replay_gaussian_neg_elbo(model, objective, x, y, batch_size, rng_state):
    """(recon, kl): the single-sample -ELBO terms of a one-Gaussian-layer model on x, nats per
    example (means over x, float64), with z = mu + eps * sigma and eps drawn from torch's CPU
    generator restored to `rng_state`, one `randn_like` per batch of `batch_size` (the draws the
    trainer's held-out loss and the `elbo` metric make). Only the model's encode and decode are
    the code under test; the likelihood and KL(N(mu, sigma^2) || N(0, I)) are independent."""
    import torch
    from torch.distributions import Normal, kl_divergence

    recon, kl = [], []
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.set_rng_state(rng_state)
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            mu, logvar = model.encode(xb, yb)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            recon.append(reference_nll(objective, model.decode(z, yb), xb))
            q = Normal(mu.double(), torch.exp(0.5 * logvar.double()))
            kl.append(kl_divergence(q, Normal(0.0, 1.0)).sum(1))
    return torch.cat(recon).mean().item(), torch.cat(kl).mean().item()


def nearest_codes(model, x):
    """A VQ-VAE's code choice for x, by brute force: the encoder's z_e (B, D, h, w), every position's
    nearest codebook vector by float64 Euclidean distance. Returns (z_e, indices (B, h, w), code
    vectors (B, D, h, w) float32)."""
    import torch

    e = model.quantizer.embedding.detach().double()  # (K, D)
    z_e = model.encoder(x)
    b, d, h, w = z_e.shape
    idx = torch.cdist(z_e.detach().permute(0, 2, 3, 1).reshape(-1, d).double(), e).argmin(1)
    return z_e, idx.view(b, h, w), e[idx].view(b, h, w, d).permute(0, 3, 1, 2).float()


def replay_vqvae_neg_elbo(model, objective, x, batch_size):
    """(recon, kl): a VQ-VAE's -ELBO terms on x, nats per example (means, float64): the decoded
    nearest code vectors (`nearest_codes`) scored by `reference_nll`, and KL = n_positions * log K
    (the one-hot posterior against the uniform prior over code grids)."""
    import math

    import torch

    recon, kl = [], []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size]
            _, idx, codes = nearest_codes(model, xb)
            recon.append(reference_nll(objective, model.decoder(codes), xb))
            k = model.quantizer.embedding.shape[0]
            kl.append(torch.full((len(xb),), idx[0].numel() * math.log(k), dtype=torch.float64))
    return torch.cat(recon).mean().item(), torch.cat(kl).mean().item()


def skimage_ssim(x, x_hat) -> float:
    """Mean SSIM of image pairs (N, 1, H, W) by scikit-image, per image, with Wang et al.'s settings
    (Gaussian window, population covariances, data range 1) and the largest Gaussian window that
    fits: sigma 1.5 (11x11) on images of 11 px and more, else radius (side - 1) // 2 and sigma =
    radius / 3.5 (scikit-image's truncate). x_hat is clipped to [0, 1]."""
    import numpy as np
    from skimage.metrics import structural_similarity

    side = min(x.shape[-2:])
    sigma = 1.5 if side >= 11 else ((side - 1) // 2) / 3.5
    a, b = np.asarray(x, dtype=np.float64), np.clip(np.asarray(x_hat, dtype=np.float64), 0, 1)
    return float(
        np.mean(
            [
                structural_similarity(
                    u[0], v[0], data_range=1.0, gaussian_weights=True, sigma=sigma, use_sample_covariance=False
                )
                for u, v in zip(a, b)
            ]
        )
    )


def scipy_fid(f1, f2) -> float:
    """Fréchet distance of two feature sets (N, F) (numpy), with scipy's matrix square root:
    |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrtm(S1 S2)), sample covariances."""
    import warnings

    import numpy as np
    import scipy.linalg

    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    with warnings.catch_warnings():  # ReLU features with dead units: singular covariances, sqrtm still exact here
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def plain_uint8(x):
    """[0, 1] images to the 0..255 bytes FID's extractors read: the plain formula."""
    import torch

    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


@pytest.fixture
def heldout_calls(monkeypatch):
    """Records, for every call of the trainer's held-out loss (once per epoch), torch's CPU RNG state
    and a copy of the model's weights just before it: what an independent recomputation of the
    recorded test loss needs. A list of (rng_state, state_dict, batch_size); the losses are unchanged."""
    import copy

    import torch

    from vaebench.engine import train as training

    calls = []
    real = training.heldout_loss

    def spy(model, x, y, batch_size, prefix="test"):
        calls.append((torch.get_rng_state(), copy.deepcopy(model.state_dict()), batch_size))
        return real(model, x, y, batch_size, prefix)

    monkeypatch.setattr(training, "heldout_loss", spy)
    return calls
