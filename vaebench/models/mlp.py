"""The tutorial's MLP VAE: input -> hidden x depth -> (mu, logvar); z -> hidden x depth -> input."""

from __future__ import annotations

import math

import torch
from torch import nn

from . import MODELS
from .base import VAE


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


class MLPVAE(VAE):
    def __init__(self, data_shape, latent_dim: int, hidden_dim: int, depth: int, likelihood) -> None:
        super().__init__(data_shape, latent_dim, likelihood)
        c, h, w = data_shape
        d_in = c * h * w
        self.out_shape = (c * likelihood.param_channels, h, w)
        hidden = [hidden_dim] * depth
        self.encoder = _mlp([d_in, *hidden])
        self.fc_mu = nn.Linear(hidden_dim, latent_dim)
        self.fc_logvar = nn.Linear(hidden_dim, latent_dim)
        self.decoder = nn.Sequential(_mlp([latent_dim, *hidden]), nn.Linear(hidden_dim, math.prod(self.out_shape)))

    def encode(self, x):
        h = self.encoder(x.flatten(1))  # (B, hidden)
        return self.fc_mu(h), self.fc_logvar(h)  # (B, D) each

    def decode(self, z):
        return self.decoder(z).view(z.shape[0], *self.out_shape)  # (B, C', H, W)


@MODELS.register("mlp")
def build_mlp(cfg, data_shape, likelihood) -> MLPVAE:
    return MLPVAE(data_shape, cfg.latent_dim, cfg.hidden_dim, cfg.depth, likelihood)
