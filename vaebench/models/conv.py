"""The tutorial's convolutional VAE: stride-2 Conv + BatchNorm + ReLU stages down to a small map,
linear heads for (mu, logvar); the decoder mirrors it with transposed convolutions.

Spatial sizes are computed per stage (size -> ceil(size / 2)), and each transposed convolution
picks its `output_padding` so that it lands exactly on the encoder's size at that stage: any input
size works (28x28, 10x12, 64x64, ...), not just powers of two.
"""

from __future__ import annotations

import torch
from pydantic import Field, field_validator
from torch import nn

from ..options import Options
from .base import VAE, apply_spectral_norm
from .families import MODELS, ModelFamily


class ConvOptions(Options):
    channels: list[int] = Field(
        default_factory=lambda: [32, 64, 128, 256],
        min_length=1,
        description="channels of the stride-2 stages, input side first",
    )
    spectral_norm: bool = Field(False, description="spectral normalization on every decoder layer")

    @field_validator("channels")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(c < 1 for c in v):
            raise ValueError("channels must be >= 1")
        return v


def stage_sizes(h: int, w: int, n: int) -> list[tuple[int, int]]:
    """(h, w) of the input and after each of n stride-2 stages: n + 1 sizes, input first."""
    sizes = [(h, w)]
    for _ in range(n):
        h, w = -(-h // 2), -(-w // 2)  # a 3x3, stride-2, padding-1 conv maps s -> ceil(s / 2)
        sizes.append((h, w))
    return sizes


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.BatchNorm2d(c_out), nn.ReLU())


def up_bn_relu(c_in: int, c_out: int, size_in: tuple[int, int], size_out: tuple[int, int]) -> nn.Sequential:
    """Transposed conv (3x3, stride 2, padding 1) mapping size_in exactly onto size_out, + BN + ReLU.
    It yields 2 * s - 1 + output_padding, so output_padding = target - (2 * s - 1), 0 or 1 per axis."""
    pad = tuple(t - (2 * s - 1) for s, t in zip(size_in, size_out))
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 3, 2, 1, output_padding=pad), nn.BatchNorm2d(c_out), nn.ReLU())


def down_stages(c_in: int, channels: list[int], down=None) -> list[nn.Module]:
    """The encoder's stride-2 stages c_in -> channels[0] -> ... -> channels[-1]; `down(c_in, c_out)`
    builds one (default: stride-2 Conv + BN + ReLU)."""
    down = down or (lambda a, b: conv_bn_relu(a, b, stride=2))
    return [down(c_prev, c_next) for c_prev, c_next in zip([c_in, *channels[:-1]], channels)]


def up_stages(channels: list[int], sizes: list[tuple[int, int]], up=up_bn_relu) -> list[nn.Module]:
    """The decoder's mirror of `down_stages`, from channels[-1] at sizes[-1] back to channels[0] at
    sizes[0] (the input size): stage i, in reverse, maps channels[i] -> channels[i - 1] (the last
    keeps channels[0]) and sizes[i + 1] -> sizes[i]; `up(c_in, c_out, size_in, size_out)` builds one."""
    return [up(channels[i], channels[max(i - 1, 0)], sizes[i + 1], sizes[i]) for i in reversed(range(len(channels)))]


class ConvVAE(VAE):
    """Subclasses change the architecture through `stem`, `down` and `up` (see resnet.py)."""

    memory_format = torch.channels_last

    def __init__(
        self, data_shape, latent_dim: int, channels: list[int], likelihood, spectral_norm: bool = False
    ) -> None:
        super().__init__(data_shape, latent_dim, likelihood)
        c, h, w = self.data_shape
        n = len(channels)
        sizes = stage_sizes(h, w, n)
        flat = channels[-1] * sizes[-1][0] * sizes[-1][1]
        stem, c_in = self.stem(c, channels[0])
        downs = down_stages(c_in, channels, self.down)
        self.encoder = nn.Sequential(*stem, *downs, nn.Flatten())  # (B, flat)
        self.fc_mu = nn.Linear(flat, latent_dim)
        self.fc_logvar = nn.Linear(flat, latent_dim)
        ups = up_stages(channels, sizes, self.up)  # sizes[-1] -> sizes[0]
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, flat),
            nn.Unflatten(1, (channels[-1], *sizes[-1])),  # (B, channels[-1], h_last, w_last)
            *ups,  # (B, channels[0], H, W)
            nn.Conv2d(channels[0], self.out_shape[0], 3, padding=1),  # (B, C', H, W): no activation
        )
        if spectral_norm:
            apply_spectral_norm(self.decoder)

    def stem(self, c: int, c0: int) -> tuple[list[nn.Module], int]:
        """Layers before the first stage and their output channels: none here."""
        return [], c

    def down(self, c_in: int, c_out: int) -> nn.Module:
        return conv_bn_relu(c_in, c_out, stride=2)

    def up(self, c_in: int, c_out: int, size_in, size_out) -> nn.Module:
        return up_bn_relu(c_in, c_out, size_in, size_out)

    def encode(self, x, y=None):
        h = self.encoder(x)  # (B, flat)
        return self.fc_mu(h), self.fc_logvar(h)  # (B, D) each

    def decode(self, z, y=None):
        return self.decoder(z)  # (B, C', H, W)


def build_conv(cfg, data_shape, likelihood, num_classes) -> ConvVAE:
    return ConvVAE(data_shape, cfg.latent_dim, list(cfg.channels), likelihood, cfg.spectral_norm)


MODELS.register("conv", ModelFamily(build_conv, ConvOptions, "the tutorial's convolutional VAE", model=ConvVAE))
