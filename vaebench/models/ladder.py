"""The ladder VAE (Sønderby et al. 2016): L stochastic layers z_1 (bottom) .. z_L (top), MLP-based.

Generative model, top-down:

    p(z_L) = N(0, I),   p(z_l | z_{l+1}) = N(mu_p, diag sigma_p^2) from an MLP of z_{l+1},
    p(x | z_1) the likelihood from an MLP of z_1.

Inference: a deterministic bottom-up pass d_1 = MLP(x), d_l = MLP(d_{l-1}) gives at every layer a
Gaussian (mu_hat_l, sigma_hat_l) (a linear head on d_l); then top-down, q(z_L | x) is the top
bottom-up Gaussian itself (as in the paper; merging it with N(0, I) would only reparameterize it)
and for l < L q(z_l | x, z_{l+1}) is the precision-weighted merge of the bottom-up Gaussian with the
generative model's p(z_l | z_{l+1}) at the sampled z_{l+1}:

    sigma_q^2 = 1 / (sigma_hat^-2 + sigma_p^-2),   mu_q = (mu_hat sigma_hat^-2 + mu_p sigma_p^-2) sigma_q^2

(`objectives.precision_weighted_merge`). The generative and inference paths share the top-down
networks, the ladder's parameter sharing. With one layer the model is the plain MLP VAE.

Sizes: `latent_dims` (bottom first, e.g. [64, 32]; the paper's MNIST model has 64-32-16-8-4) and
`hidden_dims`, one width per level (e.g. [512, 256]; the paper: 512-256-128-64-32), `depth` dense
layers per deterministic block. The block of level l is `depth` layers of width hidden_dims[l] in
the bottom-up pass (x -> d_1, d_{l-1} -> d_l) and, mirrored, in the top-down pass: p(z_l | z_{l+1})
runs through width hidden_dims[l+1], p(x | z_1) through hidden_dims[0].

How the one-layer interface of `base.VAE` maps onto the hierarchy (z is always the concatenation
[z_1, z_2, ..., z_L], bottom first, so D = latent_dim = sum(latent_dims), required by the spec):

- `elbo_terms`: one joint sample top-down (z_L ~ q(z_L|x), then z_l ~ q(z_l|x, z_{l+1})); `recon`
  = -log p(x|z_1); `kl` (B, D): per dimension of each layer, KL(q(z_l|x, z_{l+1}) || p(z_l|z_{l+1}))
  in closed form between the two diagonal Gaussians at the sampled z_{l+1}
  (`objectives.gaussian_kl_between`), and KL(q(z_L|x) || N(0, I)) for the top layer. The sum over
  dimensions is a one-sample estimate of KL(q(z|x) || p(z)) (exact in the top layer, Monte Carlo
  only over the layers above each lower layer), so the ELBO is unbiased, `kl_per_dim` stays True and
  free bits clamp these per-dimension terms. `mu`, `logvar` are q's parameters along that sample.
- `importance_log_weights`: k joint samples of all layers, log w = log p(x|z_1) + sum_{l<L} log
  p(z_l|z_{l+1}) + log p(z_L) - sum_l log q(z_l|x, z_{l+1}): the importance-sampled NLL over all
  layers jointly. The `posterior` argument (encode's summary) is ignored: it is not the proposal.
- `encode` -> (mu, logvar), (B, D): a deterministic top-down pass that feeds each layer's posterior
  *mean* to the layer below instead of a sample (q's mean path): exact for the top layer, for lower
  layers the Gaussian q(z_l|x, z_{l+1} = its mean above), a summary, not the marginal q(z_l|x) (which
  is not Gaussian). Active units, latent plots, MIG/SAP and reconstructions read it.
- `decode(z)` reads the bottom layer: the first latent_dims[0] columns of a (B, D) code (a (B,
  latent_dims[0]) code is taken as z_1 itself), so `reconstruct` decodes the mean path's z_1 and
  `sample` decodes the bottom of an ancestral sample.
- `log_prior(z)` = log p(z_L) + sum_l log p(z_l|z_{l+1}) of a concatenated code; `sample_prior(n)`
  ancestral sampling top-down, concatenated.
- `kl(mu, logvar, z)` -> (B, D): the per-dimension KL above, for q's parameters (mu, logvar) along
  the path whose upper layers are z's: each layer's prior is p(z_l | z_{l+1}) at z's layer above.
  `elbo_terms` computes exactly this at its sample; called with encode's mean path and z = mu it is
  the mean path's KL (a summary, not the expected KL).
- `latent_layers`: the layer sizes (bottom first), the capability per-layer metrics check
  (metrics/layers.py: KL and active units per layer).

`batch_norm` puts a BatchNorm1d after every hidden linear layer (as the paper did). The spec's
common `latent_dim` must equal sum(latent_dims) (a spec error otherwise). Labels are ignored.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field, field_validator, model_validator
from torch import nn

from ..objectives.bounds import (
    ElboTerms,
)
from ..objectives.gaussian import (
    gaussian_kl,
    gaussian_kl_between,
    gaussian_log_prob,
    precision_weighted_merge,
    std_normal_log_prob,
)
from ..options import Options
from .base import VAE
from .families import MODELS, ModelFamily
from .mlp import mlp_stack


class LadderOptions(Options):
    latent_dims: list[int] = Field(
        [64, 32],
        min_length=1,
        description="size of each stochastic layer, bottom (z_1) first; the spec's latent_dim must equal their sum",
    )
    hidden_dims: list[int] = Field(
        [512, 256],
        min_length=1,
        description="width of the deterministic layers of each level, bottom first (one per stochastic layer)",
    )
    depth: int = Field(2, ge=1, description="dense layers in each deterministic block (bottom-up and top-down)")
    batch_norm: bool = Field(False, description="BatchNorm1d after every hidden linear layer")

    @field_validator("latent_dims", "hidden_dims")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(d < 1 for d in v):
            raise ValueError(f"every size must be >= 1, got {v}")
        return v

    @model_validator(mode="after")
    def _one_width_per_layer(self) -> LadderOptions:
        if len(self.hidden_dims) != len(self.latent_dims):
            raise ValueError(
                f"hidden_dims needs one width per stochastic layer: latent_dims {self.latent_dims} has "
                f"{len(self.latent_dims)} layer(s), hidden_dims {self.hidden_dims} {len(self.hidden_dims)}"
            )
        return self


def check_ladder_section(cfg) -> None:
    """The spec's `model:` section of a ladder: latent_dim is the size of the concatenated z."""
    dims = list(cfg.latent_dims)
    if cfg.latent_dim != sum(dims):
        raise ValueError(
            f"model 'ladder': latent_dim must equal sum(latent_dims) = {sum(dims)} (z is the "
            f"concatenation of all layers, latent_dims {dims}); got latent_dim {cfg.latent_dim}. "
            f"Set latent_dim: {sum(dims)}"
        )


