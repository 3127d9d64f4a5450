"""Metric registry and the one entry point, `evaluate`.

A metric is a compute function `(ctx: EvalContext) -> dict[column, value]` registered with its
declaration (`register_metric(name, columns=[Column(...)], options=...)`, see declarations.py): the
columns it fills with their types, units, directions and labels. The row schema, the targets a
search may optimize and the report's "All metrics" table are read from those declarations.
`EvalContext` runs the passes several metrics share (encoding the test split, decoding the
posterior means) once, lazily. The built-in column names are the constants in `column_names`.

Not applicable: a metric none of whose columns apply to this model or dataset raises
`MetricNotApplicable(reason)`; one that fills some columns and not others (FID of reconstructions,
but no FID of samples for a model that cannot sample) calls `ctx.skip(part, reason)` and leaves
those columns out of its dict. Either way the columns are null and `metrics_skipped` says why:
"<metric>: <reason>", or "<metric> (<part>): <reason>".

The built-in metric modules are imported on the registry's first lookup (`evaluate`, or any `METRICS`
call: `_load_builtin_metrics` below), not with this package, and none of them imports torch-fidelity or torchvision before FID
runs: processes that only create, watch or report a study can read the declarations cheaply.
"""

from __future__ import annotations

import time
from functools import cached_property
from typing import TYPE_CHECKING, Callable

from .declarations import (
    DTYPES,
    METRICS,
    METRICS_SKIPPED,
    Column,
    MetricDeclaration,
    MetricDeclarationError,
    MetricNotApplicable,
    MetricSpec,  # deprecated alias of MetricDeclaration, removed in the next release
    declared_columns,
    numeric_metric_columns,
    register_metric,
    unregister_metric,
)

if TYPE_CHECKING:
    import torch


def _load_builtin_metrics() -> None:
    """Import the built-in metric modules; each registers its metrics on import."""
    from . import codebook, disentanglement, factor_scores, fid, latent, layers, likelihood, perceptual, recon  # noqa: F401


METRICS.on_first_use(_load_builtin_metrics)

Metric = Callable[["EvalContext"], dict]

__all__ = [
    "DTYPES",
    "METRICS",
    "METRICS_SKIPPED",
    "Column",
    "EvalContext",
    "Metric",
    "MetricDeclaration",
    "MetricDeclarationError",
    "MetricNotApplicable",
    "MetricSpec",  # deprecated alias of MetricDeclaration
    "declared_columns",
    "evaluate",
    "numeric_metric_columns",
    "register_metric",
    "unregister_metric",
]


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
        self.options = None  # the running metric's validated options (`MetricDeclaration.__call__` sets them)
        self.metric = None  # the running metric's name (`MetricDeclaration.__call__` sets it)
        self.skipped: list[str] = []  # `metrics_skipped` so far: "<metric>: <reason>", "<metric> (<part>): <reason>"

    def skip(self, part: str, reason: str) -> None:
        """Record that the running metric leaves `part` of its columns null because it does not apply
        here, e.g. `ctx.skip("samples", "the model cannot sample")` in FID, which still computes the
        FID of reconstructions: `metrics_skipped` gets "<metric> (<part>): <reason>". The metric leaves
        those columns out of the dict it returns. (When none of its columns apply, raise
        MetricNotApplicable instead.)"""
        self.skipped.append(f"{self.metric} ({part}): {reason}")

    def batches(self):
        """(x, y) slices of the test split, eval.batch_size at a time."""
        for start in range(0, len(self.x), self.batch_size):
            yield self.x[start : start + self.batch_size], self.y[start : start + self.batch_size]

    @cached_property
    def posterior(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of q(z|x) for every test image: (N, D) each."""
        import torch

        with torch.no_grad():
            parts = [self.model.encode(x, y) for x, y in self.batches()]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    @cached_property
    def _decoded_mu(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One decoder pass over the posterior means, shared by reconstructions and per-class NLL:
        (E[x | z = mu(x)] (N, C, H, W), -log p(x | z = mu(x)) (N,) in nats)."""
        import torch

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

    @cached_property
    def sampled_kl(self) -> torch.Tensor:
        """The model's `elbo_terms(x).kl` for every test image: (N, D'), nats — one joint sample per
        image from torch's generator seeded with the run seed in a forked RNG state (so the same
        draws whichever metric asks first, and nothing else's random stream moves). Shared by the
        per-dimension and per-layer KLs of hierarchical models."""
        import torch

        devices = [self.x.device] if self.x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(self.seed)
            return torch.cat([self.model.elbo_terms(x, y).kl for x, y in self.batches()])


def evaluate(model, data, cfg, seed: int, names: list[str] | None = None, on_metric=None) -> dict:
    """Run the named metrics (default: all registered) on the test split of `data` (a Dataset; its
    `validation_split()` to measure them on the validation examples instead). `on_metric(name)`, if
    given, is called as each metric starts (what a progress display shows while a run is evaluated).

    Returns every declared column of those metrics (null where a metric did not apply or left a
    column out), `eval_seconds_<metric>` for each metric (wall seconds) and `metrics_skipped`: one
    "<metric>: <reason>" per metric that raised MetricNotApplicable and one "<metric> (<part>):
    <reason>" per `ctx.skip` of a metric that left part of its columns out. A metric returning a column it
    did not declare is a MetricDeclarationError. Sampling inside metrics is seeded from `seed`, so
    the same model gives the same numbers.
    """
    from ..runtime.seeding import seed_everything

    seed_everything(seed)
    ctx = EvalContext(model, data, cfg, seed)
    out: dict = {}
    skipped = ctx.skipped
    for name in names or METRICS.names():
        metric = METRICS.get(name)
        if on_metric is not None:
            on_metric(name)
        t0 = time.perf_counter()
        try:
            values = metric(ctx)
        except MetricNotApplicable as e:
            values = {}
            skipped.append(f"{name}: {e.reason}")
        undeclared = [k for k in values if k not in metric.column_names]
        if undeclared:
            raise MetricDeclarationError(
                f"metric {name!r} returned column(s) it does not declare: {', '.join(map(repr, undeclared))}; "
                f"declare them in its register_metric(columns=[...])"
            )
        out.update(dict.fromkeys(metric.column_names))
        out.update(values)
        out[f"eval_seconds_{name}"] = time.perf_counter() - t0
    out[METRICS_SKIPPED] = skipped
    return out
