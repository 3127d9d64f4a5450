"""Models: a name used in specs -> a `ModelFamily` (builder + its own `Options` model).

Each family registers itself in its own module, built-ins and plugins alike (through
`MODELS.register`, models/families.py); importing this package registers the built-ins. A builder
is `build(cfg, data_shape: (C, H, W), likelihood, num_classes) -> VAE`, where `cfg` is the run's
`ModelConfig`: `cfg.latent_dim` plus the family's options as attributes (`cfg.hidden_dim`). The
model it returns implements the interface of `base.VAE`.
"""

from __future__ import annotations

from ..options import Options

# The built-in families, imported after the registry: each registers itself on import.
from . import conv, cvae, ladder, mlp, resnet, vqvae  # noqa: F401
from .base import VAE
from .families import MODEL_COMMON_FIELDS, MODELS, ModelFamily, build_model, count_parameters

__all__ = ["MODELS", "MODEL_COMMON_FIELDS", "ModelFamily", "Options", "VAE", "build_model", "count_parameters"]
