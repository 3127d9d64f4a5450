"""Metric registry and the one entry point, `evaluate`.

A metric is a function `(ctx: EvalContext) -> dict[column, value]`, registered by name in the module
that defines it. `EvalContext` runs the passes several metrics share (encoding the test split,
decoding the posterior means) once, lazily. Column names are the constants in `columns`.

The built-in metric modules are imported on the registry's first lookup (`evaluate`, or any `METRICS`
call), not with this package: `fid` brings torch-fidelity and torchvision (~3 s of imports), which
processes that only create, watch or report a study do not need.
"""

from __future__ import annotations

import importlib
import time
from functools import cached_property
from typing import Callable

import torch

from ..registry import Registry
from ..runtime import seed_everything

Metric = Callable[["EvalContext"], dict]
BUILTIN_MODULES = ("disentanglement", "fid", "latent", "likelihood", "recon")


def _load_builtin_metrics() -> None:
    for module in BUILTIN_MODULES:  # each registers its metrics on import
        importlib.import_module(f"{__name__}.{module}")


METRICS: Registry[Metric] = Registry("metric", load=_load_builtin_metrics)


class EvalContext:
    """The trained model and the test split, plus lazily computed shared passes."""

    def __init__(self, model, data, cfg, seed: int = 0) -> None:
        self.model = model.eval()
        self.likelihood = model.likelihood
        device = next(model.parameters()).device
        self.data = data  # the Dataset (metrics that need the training split, e.g. FID's classifier)
        self.x = data.x_test.to(device)  # (N, C, H, W) in [0, 1]
        self.y = data.y_test.to(device)  # (N,) class labels (conditional models read them)
        self.cfg = cfg  # RunConfig
        self.seed = seed
        self.batch_size = cfg.eval.batch_size

    def batches(self):
        """(x, y) slices of the test split, eval.batch_size at a time."""
        for start in range(0, len(self.x), self.batch_size):
            yield self.x[start : start + self.batch_size], self.y[start : start + self.batch_size]

    @cached_property
    def posterior(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of q(z|x) for every test image: (N, D) each."""
        with torch.no_grad():
            parts = [self.model.encode(x, y) for x, y in self.batches()]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    @cached_property
    def _decoded_mu(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One decoder pass over the posterior means, shared by reconstructions and per-class NLL:
        (E[x | z = mu(x)] (N, C, H, W), -log p(x | z = mu(x)) (N,) in nats)."""
        mu, _ = self.posterior
        means, nlls = [], []
        with torch.no_grad():
            for m, (x, y) in zip(mu.split(self.batch_size), self.batches()):
                params = self.model.decode(m, y)
                means.append(self.likelihood.mean(params))
                nlls.append(self.likelihood.nll(params, x))
        return torch.cat(means), torch.cat(nlls)

    @property
    def reconstructions(self) -> torch.Tensor:
        """E[x | z = mu(x)] for every test image: (N, C, H, W), data space."""
        return self._decoded_mu[0]

    @property
    def recon_nll_at_mu(self) -> torch.Tensor:
        """-log p(x | z = mu(x)) for every test image: (N,), nats."""
        return self._decoded_mu[1]


def evaluate(model, data, cfg, seed: int, names: list[str] | None = None) -> dict:
    """Run the named metrics (default: all registered) on the test split of `data` (a Dataset).

    Returns the metric columns plus `eval_seconds_<metric>` for each metric (wall seconds).
    Sampling inside metrics is seeded from `seed`, so the same model gives the same numbers.
    """
    seed_everything(seed)
    ctx = EvalContext(model, data, cfg, seed)
    out: dict = {}
    for name in names or METRICS.names():
        fn = METRICS.get(name)
        t0 = time.perf_counter()
        out.update(fn(ctx))
        out[f"eval_seconds_{name}"] = time.perf_counter() - t0
    return out