class Layer:
    """One stochastic layer on a top-down pass: the code, q's and the prior's parameters
    (mu_p, logvar_p None for the top layer, whose prior is N(0, I))."""

    __slots__ = ("logvar_p", "logvar_q", "mu_p", "mu_q", "z")

    def __init__(self, z, mu_q, logvar_q, mu_p=None, logvar_p=None) -> None:
        self.z, self.mu_q, self.logvar_q, self.mu_p, self.logvar_p = z, mu_q, logvar_q, mu_p, logvar_p

    def kl(self) -> torch.Tensor:
        """KL(q || p) of this layer per dimension, closed form: (N, d)."""
        if self.mu_p is None:
            return gaussian_kl(self.mu_q, self.logvar_q)
        return gaussian_kl_between(self.mu_q, self.logvar_q, self.mu_p, self.logvar_p)

    def log_p(self) -> torch.Tensor:
        """log p(z_l | z_{l+1}) (top: log N(z_L; 0, I)), summed over the layer: (N,)."""
        if self.mu_p is None:
            return std_normal_log_prob(self.z)
        return gaussian_log_prob(self.z, self.mu_p, self.logvar_p)

    def log_q(self) -> torch.Tensor:
        return gaussian_log_prob(self.z, self.mu_q, self.logvar_q)


