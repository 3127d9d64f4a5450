import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from vaebench.models import build_model, count_parameters
from vaebench.models.conv import stage_sizes
from vaebench.objectives.gaussian import gaussian_kl
from vaebench.objectives.likelihoods import Bernoulli
from vaebench.spec.sweep_spec import ModelConfig

FAMILIES = ["conv", "resnet"]


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: extra intra-op threads only contend on a busy machine (10-100x slower)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class TwoParams:
    """A stub likelihood with two decoder channels per image channel; the mean is the first half."""

    param_channels = 2
    mean = staticmethod(lambda p: p[:, : p.shape[1] // 2])


def small(name, latent_dim=4, **kw):
    return ModelConfig(name=name, latent_dim=latent_dim, channels=[8, 16], **kw)


def test_stage_sizes_halve_rounding_up():
    assert stage_sizes(28, 28, 4) == [(28, 28), (14, 14), (7, 7), (4, 4), (2, 2)]
    assert stage_sizes(10, 12, 2) == [(10, 12), (5, 6), (3, 3)]


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (1, 10, 12), (3, 64, 64)])
def test_shapes(name, shape):
    torch.manual_seed(0)
    m = build_model(small(name), shape, Bernoulli())
    x = torch.rand(3, *shape)
    mu, logvar = m.encode(x)
    assert mu.shape == logvar.shape == (3, 4)
    assert m.decode(mu).shape == (3, *shape)
    assert m(x)[0].shape == (3, *shape)
    assert m.sample(2).shape == (2, *shape)
    r = m.reconstruct(x)
    assert r.shape == x.shape and r.min() >= 0 and r.max() <= 1


@pytest.mark.parametrize("name", FAMILIES)
def test_reconstruct_is_deterministic_in_eval(name):
    torch.manual_seed(0)
    m = build_model(small(name), (1, 10, 12), Bernoulli()).eval()
    x = torch.rand(4, 1, 10, 12)
    assert torch.equal(m.reconstruct(x), m.reconstruct(x))
    mu, _ = m.encode(x)
    assert torch.allclose(m.reconstruct(x), torch.sigmoid(m.decode(mu)))


@pytest.mark.parametrize("name", FAMILIES)
def test_decoder_output_follows_param_channels(name):
    m = build_model(small(name), (3, 10, 12), TwoParams())
    assert m.out_shape == (6, 10, 12)
    z = torch.randn(2, 4)
    assert m.decode(z).shape == (2, 6, 10, 12)
    assert m.sample(2).shape == (2, 3, 10, 12)
    assert m.reconstruct(torch.rand(2, 3, 10, 12)).shape == (2, 3, 10, 12)


@pytest.mark.parametrize("name", FAMILIES)
def test_spectral_norm_parametrizes_the_decoder(name):
    plain = build_model(small(name), (1, 10, 12), Bernoulli())
    m = build_model(small(name, spectral_norm=True), (1, 10, 12), Bernoulli())
    layers = [mod for mod in m.decoder.modules() if isinstance(mod, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]
    assert layers and all(parametrize.is_parametrized(mod, "weight") for mod in layers)
    assert any(isinstance(mod, nn.ConvTranspose2d) for mod in layers)
    assert not any(parametrize.is_parametrized(mod) for mod in m.encoder.modules())
    assert not any(parametrize.is_parametrized(mod) for mod in plain.decoder.modules())
    x = torch.rand(3, 1, 10, 12)
    assert m(x)[0].shape == x.shape
    assert m.eval().reconstruct(x).shape == x.shape


def test_default_conv_parameter_count():
    # 28x28 -> 14 -> 7 -> 4 -> 2 with channels [32, 64, 128, 256]; conv = k*k*in*out + out, BN = 2*c
    m = build_model(ModelConfig(name="conv", latent_dim=128), (1, 28, 28), Bernoulli())
    flat = 256 * 2 * 2
    enc = (
        (9 * 1 * 32 + 32)
        + 2 * 32
        + (9 * 32 * 64 + 64)
        + 2 * 64
        + (9 * 64 * 128 + 128)
        + 2 * 128
        + (9 * 128 * 256 + 256)
        + 2 * 256
        + 2 * (flat * 128 + 128)  # mu and logvar heads
    )
    dec = (
        (128 * flat + flat)
        + (9 * 256 * 128 + 128)
        + 2 * 128  # transposed convs: 2x2 -> 4x4 -> 7x7 -> 14x14 -> 28x28
        + (9 * 128 * 64 + 64)
        + 2 * 64
        + (9 * 64 * 32 + 32)
        + 2 * 32
        + (9 * 32 * 32 + 32)
        + 2 * 32
        + (9 * 32 * 1 + 1)  # output conv
    )
    assert count_parameters(m) == enc + dec == 1_180_641


def test_resnet_adds_residual_blocks_to_conv():
    # conv's stages, plus one residual block (2 convs + 2 BNs) per stage on each side; and the stem conv
    # 1 -> 32 has the shape of conv's first layer, after which the first down conv is 32 -> 32
    conv = build_model(ModelConfig(name="conv", latent_dim=128), (1, 28, 28), Bernoulli())
    res = build_model(ModelConfig(name="resnet", latent_dim=128), (1, 28, 28), Bernoulli())
    block = lambda c: 2 * (9 * c * c + c) + 2 * 2 * c  # noqa: E731
    first_down = 9 * 32 * 32 + 32
    extra = first_down + sum(block(c) for c in [32, 32, 64, 128]) + sum(block(c) for c in [128, 64, 32, 32])
    assert count_parameters(res) == 2_003_969
    assert count_parameters(res) - count_parameters(conv) == extra


@pytest.mark.parametrize("name", FAMILIES)
def test_short_training_lowers_the_loss(name):
    torch.manual_seed(0)
    x = torch.rand(64, 1, 8, 8)
    m = build_model(small(name), (1, 8, 8), Bernoulli())
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        mu, logvar = m.encode(x)
        z = m.reparameterize(mu, logvar)
        loss = Bernoulli().nll(m.decode(z), x).mean() + gaussian_kl(mu, logvar).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # Uniform pixels leave little to learn in 30 steps (predicting 0.5 everywhere costs 64 ln 2 = 44.4
    # nats), but the loss falls from its random-init value by about 1-3 nats (seed-dependent).
    early, late = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert late < early - 0.5
