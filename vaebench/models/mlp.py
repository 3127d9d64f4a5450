"""The tutorial's MLP VAE: input -> hidden x depth -> (mu, logvar); z -> hidden x depth -> input.

`depth` 2 is the tutorial's 2-hidden-layer MLP, 4 its "MLP (4-layer)" row; `batch_norm` puts a
BatchNorm1d after every hidden linear layer.
"""

from __future__ import annotations

import math

from pydantic import Field
from torch import nn

from ..options import Options
from .base import VAE, apply_spectral_norm
from .families import MODELS, ModelFamily


class MLPOptions(Options):
    hidden_dim: int = Field(256, ge=1, description="width of every hidden layer")
    depth: int = Field(2, ge=1, description="hidden layers in the encoder and in the decoder")
    batch_norm: bool = Field(False, description="BatchNorm1d after every hidden linear layer")
    spectral_norm: bool = Field(False, description="spectral normalization on every decoder layer")


def mlp_stack(sizes: list[int], batch_norm: bool) -> nn.Sequential:
    """Linear (+ BatchNorm1d) + ReLU for each consecutive pair of sizes."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), *([nn.BatchNorm1d(b)] if batch_norm else []), nn.ReLU()]
    return nn.Sequential(*layers)


class MLPVAE(VAE):
    def __init__(
        self,
        data_shape,
        latent_dim: int,
        hidden_dim: int,
        depth: int,
        likelihood,
        batch_norm: bool = False,
        spectral_norm: bool = False,
        cond_dim: int = 0,
    ) -> None:
        super().__init__(data_shape, latent_dim, likelihood)
        hidden = [hidden_dim] * depth
        self.encoder = mlp_stack([math.prod(data_shape) + cond_dim, *hidden], batch_norm)
        self.fc_mu = nn.Linear(hidden_dim, latent_dim)
        self.fc_logvar = nn.Linear(hidden_dim, latent_dim)
        self.decoder = nn.Sequential(
            mlp_stack([latent_dim + cond_dim, *hidden], batch_norm), nn.Linear(hidden_dim, math.prod(self.out_shape))
        )
        if spectral_norm:
            apply_spectral_norm(self.decoder)

    def encoder_input(self, x, y):
        return x.flatten(1)  # (B, C*H*W)

    def decoder_input(self, z, y):
        return z  # (B, D)

    def encode(self, x, y=None):
        h = self.encoder(self.encoder_input(x, y))  # (B, hidden)
        return self.fc_mu(h), self.fc_logvar(h)  # (B, D) each

    def decode(self, z, y=None):
        return self.decoder(self.decoder_input(z, y)).view(z.shape[0], *self.out_shape)  # (B, C', H, W)


def build_mlp(cfg, data_shape, likelihood, num_classes) -> MLPVAE:
    return MLPVAE(data_shape, cfg.latent_dim, cfg.hidden_dim, cfg.depth, likelihood, cfg.batch_norm, cfg.spectral_norm)


MODELS.register("mlp", ModelFamily(build_mlp, MLPOptions, "the tutorial's MLP VAE", model=MLPVAE))
