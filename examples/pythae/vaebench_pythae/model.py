"""A pythae model behind vaebench's `VAE` interface.

`PythaeVAE` holds the pythae model as `self.net` (its encoder, decoder and, for VAMP, pseudo-inputs:
the parameters vaebench trains and checkpoints) and reads it through the interface:

- `encode(x)` is the pythae encoder's `embedding` and `log_covariance`: the diagonal-Gaussian
  q(z|x), (B, D) each (the flows and SVAE read their posteriors otherwise: flows.py, sphere.py).
- `decode(z)` is the likelihood's parameters, consistent with the model's `reconstruction_loss`:
  * `bce` (objective.likelihood `bernoulli`): vaebench's Bernoulli takes **logits**. pythae's
    decoders end with a sigmoid, and a probability that has rounded to 0 or 1 in float32 has lost
    its logit, so the logits are read *before* that sigmoid: a forward hook on the decoder's last
    `nn.Sigmoid` keeps its input (`SigmoidTap`). Checked when the model is built: the sigmoid of
    the tapped logits is pythae's `reconstruction`. vaebench's BCE-with-logits is then exact where
    pythae's `F.binary_cross_entropy` clamps each log-probability at -100 (a difference only for
    pixels whose probability has saturated to 0 or 1 in float32, |logit| > ~17, on the wrong side).
  * `mse` (objective.likelihood `gaussian` with `variance: 1`): the decoder's output is the mean.
    pythae's mse loss is 0.5 * sum (x - x_hat)^2, i.e. -log N(x; x_hat, I) without its constant
    (its `get_nll` adds the constant), so the matching vaebench likelihood is the unit-variance Gaussian.
- the prior is N(0, I), except VAMP's (`PythaeVampVAE`): pythae's VampPrior, a uniform mixture of
  q(z|u_k) over its learned pseudo-inputs u_k, whose KL has no closed form (`kl_per_dim = False`).

The training loss is pythae's own (`objective.py`); evaluation is vaebench's, through this interface.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vaebench import VAE
from vaebench.objectives import gaussian_log_prob

LOG_2PI = math.log(2 * math.pi)
PRIOR_ROWS = 4096  # codes per pass through VAMP's log p(z) (memory only: (rows, K, D) values at once)


class SigmoidTap:
    """Keeps the input of the last `nn.Sigmoid` a decoder runs: the logits of its Bernoulli means.

    Only while `read(decoder, z)` runs: pythae's own forward passes leave nothing behind (a kept
    tensor would hold its graph, and `copy.deepcopy` of the model, which pythae's trainer makes,
    refuses a non-leaf tensor)."""

    def __init__(self, decoder: nn.Module) -> None:
        sigmoids = [m for m in decoder.modules() if isinstance(m, nn.Sigmoid)]
        if not sigmoids:
            raise ValueError(
                f"pythae decoder {type(decoder).__name__} has no nn.Sigmoid to read logits before: "
                "use objective.likelihood gaussian (variance 1) with reconstruction_loss mse"
            )
        self.value: torch.Tensor | None = None
        self.active = False
        sigmoids[-1].register_forward_hook(self._keep)

    def _keep(self, module, inputs, output) -> None:
        if self.active:
            self.value = inputs[0]

    def read(self, decoder: nn.Module, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the decoder's reconstruction, the logits its last sigmoid was given) for codes z."""
        self.active, self.value = True, None
        try:
            mean = decoder(z)["reconstruction"]
            logits, self.value = self.value, None
        finally:
            self.active = False
        if logits is None:
            raise RuntimeError(f"{type(decoder).__name__} did not run its final sigmoid")
        return mean, logits

    def __deepcopy__(self, memo):
        new = SigmoidTap.__new__(SigmoidTap)
        new.value, new.active = None, False
        memo[id(self)] = new  # the copied model's hook and wrapper share it
        return new


class PythaeVAE(VAE):
    """A pythae model with a diagonal-Gaussian encoder and the N(0, I) prior (see the module docstring)."""

    def __init__(self, data_shape, latent_dim: int, likelihood, net: nn.Module, pythae_model: str) -> None:
        super().__init__(data_shape, latent_dim, likelihood)
        self.net = net  # the pythae model: its modules are this model's parameters
        self.pythae_model = pythae_model
        self._tap = SigmoidTap(net.decoder) if net.model_config.reconstruction_loss == "bce" else None
        if self._tap is not None:
            self._check_tap()

    def _check_tap(self) -> None:
        """The tapped logits must give pythae's reconstruction (no layer may follow the sigmoid but a reshape)."""
        was_training = self.net.training
        self.net.eval()
        with torch.no_grad():
            z = torch.linspace(-2.0, 2.0, 2 * self.latent_dim).view(2, self.latent_dim)
            p, logits = self._tap.read(self.net.decoder, z)
        self.net.train(was_training)
        if not torch.allclose(torch.sigmoid(logits).reshape(p.shape), p, atol=1e-6):
            raise ValueError(
                f"{type(self.net.decoder).__name__}: its output is not the sigmoid of its last nn.Sigmoid's "
                "input, so the adapter cannot read Bernoulli logits from it"
            )

    def training_objective(self, cfg, info):
        """pythae's own loss (objective.py), not the spec's estimator: the family owns its loss."""
        from .objective import PythaeObjective

        return PythaeObjective().to(info.device)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net.encoder(x)
        return out["embedding"], out["log_covariance"]  # (B, D) each

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self._tap is None:  # mse: the Gaussian mean
            params = self.net.decoder(z)["reconstruction"]
        else:  # bce: the logits of the probabilities, for vaebench's Bernoulli
            params = self._tap.read(self.net.decoder, z)[1]
        return params.reshape(len(z), *self.out_shape)  # (B, C, H, W)


class PythaeVampVAE(PythaeVAE):
    """pythae's VAMP: the prior is pythae's VampPrior, p(z) = 1/K sum_k N(z; mu(u_k), var(u_k)),
    the encoder's posterior at K learned pseudo-inputs u_k (pythae's `_log_p_z`, plus the
    normalizing constant -D/2 log 2 pi it leaves out because it cancels in its KL)."""

    kl_per_dim = False  # the KL is the one-sample estimate log q(z|x) - log p(z): one column

    def _components(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of the K mixture components, (K, D) each."""
        net = self.net
        u = net.pseudo_inputs(net.idle_input.to(next(self.parameters()).device))
        out = net.encoder(u.reshape((net.number_components, *net.model_config.input_dim)))
        return out["embedding"], out["log_covariance"]

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) for z (..., D): (...), nats; pythae's `_log_p_z` in blocks of PRIOR_ROWS codes."""
        flat = z.reshape(-1, self.latent_dim)
        parts = [self.net._log_p_z(block) for block in flat.split(PRIOR_ROWS)]
        log_p = torch.cat(parts) if parts else flat.new_zeros(0)
        return (log_p - 0.5 * self.latent_dim * LOG_2PI).reshape(z.shape[:-1])

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n codes: a component k uniformly, then z ~ N(mu_k, var_k): (n, D)."""
        mu, logvar = self._components()
        k = torch.randint(len(mu), (n,), device=mu.device, generator=generator)
        eps = torch.randn(n, self.latent_dim, device=mu.device, generator=generator)
        return mu[k] + eps * torch.exp(0.5 * logvar[k])

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log q(z|x) - log p(z) at the sampled z: (B, 1), nats (pythae's VAMP KLD, per example)."""
        return (gaussian_log_prob(z, mu, logvar) - self.log_prior(z)).unsqueeze(1)
