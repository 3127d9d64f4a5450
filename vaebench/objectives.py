"""Likelihoods p(x|z), the one Gaussian KL, log-densities, and the training bounds (ELBO, IWAE).

Conventions: a per-example quantity is summed over pixels (or latent dimensions); a reported loss
is the mean of that over examples, i.e. **nats per example**, comparable with published tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F

from .registry import Registry

LOG_2PI = math.log(2 * math.pi)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL( N(mu, diag(exp(logvar))) || N(0, I) ) per latent dimension, in nats.

    Closed form: -1/2 (1 + log s^2 - mu^2 - s^2). Shapes (B, D) -> (B, D). This is the only place
    vaebench computes this KL: training losses and metrics all call it.
    """
    return -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp())


def gaussian_kl_between(
    mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor
) -> torch.Tensor:
    """KL( N(mu_q, diag(exp(logvar_q))) || N(mu_p, diag(exp(logvar_p))) ) per latent dimension, nats.

    Closed form: 1/2 (log s_p^2 - log s_q^2 + (s_q^2 + (mu_q - mu_p)^2) / s_p^2 - 1); with mu_p = 0,
    logvar_p = 0 it is `gaussian_kl`. Shapes broadcast, e.g. (B, D) -> (B, D). The per-layer KL of
    a hierarchical model (q(z_l|...) against the top-down prior p(z_l|z_{l+1})).
    """
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).pow(2)) * torch.exp(-logvar_p) - 1.0)


