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
    with pytest.raises(RegistryError, match=r"unknown model 'mpl'. Did you mean 'mlp'\? Available: ") as e:
        MODELS.get("mpl")
    listed = str(e.value).split("Available: ")[1].split(", ")
    assert listed == sorted(listed) and set(BUILT_IN) <= set(listed)  # installed plugins' families too


BUILT_IN = ["conv", "cvae", "ladder", "mlp", "resnet", "vqvae"]


@pytest.mark.parametrize("name", BUILT_IN)
def test_a_family_declares_the_class_it_builds_and_kl_per_dim_comes_from_it(name):
    family = MODELS.get(name)
    section = ModelConfig(name=name, latent_dim=96) if name == "ladder" else ModelConfig(name=name)
    model = build_model(section, (1, 28, 28), Bernoulli())
    assert type(model) is family.model  # the declared class, whose attributes the spec reads
    assert family.kl_per_dim is model.kl_per_dim is family.model.kl_per_dim
    assert family.kl_per_dim is (name != "vqvae")


def test_registering_a_family_checks_entry_and_options_with_the_one_checker():
    from pydantic import BaseModel

    from vaebench.models import ModelFamily
    from vaebench.options import Options

    class Loose(BaseModel):  # unknown keys would be dropped silently
        width: int = 1

    class Shadows(Options):
        latent_dim: int = 3

    class Dict(Options):
        table: dict = {}

    build = MODELS.get("mlp").build
    for entry, says in [
        (build, r"model 'x': register a vaebench.models.ModelFamily\(build, options\), got <function"),
        (ModelFamily(None), r"register a vaebench.models.ModelFamily"),
        (ModelFamily(build, Loose), r"model 'x': its options model Loose must forbid unknown keys"),
        (ModelFamily(build, Shadows), r"model 'x': option 'latent_dim' shadows the section's common field"),
        (ModelFamily(build, Dict), r"model 'x', option 'table': option type <class 'dict'> is not supported"),
        (ModelFamily(build, model="MLPVAE"), r"model 'x': model must be the class its build returns"),
        (ModelFamily(build, check_run="no"), r"model 'x': check_run must be a function \(run config\) -> None"),
    ]:
        with pytest.raises(ValueError, match=says):
            MODELS.register("x", entry)
    assert "x" not in MODELS


def test_a_familys_check_run_sees_the_whole_run_and_its_error_is_a_spec_error():
    """`ModelFamily.check_run(run_config)`: a family constrains the other sections (here the objective)."""
    from pydantic import ValidationError

    from vaebench.models import ModelFamily
    from vaebench.spec.sweep_spec import RunConfig

    seen = []

    def check_run(cfg):
        seen.append(cfg)
        if cfg.objective.likelihood != "bernoulli":
            raise ValueError(f"needs a Bernoulli likelihood, got {cfg.objective.likelihood!r}")

    MODELS.register(
        "checks_run", ModelFamily(MODELS.get("mlp").build, model=MODELS.get("mlp").model, check_run=check_run)
    )
    try:
        ok = RunConfig.model_validate({"model": {"name": "checks_run"}})
        assert seen == [ok]
        with pytest.raises(ValidationError, match="needs a Bernoulli likelihood, got 'laplace'"):
            RunConfig.model_validate({"model": {"name": "checks_run"}, "objective": {"likelihood": "laplace"}})
    finally:
        MODELS.unregister("checks_run")


def test_kl_per_dim_given_to_a_family_is_deprecated_and_must_agree_with_its_class():
    from vaebench.models import ModelFamily
    from vaebench.models.vqvae import VQVAE

    build = MODELS.get("vqvae").build
    with pytest.warns(DeprecationWarning, match=r"ModelFamily\(kl_per_dim=...\) is deprecated"):
        legacy = ModelFamily(build, kl_per_dim=False)  # a plugin written for 0.1.0 still registers
    assert legacy.kl_per_dim is False and ModelFamily(build, model=VQVAE).kl_per_dim is False
    assert ModelFamily(build).kl_per_dim is True  # the VAE interface's default
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="disagrees with VQVAE.kl_per_dim = False"):
        ModelFamily(build, model=VQVAE, kl_per_dim=True)
