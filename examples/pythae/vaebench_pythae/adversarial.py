"""pythae's FactorVAE and Adversarial_AE through vaebench's training-objective mechanism: the
discriminator as an auxiliary network.

pythae trains them with its `AdversarialTrainer`. FactorVAE: per batch, one forward pass gives the autoencoder
loss (recon + KL + gamma TC, TC read from the discriminator at the first half-batch's codes z) and
the discriminator loss (cross-entropy of the discriminator on z against dimension-permuted codes of
the second half-batch); `autoencoder_loss.backward()`, then the discriminator's gradients are zeroed
and `discriminator_loss.backward()` runs, and both optimizers step. So the discriminator steps on
its own loss only, while the encoder steps on **both** losses' gradients (z is not detached where
the discriminator loss reads it): pythae's rule, kept here.

In vaebench (`FactorVAEObjective`): the discriminator is taken out of the pythae model's modules
(the model's optimizer must not step it) and owned by the objective, as its auxiliary network with
its own Adam optimizer (lr = train.lr; pythae's trainer gives both optimizers 1e-4 by default):

- `forward` runs pythae's forward and returns autoencoder_loss + discriminator_loss (pythae's `loss`) as the model's
  loss (its gradient on the encoder and decoder is pythae's; the discriminator's share is dropped
  by the trainer, which zeroes the auxiliary gradients before the auxiliary step), and keeps the
  codes (detached) in `LossOut.extras`;
- `auxiliary_loss` recomputes pythae's discriminator loss from those codes: the discriminator's
  parameters have not moved since (the model's step does not touch them), so its value and its
  gradient on the discriminator are those of pythae's step.
`train_loss` is the autoencoder loss + the discriminator loss, pythae's `loss`.

Adversarial_AE (Makhzani et al. 2016) the same way: its discriminator tells the codes from prior
draws, and its loss reads the codes detached, so the encoder steps on the autoencoder loss alone.
Its posterior is the encoder's Gaussian (config `deterministic_posterior: false`, pythae's default;
`true`, a point mass, is refused).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vaebench.objectives import LossOut
from vaebench.objectives.training import Step

from .model import PythaeVAE
from .objective import PythaeObjective


class AdversarialObjective(PythaeObjective):
    """pythae's loss with its discriminator as an auxiliary network (module docstring); a subclass
    says which codes the discriminator's loss reads (`codes`) and how (`discriminator_loss`)."""

    def __init__(self, discriminator: torch.nn.Module, lr: float) -> None:
        super().__init__()
        self.discriminator = discriminator  # a submodule of the objective: checkpointed with it
        self.optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=lr)

    def forward(self, model, x: torch.Tensor, y: torch.Tensor | None, step: Step) -> LossOut:
        out, terms = self.pythae_forward(model, x, y, step)
        loss = out["autoencoder_loss"] + out["discriminator_loss"]  # pythae's `loss`
        return LossOut(loss, terms.recon, terms.kl, extras={k: v.detach() for k, v in self.codes(out).items()})

    def auxiliary_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"discriminator": self.optimizer}

    def auxiliary_loss(self, name, model, x, y, out: LossOut, step: Step) -> torch.Tensor:
        return self.discriminator_loss(**out.extras)

    def codes(self, out) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def discriminator_loss(self, **codes) -> torch.Tensor:
        raise NotImplementedError


class FactorVAEObjective(AdversarialObjective):
    """FactorVAE: the discriminator tells the codes z of one half-batch (fake) from the other half's
    codes with each dimension permuted across examples (true)."""

    def codes(self, out) -> dict[str, torch.Tensor]:
        return {"z": out["z"], "permuted": out["z_bis_permuted"]}

    def discriminator_loss(self, z, permuted) -> torch.Tensor:
        """pythae's: 0.5 (CE(D(z), fake) + CE(D(permuted), true))."""
        fake = torch.zeros(len(z), dtype=torch.long, device=z.device)
        true = torch.ones(len(permuted), dtype=torch.long, device=z.device)
        return 0.5 * (
            F.cross_entropy(self.discriminator(z), fake) + F.cross_entropy(self.discriminator(permuted), true)
        )


class AdversarialAEObjective(AdversarialObjective):
    """Adversarial_AE: the discriminator tells the codes z (fake) from prior draws z_prior ~ N(0, I)
    (true). pythae draws z_prior inside its forward and does not return it: a forward pre-hook on
    the discriminator keeps the inputs of the forward's calls (z, z_prior, z detached), in order."""

    def __init__(self, discriminator: torch.nn.Module, lr: float) -> None:
        super().__init__(discriminator, lr)
        self._inputs: list[torch.Tensor] = []
        discriminator.register_forward_pre_hook(lambda module, args: self._inputs.append(args[0]))

    def pythae_forward(self, model, x, y, step):
        self._inputs = []
        return super().pythae_forward(model, x, y, step)

    def codes(self, out) -> dict[str, torch.Tensor]:
        return {"z": out["z"], "prior": self._inputs[1]}

    def discriminator_loss(self, z, prior) -> torch.Tensor:
        """pythae's: BCE(D(z_prior), true) + BCE(D(z), fake), D's output a probability."""
        p_prior = self.discriminator(prior)["embedding"].flatten()
        p_codes = self.discriminator(z)["embedding"].flatten()
        return F.binary_cross_entropy(p_prior, torch.ones_like(p_prior)) + F.binary_cross_entropy(
            p_codes, torch.zeros_like(p_codes)
        )


OBJECTIVES = {"FactorVAE": FactorVAEObjective, "Adversarial_AE": AdversarialAEObjective}


class PythaeAdversarialVAE(PythaeVAE):
    """FactorVAE, Adversarial_AE: Gaussian VAEs whose discriminator lives in their training objective."""

    def __init__(self, data_shape, latent_dim: int, likelihood, net, pythae_model: str) -> None:
        discriminator = net._modules.pop("discriminator")  # out of the model's parameters and state
        object.__setattr__(net, "discriminator", discriminator)  # pythae's forward still reads it
        super().__init__(data_shape, latent_dim, likelihood, net, pythae_model)

    def training_objective(self, cfg, info):
        return OBJECTIVES[self.pythae_model](self.net.discriminator, info.lr).to(info.device)
