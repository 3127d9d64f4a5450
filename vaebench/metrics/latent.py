"""Likelihood-bound and latent-space metrics: -ELBO, its terms, KL per dimension, active units."""

from __future__ import annotations

import torch

from ..objectives import gaussian_kl
from . import METRICS, columns as C


@METRICS.register("elbo")
def elbo(ctx) -> dict:
    """Single-sample -ELBO on the test split with beta = 1 (the true bound, whatever the training
    beta): recon_nll = -log p(x|z) with z ~ q(z|x), kl in closed form; nats per example."""
    mu, logvar = ctx.posterior
    kl = gaussian_kl(mu, logvar).sum(1)  # (N,)
    with torch.no_grad():
        z = ctx.model.reparameterize(mu, logvar)
        nll = torch.cat([
            ctx.likelihood.nll(ctx.model.decode(zb, yb), xb)
            for zb, (xb, yb) in zip(z.split(ctx.batch_size), ctx.batches())
        ])
    return {C.RECON_NLL: nll.mean().item(), C.KL: kl.mean().item(), C.NEG_ELBO: (nll + kl).mean().item()}


@METRICS.register("latent")
def latent(ctx) -> dict:
    """KL per latent dimension (mean over test images, nats) and active units (Burda et al. 2016:
    unit u is active when the variance over test images of E_q[z_u|x] = mu_u(x) exceeds the
    threshold, 0.01 by default; population variance)."""
    mu, logvar = ctx.posterior
    per_dim = gaussian_kl(mu, logvar).mean(0)  # (D,)
    threshold = ctx.cfg.eval.active_threshold
    active = int((mu.var(0, unbiased=False) > threshold).sum().item())
    return {
        C.KL_PER_DIM: per_dim.tolist(),
        C.ACTIVE_UNITS: active,
        C.ACTIVE_UNITS_THRESHOLD: threshold,
    }
