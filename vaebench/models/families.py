"""The model registry: a name used in specs -> a `ModelFamily` (builder + its own `Options` model).

Every family module (built-in or plugin) imports `MODELS` and `ModelFamily` from here and registers
itself; models/__init__.py imports this module first, then the built-in families, so the built-ins
are registered before any other module can reach the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..options import NoOptions, Options, check_options_model
from ..registry import Registry
from .base import VAE

MODEL_COMMON_FIELDS = ("name", "latent_dim")  # what every model section has besides its family's options


@dataclass(frozen=True)
class ModelFamily:
    """A model family: `build(cfg, data_shape, likelihood, num_classes) -> VAE` and the pydantic
    model of the options it reads (validated in the spec's `model:` section)."""

    build: Callable[..., VAE]
    options: type[Options] = NoOptions
    doc: str = ""
    kl_per_dim: bool = True  # False: its KL does not decompose by latent dimension (free bits refused in the spec)
    # Optional cross-field check of the whole `model:` section (the common fields, e.g. latent_dim,
    # against the family's options): `check(cfg)` raises ValueError with the message; run when the
    # spec is validated, so a mismatch is a spec error located at `model`.
    check: Callable[..., None] | None = None


def _check_family(name: str, family: ModelFamily) -> None:
    if not isinstance(family, ModelFamily) or not callable(family.build):
        raise ValueError(f"model {name!r}: register a vaebench.models.ModelFamily(build, options), got {family!r}")
    check_options_model(family.options, MODEL_COMMON_FIELDS, f"model {name!r}")
    if family.check is not None and not callable(family.check):
        raise ValueError(f"model {name!r}: check must be a function (model section) -> None, got {family.check!r}")


MODELS: Registry[ModelFamily] = Registry("model", check=_check_family)


def build_model(cfg, data_shape: tuple[int, int, int], likelihood, num_classes: int = 10) -> VAE:
    """The VAE a ModelConfig names, for images of `data_shape` = (C, H, W)."""
    return MODELS.get(cfg.name).build(cfg, tuple(data_shape), likelihood, num_classes)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
