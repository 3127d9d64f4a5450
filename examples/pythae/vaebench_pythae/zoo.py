"""Which pythae models the `pythae` family runs, and why the others are refused.

One table, `ZOO`: a pythae model name -> a `ZooEntry` (what its encoder outputs, its prior, the
networks it takes) or a refusal (the reason, said at spec time). The adapter's README prints the
same table for readers; `tests/models/test_pythae.py` checks that the two agree.

How the interface reads a supported model (`wrapper`):

- `gaussian`: the encoder's `embedding` and `log_covariance` are the diagonal-Gaussian q(z|x) and
  the prior is N(0, I) (`model.PythaeVAE`): every vaebench metric applies;
- `vamp`: the same posterior, pythae's VampPrior (`model.PythaeVampVAE`);
- `flow`: the Gaussian is the base q0 of a normalizing flow (`flows.PythaeFlowVAE`): the metrics
  that read a diagonal-Gaussian posterior are skipped, the NLL and -ELBO use the flow's density;
- `sphere`: SVAE's encoder outputs `embedding` and `log_concentration`, a von Mises-Fisher posterior
  on the sphere with the uniform prior (`sphere.PythaeSphereVAE`): likewise;
- `adversarial`: FactorVAE, Adversarial_AE: `gaussian` models whose discriminator is an auxiliary
  network of their training objective (`adversarial.PythaeAdversarialVAE`).

Every other pythae model is refused with the reason: those whose posterior is none of these
(hyperbolic, Hamiltonian, VQ, deterministic autoencoders) need their own importance weights and
one-sample ELBO terms before vaebench's metrics can read them, and those trained by pythae's
adversarial or coupled-optimizer trainers need their optimizer steps reproduced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional


@dataclass(frozen=True)
class ZooEntry:
    """A pythae model as the `pythae` family sees it.

    `config`: the name of its config class in `pythae.models`; `wrapper`: how the interface reads
    it (see the module docstring); `encoder`: the kind of pythae benchmark encoder it takes
    (`Encoder_Conv_<encoder>_MNIST`); `loss`: what pythae's `forward(...).loss` is, in words (the
    README's table); `refused`: the reason, for a model the family refuses; `refused_values`: config
    values it refuses, with the reason."""

    config: str
    wrapper: Literal["gaussian", "vamp", "flow", "sphere", "adversarial"] = "gaussian"
    encoder: Literal["VAE", "SVAE"] = "VAE"
    loss: str = ""
    refused: Optional[str] = None
    # config values the family refuses: key -> (value, the reason)
    refused_values: dict[str, tuple[Any, str]] = field(default_factory=dict)


_NOT_GAUSSIAN = (
    "its posterior is not a diagonal Gaussian ({what}): the adapter does not yet provide its importance "
    "weights and one-sample ELBO terms, without which vaebench's NLL and -ELBO would be wrong"
)
_TRAINER = "pythae trains it with its {trainer} ({why}), whose optimizer steps the adapter does not reproduce"

ZOO: dict[str, ZooEntry] = {
    "VAE": ZooEntry("VAEConfig", loss="-ELBO, mean over the batch (nats per example)"),
    "BetaVAE": ZooEntry("BetaVAEConfig", loss="recon + beta * KL, mean over the batch"),
    "BetaTCVAE": ZooEntry(
        "BetaTCVAEConfig", loss="recon + alpha MI + beta TC + gamma dimension-wise KL (minibatch estimates)"
    ),
    "DisentangledBetaVAE": ZooEntry(
        "DisentangledBetaVAEConfig", loss="recon + beta |KL - C(epoch)| (Burgess et al. capacity annealing)"
    ),
    "IWAE": ZooEntry(
        "IWAEConfig",
        loss="the IWAE surrogate -sum_j w~_j log w_j (its gradient is the IWAE bound's; its value is not the bound)",
    ),
    "CIWAE": ZooEntry("CIWAEConfig", loss="beta * ELBO + (1 - beta) * IWAE bound, negated"),
    "MIWAE": ZooEntry("MIWAEConfig", loss="the MIWAE surrogate (number_gradient_estimates IWAE bounds)"),
    "INFOVAE_MMD": ZooEntry("INFOVAE_MMD_Config", loss="recon + (1 - alpha) KL + (alpha + lbd - 1) MMD"),
    "MSSSIM_VAE": ZooEntry(
        "MSSSIM_VAEConfig",
        loss="MS-SSIM reconstruction + beta * KL: not a likelihood; objective.likelihood scores it for evaluation only",
    ),
    "VAMP": ZooEntry(
        "VAMPConfig", wrapper="vamp", loss="-ELBO with the VampPrior (Monte Carlo KL), mean over the batch"
    ),
    # refused
    "AE": ZooEntry("AEConfig", refused=_NOT_GAUSSIAN.format(what="a deterministic autoencoder")),
    "WAE_MMD": ZooEntry("WAE_MMD_Config", refused=_NOT_GAUSSIAN.format(what="a deterministic encoder")),
    "RAE_GP": ZooEntry("RAE_GP_Config", refused=_NOT_GAUSSIAN.format(what="a deterministic encoder")),
    "VQVAE": ZooEntry("VQVAEConfig", refused=_NOT_GAUSSIAN.format(what="a vector-quantized code")),
    "SVAE": ZooEntry(
        "SVAEConfig", wrapper="sphere", encoder="SVAE", loss="-ELBO with a von Mises-Fisher posterior (closed-form KL)"
    ),
    "PoincareVAE": ZooEntry(
        "PoincareVAEConfig", refused=_NOT_GAUSSIAN.format(what="a distribution on the Poincare ball")
    ),
    "VAE_IAF": ZooEntry(
        "VAE_IAF_Config", wrapper="flow", loss="-ELBO with an inverse autoregressive flow posterior (Monte Carlo KL)"
    ),
    "VAE_LinNF": ZooEntry(
        "VAE_LinNF_Config", wrapper="flow", loss="-ELBO with a planar/radial flow posterior (Monte Carlo KL)"
    ),
    "HVAE": ZooEntry("HVAEConfig", refused=_NOT_GAUSSIAN.format(what="Hamiltonian flow")),
    "RHVAE": ZooEntry(
        "RHVAEConfig",
        refused=_NOT_GAUSSIAN.format(what="Riemannian Hamiltonian flow")
        + "; it also updates its metric at the end of every epoch (model.update())",
    ),
    "RAE_L2": ZooEntry(
        "RAE_L2_Config",
        refused=_TRAINER.format(trainer="CoupledOptimizerTrainer", why="the decoder's own weight decay"),
    ),
    "PIWAE": ZooEntry(
        "PIWAEConfig",
        refused=_TRAINER.format(trainer="CoupledOptimizerTrainer", why="encoder and decoder step on different bounds"),
    ),
    "Adversarial_AE": ZooEntry(
        "Adversarial_AE_Config",
        wrapper="adversarial",
        loss="recon + adversarial_loss_scale * BCE(D(z), true), + the discriminator's loss (codes vs prior draws)",
        refused_values={
            "deterministic_posterior": (
                True,
                "a point-mass posterior has no KL or importance weights vaebench can read",
            )
        },
    ),
    "FactorVAE": ZooEntry(
        "FactorVAEConfig",
        wrapper="adversarial",
        loss="recon + KL + gamma TC (discriminator) on one half-batch, + the discriminator's loss",
    ),
    "VAEGAN": ZooEntry(
        "VAEGANConfig",
        refused=_TRAINER.format(
            trainer="CoupledOptimizerAdversarialTrainer", why="encoder, decoder and discriminator optimizers"
        ),
    ),
}

SUPPORTED = tuple(name for name, entry in ZOO.items() if entry.refused is None)

# Config keys vaebench sets itself: the shapes come from the spec and the dataset, the networks
# from `networks:`; `reconstruction_loss` is checked against objective.likelihood instead.
SET_BY_VAEBENCH = ("input_dim", "latent_dim", "uses_default_encoder", "uses_default_decoder", "name")
