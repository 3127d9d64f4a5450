"""Codebook usage of a vector-quantized model (e.g. the `vqvae` family): perplexity and codes used.

Applies to a model with a codebook, i.e. one with `code_indices(x, y) -> (B, ...)` int64 indices of
the code chosen at each latent position and `num_embeddings` (K, the codebook's size); skipped with
the reason for every other model.

Over the test split's N images and their n_positions latent positions each, with c_k the number
of the N * n_positions positions that chose code k and p_k = c_k / (N * n_positions):

- `codebook_perplexity` = exp(-sum_k p_k log p_k): the exponential of the entropy of the average
  code usage (as Sonnet's VQ-VAE reports it, here over the whole split rather than a batch), in
  [1, K]: K when every code is used equally often, 1 when a single code is.
- `codes_used_fraction` = #{k : c_k > 0} / K, in (0, 1].

No separate rate column: the `kl` column already is the rate under the paper's uniform prior,
n_positions * log K nats per image; n_positions * log(codebook_perplexity) would be the rate if
codes were coded by their test-split frequencies, and is computable from these two columns
(n_positions = kl / log K).
"""

from __future__ import annotations

import torch

from . import column_names as C
from .declarations import Column, MetricNotApplicable, register_metric


def code_counts(indices: torch.Tensor, num_embeddings: int) -> torch.Tensor:
    """How many positions chose each code: indices (any shape) in [0, K) -> (K,) int64."""
    return torch.bincount(indices.flatten(), minlength=num_embeddings)


def perplexity(counts: torch.Tensor) -> float:
    """exp of the entropy (nats) of the usage distribution counts / counts.sum(); 0 log 0 = 0."""
    p = counts.double() / counts.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def used_fraction(counts: torch.Tensor) -> float:
    """Fraction of the codes chosen at least once."""
    return float((counts > 0).sum()) / len(counts)


@register_metric(
    "codebook",
    columns=[
        Column(
            C.CODEBOOK_PERPLEXITY,
            "float",
            "codes",
            "higher",
            "Codebook perplexity",
            "exp of the entropy of the average code usage over the test split's latent positions, in [1, K]",
        ),
        Column(
            C.CODES_USED_FRACTION,
            "float",
            "fraction",
            "higher",
            "Codes used",
            "fraction of the K codes chosen at least once on the test split",
        ),
    ],
)
def codebook(ctx) -> dict:
    """Codebook perplexity and the fraction of codes used on the test split, for models with a
    codebook (`code_indices` and `num_embeddings`); not applicable to the others."""
    model = ctx.model
    if not callable(getattr(model, "code_indices", None)) or not hasattr(model, "num_embeddings"):
        raise MetricNotApplicable(f"{type(model).__name__} has no codebook (no code_indices / num_embeddings)")
    k = int(model.num_embeddings)
    counts = torch.zeros(k, dtype=torch.long, device=ctx.x.device)
    with torch.no_grad():
        for x, y in ctx.batches():
            counts += code_counts(model.code_indices(x, y), k)
    return {C.CODEBOOK_PERPLEXITY: perplexity(counts), C.CODES_USED_FRACTION: used_fraction(counts)}
