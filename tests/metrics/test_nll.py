"""The importance-sampled NLL metric (Burda et al. 2016): exact checks against numerical
integration of p(x) = int p(x|z) N(z; 0, I) dz, the bound's behaviour in k, chunking, settings."""

import math

import numpy as np
import pyarrow as pa
import pytest
import torch

from vaebench.data import Dataset
from vaebench.metrics import METRICS, EvalContext, evaluate
from vaebench.metrics import column_names as C
from vaebench.metrics import likelihood as L
from vaebench.metrics.likelihood import nll_per_image
from vaebench.models import build_model
from vaebench.objectives.bounds import elbo_terms
from vaebench.objectives.likelihoods import Gaussian
from vaebench.results.rows import row_schema
from vaebench.spec.sweep_spec import ModelConfig, RunConfig

F64 = torch.float64
SHAPE = (1, 4, 4)
LOG_2PI = math.log(2 * math.pi)


def _cfg(**eval_fields) -> RunConfig:
    cfg = RunConfig()
    return cfg.model_copy(update={"eval": cfg.eval.model_copy(update=eval_fields)})


def _ctx(model, x, cfg=None, seed=0) -> EvalContext:
    y = torch.zeros(len(x), dtype=torch.long)
    return EvalContext(model, Dataset("test", x, y, x, y), cfg or RunConfig(), seed)


def _model_and_images(latent_dim: int, n: int, seed: int = 0):
    """A float64 VAE with a fixed random decoder (outputs around 0.5) and an encoder trained
    briefly on that decoder's own images and then perturbed, so q(z|x) is a reasonable proposal
    but not the true posterior (the ELBO is 0.5-1 nats below log p(x)).
    Returns (model, likelihood, n test images decoded from z ~ N(0, I) plus small noise)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    lik = Gaussian(variance=0.05)  # peaked p(x|z): the posterior is narrow and not Gaussian
    model = build_model(ModelConfig(hidden_dim=16, latent_dim=latent_dim), SHAPE, lik).double()
    with torch.no_grad():
        model.decoder[-1].weight.mul_(2.0)
        model.decoder[-1].bias.fill_(0.5)
    for p in model.decoder.parameters():
        p.requires_grad_(False)

    def images(m):
        with torch.no_grad():
            z = torch.randn(m, latent_dim, generator=g, dtype=F64)
            return (model.decode(z) + 0.05 * torch.randn(m, *SHAPE, generator=g, dtype=F64)).clamp(0, 1)

    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for _ in range(300):
        t = elbo_terms(model, lik, images(128))
        loss = (t.recon + t.kl.sum(1)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():  # and then made clearly worse: a wider, shifted q (still a fine proposal)
        model.fc_logvar.bias.add_(0.7)
        model.fc_mu.bias.add_(0.3)
    return model.eval(), lik, images(n)


def _trapezoid_log_weights(a: float, b: float, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.linspace(a, b, n, dtype=F64)
    w = torch.full((n,), (b - a) / (n - 1), dtype=F64)
    w[0] = w[-1] = w[0] / 2
    return z, w.log()


def _exact_log_px(model, lik, x, a: float, b: float, n: int, chunk: int = 100_000) -> torch.Tensor:
    """log p(x) = log int p(x|z) N(z; 0, I) dz by the trapezoid rule on an n^D grid over [a, b]^D,
    in log space (logsumexp of log p(x|z) + log N(z) + log weight). Shape (len(x),)."""
    d = model.latent_dim
    g, logw = _trapezoid_log_weights(a, b, n)
    z = torch.cartesian_prod(*[g] * d).reshape(-1, d)
    lw = torch.cartesian_prod(*[logw] * d).reshape(-1, d).sum(1)
    parts = []
    with torch.no_grad():
        for zc, wc in zip(z.split(chunk), lw.split(chunk)):
            params = model.decode(zc)
            log_lik = torch.stack([-lik.nll(params, xi.expand(len(zc), *xi.shape)) for xi in x])  # (B, G)
            log_prior = -0.5 * (zc.pow(2).sum(1) + d * LOG_2PI)  # N(z; 0, I), written out
            parts.append(log_lik + log_prior + wc)
    return torch.logsumexp(torch.cat(parts, 1), 1)


def _ref_neg_elbo(model, lik, x, samples: int, seed: int) -> torch.Tensor:
    """-ELBO per image, independent of objectives.importance_samples: E_q[-log p(x|z)] by Monte
    Carlo with `samples` draws, plus KL(q || N(0, I)) written out in closed form."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        sd = torch.exp(0.5 * logvar)
        recon = torch.stack(
            [
                lik.nll(model.decode(mu + sd * torch.randn(mu.shape, generator=g, dtype=mu.dtype)), x)
                for _ in range(samples)
            ]
        ).mean(0)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
    return recon + kl


