"""Model registry: a name used in specs -> a builder (ModelConfig, data shape, likelihood) -> VAE.

Each family registers itself in its own module; importing this package registers them all.
"""

from __future__ import annotations

from ..registry import Registry
from .base import VAE

MODELS: Registry = Registry("model")


def build_model(cfg, data_shape: tuple[int, int, int], likelihood) -> VAE:
    """The VAE a ModelConfig names, for images of `data_shape` = (C, H, W)."""
    return MODELS.get(cfg.name)(cfg, tuple(data_shape), likelihood)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


from . import mlp  # noqa: E402,F401  (registers "mlp")

__all__ = ["MODELS", "VAE", "build_model", "count_parameters"]
