"""Model registry: a name used in specs -> a `ModelFamily` (builder + the ModelConfig fields it reads).

Each family registers itself in its own module; importing this package registers them all.
A builder is `build(cfg: ModelConfig, data_shape: (C, H, W), likelihood, num_classes) -> VAE`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..registry import Registry
from .base import VAE


@dataclass(frozen=True)
class ModelFamily:
    build: Callable[..., VAE]
    fields: tuple[str, ...]  # ModelConfig fields this family reads (besides name, latent_dim, spectral_norm)


MODELS: Registry[ModelFamily] = Registry("model")


def build_model(cfg, data_shape: tuple[int, int, int], likelihood, num_classes: int = 10) -> VAE:
    """The VAE a ModelConfig names, for images of `data_shape` = (C, H, W)."""
    return MODELS.get(cfg.name).build(cfg, tuple(data_shape), likelihood, num_classes)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


from . import conv, cvae, mlp, resnet  # noqa: E402,F401  (register the families)

__all__ = ["MODELS", "ModelFamily", "VAE", "build_model", "count_parameters"]
