"""The VAE interface every architecture implements: encode, decode, and the shared rest."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class VAE(nn.Module):
    """A VAE with a diagonal-Gaussian posterior q(z|x) and a standard-normal prior p(z).

    Subclasses implement `encode(x, y) -> (mu, logvar)` with x shaped (B, C, H, W) and
    `decode(z, y) -> params`, the likelihood's parameters shaped (B, C * param_channels, H, W).
    `y` (B,) holds class labels; only conditional models read it, the others accept and ignore it.
    Images produced by `sample` and `reconstruct` are the likelihood's mean, in data space.
    """

    conditional = False
    # Layout of weights and input batches in training: conv families use channels_last, which
    # oneDNN's CPU kernels (and cuDNN's) run faster (conv VAE steps ~20% faster on this CPU).
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

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images decoded from z ~ N(0, I): (n, C, H, W) in data space. Conditional models use
        the labels `y` (default: 0, 1, 2, ... cycling over the classes)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, device=device, generator=generator)
        return self.likelihood.mean(self.decode(z, y))

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
