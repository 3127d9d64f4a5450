"""The VAE interface every architecture implements: encode, decode, and the shared rest."""

from __future__ import annotations

import torch
from torch import nn


class VAE(nn.Module):
    """A VAE with a diagonal-Gaussian posterior q(z|x) and a standard-normal prior p(z).

    Subclasses implement `encode(x) -> (mu, logvar)` with x shaped (B, C, H, W) and
    `decode(z) -> params`, the likelihood's parameters shaped (B, C * param_channels, H, W).
    Images produced by `sample` and `reconstruct` are the likelihood's mean, in data space.
    """

    def __init__(self, data_shape: tuple[int, int, int], latent_dim: int, likelihood) -> None:
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.latent_dim = latent_dim
        self.likelihood = likelihood

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mu + sigma * eps, eps ~ N(0, I): differentiable in mu and logvar."""
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def forward(self, x: torch.Tensor):
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images decoded from z ~ N(0, I): (n, C, H, W) in data space."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, device=device, generator=generator)
        return self.likelihood.mean(self.decode(z))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic reconstruction: decode the posterior mean mu."""
        mu, _ = self.encode(x)
        return self.likelihood.mean(self.decode(mu))