@pytest.fixture(scope="module")
def model_1d():
    return _model_and_images(1, 32, seed=0)


@pytest.fixture(scope="module")
def model_2d():
    return _model_and_images(2, 8, seed=1)


@pytest.mark.parametrize("which, grid", [("model_1d", (-10.0, 10.0, 20001)), ("model_2d", (-6.0, 6.0, 801))])
def test_estimate_matches_numerical_integration(which, grid, request):
    model, lik, x = request.getfixturevalue(which)
    exact = _exact_log_px(model, lik, x, *grid)
    # the reference is converged: a grid half as fine gives the same value
    coarse = _exact_log_px(model, lik, x, grid[0], grid[1], (grid[2] + 1) // 2)
    assert torch.allclose(exact, coarse, atol=1e-4, rtol=0)
    ctx = _ctx(model, x)
    torch.manual_seed(123)
    est = -nll_per_image(ctx, k=5000)
    assert est.dtype == F64 and est.shape == (len(x),)
    assert abs((est - exact).mean().item()) < 0.05
    assert (est - exact).abs().max().item() < 0.4
    # the check has power: the posterior approximation is imperfect, so the k = 1 bound (the
    # ELBO, here averaged over 100 draws) is far below log p(x); forgetting the -log k would be
    # off by log 5000 = 8.5 nats
    torch.manual_seed(123)
    elbo = -nll_per_image(_ctx(model, x.repeat(100, 1, 1, 1)), k=1).view(100, len(x)).mean(0)
    assert (exact - elbo).mean().item() > 0.15  # 3x the tolerance


def test_metric_column_is_the_mean_of_per_image_estimates_over_the_exact_value(model_1d):
    model, lik, x = model_1d
    exact = _exact_log_px(model, lik, x, -10.0, 10.0, 20001)
    out = METRICS.get("nll")(_ctx(model, x, _cfg(nll_k=5000, nll_examples=None)))
    assert out[C.NLL_IS] == pytest.approx(-exact.mean().item(), abs=0.05)
    assert out[C.NLL_K] == 5000 and out[C.NLL_EXAMPLES] == len(x)
    assert out[C.NLL_IS_STDERR] == pytest.approx(exact.std().item() / math.sqrt(len(x)), abs=0.01)


def test_per_image_estimate_reproduces_a_hand_computed_logmeanexp(model_2d):
    """One pass (all codes fit): with the same seed the k draws are eps ~ randn(k, B, D), z = mu + sd
    eps (objectives.importance_samples' order); recompute log (1/k) sum_j w_j by hand."""
    model, lik, x = model_2d
    k = 7
    ctx = _ctx(model, x)
    torch.manual_seed(5)
    ours = nll_per_image(ctx, k)
    torch.manual_seed(5)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        sd = torch.exp(0.5 * logvar)
        z = mu + torch.randn(k, *mu.shape, dtype=F64) * sd  # (k, B, D)
        log_px = -torch.stack([lik.nll(model.decode(zj), x) for zj in z])
        log_pz = -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
        log_qz = -0.5 * (((z - mu) / sd).pow(2) + logvar + LOG_2PI).sum(-1)
        log_w = (log_px + log_pz - log_qz).numpy()
    hand = -(np.log(np.mean(np.exp(log_w - log_w.max(0)), 0)) + log_w.max(0))
    assert np.allclose(ours.numpy(), hand, atol=1e-10, rtol=0)


@pytest.fixture(scope="module")
def model_2d_many():
    return _model_and_images(2, 300, seed=2)


def test_bound_tightens_with_k_and_is_below_neg_elbo(model_2d_many):
    model, lik, x = model_2d_many
    ctx = _ctx(model, x)
    est = {}
    for k in (1, 10, 100, 1000):
        torch.manual_seed(10 + k)
        est[k] = nll_per_image(ctx, k)
    for a, b in [(1, 10), (10, 100), (100, 1000)]:
        d = est[b] - est[a]  # paired over images; independent draws
        se = d.std().item() / math.sqrt(len(d))
        assert d.mean().item() <= 3 * se, (a, b, d.mean().item(), se)
    assert (est[1] - est[1000]).mean().item() > 0.15  # a real gap, so the ordering is tested
    # NLL_IS <= -ELBO: against the elbo metric and against an independent -ELBO
    ref = _ref_neg_elbo(model, lik, x, samples=50, seed=3)
    out = {**METRICS.get("elbo")(ctx), **METRICS.get("nll")(ctx)}  # default nll_examples 1000 >= 300
    assert out[C.NLL_EXAMPLES] == len(x)
    se_single = est[1].std().item() / math.sqrt(len(x))  # spread of a one-sample-per-image mean
    assert out[C.NEG_ELBO] == pytest.approx(ref.mean().item(), abs=4 * se_single)
    assert out[C.NLL_IS] < ref.mean().item() - 0.1
    assert out[C.NLL_IS] < out[C.NEG_ELBO]


def test_k1_is_the_single_sample_elbo_in_expectation(model_2d_many):
    """E[-log w_1] = E_q[-log p(x|z)] + KL(q || p): compare with the closed-form-KL -ELBO."""
    model, lik, x = model_2d_many
    ctx = _ctx(model, torch.cat([x] * 10))  # 3000 images: 10 draws each
    torch.manual_seed(4)
    k1 = nll_per_image(ctx, 1).view(10, len(x)).mean(0)
    ref = _ref_neg_elbo(model, lik, x, samples=100, seed=5)
    d = k1 - ref
    se = d.std().item() / math.sqrt(len(d))
    assert abs(d.mean().item()) < 4 * se + 1e-3, (d.mean().item(), se)
    # and not the tighter bound: k = 100 is clearly below
    torch.manual_seed(6)
    assert nll_per_image(_ctx(model, x), 100).mean().item() < k1.mean().item() - 0.1


def test_result_does_not_depend_on_eval_batch_size(model_2d):
    model, _, x = model_2d
    x = torch.cat([x] * 4)  # 32 images
    outs, per_image = [], []
    for bs in (1, 5, 2000):
        ctx = _ctx(model, x, _cfg(batch_size=bs, nll_k=50), seed=9)
        outs.append(METRICS.get("nll")(ctx))
        torch.manual_seed(9)
        per_image.append(nll_per_image(ctx, 50))
    for o, p in zip(outs[1:], per_image[1:]):
        assert o[C.NLL_IS] == pytest.approx(outs[0][C.NLL_IS], abs=1e-10)
        assert torch.allclose(p, per_image[0], atol=1e-10, rtol=0)
    # in float32 too (the encoder's batched matmuls may round differently): within 1e-5
    m32 = build_model(ModelConfig(hidden_dim=16, latent_dim=2), SHAPE, Gaussian(variance=0.05))
    m32.load_state_dict({k: v.float() for k, v in model.state_dict().items()})
    vals = [
        METRICS.get("nll")(_ctx(m32, x.float(), _cfg(batch_size=bs, nll_k=50), seed=9))[C.NLL_IS] for bs in (3, 2000)
    ]
    assert vals[0] == pytest.approx(vals[1], abs=1e-5)


class _Counting:
    """Wraps a model, recording the batch size of every decode and encode call."""

    def __init__(self, model):
        self.model, self.decoded, self.encoded = model, [], []

    def __enter__(self):
        dec, enc = self.model.decode, self.model.encode
        self.model.decode = lambda z, y=None: (self.decoded.append(len(z)), dec(z, y))[1]
        self.model.encode = lambda x, y=None: (self.encoded.append(len(x)), enc(x, y))[1]
        return self

    def __exit__(self, *exc):
        del self.model.decode, self.model.encode


@pytest.mark.parametrize(
    "codes, passes",
    [
        (10_000, [10_000] * 6 + [4000]),  # 5 images x 2000 codes per pass, 32 images
        (2000, [2000] * 32),  # one image per pass
        (800, [800, 800, 400] * 32),  # one image's k codes split over passes
        (10**6, [64_000]),  # everything in one pass
    ],
)
def test_chunking_bounds_codes_per_pass_and_gives_the_same_estimate(model_1d, codes, passes):
    model, lik, x = model_1d  # 32 images
    exact = _exact_log_px(model, lik, x, -10.0, 10.0, 20001)
    k = 2000
    ctx = _ctx(model, x, _cfg(batch_size=7))
    ctx.posterior  # the metric's encoder pass is the shared one
    with _Counting(model) as calls:
        torch.manual_seed(1)
        est = -nll_per_image(ctx, k, codes_per_pass=codes, decode_codes=codes)  # each draw decoded at once
    assert calls.decoded == passes and calls.encoded == []
    # every chunking estimates the same thing: the exact value (within Monte Carlo error), and,
    # paired with the default chunking (a different draw of the same estimator), equal on average
    assert abs((est - exact).mean().item()) < 0.05
    assert (est - exact).abs().max().item() < 0.4
    torch.manual_seed(1)
    other = -nll_per_image(ctx, k, codes_per_pass=L.NLL_CODES_PER_PASS)
    d = est - other
    assert abs(d.mean().item()) <= 4 * d.std().item() / math.sqrt(len(d)) + 1e-12


@pytest.mark.parametrize("decode_codes", [1, 333, 10_000, 10**6])
def test_decoding_in_slices_changes_nothing_but_the_pass_sizes(model_1d, decode_codes):
    """The drawn codes are the same whatever the decoder's slice size (only the draws follow
    codes_per_pass), so the estimate is the same up to float rounding; every pass is bounded."""
    model, lik, x = model_1d  # 32 images, float64
    ctx = _ctx(model, x)
    ctx.posterior
    torch.manual_seed(1)
    whole = nll_per_image(ctx, 300, codes_per_pass=2400, decode_codes=10**9)  # 8 images per draw, decoded at once
    with _Counting(model) as calls:
        torch.manual_seed(1)
        sliced = nll_per_image(ctx, 300, codes_per_pass=2400, decode_codes=decode_codes)
    assert max(calls.decoded) == min(decode_codes, 2400) and sum(calls.decoded) == 300 * 32
    assert torch.allclose(sliced, whole, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name, shape", [("cvae", (1, 8, 8)), ("conv", (1, 10, 12))])
def test_sliced_importance_samples_of_conditional_and_conv_models(name, shape):
    """Slices keep each code with its own label (conditional models) and image (conv models run
    per-sample in eval mode: BatchNorm uses its running statistics)."""
    from vaebench.objectives.bounds import importance_samples
    from vaebench.objectives.likelihoods import Bernoulli

    torch.manual_seed(0)
    fields = {"cvae": {"hidden_dim": 16}, "conv": {"channels": [4, 8]}}[name]
    model = build_model(ModelConfig(name=name, latent_dim=3, **fields), shape, Bernoulli(), num_classes=10).eval()
    x = torch.rand(6, *shape)
    y = torch.arange(6) % 10
    with torch.no_grad():
        post = model.encode(x, y)
        torch.manual_seed(5)
        whole = importance_samples(model, model.likelihood, x, y, 9, post)
        torch.manual_seed(5)
        sliced = importance_samples(model, model.likelihood, x, y, 9, post, decode_batch=4)
    assert torch.allclose(sliced.log_px, whole.log_px, rtol=1e-5, atol=1e-4)
    assert torch.equal(sliced.log_qz, whole.log_qz) and torch.equal(sliced.log_pz, whole.log_pz)


def test_default_decode_slices_follow_the_output_size():
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden_dim=8, latent_dim=2), (1, 28, 28), Gaussian())
    ctx = _ctx(model, torch.rand(3, 1, 28, 28))
    assert L.decode_batch(ctx) == L.NLL_DECODE_ELEMENTS // 784 == 167
    with _Counting(model) as calls:
        nll_per_image(ctx, 100)  # 300 codes in one draw, decoded 167 at a time
    assert calls.decoded == [167, 133]


