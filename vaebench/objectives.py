"""Likelihoods p(x|z), the one Gaussian KL, and the (negative) ELBO. All in nats.

Conventions: a per-example quantity is summed over pixels (or latent dimensions); a reported loss
is the mean of that over examples, i.e. **nats per example**, comparable with published tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .registry import Registry


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL( N(mu, diag(exp(logvar))) || N(0, I) ) per latent dimension, in nats.

    Closed form: -1/2 (1 + log s^2 - mu^2 - s^2). Shapes (B, D) -> (B, D). This is the only place
    vaebench computes this KL: training losses and metrics all call it.
    """
    return -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp())


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

    nll = sum_i [ (x_i - m_i)^2 / (2 variance) + 1/2 log(2 pi variance) ], the full negative
    log-density. With variance = 0.5 the data-dependent part is sum (x - m)^2, the tutorial's
    F.mse_loss(reduction='sum').
    """

    variance: float = 0.5
    name = "gaussian"

    def nll(self, params, x):
        sq = _per_example((x - params).pow(2)) / (2.0 * self.variance)
        return sq + 0.5 * math.log(2 * math.pi * self.variance) * x[0].numel()

    def mean(self, params):
        return params


LIKELIHOODS: Registry = Registry("likelihood")
LIKELIHOODS.register("bernoulli", lambda cfg: Bernoulli())
LIKELIHOODS.register("gaussian", lambda cfg: Gaussian(variance=cfg.variance))


def build_likelihood(cfg) -> Likelihood:
    """Likelihood named by an ObjectiveConfig."""
    return LIKELIHOODS.get(cfg.likelihood)(cfg)


class ElboTerms(NamedTuple):
    """Per-example terms of one single-sample ELBO estimate, in nats."""

    recon: torch.Tensor  # (B,) -log p(x|z), z ~ q(z|x)
    kl: torch.Tensor  # (B, D) KL per latent dimension
    mu: torch.Tensor  # (B, D)
    logvar: torch.Tensor  # (B, D)
    params: torch.Tensor  # decoder output for the sampled z

    def loss(self, beta: float) -> torch.Tensor:
        """The training loss: mean over examples of recon + beta * KL (nats per example)."""
        return (self.recon + beta * self.kl.sum(1)).mean()


def elbo_terms(model, likelihood: Likelihood, x: torch.Tensor) -> ElboTerms:
    """Encode, sample z by reparameterization, decode, and score. -ELBO = recon + KL.sum(1)."""
    mu, logvar = model.encode(x)
    z = model.reparameterize(mu, logvar)
    params = model.decode(z)
    return ElboTerms(likelihood.nll(params, x), gaussian_kl(mu, logvar), mu, logvar, params)
