"""pythae's hyperspherical VAE (SVAE, Davidson et al. 2018): a von Mises-Fisher posterior on the
unit sphere S^(D-1) and the uniform prior on it.

q(z|x) = vMF(z; mu, kappa) with mu = the encoder's `embedding` normalized, kappa =
softplus(`log_concentration`) + 1, as pythae's `forward` (the posterior it trains):

    log q(z|x) = kappa mu.z + (D/2 - 1) log kappa - (D/2) log 2 pi - log I*_{D/2-1}(kappa) - kappa

(I* the exponentially scaled Bessel function, pythae's `ive`), log p(z) = -log |S^(D-1)| =
lgamma(D/2) - log 2 - (D/2) log pi, and the KL is pythae's closed form (`_compute_kl`). Samples of
q come from pythae's rejection sampler (`_sample_von_mises`).

In the interface (`PythaeSphereVAE`): `gaussian_posterior = False` (the metrics that read a
diagonal-Gaussian posterior are skipped with the reason), `kl_per_dim = False`; `encode(x)` =
(mu, -log kappa repeated over the D dimensions): the mean direction, which reconstructions decode,
and the concentration in the place of a log-variance (1/kappa is the spread), which `kl` reads back.

pythae's own `get_nll` for SVAE draws from and scores vMF(mu, softplus(`log_concentration`)),
without the + 1 its `forward` (the trained posterior) adds: a different proposal, whose k-sample
bound differs from the trained posterior's. vaebench uses the trained posterior (the test compares
the two with get_nll's concentration made forward's).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vaebench.objectives.bounds import ElboTerms

from .model import PythaeVAE


class PythaeSphereVAE(PythaeVAE):
    """SVAE behind the interface (see the module docstring)."""

    gaussian_posterior = False
    kl_per_dim = False

    def vmf(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu (B, D) unit vectors, kappa (B, 1)) of q(z|x), as pythae's forward computes them."""
        out = self.net.encoder(x)
        loc = out["embedding"]
        return loc / loc.norm(dim=-1, keepdim=True), F.softplus(out["log_concentration"]) + 1

    def encode(self, x, y=None):
        """(mu, -log kappa over the D dimensions): see the module docstring."""
        loc, kappa = self.vmf(x)
        return loc, (-kappa.log()).expand_as(loc)

    def vmf_log_prob(self, z: torch.Tensor, loc: torch.Tensor, kappa: torch.Tensor) -> torch.Tensor:
        """log vMF(z; loc, kappa): z, loc (N, D), kappa (N, 1) -> (N,), nats (pythae's formula)."""
        from pythae.models.svae.svae_utils import ive

        m = z.shape[-1]
        norm = (m / 2 - 1) * kappa.log() - (m / 2) * math.log(2 * math.pi) - ive(m / 2 - 1, kappa).log() - kappa
        return (kappa * (loc * z).sum(-1, keepdim=True) + norm).squeeze(-1)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log of the uniform density on S^(D-1): -log of its area, for every z (..., D) -> (...)."""
        m = self.latent_dim
        return z.new_full(z.shape[:-1], math.lgamma(m / 2) - math.log(2) - (m / 2) * math.log(math.pi))

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n points uniform on S^(D-1): normalized standard Gaussians, (n, D)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, device=device, generator=generator)
        return z / z.norm(dim=-1, keepdim=True)

    def kl(self, mu, logvar, z):
        """KL(vMF(mu, kappa) || uniform), pythae's closed form, kappa = exp(-logvar): (B, 1), nats."""
        return self.net._compute_kl(self.latent_dim, torch.exp(-logvar[:, :1])).reshape(-1, 1)

    def elbo_terms(self, x, y=None) -> ElboTerms:
        """recon = -log p(x|z) for one z ~ vMF(mu, kappa); kl the closed form (B, 1)."""
        mu, logvar = self.encode(x, y)
        z = self.net._sample_von_mises(mu, torch.exp(-logvar[:, :1]))
        params = self.decode(z, y)
        return ElboTerms(self.likelihood.nll(params, x), self.kl(mu, logvar, z), mu, logvar, params, z=z)

    def importance_log_weights(self, x, y, k, posterior=None, decode_batch=None):
        """log p(x|z_j) + log p(z_j) - log q(z_j|x) for z_j ~ vMF(mu, kappa): (k, B), nats. Rows are
        sample-major (j * B + i), decoded `decode_batch` at a time (memory only)."""
        loc, kappa = self.vmf(x)
        b = len(x)
        loc_k, kappa_k = loc.repeat(k, 1), kappa.repeat(k, 1)  # (k*B, D), (k*B, 1)
        z = self.net._sample_von_mises(loc_k, kappa_k)  # (k*B, D)
        step = decode_batch or k * b
        log_px = torch.cat(
            [
                -self.likelihood.nll(
                    self.decode(z[s : s + step]), x[torch.arange(s, min(s + step, k * b), device=x.device) % b]
                )
                for s in range(0, k * b, step)
            ]
        )
        log_w = log_px + self.log_prior(z) - self.vmf_log_prob(z, loc_k, kappa_k)
        return log_w.view(k, b)