def precision_weighted_merge(
    mu_a: torch.Tensor, logvar_a: torch.Tensor, mu_b: torch.Tensor, logvar_b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalized product of two diagonal Gaussians N(mu_a, s_a^2) N(mu_b, s_b^2): (mu, logvar).

    s^2 = 1 / (s_a^-2 + s_b^-2), mu = (mu_a s_a^-2 + mu_b s_b^-2) s^2 — the ladder VAE's merge of the
    bottom-up and the top-down Gaussian (Sønderby et al. 2016). Computed in log space, stable for any
    logvars: logvar = -logaddexp(-logvar_a, -logvar_b), mu = w mu_a + (1 - w) mu_b with
    w = s_a^-2 / (s_a^-2 + s_b^-2) = sigmoid(logvar_b - logvar_a).
    """
    logvar = -torch.logaddexp(-logvar_a, -logvar_b)
    w = torch.sigmoid(logvar_b - logvar_a)
    return w * mu_a + (1.0 - w) * mu_b, logvar


def gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last dimension, in nats."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)


def std_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I), summed over the last dimension, in nats: the prior p(z)."""
    return -0.5 * (LOG_2PI + z.pow(2)).sum(-1)


# ---------------------------------------------------------------------------------------------
# likelihoods


class Likelihood:
    """A decoder distribution p(x|z) parameterized by the decoder's output `params`.

    `nll(params, x)` is -log p(x|z) per example in nats, summed over pixels: shape (B,).
    `mean(params)` is E[x|z], an image in data space (what reconstructions and samples show).
    `param_channels` is how many output channels the decoder needs per image channel.
    """

    name: str = ""
    param_channels: int = 1

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _per_example(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).sum(1)


class Bernoulli(Likelihood):
    """Bernoulli pixels; `params` are logits. nll = BCE-with-logits summed over pixels (stable for
    any logit). On grayscale data in [0, 1] this is a cross-entropy, not a normalized likelihood."""

    name = "bernoulli"

    def nll(self, params, x):
        return _per_example(F.binary_cross_entropy_with_logits(params, x, reduction="none"))

    def mean(self, params):
        return torch.sigmoid(params)


@dataclass
class Gaussian(Likelihood):
    """Gaussian pixels with fixed variance; `params` are the means.

    nll = sum_i [ (x_i - m_i)^2 / (2 variance) + 1/2 log(2 pi variance) ]. With variance 0.5 the
    data-dependent part is sum (x - m)^2, the tutorial's F.mse_loss(reduction='sum').
    """

    variance: float = 0.5
    name = "gaussian"

    def nll(self, params, x):
        sq = _per_example((x - params).pow(2)) / (2.0 * self.variance)
        return sq + 0.5 * math.log(2 * math.pi * self.variance) * x[0].numel()

    def mean(self, params):
        return params


@dataclass
class Laplace(Likelihood):
    """Laplace pixels with fixed scale b; `params` are the locations.

    nll = sum_i [ |x_i - m_i| / b + log(2 b) ]. With b = 1 the data-dependent part is
    sum |x - m|, the tutorial's F.l1_loss(reduction='sum').
    """

    scale: float = 1.0
    name = "laplace"

    def nll(self, params, x):
        return _per_example((x - params).abs()) / self.scale + math.log(2 * self.scale) * x[0].numel()

    def mean(self, params):
        return params


@dataclass
class GaussianLearned(Likelihood):
    """Gaussian pixels with a learned per-pixel variance: the decoder outputs, per image channel,
    a mean channel and a raw variance channel; variance = floor + softplus(raw).

    nll = 1/2 sum_i [ (x_i - m_i)^2 / var_i + log var_i + log 2 pi ], the full negative log-density.
    The floor keeps the density bounded on pixels that never vary (MNIST's black border).
    """

    floor: float = 1e-3
    name = "gaussian_learned"
    param_channels = 2

    def split(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = params.shape[1] // 2
        return params[:, :c], self.floor + F.softplus(params[:, c:])  # (B, C, H, W) each

    def nll(self, params, x):
        m, var = self.split(params)
        return 0.5 * _per_example((x - m).pow(2) / var + var.log() + LOG_2PI)

    def mean(self, params):
        return self.split(params)[0]


LIKELIHOODS: Registry[Callable] = Registry("likelihood")
LIKELIHOODS.register("bernoulli", lambda cfg: Bernoulli())
LIKELIHOODS.register("gaussian", lambda cfg: Gaussian(variance=cfg.variance))
LIKELIHOODS.register("laplace", lambda cfg: Laplace(scale=cfg.laplace_scale))
LIKELIHOODS.register("gaussian_learned", lambda cfg: GaussianLearned(floor=cfg.variance_floor))


def build_likelihood(cfg) -> Likelihood:
    """Likelihood named by an ObjectiveConfig."""
    return LIKELIHOODS.get(cfg.likelihood)(cfg)


# ---------------------------------------------------------------------------------------------
# bounds


class ElboTerms(NamedTuple):
    """Per-example terms of one single-sample ELBO estimate, in nats."""

    recon: torch.Tensor  # (B,) -log p(x|z), z ~ q(z|x)
    kl: torch.Tensor  # (B, D) KL per latent dimension; (B, 1) the total when the model's KL does not decompose
    mu: torch.Tensor  # (B, D)
    logvar: torch.Tensor  # (B, D)
    params: torch.Tensor  # decoder output for the sampled z
    aux: torch.Tensor | float = 0.0  # extra training loss outside the bound (e.g. VQ codebook terms), unweighted


def elbo_terms(model, likelihood: Likelihood, x: torch.Tensor, y: torch.Tensor | None = None) -> ElboTerms:
    """Encode, sample z by reparameterization, decode, and score. -ELBO = recon + KL.sum(1); the KL
    is the model's (`VAE.kl`: closed form for N(0, I), an estimate at z for other priors)."""
    mu, logvar = model.encode(x, y)
    z = model.reparameterize(mu, logvar)
    params = model.decode(z, y)
    return ElboTerms(likelihood.nll(params, x), model.kl(mu, logvar, z), mu, logvar, params)


class ImportanceSamples(NamedTuple):
    """log-densities at k reparameterized samples z_j ~ q(z|x), each (k, B), in nats."""

    log_px: torch.Tensor  # log p(x|z_j)
    log_pz: torch.Tensor  # log p(z_j), the model's prior (`VAE.log_prior`)
    log_qz: torch.Tensor  # log q(z_j|x)

    @property
    def log_w(self) -> torch.Tensor:
        """log importance weights; logmeanexp over j is the IWAE bound, k = 1 the ELBO with a
        Monte Carlo KL (Burda et al. 2016)."""
        return self.log_px + self.log_pz - self.log_qz


def importance_samples(
    model,
    likelihood: Likelihood,
    x: torch.Tensor,
    y: torch.Tensor | None,
    k: int,
    posterior: tuple[torch.Tensor, torch.Tensor] | None = None,
    decode_batch: int | None = None,
) -> ImportanceSamples:
    """Draw k samples z ~ q(z|x) per example (batched: one decoder pass over k*B codes) and score them.

    `decode_batch` caps the codes per decoder pass (the k*B codes are decoded in slices): the same
    draws and, up to float rounding, the same values, with bounded memory — a conv decoder's
    activations for 10,000 codes take gigabytes."""
    mu, logvar = posterior if posterior is not None else model.encode(x, y)
    b = len(x)
    z = mu + torch.randn(k, *mu.shape, device=mu.device, dtype=mu.dtype) * torch.exp(0.5 * logvar)  # (k, B, D)
    zk = z.reshape(k * b, -1)  # sample-major: row j * B + i is sample j of example i
    yk = None if y is None else y.repeat(k)
    if decode_batch is None or decode_batch >= k * b:
        xk = x.repeat(k, *([1] * (x.dim() - 1)))  # (k*B, C, H, W), sample-major like zk
        log_px = -likelihood.nll(model.decode(zk, yk), xk).view(k, b)
    else:
        parts = []
        for start in range(0, k * b, decode_batch):
            sl = slice(start, min(start + decode_batch, k * b))
            xs = x[torch.arange(sl.start, sl.stop, device=x.device) % b]  # the examples of these rows
            parts.append(likelihood.nll(model.decode(zk[sl], None if yk is None else yk[sl]), xs))
        log_px = -torch.cat(parts).view(k, b)
    return ImportanceSamples(log_px, model.log_prior(z), gaussian_log_prob(z, mu, logvar))


def free_bits_kl(kl: torch.Tensor, free_bits: float | None, mode: str) -> torch.Tensor:
    """The KL term of the training loss, nats per example, from per-dimension KLs (B, D).

    None: the plain KL, sum over dimensions, mean over the batch.
    'example': sum_j max(KL_j(x), lambda), mean over the batch (each example, each dimension).
    'batch' (Kingma et al. 2016): sum_j max(mean_batch KL_j, lambda).
    Only the training objective is clamped; reported KLs are always raw."""
    if free_bits is None:
        return kl.sum(1).mean()
    if mode == "example":
        return kl.clamp(min=free_bits).sum(1).mean()
    return kl.mean(0).clamp(min=free_bits).sum()


class LossOut(NamedTuple):
    loss: torch.Tensor  # scalar to minimize
    recon: torch.Tensor  # (B,) -log p(x|z) of one sample, nats (bookkeeping)
    kl: torch.Tensor  # (B, D) raw KL per dimension, nats (bookkeeping)


def elbo_loss(cfg, model, likelihood, x, y, kl_weight: float) -> LossOut:
    """-ELBO with the KL weighted by beta * w(t) and optional free bits, plus the model's auxiliary
    loss. reduction 'sum': nats per example; 'mean' (the tutorial's convention): the reconstruction
    is also averaged over pixels. The terms are the model's (`VAE.elbo_terms`)."""
    t = model.elbo_terms(x, y)
    if cfg.free_bits is not None and not getattr(model, "kl_per_dim", True):
        raise ValueError(
            f"free_bits clamps the KL per latent dimension; {type(model).__name__}'s KL does not "
            "decompose by dimension (kl_per_dim = False)"
        )
    recon = t.recon / x[0].numel() if cfg.reduction == "mean" else t.recon
    loss = recon.mean() + kl_weight * free_bits_kl(t.kl, cfg.free_bits, cfg.free_bits_mode) + t.aux
    return LossOut(loss, t.recon, t.kl)


def iwae_loss(cfg, model, likelihood, x, y, kl_weight: float) -> LossOut:
    """-IWAE bound with k = cfg.iwae_k samples: -mean_x logmeanexp_j log w_j (nats per example), the
    log-weights from the model (`VAE.importance_log_weights`: every latent layer jointly for a
    hierarchical model). Bookkeeping (not differentiated): the model's one-sample ELBO terms."""
    mu, logvar = model.encode(x, y)
    log_w = model.importance_log_weights(x, y, cfg.iwae_k, (mu, logvar))
    bound = torch.logsumexp(log_w, 0) - math.log(cfg.iwae_k)  # (B,)
    with torch.no_grad():
        t = model.elbo_terms(x, y)
    return LossOut(-bound.mean(), t.recon, t.kl)


ESTIMATORS: Registry[Callable[..., LossOut]] = Registry("estimator")
ESTIMATORS.register("elbo", elbo_loss)
ESTIMATORS.register("iwae", iwae_loss)


def training_loss(cfg, model, likelihood, x, y, kl_weight: float) -> LossOut:
    """The loss an ObjectiveConfig asks for, at KL weight beta * w(t) = `kl_weight`."""
    return ESTIMATORS.get(cfg.estimator)(cfg, model, likelihood, x, y, kl_weight)
