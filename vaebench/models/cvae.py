"""Conditional VAE (Sohn et al. 2015) on the MLP: the one-hot class label joins the encoder input
and the decoder input, so q(z|x, y) and p(x|z, y); sampling takes labels."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .families import MODELS, ModelFamily
from .mlp import MLPVAE, MLPOptions


class CVAE(MLPVAE):
    conditional = True

    def __init__(
        self,
        data_shape,
        latent_dim,
        hidden_dim,
        depth,
        likelihood,
        num_classes: int,
        batch_norm: bool = False,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__(
            data_shape, latent_dim, hidden_dim, depth, likelihood, batch_norm, spectral_norm, cond_dim=num_classes
        )
        self.num_classes = num_classes

    def _onehot(self, y: torch.Tensor | None, n: int, device) -> torch.Tensor:
        if y is None:
            raise ValueError("a conditional VAE needs class labels y")
        return F.one_hot(y.to(device).long(), self.num_classes).float()  # (B, K)

    def encoder_input(self, x, y):
        return torch.cat([x.flatten(1), self._onehot(y, len(x), x.device)], 1)  # (B, C*H*W + K)

    def decoder_input(self, z, y):
        return torch.cat([z, self._onehot(y, len(z), z.device)], 1)  # (B, D + K)

    @torch.no_grad()
    def sample(self, n, y=None, generator=None):
        """n images; labels `y` (default: 0, 1, ..., K-1, 0, 1, ... so every class is drawn)."""
        device = next(self.parameters()).device
        if y is None:
            y = torch.arange(n, device=device) % self.num_classes
        return super().sample(n, y, generator)


def build_cvae(cfg, data_shape, likelihood, num_classes) -> CVAE:
    return CVAE(
        data_shape,
        cfg.latent_dim,
        cfg.hidden_dim,
        cfg.depth,
        likelihood,
        num_classes,
        cfg.batch_norm,
        cfg.spectral_norm,
    )


MODELS.register(
    "cvae",
    ModelFamily(build_cvae, MLPOptions, "conditional VAE on the MLP (class label in encoder and decoder)", model=CVAE),
)
