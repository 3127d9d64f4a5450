"""vaebench plugin: the `pythae` model family, pythae's models (Chadebec et al. 2022) under vaebench's protocol.

Importing this module registers the family; vaebench imports it through the entry point
`vaebench.plugins: pythae = vaebench_pythae` (when installed) or a spec's `plugins:` list.

    model: {name: pythae, model: BetaTCVAE, config: {beta: 6, alpha: 1}, networks: default, latent_dim: 16}
"""

from vaebench.models import MODELS, ModelFamily

from .build import build_pythae, check_config, reconstruction_loss
from .model import PythaeVAE, PythaeVampVAE
from .objective import PythaeObjective, check_run
from .options import PythaeOptions
from .zoo import SUPPORTED, ZOO

__version__ = "0.1.0"

MODELS.register(
    "pythae",
    ModelFamily(
        build_pythae,
        PythaeOptions,
        "a pythae model (pythae 0.1.2) by name, trained on its own loss, evaluated by vaebench",
        model=PythaeVAE,
        check_run=check_run,  # the likelihood pythae has a loss for; vaebench's loss settings left alone
    ),
)

__all__ = [
    "SUPPORTED",
    "ZOO",
    "PythaeObjective",
    "PythaeOptions",
    "PythaeVAE",
    "PythaeVampVAE",
    "build_pythae",
    "check_config",
    "check_run",
    "reconstruction_loss",
]