class LadderVAE(VAE):
    """See the module docstring. z = [z_1, ..., z_L] concatenated, bottom first."""

    kl_per_dim = True  # closed-form KL per dimension of every layer (at the sampled layers above)

    def __init__(
        self,
        data_shape,
        latent_dims: list[int],
        hidden_dims: list[int],
        likelihood,
        depth: int = 2,
        batch_norm: bool = False,
    ) -> None:
        if len(hidden_dims) != len(latent_dims) or not latent_dims:
            raise ValueError(
                f"one hidden width per stochastic layer: latent_dims {latent_dims}, hidden_dims {hidden_dims}"
            )
        super().__init__(data_shape, sum(latent_dims), likelihood)
        self.latent_layers = tuple(int(d) for d in latent_dims)  # the per-layer metrics' capability
        L, h = len(latent_dims), list(hidden_dims)
        # bottom-up: d_1 = MLP(x), d_l = MLP(d_{l-1}); a linear head per level -> (mu_hat, logvar_hat)
        ins = [math.prod(data_shape), *h[:-1]]
        self.up = nn.ModuleList(mlp_stack([ins[l]] + [h[l]] * depth, batch_norm) for l in range(L))
        self.up_head = nn.ModuleList(nn.Linear(h[l], 2 * latent_dims[l]) for l in range(L))
        # top-down: p(z_l | z_{l+1}) for l < L (0-based index l: the layer below z_{l+1}), width h[l+1]
        self.down = nn.ModuleList(
            mlp_stack([latent_dims[l + 1]] + [h[l + 1]] * depth, batch_norm) for l in range(L - 1)
        )
        self.down_head = nn.ModuleList(nn.Linear(h[l + 1], 2 * latent_dims[l]) for l in range(L - 1))
        # p(x | z_1)
        self.decoder = nn.Sequential(
            mlp_stack([latent_dims[0]] + [h[0]] * depth, batch_norm), nn.Linear(h[0], math.prod(self.out_shape))
        )

    # -- the passes ---------------------------------------------------------------------------------

    def bottom_up(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(mu_hat_l, logvar_hat_l), (B, d_l) each, for every layer, bottom first."""
        out, d = [], x.flatten(1)
        for block, head in zip(self.up, self.up_head):
            d = block(d)
            out.append(tuple(head(d).chunk(2, dim=-1)))
        return out

    def prior_params(self, l: int, z_above: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu_p, logvar_p) of p(z_l | z_{l+1}) for 0-based layer l < L - 1, z_above = z_{l+1}."""
        return tuple(self.down_head[l](self.down[l](z_above)).chunk(2, dim=-1))

    def top_down(
        self, up: list[tuple[torch.Tensor, torch.Tensor]], sample: bool = True, noise: list[torch.Tensor] | None = None
    ) -> list[Layer]:
        """The inference pass from the bottom-up Gaussians `up`: z_L from q(z_L|x), then each lower
        layer from the merge with p(z_l | z_{l+1}). `sample`: reparameterized draws (standard
        normal `noise` per layer, bottom first, when given), else q's means (the mean path).
        Returns the layers bottom first."""
        L = len(up)
        layers: list[Layer | None] = [None] * L
        for l in reversed(range(L)):
            mu_hat, logvar_hat = up[l]
            if l == L - 1:
                mu_p = logvar_p = None
                mu_q, logvar_q = mu_hat, logvar_hat
            else:
                mu_p, logvar_p = self.prior_params(l, layers[l + 1].z)
                mu_q, logvar_q = precision_weighted_merge(mu_hat, logvar_hat, mu_p, logvar_p)
            if sample:
                eps = torch.randn_like(mu_q) if noise is None else noise[l]
                z = mu_q + eps * torch.exp(0.5 * logvar_q)
            else:
                z = mu_q
            layers[l] = Layer(z, mu_q, logvar_q, mu_p, logvar_p)
        return layers

    def split(self, z: torch.Tensor) -> list[torch.Tensor]:
        """A concatenated code (..., D) -> its layers [z_1, ..., z_L], bottom first."""
        return list(z.split(self.latent_layers, dim=-1))

    # -- the VAE interface ----------------------------------------------------------------------------

    def encode(self, x, y=None):
        """q's mean path (see the module docstring): (mu, logvar), (B, D) each, layers concatenated."""
        layers = self.top_down(self.bottom_up(x), sample=False)
        return torch.cat([t.mu_q for t in layers], -1), torch.cat([t.logvar_q for t in layers], -1)

    def decode(self, z, y=None):
        """p(x | z_1) parameters from the bottom layer of z: (B, D) (or (B, d_1)) -> (B, C', H, W)."""
        d1 = self.latent_layers[0]
        if z.shape[-1] not in (self.latent_dim, d1):
            raise ValueError(
                f"decode takes the concatenated code (.., {self.latent_dim}) or its bottom layer "
                f"(.., {d1}); got {tuple(z.shape)}"
            )
        return self.decoder(z[..., :d1]).view(z.shape[0], *self.out_shape)

    def forward(self, x, y=None):
        """(decoder params, mu, logvar) of one joint sample top-down (q's parameters along it)."""
        t = self.elbo_terms(x, y)
        return t.params, t.mu, t.logvar

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) = log N(z_L; 0, I) + sum_l log p(z_l | z_{l+1}), nats: (..., D) -> (...)."""
        lead = z.shape[:-1]
        zs = self.split(z.reshape(-1, self.latent_dim))
        out = std_normal_log_prob(zs[-1])
        for l in range(len(zs) - 1):
            out = out + gaussian_log_prob(zs[l], *self.prior_params(l, zs[l + 1]))
        return out.reshape(lead)

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Ancestral sampling: z_L ~ N(0, I), then z_l ~ p(z_l | z_{l+1}); (n, D) concatenated."""
        p = next(self.parameters())
        zs = [torch.randn(n, self.latent_layers[-1], device=p.device, dtype=p.dtype, generator=generator)]
        for l in reversed(range(len(self.latent_layers) - 1)):
            mu, logvar = self.prior_params(l, zs[0])
            eps = torch.randn(n, self.latent_layers[l], device=p.device, dtype=p.dtype, generator=generator)
            zs.insert(0, mu + eps * torch.exp(0.5 * logvar))
        return torch.cat(zs, -1)

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Per dimension, (B, D): KL(N(mu_l, exp(logvar_l)) || p(z_l | z_{l+1})) with z_{l+1} taken
        from z, and the top layer against N(0, I) (see the module docstring)."""
        mus, logvars, zs = self.split(mu), self.split(logvar), self.split(z)
        L = len(zs)
        return torch.cat(
            [
                Layer(zs[l], mus[l], logvars[l], *(self.prior_params(l, zs[l + 1]) if l < L - 1 else (None, None))).kl()
                for l in range(L)
            ],
            -1,
        )

    def elbo_terms(self, x, y=None) -> ElboTerms:
        """One joint sample top-down; recon = -log p(x|z_1), kl (B, D) per layer and dimension."""
        layers = self.top_down(self.bottom_up(x), sample=True)
        params = self.decode(layers[0].z, y)
        kl = torch.cat([t.kl() for t in layers], -1)
        return ElboTerms(
            self.likelihood.nll(params, x),
            kl,
            torch.cat([t.mu_q for t in layers], -1),
            torch.cat([t.logvar_q for t in layers], -1),
            params,
        )

    def importance_log_weights(self, x, y, k, posterior=None, decode_batch=None) -> torch.Tensor:
        """log w_j = log p(x|z_1) + log p(z_1..z_L) - log q(z_1..z_L|x) for k joint draws of all
        layers per example: (k, B), nats. `posterior` is ignored (see the module docstring);
        `decode_batch` caps the codes per decoder pass (memory only)."""
        b = len(x)
        up = [(m.repeat(k, 1), lv.repeat(k, 1)) for m, lv in self.bottom_up(x)]  # (k*B, d): row j*B + i
        layers = self.top_down(up, sample=True)
        log_pz = sum(t.log_p() for t in layers)
        log_qz = sum(t.log_q() for t in layers)
        z1 = layers[0].z
        step = k * b if decode_batch is None else max(1, decode_batch)
        rows = torch.arange(k * b, device=x.device) % b  # the example of each row
        log_px = torch.cat(
            [-self.likelihood.nll(self.decode(z1[s : s + step]), x[rows[s : s + step]]) for s in range(0, k * b, step)]
        )
        return (log_px + log_pz - log_qz).view(k, b)


def build_ladder(cfg, data_shape, likelihood, num_classes) -> LadderVAE:
    check_ladder_section(cfg)
    return LadderVAE(data_shape, cfg.latent_dims, cfg.hidden_dims, likelihood, cfg.depth, cfg.batch_norm)


MODELS.register(
    "ladder",
    ModelFamily(
        build_ladder,
        LadderOptions,
        "ladder VAE (Sønderby et al. 2016): L MLP stochastic layers, precision-weighted top-down inference",
        model=LadderVAE,
        check=check_ladder_section,
    ),
)
