"""Likelihoods p(x|z), the one Gaussian KL, log-densities, and the training bounds (ELBO, IWAE).

Conventions: a per-example quantity is summed over pixels (or latent dimensions); a reported loss
is the mean of that over examples, i.e. **nats per example**, comparable with published tables.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch

from ..registry import Registry
from .gaussian import gaussian_log_prob
from .likelihoods import Likelihood

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
    z: torch.Tensor | None = None  # (B, D) the sampled code, where the model has one Gaussian layer


def elbo_terms(model, likelihood: Likelihood, x: torch.Tensor, y: torch.Tensor | None = None) -> ElboTerms:
    """Encode, sample z by reparameterization, decode, and score. -ELBO = recon + KL.sum(1); the KL
    is the model's (`VAE.kl`: closed form for N(0, I), an estimate at z for other priors)."""
    mu, logvar = model.encode(x, y)
    z = model.reparameterize(mu, logvar)
    params = model.decode(z, y)
    return ElboTerms(likelihood.nll(params, x), model.kl(mu, logvar, z), mu, logvar, params, z=z)


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
    extras: dict | None = None  # what an objective keeps for its auxiliary losses (e.g. the sampled z)


def elbo_loss(cfg, model, x, y, kl_weight: float) -> LossOut:
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


def iwae_loss(cfg, model, x, y, kl_weight: float) -> LossOut:
    """-IWAE bound with k = cfg.iwae_k samples: -mean_x logmeanexp_j log w_j (nats per example), the
    log-weights from the model (`VAE.importance_log_weights`: every latent layer jointly for a
    hierarchical model). Bookkeeping (not differentiated): the model's one-sample ELBO terms."""
    mu, logvar = model.encode(x, y)
    log_w = model.importance_log_weights(x, y, cfg.iwae_k, (mu, logvar))
    bound = torch.logsumexp(log_w, 0) - math.log(cfg.iwae_k)  # (B,)
    with torch.no_grad():
        t = model.elbo_terms(x, y)
    return LossOut(-bound.mean(), t.recon, t.kl)


# The model each plain loss trains, as papers name it (training.estimator_label): the ELBO with its
# KL weighted by β is the β-VAE's objective (β = 1: the VAE).
elbo_loss.label = "β-VAE"
iwae_loss.label = "IWAE"
ESTIMATORS: Registry[Callable[..., LossOut]] = Registry("estimator")
ESTIMATORS.register("elbo", elbo_loss)
ESTIMATORS.register("iwae", iwae_loss)


def training_loss(cfg, model, x, y, kl_weight: float) -> LossOut:
    """The loss an ObjectiveConfig asks for, at KL weight beta * w(t) = `kl_weight`: an estimator
    `(cfg, model, x, y, kl_weight) -> LossOut`; the model scores with its own likelihood."""
    return ESTIMATORS.get(cfg.estimator)(cfg, model, x, y, kl_weight)
