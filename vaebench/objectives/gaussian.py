"""The diagonal-Gaussian formulas: the one KL (closed form, nats), log-densities, precision-weighted merges."""

from __future__ import annotations

import math

import torch

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


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z_d; mu_d, exp(logvar_d)) per dimension, in nats; shapes broadcast (e.g. the pairwise
    (B, 1, D) against (1, B, D) of objectives/disentangle.py's estimators of q(z))."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar))


def gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last dimension, in nats."""
    return gaussian_log_density(z, mu, logvar).sum(-1)


def std_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I), summed over the last dimension, in nats: the prior p(z)."""
    return -0.5 * (LOG_2PI + z.pow(2)).sum(-1)
