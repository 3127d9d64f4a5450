"""pythae's FactorVAE through vaebench's training-objective mechanism (an auxiliary network).

pythae trains it with its `AdversarialTrainer`: per batch, one forward pass gives the autoencoder
loss (recon + KL + gamma TC, TC read from the discriminator at the first half-batch's codes z) and
the discriminator loss (cross-entropy of the discriminator on z against dimension-permuted codes of
the second half-batch); `autoencoder_loss.backward()`, then the discriminator's gradients are zeroed
and `discriminator_loss.backward()` runs, and both optimizers step. So the discriminator steps on
its own loss only, while the encoder steps on **both** losses' gradients (z is not detached where
the discriminator loss reads it): pythae's rule, kept here.

In vaebench (`FactorVAEObjective`): the discriminator is taken out of the pythae model's modules
(the model's optimizer must not step it) and owned by the objective, as its auxiliary network with
its own Adam optimizer (lr = train.lr; pythae's trainer gives both optimizers 1e-4 by default):

- `forward` runs pythae's forward and returns autoencoder_loss + discriminator_loss as the model's
  loss (its gradient on the encoder and decoder is pythae's; the discriminator's share is dropped
  by the trainer, which zeroes the auxiliary gradients before the auxiliary step), and keeps the
  codes (detached) in `LossOut.extras`;
- `auxiliary_loss` recomputes pythae's discriminator loss from those codes: the discriminator's
  parameters have not moved since (the model's step does not touch them), so its value and its
  gradient on the discriminator are those of pythae's step.
`train_loss` is the autoencoder loss + the discriminator loss, pythae's `loss`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vaebench.objectives import LossOut
from vaebench.objectives.training import Step

from .model import PythaeVAE
from .objective import PythaeObjective


class FactorVAEObjective(PythaeObjective):
    """pythae's FactorVAE loss with its discriminator as an auxiliary network (module docstring)."""

    def __init__(self, discriminator: torch.nn.Module, lr: float) -> None:
        super().__init__()
        self.discriminator = discriminator  # a submodule of the objective: checkpointed with it
        self.optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=lr)

    def forward(self, model, x: torch.Tensor, y: torch.Tensor | None, step: Step) -> LossOut:
        out, terms = self.pythae_forward(model, x, y, step)
        loss = out["autoencoder_loss"] + out["discriminator_loss"]
        codes = {"z": out["z"].detach(), "z_bis_permuted": out["z_bis_permuted"].detach()}
        return LossOut(loss, terms.recon, terms.kl, extras=codes)

    def auxiliary_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"discriminator": self.optimizer}

    def auxiliary_loss(self, name, model, x, y, out: LossOut, step: Step) -> torch.Tensor:
        """pythae's discriminator loss: 0.5 (CE(D(z), fake) + CE(D(permuted z'), true))."""
        z, permuted = out.extras["z"], out.extras["z_bis_permuted"]
        fake = torch.zeros(len(z), dtype=torch.long, device=z.device)
        true = torch.ones(len(permuted), dtype=torch.long, device=z.device)
        return 0.5 * (
            F.cross_entropy(self.discriminator(z), fake) + F.cross_entropy(self.discriminator(permuted), true)
        )


class PythaeFactorVAE(PythaeVAE):
    """pythae's FactorVAE: a Gaussian VAE whose discriminator lives in its training objective."""

    def __init__(self, data_shape, latent_dim: int, likelihood, net, pythae_model: str) -> None:
        discriminator = net._modules.pop("discriminator")  # out of the model's parameters and state
        object.__setattr__(net, "discriminator", discriminator)  # pythae's forward still reads it
        super().__init__(data_shape, latent_dim, likelihood, net, pythae_model)

    def training_objective(self, cfg, info):
        return FactorVAEObjective(self.net.discriminator, info.lr).to(info.device)
