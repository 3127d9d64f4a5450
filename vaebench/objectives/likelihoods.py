"""Likelihoods p(x|z) behind a registry; each returns -log p(x|z) in nats per example (summed over pixels)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import RegistryError
from ..registry import Registry
from .gaussian import LOG_2PI

# ---------------------------------------------------------------------------------------------
# likelihoods


class Likelihood:
    """A decoder distribution p(x|z) parameterized by the decoder's output `params`.

    `nll(params, x)` is -log p(x|z) per example in nats, summed over pixels: shape (B,).
    `mean(params)` is E[x|z], an image in data space (what reconstructions and samples show).
    `param_channels` is how many output channels the decoder needs per image channel.
    """

    name: str = ""
    param_channels: int = 1

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _per_example(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).sum(1)


class Bernoulli(Likelihood):
    """Bernoulli pixels; `params` are logits. nll = BCE-with-logits summed over pixels (stable for
    any logit). On grayscale data in [0, 1] this is a cross-entropy, not a normalized likelihood."""

    name = "bernoulli"

    def nll(self, params, x):
        return _per_example(F.binary_cross_entropy_with_logits(params, x, reduction="none"))

    def mean(self, params):
        return torch.sigmoid(params)


@dataclass
class Gaussian(Likelihood):
    """Gaussian pixels with fixed variance; `params` are the means.

    nll = sum_i [ (x_i - m_i)^2 / (2 variance) + 1/2 log(2 pi variance) ]. With variance 0.5 the
    data-dependent part is sum (x - m)^2, the tutorial's F.mse_loss(reduction='sum').
    """

    variance: float = 0.5
    name = "gaussian"

    def nll(self, params, x):
        sq = _per_example((x - params).pow(2)) / (2.0 * self.variance)
        return sq + 0.5 * math.log(2 * math.pi * self.variance) * x[0].numel()

    def mean(self, params):
        return params


@dataclass
class Laplace(Likelihood):
    """Laplace pixels with fixed scale b; `params` are the locations.

    nll = sum_i [ |x_i - m_i| / b + log(2 b) ]. With b = 1 the data-dependent part is
    sum |x - m|, the tutorial's F.l1_loss(reduction='sum').
    """

    scale: float = 1.0
    name = "laplace"

    def nll(self, params, x):
        return _per_example((x - params).abs()) / self.scale + math.log(2 * self.scale) * x[0].numel()

    def mean(self, params):
        return params


@dataclass
class GaussianLearned(Likelihood):
    """Gaussian pixels with a learned per-pixel variance: the decoder outputs, per image channel,
    a mean channel and a raw variance channel; variance = floor + softplus(raw).

    nll = 1/2 sum_i [ (x_i - m_i)^2 / var_i + log var_i + log 2 pi ], the full negative log-density.
    The floor keeps the density bounded on pixels that never vary (MNIST's black border).
    """

    floor: float = 1e-3
    name = "gaussian_learned"
    param_channels = 2

    def split(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = params.shape[1] // 2
        return params[:, :c], self.floor + F.softplus(params[:, c:])  # (B, C, H, W) each

    def nll(self, params, x):
        m, var = self.split(params)
        return 0.5 * _per_example((x - m).pow(2) / var + var.log() + LOG_2PI)

    def mean(self, params):
        return self.split(params)[0]


def _check_entry(name: str, make) -> None:
    if not callable(make) or isinstance(make, Likelihood):
        raise ValueError(
            f"likelihood {name!r}: register a function objective-config -> Likelihood "
            f"(e.g. `lambda cfg: MyLikelihood()`), got {make!r}"
        )


# A plugin registers its own as the built-ins do: `LIKELIHOODS.register("name", lambda cfg: Mine())`,
# `Mine` a `Likelihood` subclass; `cfg` is the spec's `objective:` section, whose keys are vaebench's
# (a plugin likelihood has no options of its own: register each setting under its own name).
LIKELIHOODS: Registry[Callable] = Registry("likelihood", check=_check_entry)
LIKELIHOODS.register("bernoulli", lambda cfg: Bernoulli())
LIKELIHOODS.register("gaussian", lambda cfg: Gaussian(variance=cfg.variance))
LIKELIHOODS.register("laplace", lambda cfg: Laplace(scale=cfg.laplace_scale))
LIKELIHOODS.register("gaussian_learned", lambda cfg: GaussianLearned(floor=cfg.variance_floor))


def build_likelihood(cfg) -> Likelihood:
    """Likelihood named by an ObjectiveConfig."""
    likelihood = LIKELIHOODS.get(cfg.likelihood)(cfg)
    if not isinstance(likelihood, Likelihood):
        raise RegistryError(
            f"likelihood {cfg.likelihood!r} made a {type(likelihood).__name__}, not a vaebench.Likelihood subclass"
        )
    return likelihood
