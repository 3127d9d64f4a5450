"""vaebench plugin: the `vampprior` model family, an MLP VAE with a VampPrior (Tomczak & Welling 2018).

Importing this module registers the family; vaebench imports it through the entry point
`vaebench.plugins: vampprior = vaebench_vampprior` (when installed) or a spec's `plugins:` list.
"""

from vaebench.models import MODELS, ModelFamily

from .model import VampPriorOptions, VampPriorVAE, build_vampprior, mixture_log_prob

__version__ = "0.1.0"

MODELS.register(
    "vampprior",
    ModelFamily(
        build_vampprior,
        VampPriorOptions,
        "MLP VAE with a VampPrior: p(z) = 1/K sum_k q(z|u_k) over K learned pseudo-inputs (Tomczak & Welling 2018)",
        model=VampPriorVAE,  # its kl_per_dim = False (the KL is a Monte Carlo estimate of the whole): no free bits
    ),
)

__all__ = ["VampPriorOptions", "VampPriorVAE", "build_vampprior", "mixture_log_prob"]
