"""Negative log-likelihood by importance sampling (Burda et al. 2016).

For each of the first `eval.nll_examples` test images (all of them when null) draw k = `eval.nll_k`
codes z_j ~ q(z|x) and estimate

    log p(x) ~= log (1/k) sum_{j=1..k} w_j,    w_j = p(x|z_j) p(z_j) / q(z_j|x),

i.e. logmeanexp_j log w_j, with the log-weights from the model's `importance_log_weights` (by
default `objectives.importance_samples`, the one home
of those densities). The estimate is the IWAE bound: in expectation it is a lower bound on log p(x)
that tightens monotonically as k grows, equals the single-sample ELBO (Monte Carlo KL) at k = 1,
and converges to log p(x) as k -> infinity. `nll_is` = mean over the images of -log p(x), in nats
per example (summed over pixels), so NLL_IS <= -ELBO up to Monte Carlo error.

Caveat: the value is the negative log of whatever density the likelihood defines. For a Bernoulli
decoder on grayscale data in [0, 1], log p(x|z) is minus a binary cross-entropy, not a normalized
density of grayscale images, so `nll_is` is a BCE-based bound and not a proper likelihood of the
data (only on binarized data is it the usual NLL of the literature). Likewise, Gaussian and Laplace
decoders give a density of continuous pixels, not comparable with discrete-data NLLs.

Speed: images are processed in chunks of `NLL_CODES_PER_PASS // k`, the codes of a chunk drawn
in one call (when k alone exceeds that bound, one image at a time with its k samples split into
draws). The draws depend only on k and that constant, never on `eval.batch_size`: with the same
seed the result does not depend on the evaluation batch size. The drawn codes then go through the
decoder in slices of about NLL_DECODE_ELEMENTS output values (MNIST: 167 codes), which changes
nothing but memory and speed: a conv decoder's activations for 10,000 codes take gigabytes. The
posterior comes from `ctx.posterior`, so the encoder runs once; everything runs under
`torch.inference_mode`.
The samples are drawn from torch's generator seeded with the run seed (`ctx.seed`) inside a forked
RNG state, so the value does not depend on which metrics ran before it.
"""

from __future__ import annotations

import math

import torch

from . import column_names as C
from .declarations import Column, MetricNotApplicable, eval_settings, register_metric

NLL_CODES_PER_PASS = 10_000  # codes drawn in one call (fixes which random numbers each image gets: keep it)
NLL_DECODE_ELEMENTS = 2**17  # decoder output values per decoder pass (MNIST: 167 codes; speed and memory only)


def decode_batch(ctx) -> int:
    """Codes per decoder pass: NLL_DECODE_ELEMENTS // (values one decoded image has), at least 1."""
    return max(1, NLL_DECODE_ELEMENTS // math.prod(getattr(ctx.model, "out_shape", ctx.x.shape[1:])))


def nll_per_image(
    ctx, k: int, n: int | None = None, codes_per_pass: int = NLL_CODES_PER_PASS, decode_codes: int | None = None
) -> torch.Tensor:
    """-log p(x) estimated with k importance samples for the first n test images (all when None):
    shape (n,), nats per example, in the model's dtype. `codes_per_pass` codes are drawn at a time,
    and decoded `decode_codes` at a time (default: `decode_batch(ctx)`)."""
    n = len(ctx.x) if n is None else min(n, len(ctx.x))
    mu, logvar = ctx.posterior
    chunk = max(1, codes_per_pass // k)  # images per draw
    k_pass = min(k, codes_per_pass)  # samples per draw (< k only when one image's k codes exceed the bound)
    per_decode = decode_codes or decode_batch(ctx)
    out = []
    with torch.inference_mode():
        for start in range(0, n, chunk):
            sl = slice(start, min(start + chunk, n))
            x, y, post = ctx.x[sl], ctx.y[sl], (mu[sl], logvar[sl])
            log_w = torch.cat(
                [  # (k, chunk)
                    ctx.model.importance_log_weights(x, y, min(k_pass, k - done), post, per_decode)
                    for done in range(0, k, k_pass)
                ]
            )
            out.append(math.log(k) - torch.logsumexp(log_w, 0))
    return torch.cat(out) if out else mu.new_zeros(0)


NllOptions = eval_settings(
    "NllOptions", "nll_k", "nll_examples", doc="The NLL's options: the eval settings nll_k and nll_examples."
)


@register_metric(
    "nll",
    settings=NllOptions,
    columns=[
        Column(
            C.NLL_IS,
            "float",
            "nats per example",
            "lower",
            "NLL (IS)",
            "mean over the images of -log p(x), importance sampled with k = nll_k",
        ),
        Column(
            C.NLL_IS_STDERR,
            "float",
            "nats per example",
            None,
            "NLL (IS) standard error",
            "standard error of nll_is over the images",
        ),
        Column(C.NLL_K, "int", "samples per image", None, "NLL samples", "importance samples per image"),
        Column(C.NLL_EXAMPLES, "int", "images", None, "NLL images", "test images in nll_is (the first N of the split)"),
    ],
)
def nll(ctx) -> dict:
    """Importance-sampled NLL over the first eval.nll_examples test images with k = eval.nll_k:
    the mean (nats per example) and its standard error over images. Not applicable to a model whose
    posterior is a point mass (`deterministic_posterior`, e.g. the VQ-VAE's one-hot code): every
    importance weight is then the ELBO, so the estimate would be -ELBO (the `neg_elbo` column)
    whatever k, not a tighter bound on -log p(x)."""
    if getattr(ctx.model, "deterministic_posterior", False):
        raise MetricNotApplicable(
            f"{type(ctx.model).__name__}'s posterior is deterministic "
            "(deterministic_posterior = True): every importance weight equals the ELBO, "
            "so the estimate is neg_elbo, not a tighter NLL"
        )
    k = ctx.options.nll_k
    devices = [ctx.x.device] if ctx.x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # seeded from the run seed, whatever ran before
        torch.manual_seed(ctx.seed)
        values = nll_per_image(ctx, k, ctx.options.nll_examples).double()
    n = len(values)
    stderr = (values.std(unbiased=True) / math.sqrt(n)).item() if n > 1 else float("nan")
    return {
        C.NLL_IS: values.mean().item(),
        C.NLL_IS_STDERR: stderr,
        C.NLL_K: int(k),
        C.NLL_EXAMPLES: int(n),
    }
