"""Per-layer metrics of hierarchical models (e.g. the ladder VAE): KL and active units per stochastic layer.

Applies to a model that declares `latent_layers`, the sizes of its stochastic layers in the order
they are concatenated in z (bottom first; they sum to latent_dim): the `ladder` family, a one-layer
ladder included (one-element lists). Models without it (every single-layer family) are skipped with
the reason.
"""

from __future__ import annotations

from . import column_names as C
from .declarations import Column, MetricNotApplicable, register_metric
from .latent import ActiveUnitsOptions

NATS = "nats per example"


@register_metric(
    "layers",
    settings=ActiveUnitsOptions,
    columns=[
        Column(
            C.KL_PER_LAYER,
            "list[float]",
            NATS,
            None,
            "KL per layer",
            "KL(q || p) of each stochastic layer (bottom first), mean over test images, one joint sample "
            "of the layers above per image; sums to kl up to Monte Carlo noise",
        ),
        Column(
            C.ACTIVE_UNITS_PER_LAYER,
            "list[int]",
            "count",
            None,
            "Active units per layer",
            "active units (Var_x mu_u(x) > active_units_threshold) of each stochastic layer, bottom first, "
            "on encode's mean path; sums to active_units",
        ),
    ],
)
def layers(ctx) -> dict:
    """KL and active units per stochastic layer (bottom first).

    kl_per_layer[l]: the mean over test images of the sum over layer l's dimensions of the model's
    `elbo_terms(x).kl` — per image one joint sample of all layers top-down, each layer's KL
    KL(q(z_l|x, z_{l+1}) || p(z_l|z_{l+1})) in closed form at the sampled z_{l+1} (the top layer's
    against N(0, I), exact). This is the estimator of the row's `kl` (the `elbo` metric) with its own
    draws, taken from torch's generator seeded with the run seed in a forked RNG state: the sum
    equals `kl` up to Monte Carlo noise (one draw per image), not exactly.

    active_units_per_layer[l]: the active units among layer l's dimensions of encode's mean path
    (`ctx.posterior`, the `latent` metric's input, same threshold `eval.active_threshold`): the
    counts sum to the row's `active_units` exactly."""
    sizes = getattr(ctx.model, "latent_layers", None)
    if not sizes:
        raise MetricNotApplicable(f"{type(ctx.model).__name__} has a single stochastic layer (no `latent_layers`)")
    sizes = [int(s) for s in sizes]
    kl = ctx.sampled_kl  # (N, D): the draws kl_per_dim averages too, computed once
    if kl.shape[1] != sum(sizes):
        raise MetricNotApplicable(
            f"the model's KL has {kl.shape[1]} columns, not one per latent dimension "
            f"(latent_layers {sizes} sum to {sum(sizes)})"
        )
    mu, _ = ctx.posterior
    active = mu.var(0, unbiased=False) > ctx.options.active_threshold  # (D,)
    return {
        C.KL_PER_LAYER: [part.sum(1).mean().item() for part in kl.split(sizes, dim=1)],
        C.ACTIVE_UNITS_PER_LAYER: [int(part.sum().item()) for part in active.split(sizes)],
    }
