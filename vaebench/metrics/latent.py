"""Likelihood-bound and latent-space metrics: -ELBO and its terms, KL per dimension, active units."""

from __future__ import annotations

import torch

from . import column_names as C
from .declarations import Column, MetricNotApplicable, eval_settings, register_metric

NATS = "nats per example"


@register_metric(
    "elbo",
    columns=[
        Column(
            C.NEG_ELBO,
            "float",
            NATS,
            "lower",
            "−ELBO",
            "single-sample -ELBO of the test split with beta = 1: recon_nll + kl",
        ),
        Column(C.RECON_NLL, "float", NATS, "lower", "Recon NLL", "-log p(x|z), z ~ q(z|x), summed over pixels"),
        Column(
            C.KL,
            "float",
            NATS,
            "lower",
            "KL",
            "KL(q(z|x) || p(z)) summed over latent dims (the model's KL, at the decoded z)",
            rank=False,
        ),
    ],
)
def elbo(ctx) -> dict:
    """Single-sample -ELBO on the test split with beta = 1 (the true bound, whatever the training
    beta), from the model's `elbo_terms`: recon_nll = -log p(x|z) with z ~ q(z|x), kl = the model's
    KL(q(z|x) || p(z)) at that same z (closed form for a N(0, I) prior, an estimate at z for other
    priors, the sum over layers for a hierarchical model); nats per example."""
    nlls, kls = [], []
    with torch.no_grad():
        for xb, yb in ctx.batches():
            t = ctx.model.elbo_terms(xb, yb)
            nlls.append(t.recon)
            kls.append(t.kl.sum(1))
    nll, kl = torch.cat(nlls), torch.cat(kls)
    return {C.RECON_NLL: nll.mean().item(), C.KL: kl.mean().item(), C.NEG_ELBO: (nll + kl).mean().item()}


@register_metric(
    "kl_per_dim",
    columns=[
        Column(
            C.KL_PER_DIM,
            "list[float]",
            NATS,
            None,
            "KL per dimension",
            "KL(q(z|x) || p(z)) of each latent dim, mean over test images; sums to kl",
        ),
    ],
)
def kl_per_dim(ctx) -> dict:
    """KL per latent dimension, mean over test images (nats), from the model's `kl`; not applicable
    to a model whose KL does not decompose by dimension (`kl_per_dim = False`)."""
    if not getattr(ctx.model, "kl_per_dim", True):
        raise MetricNotApplicable(
            f"{type(ctx.model).__name__}'s KL does not decompose by latent dimension (kl_per_dim = False)"
        )
    if getattr(ctx.model, "latent_layers", None):
        # several stochastic layers: a lower layer's KL depends on the sampled layers above it, so
        # average `elbo_terms`' per-dimension KL (one joint sample per image, seeded: the `layers`
        # metric's draws) rather than the KL along encode's mean path
        return {C.KL_PER_DIM: ctx.sampled_kl.mean(0).tolist()}  # (D,)
    mu, logvar = ctx.posterior
    with torch.no_grad():  # a per-dimension KL is closed form: z unused, the posterior mean stands in
        per_dim = ctx.model.kl(mu, logvar, mu).mean(0)  # (D,)
    return {C.KL_PER_DIM: per_dim.tolist()}


ActiveUnitsOptions = eval_settings(
    "ActiveUnitsOptions",
    "active_threshold",
    doc="The active-unit count's options (the latent and layers metrics): the eval setting active_threshold.",
)


@register_metric(
    "latent",
    settings=ActiveUnitsOptions,
    columns=[
        Column(
            C.ACTIVE_UNITS,
            "int",
            "count",
            "higher",
            "Active units",
            "latent dims with Var_x(E_q[z_u|x]) > active_units_threshold",
            rank=False,
        ),
        Column(
            C.ACTIVE_UNITS_THRESHOLD,
            "float",
            "",
            None,
            "Active-unit threshold",
            "the variance threshold of active units (eval.active_threshold)",
        ),
    ],
)
def latent(ctx) -> dict:
    """Active units (Burda et al. 2016: unit u is active when the variance over test images of
    E_q[z_u|x] = mu_u(x) exceeds the threshold, 0.01 by default; population variance). Applies to
    every model with a Gaussian posterior (`gaussian_posterior`); skipped for the others."""
    if not getattr(ctx.model, "gaussian_posterior", True):
        raise MetricNotApplicable(
            f"{type(ctx.model).__name__}'s encode is not a Gaussian posterior "
            "(gaussian_posterior = False): no posterior means to count active units of"
        )
    mu, _ = ctx.posterior
    threshold = ctx.options.active_threshold
    active = int((mu.var(0, unbiased=False) > threshold).sum().item())
    return {C.ACTIVE_UNITS: active, C.ACTIVE_UNITS_THRESHOLD: threshold}