def test_settings_are_honoured_and_stored(model_2d):
    model, _, x8 = model_2d
    x = torch.cat([x8] * 5)  # 40 images
    cfg = _cfg(nll_k=17, nll_examples=23)
    out = METRICS.get("nll")(_ctx(model, x, cfg, seed=4))
    assert out[C.NLL_K] == 17 and out[C.NLL_EXAMPLES] == 23
    torch.manual_seed(4)
    direct = nll_per_image(_ctx(model, x), 17, 23)
    assert direct.shape == (23,)
    assert out[C.NLL_IS] == pytest.approx(direct.mean().item(), abs=1e-10)
    assert out[C.NLL_IS_STDERR] == pytest.approx(direct.std().item() / math.sqrt(23), abs=1e-10)
    # only the first 23 images count: changing the others changes nothing
    x2 = x.clone()
    x2[23:] = 1.0 - x2[23:]
    assert METRICS.get("nll")(_ctx(model, x2, cfg, seed=4))[C.NLL_IS] == out[C.NLL_IS]
    x2[22] = 1.0 - x2[22]
    assert METRICS.get("nll")(_ctx(model, x2, cfg, seed=4))[C.NLL_IS] != out[C.NLL_IS]
    # k is used: a different k gives a different value; null and too many mean all images
    assert METRICS.get("nll")(_ctx(model, x, _cfg(nll_k=18, nll_examples=23), seed=4))[C.NLL_IS] != out[C.NLL_IS]
    for n in (None, 1000):
        o = METRICS.get("nll")(_ctx(model, x, _cfg(nll_k=3, nll_examples=n)))
        assert o[C.NLL_EXAMPLES] == 40
    one = METRICS.get("nll")(_ctx(model, x, _cfg(nll_k=3, nll_examples=1)))
    assert one[C.NLL_EXAMPLES] == 1 and math.isnan(one[C.NLL_IS_STDERR])


