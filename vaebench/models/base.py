"""The VAE interface every architecture implements: encode, decode, and the shared rest."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..objectives.bounds import ElboTerms, elbo_terms, importance_samples
from ..objectives.gaussian import gaussian_kl, std_normal_log_prob
from ..objectives.training import build_objective


class VAE(nn.Module):
    """The model interface: everything the trainer, the metrics and the reports ask of a model.

    This is the one place it is written down. Units: log-densities and KLs in nats, summed over
    latent dimensions (per example); images in data space, (B, C, H, W).

    A family implements (required):

    - `encode(x, y) -> (mu, logvar)`: the diagonal-Gaussian posterior q(z|x), (B, D) each.
    - `decode(z, y) -> params`: the likelihood's parameters, (B, C * param_channels, H, W), for
      z shaped (B, D). `self.likelihood` turns them into `nll(params, x)` (nats per example) and
      `mean(params)` (an image).

    `y` (B,) holds class labels; only conditional models (`conditional = True`) read them.

    The prior p(z) (override all three for a prior that is not N(0, I), e.g. a mixture):

    - `log_prior(z) -> (...)`: log p(z) for z shaped (..., D), summed over D, nats. It enters the
      importance-sampled NLL and the IWAE bound.
    - `sample_prior(n, generator) -> z`: (n, D) draws from p(z), for samples and sample FID.
    - `kl(mu, logvar, z) -> (B, D')`: KL(q(z|x) || p(z)) per example, nats. D' = D when it
      decomposes over latent dimensions (`kl_per_dim = True`, closed form here), else D' = 1 and
      the single column is the total, e.g. the one-sample Monte Carlo estimate
      log q(z|x) - log p(z) at the reparameterized `z`.

    `kl_per_dim = False` marks a model whose KL does not decompose: metrics that need per-dimension
    KLs (`kl_per_dim` column) and free bits are then not applicable. Everything that computes a
    KL (the losses, the -ELBO metric) calls `model.kl`, whose default is `objectives.gaussian_kl`.
    Images produced by `sample` and `reconstruct` are the likelihood's mean, in data space.

    The bounds (override both for several latent layers or a discrete code; the defaults are the
    one-Gaussian-layer formulas of objectives/gaussian.py, built on the methods above):

    - `elbo_terms(x, y) -> ElboTerms`: one-sample ELBO terms per example — `recon` (B,)
      -log p(x|z), `kl` (B, D') as `kl` above, and `aux`, an extra training loss outside the
      bound (a VQ-VAE's codebook and commitment terms; 0 here). The trainer, the per-epoch test loss
      and the -ELBO metric all call it.
    - `importance_log_weights(x, y, k, posterior, decode_batch) -> (k, B)`: log p(x, z_j) -
      log q(z_j|x) for k draws z_j ~ q(z|x) per example; the importance-sampled NLL is
      -logmeanexp over j.

    Capabilities the metrics check (a metric that cannot apply is skipped with the reason):
    `gaussian_posterior` (encode's (mu, logvar) is q(z|x): active units, MIG/SAP, latent plots),
    `deterministic_posterior` (q(z|x) is a point mass, e.g. a VQ-VAE's one-hot code: every
    importance weight equals the ELBO, so the importance-sampled NLL does not apply) and
    `can_sample` (`sample` draws from the model's prior: sample FID, IS, prior-sample figures).
    Optional: `latent_layers`, the sizes of several stochastic layers whose concatenation (bottom
    first) is z (a hierarchical model, e.g. models/ladder.py): the per-layer KL and active units
    (metrics/layers.py) apply to a model that has it.
    """

    kl_per_dim = True  # does `kl` return one column per latent dimension?
    gaussian_posterior = True  # is encode's (mu, logvar) the diagonal-Gaussian q(z|x)?
    deterministic_posterior = False  # is q(z|x) a point mass (importance sampling = the ELBO)?
    can_sample = True  # does the model have a prior to sample images from?

    conditional = False
    # Layout of weights and input batches in training: conv families use channels_last, which
    # oneDNN's CPU kernels (and cuDNN's) run faster.
    memory_format = torch.contiguous_format

    def __init__(self, data_shape: tuple[int, int, int], latent_dim: int, likelihood) -> None:
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.latent_dim = latent_dim
        self.likelihood = likelihood
        c, h, w = self.data_shape
        self.out_shape = (c * likelihood.param_channels, h, w)  # decoder output per image

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mu + sigma * eps, eps ~ N(0, I): differentiable in mu and logvar."""
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None):
        mu, logvar = self.encode(x, y)
        return self.decode(self.reparameterize(mu, logvar), y), mu, logvar

    # -- the prior: N(0, I) unless a family overrides these three --------------------------------

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z), summed over the last dimension (nats): (..., D) -> (...)."""
        return std_normal_log_prob(z)

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n codes z ~ p(z): (n, D)."""
        device = next(self.parameters()).device
        return torch.randn(n, self.latent_dim, device=device, generator=generator)

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """KL(q(z|x) || p(z)) per example in nats: (B, D) per dimension in closed form (`z` unused)."""
        return gaussian_kl(mu, logvar)

    # -- the bounds: one Gaussian latent layer unless a family overrides these two ----------------

    def elbo_terms(self, x: torch.Tensor, y: torch.Tensor | None = None) -> ElboTerms:
        """One-sample ELBO terms per example, nats (see the class docstring)."""
        return elbo_terms(self, self.likelihood, x, y)

    def importance_log_weights(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None,
        k: int,
        posterior: tuple[torch.Tensor, torch.Tensor] | None = None,
        decode_batch: int | None = None,
    ) -> torch.Tensor:
        """log w_j = log p(x|z_j) + log p(z_j) - log q(z_j|x) for k draws per example: (k, B), nats.
        `posterior` is encode's (mu, logvar) when already computed; `decode_batch` caps the codes
        per decoder pass (memory only)."""
        return importance_samples(self, self.likelihood, x, y, k, posterior, decode_batch).log_w

    @classmethod
    def standard_gaussian_reason(cls) -> str | None:
        """Why this class is not a one-layer diagonal-Gaussian VAE with the N(0, I) prior (the base
        class's KL, prior and `elbo_terms`, which hands back the sampled z), or None when it is: what
        objectives that estimate q(z) from the batch's codes need (objectives/disentangle.py)."""
        if not (cls.gaussian_posterior and cls.kl_per_dim):
            return f"{cls.__name__}'s posterior is not a diagonal Gaussian with a KL per dimension"
        if cls.log_prior is not VAE.log_prior or cls.kl is not VAE.kl:
            return f"{cls.__name__}'s prior is not N(0, I)"
        if cls.elbo_terms is not VAE.elbo_terms:
            return f"{cls.__name__} has its own bound (several latent layers or a discrete code)"
        return None

    # -- training: the spec's estimator unless a family owns its loss ------------------------------

    def training_objective(self, cfg, info):
        """The `TrainingObjective` (objectives/training.py) the trainer minimizes for this model:
        `objective(model, x, y, step) -> LossOut`, with any auxiliary networks and their optimizers.
        The default builds the estimator the `objective:` section `cfg` names; a family whose models
        define their own training loss (or train extra networks) overrides this. `info` is a
        `TrainingInfo` (dataset size, steps, lr, device)."""
        return build_objective(cfg, self, info)

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images decoded from z ~ p(z): (n, C, H, W) in data space. Conditional models use
        the labels `y` (default: 0, 1, 2, ... cycling over the classes)."""
        return self.likelihood.mean(self.decode(self.sample_prior(n, generator), y))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Deterministic reconstruction: decode the posterior mean mu."""
        mu, _ = self.encode(x, y)
        return self.likelihood.mean(self.decode(mu, y))


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalization (Miyato et al. 2018) on every Linear / Conv / ConvTranspose layer
    inside `module` — the tutorial's trick for a more stable decoder."""
    for name, child in list(module.named_children()):
        if isinstance(child, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            setattr(module, name, spectral_norm(child))
        else:
            apply_spectral_norm(child)
    return module
