"""The model registry: a name used in specs -> a `ModelFamily` (builder + its own `Options` model).

Every family module (built-in or plugin) imports `MODELS` and `ModelFamily` from here and registers
itself; models/__init__.py imports the built-in family modules, and Python runs it before any module
of the package, so the built-ins are registered before any other module can reach the registry.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Optional

from ..options import NoOptions, Options, check_entry
from ..registry import Registry
from .base import VAE

MODEL_COMMON_FIELDS = ("name", "latent_dim")  # what every model section has besides its family's options


@dataclass(frozen=True)
class ModelFamily:
    """A model family: `build(cfg, data_shape, likelihood, num_classes) -> VAE`, the pydantic model of
    the options it reads (validated in the spec's `model:` section), and the class of the models it
    builds."""

    build: Callable[..., VAE]
    options: type[Options] = NoOptions
    doc: str = ""
    # The class `build` returns: its class attributes describe every model of the family before one is
    # built (`kl_per_dim`: the spec refuses free bits for a KL that does not decompose by dimension).
    model: type = VAE
    # Optional cross-field check of the whole `model:` section (the common fields, e.g. latent_dim,
    # against the family's options): `check(cfg)` raises ValueError with the message; run when the
    # spec is validated, so a mismatch is a spec error located at `model`.
    check: Callable[..., None] | None = None
    # Optional check of the whole run (`check_run(run_config)`: the model against the objective, the
    # schedule, the dataset section), for a family whose models constrain the other sections (e.g. one
    # that owns its training loss, so vaebench's loss settings would be ignored); raises ValueError,
    # run when the spec is validated (a spec error, exit 2).
    check_run: Callable[..., None] | None = None
    # Whether the family's KL decomposes by latent dimension: `model.kl_per_dim`, filled in here.
    # Giving it is deprecated (plugins written for 0.1.0; removed in the next release): give `model`.
    kl_per_dim: Optional[bool] = None

    def __post_init__(self) -> None:
        declared = bool(getattr(self.model, "kl_per_dim", True))
        if self.kl_per_dim is None:
            object.__setattr__(self, "kl_per_dim", declared)
            return
        warnings.warn(
            "ModelFamily(kl_per_dim=...) is deprecated: give model=<the class build returns>, "
            "whose kl_per_dim attribute the family reads",
            DeprecationWarning,
            stacklevel=3,
        )
        if self.model is not VAE and bool(self.kl_per_dim) != declared:
            raise ValueError(
                f"ModelFamily(kl_per_dim={self.kl_per_dim}) disagrees with {self.model.__name__}.kl_per_dim "
                f"= {declared}: leave kl_per_dim out"
            )


def _check_family(name: str, family: ModelFamily) -> None:
    check_entry(
        "model",
        name,
        family,
        ModelFamily,
        "build",
        "a vaebench.models.ModelFamily(build, options)",
        MODEL_COMMON_FIELDS,
    )
    if not isinstance(family.model, type):
        raise ValueError(f"model {name!r}: model must be the class its build returns, got {family.model!r}")
    if family.check is not None and not callable(family.check):
        raise ValueError(f"model {name!r}: check must be a function (model section) -> None, got {family.check!r}")
    if family.check_run is not None and not callable(family.check_run):
        raise ValueError(f"model {name!r}: check_run must be a function (run config) -> None, got {family.check_run!r}")


MODELS: Registry[ModelFamily] = Registry("model", check=_check_family)


def build_model(cfg, data_shape: tuple[int, int, int], likelihood, num_classes: int = 10) -> VAE:
    """The VAE a ModelConfig names, for images of `data_shape` = (C, H, W)."""
    return MODELS.get(cfg.name).build(cfg, tuple(data_shape), likelihood, num_classes)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
