import pytest
import torch

from vaebench.errors import RegistryError
from vaebench.models import MODELS, build_model, count_parameters
from vaebench.objectives.likelihoods import Bernoulli
from vaebench.spec.sweep_spec import ModelConfig


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (1, 10, 12), (3, 16, 20)])
def test_mlp_shapes(shape):
    m = build_model(ModelConfig(hidden_dim=16, latent_dim=3), shape, Bernoulli())
    x = torch.rand(5, *shape)
    mu, logvar = m.encode(x)
    assert mu.shape == logvar.shape == (5, 3)
    assert m.decode(mu).shape == (5, *shape)
    assert m.sample(7).shape == (7, *shape)
    r = m.reconstruct(x)
    assert r.shape == x.shape and r.min() >= 0 and r.max() <= 1


def test_reconstruct_decodes_the_mean_and_forward_samples():
    torch.manual_seed(0)
    m = build_model(ModelConfig(hidden_dim=16, latent_dim=3), (1, 8, 8), Bernoulli())
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(m.reconstruct(x), m.reconstruct(x))  # deterministic: z = mu
    mu, _ = m.encode(x)
    assert torch.allclose(m.reconstruct(x), torch.sigmoid(m.decode(mu)))
    a, _, _ = m(x)
    b, _, _ = m(x)
    assert not torch.equal(a, b)  # z ~ q(z|x) differs per call


def test_tutorial_mlp_parameter_count():
    # 784-256-256-32 encoder (two heads) and 32-256-256-784 decoder, as in the tutorial
    m = build_model(ModelConfig(hidden_dim=256, latent_dim=32, depth=2), (1, 28, 28), Bernoulli())
    enc = (784 * 256 + 256) + (256 * 256 + 256) + 2 * (256 * 32 + 32)
    dec = (32 * 256 + 256) + (256 * 256 + 256) + (256 * 784 + 784)
    assert count_parameters(m) == enc + dec


def test_depth_adds_hidden_layers():
    shallow = build_model(ModelConfig(hidden_dim=16, depth=2), (1, 8, 8), Bernoulli())
    deep = build_model(ModelConfig(hidden_dim=16, depth=4), (1, 8, 8), Bernoulli())
    assert count_parameters(deep) - count_parameters(shallow) == 2 * 2 * (16 * 16 + 16)


def test_unknown_model_lists_available():
    with pytest.raises(
        RegistryError, match=r"unknown model 'mpl'. Did you mean 'mlp'\? Available: conv, cvae, ladder, mlp, resnet"
    ):
        MODELS.get("mpl")
