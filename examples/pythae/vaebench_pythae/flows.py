"""pythae's VAEs with a normalizing flow in the posterior: VAE_IAF and VAE_LinNF.

q(z|x) is the encoder's diagonal Gaussian q0(z0|x) = N(mu, diag(exp(logvar))) pushed through a
flow f: z = f(z0), with log q(z|x) = log q0(z0|x) - log|det df/dz0| (pythae's `iaf_flow.inverse`
for VAE_IAF, its `net` of planar/radial layers for VAE_LinNF). The prior is N(0, I) on z.

In the interface (`PythaeFlowVAE`):

- `gaussian_posterior = False`: the encoder's Gaussian is q0, not q(z|x), so the metrics that read a
  diagonal-Gaussian posterior (active units, MIG/SAP, latent plots) are skipped with the reason;
  `kl_per_dim = False`: the KL is the one-sample estimate log q(z|x) - log p(z), one column.
- `encode(x)` = (f(mu), logvar): f(mu) is the code the decoder reads for the base mean (what
  vaebench's reconstructions decode); logvar is q0's, not a variance of q(z|x).
- `elbo_terms` and `importance_log_weights` are the flow's own: the importance weights are
  p(x|f(z0)) p(f(z0)) |det df/dz0| / q0(z0|x) for z0 ~ q0, the density pythae's `get_nll` uses (the
  tests check the two NLLs agree within Monte Carlo error).
"""

from __future__ import annotations

import torch

from vaebench.objectives import gaussian_log_prob, std_normal_log_prob
from vaebench.objectives.bounds import ElboTerms, importance_samples

from .model import PythaeVAE


def _iaf(net, z0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    out = net.iaf_flow.inverse(z0)  # pythae's sampling direction
    return out["out"], out["log_abs_det_jac"]


def _linear_flows(net, z0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    z, log_det = z0, z0.new_zeros(len(z0))
    for layer in net.net:  # planar / radial layers
        out = layer(z)
        z, log_det = out["out"], log_det + out["log_abs_det_jac"]
    return z, log_det


# pythae model -> f: (net, z0 (N, D)) -> (z (N, D), log|det df/dz0| (N,))
FLOWS = {"VAE_IAF": _iaf, "VAE_LinNF": _linear_flows}


class _BaseSpace:
    """The model seen from z0: decode(z0) = decode(f(z0)), log "prior"(z0) = log p(f(z0)) + log|det|,
    so that vaebench's importance sampler, drawing z0 ~ q0, gets the flow's log weights."""

    def __init__(self, model: "PythaeFlowVAE") -> None:
        self.model = model

    def decode(self, z0, y=None):
        return self.model.decode(self.model.flow(z0)[0], y)

    def log_prior(self, z0):
        z, log_det = self.model.flow(z0.reshape(-1, z0.shape[-1]))
        return (std_normal_log_prob(z) + log_det).reshape(z0.shape[:-1])


class PythaeFlowVAE(PythaeVAE):
    """VAE_IAF, VAE_LinNF behind the interface (see the module docstring)."""

    gaussian_posterior = False
    kl_per_dim = False

    def flow(self, z0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z = f(z0) and log|det df/dz0|: (N, D), (N,)."""
        return FLOWS[self.pythae_model](self.net, z0)

    def base_posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q0(z0|x)'s (mu, logvar), (B, D) each."""
        return PythaeVAE.encode(self, x)

    def encode(self, x, y=None):
        """(f(mu), logvar): the decoder's code for the base mean, and q0's log-variance."""
        mu, logvar = self.base_posterior(x)
        return self.flow(mu)[0], logvar

    def elbo_terms(self, x, y=None) -> ElboTerms:
        """recon = -log p(x|z), kl = log q(z|x) - log p(z) (B, 1), for one z = f(z0), z0 ~ q0(z0|x)."""
        mu, logvar = self.base_posterior(x)
        z0 = self.reparameterize(mu, logvar)
        z, log_det = self.flow(z0)
        params = self.decode(z, y)
        kl = gaussian_log_prob(z0, mu, logvar) - log_det - std_normal_log_prob(z)
        return ElboTerms(self.likelihood.nll(params, x), kl.unsqueeze(1), mu, logvar, params, z=z)

    def importance_log_weights(self, x, y, k, posterior=None, decode_batch=None):
        """log p(x|z_j) + log p(z_j) - log q(z_j|x), z_j = f(z0_j), z0_j ~ q0: (k, B), nats. `posterior`
        (encode's output) is not q0's, so q0 is computed from x."""
        base = self.base_posterior(x)
        return importance_samples(_BaseSpace(self), self.likelihood, x, y, k, base, decode_batch).log_w
