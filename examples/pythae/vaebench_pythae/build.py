"""Building a pythae model from a vaebench run: its config, its networks, its likelihood.

- `latent_dim` is the spec's `model.latent_dim`, `input_dim` the dataset's (C, H, W).
- `reconstruction_loss` is the one vaebench's `objective.likelihood` names (`RECONSTRUCTION_LOSSES`);
  a `reconstruction_loss` given in `model.config` must agree with it.
- `networks`: `default` lets pythae build its own MLPs; `mnist_conv` and `mnist_resnet` are the
  encoder and decoder of pythae's MNIST benchmark (Chadebec et al. 2022), for 1x28x28 images.
"""

from __future__ import annotations

from typing import Callable

from .adversarial import PythaeAdversarialVAE
from .flows import PythaeFlowVAE
from .model import PythaeVAE, PythaeVampVAE
from .options import pythae_config
from .sphere import PythaeSphereVAE
from .zoo import ZOO

MNIST_SHAPE = (1, 28, 28)
# zoo.ZooEntry.wrapper -> the class that reads the model
WRAPPERS = {
    "gaussian": PythaeVAE,
    "vamp": PythaeVampVAE,
    "flow": PythaeFlowVAE,
    "sphere": PythaeSphereVAE,
    "adversarial": PythaeAdversarialVAE,
}


def _bernoulli(objective) -> str:
    return "bce"


def _gaussian(objective) -> str:
    if objective.variance != 1.0:
        raise ValueError(
            f"pythae's mse reconstruction loss is 0.5 * sum (x - x_hat)^2, the Gaussian likelihood with "
            f"variance 1; objective.variance is {objective.variance}: set objective.variance: 1"
        )
    return "mse"


# vaebench likelihood -> pythae reconstruction_loss (given the objective section, for its settings)
RECONSTRUCTION_LOSSES: dict[str, Callable[..., str]] = {"bernoulli": _bernoulli, "gaussian": _gaussian}


def reconstruction_loss(objective) -> str:
    """pythae's `reconstruction_loss` for the spec's objective section (its likelihood and variance);
    ValueError when pythae has none that matches."""
    make = RECONSTRUCTION_LOSSES.get(objective.likelihood)
    if make is None:
        raise ValueError(
            f"objective.likelihood {objective.likelihood!r} has no pythae reconstruction loss: use bernoulli "
            "(pythae's bce) or gaussian with variance 1 (pythae's mse)"
        )
    return make(objective)


def check_config(options, objective, data_shape: tuple[int, ...] | None = None) -> str:
    """What the family checks against the rest of the run (spec time, and again when building):
    the config's `reconstruction_loss` against objective.likelihood, the benchmark networks against
    the images' shape. Returns the reconstruction loss."""
    loss = reconstruction_loss(objective)
    given = options.config_keys().get("reconstruction_loss")
    if given is not None and given != loss:
        raise ValueError(
            f"model.config.reconstruction_loss {given!r} does not match objective.likelihood "
            f"{objective.likelihood!r} (pythae's {loss!r}): remove it or change the likelihood"
        )
    if options.networks != "default" and data_shape is not None and tuple(data_shape) != MNIST_SHAPE:
        raise ValueError(
            f"networks {options.networks!r} are pythae's MNIST benchmark networks, for 1x28x28 images; "
            f"the dataset's images are {'x'.join(map(str, data_shape))}: use networks: default"
        )
    return loss


def benchmark_networks(networks: str, encoder: str, config) -> tuple:
    """(encoder, decoder) of pythae's MNIST benchmark for a model whose encoder is of kind `encoder`
    (VAE, SVAE: `zoo.ZooEntry.encoder`), or (None, None): pythae's default MLPs."""
    if networks == "default":
        return None, None
    from pythae.models.nn.benchmarks import mnist

    arch = {"mnist_conv": "Conv", "mnist_resnet": "ResNet"}[networks]
    return getattr(mnist, f"Encoder_{arch}_{encoder}_MNIST")(config), getattr(mnist, f"Decoder_{arch}_AE_MNIST")(config)


class _Objective:
    """The fields of the objective section `check_config` reads, from a built likelihood."""

    def __init__(self, likelihood) -> None:
        self.likelihood = likelihood.name
        self.variance = getattr(likelihood, "variance", None)


def build_pythae(cfg, data_shape, likelihood, num_classes: int) -> PythaeVAE:
    """The pythae model `cfg.model` with `cfg.config`, wrapped as a vaebench VAE."""
    import pythae.models

    options = cfg.family_options()
    loss = check_config(options, _Objective(likelihood), data_shape)
    config = pythae_config(
        options.model,
        {k: v for k, v in options.config_keys().items() if k != "reconstruction_loss"},
        input_dim=tuple(data_shape),
        latent_dim=cfg.latent_dim,
        reconstruction_loss=loss,
    )
    encoder, decoder = benchmark_networks(options.networks, ZOO[options.model].encoder, config)
    net = getattr(pythae.models, options.model)(config, encoder=encoder, decoder=decoder)
    return WRAPPERS[ZOO[options.model].wrapper](data_shape, cfg.latent_dim, likelihood, net, options.model)