def test_evaluate_includes_nll_and_its_timing_and_results_declare_the_columns():
    assert "nll" in METRICS.names()
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden_dim=16, latent_dim=3), (1, 8, 8), Gaussian())
    x = torch.rand(30, 1, 8, 8)
    y = torch.zeros(30, dtype=torch.long)
    data = Dataset("test", x, y, x, y)
    cfg = _cfg(nll_k=20, nll_examples=25)
    a = evaluate(model, data, cfg, seed=3, names=["elbo", "nll"])
    b = evaluate(model, data, cfg, seed=3, names=["nll"])  # seeded per metric: order does not matter
    c = evaluate(model, data, cfg, seed=4, names=["nll"])
    assert a[C.NLL_K] == 20 and a[C.NLL_EXAMPLES] == 25
    assert a[C.NLL_IS] == b[C.NLL_IS] != c[C.NLL_IS]
    assert a["eval_seconds_nll"] >= 0 and C.NLL_IS_STDERR in a
    assert a[C.NLL_IS] < a[C.NEG_ELBO] + 4 * a[C.NLL_IS_STDERR]
    nll_cols = {k: a[k] for k in (C.NLL_IS, C.NLL_IS_STDERR, C.NLL_K, C.NLL_EXAMPLES, "eval_seconds_nll")}
    schema = row_schema(nll_cols)
    assert [schema.field(k).type for k in nll_cols] == [
        pa.float64(),
        pa.float64(),
        pa.int64(),
        pa.int64(),
        pa.float64(),
    ]
    assert isinstance(a[C.NLL_K], int) and isinstance(a[C.NLL_EXAMPLES], int) and isinstance(a[C.NLL_IS], float)
