"""VQ-VAE (van den Oord et al. 2017, "Neural Discrete Representation Learning"): a convolutional
encoder to a grid of vectors z_e(x), each replaced by its nearest codebook vector, and a
convolutional decoder of that quantized grid.

Architecture: the conv family's stride-2 Conv + BN + ReLU stages (`conv.down_stages`), then a 1x1
conv to `latent_dim` channels at the last stage's spatial size (28x28 with two stages: a 7x7 grid);
the decoder mirrors it: a 1x1 conv back to the last stage's channels, the conv family's transposed
stages (`conv.up_stages`) and a 3x3 conv to the likelihood's parameters.

`latent_dim` (the model section's common field) is D, the dimension of each code vector: the
codebook is K = `num_embeddings` vectors of D numbers and the encoder ends in D channels. (There is
no separate `embedding_dim` option, so the two cannot disagree; a spec giving `embedding_dim` is told
so.) The code of one image is the grid of n_positions = h * w code vectors; `model.latent_dim` --
the width of what `encode` returns -- is therefore n_positions * D.

Quantization: each position's z_e goes to the codebook vector e_k with the smallest squared
Euclidean distance (ties: the lowest index). The decoder reads z_q = z_e + sg[e_k - z_e] (the
straight-through estimator: the value of e_k, the gradient of the identity to z_e).

The loss (per example, nats for the likelihood term):

    -log p(x | z_q) + n_positions * log K   +   ||sg[z_e] - e||^2 + commitment_cost * ||z_e - sg[e]||^2
    `recon`           `kl` (a constant)         `aux`: codebook loss       commitment loss

Convention: the squared norms are summed over the latent positions and the D dimensions of each
example and averaged over the batch -- the reconstruction term's convention (summed over pixels,
nats per example) -- where Sonnet's reference averages over every element. With `ema: true` the
codebook loss is dropped and the codebook follows exponential moving averages of the batch
(`VectorQuantizer`, Sonnet's VectorQuantizerEMA), updated in training mode only.

Its place in the VAE interface (`base.VAE`):

- q(z|x) is deterministic -- the one-hot choice of each position's code -- and the prior is the
  paper's uniform prior over the K^n_positions code grids, so KL(q || p) = n_positions * log K nats
  for every image: `kl` is that constant, (B, 1) (`kl_per_dim = False`). It is the rate of the code
  in nats; the `-ELBO` metric is recon_nll + n_positions * log K.
- `encode(x)` returns (mu, logvar) = (the quantized grid e_k flattened, (B, n_positions * D) in
  (D, h, w) order; -inf): a point mass at the quantized code (variance 0, so `reparameterize`
  returns mu). `decode(mu)` is thus the reconstruction: recon MSE, SSIM, FID of reconstructions,
  per-class reconstruction and the figures' reconstructions work unchanged. `decode` decodes the
  grid it is given without quantizing it (an interpolation decodes the straight line between two
  quantized grids).
- `gaussian_posterior = False` (active units, MIG/SAP and latent plots do not apply),
  `deterministic_posterior = True` (every importance weight equals the ELBO: the NLL metric does
  not apply), `can_sample = False`: sampling needs a prior learned over the codes (the paper's
  PixelCNN), out of scope here; `sample_prior` and `sample` raise.
- `code_indices(x)` (B, h, w) and `num_embeddings`: the codebook capability the `codebook` metric
  (perplexity, codes used) looks for.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from pydantic import Field, model_validator
from torch import nn

from ..objectives.bounds import ElboTerms
from .base import VAE, apply_spectral_norm
from .conv import ConvOptions, down_stages, stage_sizes, up_stages
from .families import MODELS, ModelFamily

EMA_EPSILON = 1e-5  # Laplace smoothing of the EMA cluster sizes (Sonnet's default)


class VQVAEOptions(ConvOptions):
    channels: list[int] = Field(
        default_factory=lambda: [32, 64],
        min_length=1,
        description="channels of the stride-2 stages, input side first (two stages: a 7x7 code grid on 28x28)",
    )
    num_embeddings: int = Field(512, ge=1, description="K: code vectors in the codebook")
    commitment_cost: float = Field(
        0.25, ge=0.0, description="beta: weight of the commitment loss beta ||z_e - sg[e]||^2"
    )
    ema: bool = Field(
        False,
        description="update the codebook by exponential moving averages (no codebook loss) instead of by gradient",
    )
    decay: float = Field(0.99, gt=0.0, lt=1.0, description="decay of the codebook's moving averages (ema: true only)")

    @model_validator(mode="before")
    @classmethod
    def _no_embedding_dim(cls, data: Any) -> Any:
        if isinstance(data, dict) and "embedding_dim" in data:
            raise ValueError(
                "vqvae's code vectors have latent_dim dimensions: set the model's latent_dim "
                "(the embedding dimension D), not embedding_dim"
            )
        return data


class Quantized(NamedTuple):
    """One pass of the quantizer over z_e (B, D, h, w)."""

    z_q: torch.Tensor  # (B, D, h, w): the chosen code vectors, straight-through (gradient: identity to z_e)
    codes: torch.Tensor  # (B, D, h, w): the chosen code vectors (gradient to the codebook)
    indices: torch.Tensor  # (B, h, w) int64: which code at each position
    codebook_loss: torch.Tensor  # (B,) ||sg[z_e] - e||^2 summed over positions and dims (zeros with EMA)
    commitment_loss: torch.Tensor  # (B,) ||z_e - sg[e]||^2 summed over positions and dims, unweighted


class VectorQuantizer(nn.Module):
    """Nearest-neighbour quantization onto a codebook of K vectors of D numbers, `embedding` (K, D).

    Initialization: uniform in +-sqrt(3 / D) (Sonnet's VarianceScaling(distribution='uniform') on its
    (D, K) codebook).

    EMA (van den Oord et al. 2017, appendix; Sonnet's VectorQuantizerEMA): in training mode, after the
    batch has been quantized with the current codebook, with n_k the count of positions that chose
    code k and s_k the sum of their z_e,

        N_k <- decay N_k + (1 - decay) n_k,     m_k <- decay m_k + (1 - decay) s_k,

    both starting at 0 and debiased like Sonnet's ExponentialMovingAverage (divided by 1 - decay^t
    after t updates); then, with n = sum_k N_k, the Laplace-smoothed size
    N~_k = (N_k + eps) / (n + K eps) * n, and e_k = m_k / N~_k. A code no batch has chosen yet
    thus moves to the origin at the first update, as in Sonnet. The codebook and the averages are
    buffers (not trained by the optimizer; saved with the state_dict).
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        ema: bool = False,
        decay: float = 0.99,
        epsilon: float = EMA_EPSILON,
    ) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.ema, self.decay, self.epsilon = ema, decay, epsilon
        limit = math.sqrt(3.0 / embedding_dim)
        init = torch.empty(num_embeddings, embedding_dim).uniform_(-limit, limit)
        if ema:
            self.register_buffer("embedding", init)
            self.register_buffer("ema_cluster_size", torch.zeros(num_embeddings))  # N, before debiasing
            self.register_buffer("ema_sum", torch.zeros(num_embeddings, embedding_dim))  # m, before debiasing
            self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))  # t
        else:
            self.embedding = nn.Parameter(init)

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code vector (squared Euclidean distance) of each row of flat (N, D): (N,).
        ||z - e_k||^2 = ||z||^2 + ||e_k||^2 - 2 z.e_k, and ||z||^2 is the same for every k: the argmin
        of ||e_k||^2 - 2 z.e_k (one fused matrix product)."""
        e = self.embedding
        return torch.addmm(e.pow(2).sum(1), flat, e.t(), alpha=-2).argmin(1)  # (N, K) -> (N,)

    def forward(self, z_e: torch.Tensor) -> Quantized:
        b, d, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)  # (B*h*w, D), positions row-major per image
        with torch.no_grad():
            idx = self.nearest(flat)
        codes = self.embedding[idx].view(b, h, w, d).permute(0, 3, 1, 2)  # (B, D, h, w)
        commitment = (z_e - codes.detach()).pow(2).flatten(1).sum(1)
        if self.ema:
            codebook = torch.zeros_like(commitment)
            if self.training:
                self._ema_update(flat.detach(), idx)
        else:
            codebook = (codes - z_e.detach()).pow(2).flatten(1).sum(1)
        z_q = z_e + (codes - z_e).detach()
        return Quantized(z_q, codes, idx.view(b, h, w), codebook, commitment)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, idx: torch.Tensor) -> None:
        k = self.num_embeddings
        counts = torch.bincount(idx, minlength=k).to(flat.dtype)  # n_k
        sums = torch.zeros_like(self.ema_sum).index_add_(0, idx, flat)  # s_k
        self.ema_cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        self.ema_updates += 1
        debias = 1 - self.decay ** int(self.ema_updates)
        size, total = self.ema_cluster_size / debias, self.ema_sum / debias
        n = size.sum()
        smoothed = (size + self.epsilon) / (n + k * self.epsilon) * n
        self.embedding.copy_(total / smoothed[:, None])


class VQVAE(VAE):
    """The VQ-VAE; see the module docstring for its loss and its place in the interface."""

    kl_per_dim = False
    gaussian_posterior = False
    deterministic_posterior = True
    can_sample = False
    memory_format = torch.channels_last

    def __init__(
        self,
        data_shape,
        embedding_dim: int,
        channels: list[int],
        likelihood,
        num_embeddings: int = 512,
        commitment_cost: float = 0.25,
        ema: bool = False,
        decay: float = 0.99,
        spectral_norm: bool = False,
    ) -> None:
        c, h, w = data_shape
        sizes = stage_sizes(h, w, len(channels))
        grid = sizes[-1]
        super().__init__(data_shape, embedding_dim * grid[0] * grid[1], likelihood)  # latent_dim: encode's width
        self.embedding_dim, self.num_embeddings, self.commitment_cost = embedding_dim, num_embeddings, commitment_cost
        self.grid = grid  # (h, w) of the code grid
        self.n_positions = grid[0] * grid[1]
        self.rate = self.n_positions * math.log(num_embeddings)  # KL(q || uniform prior), nats per image
        self.encoder = nn.Sequential(*down_stages(c, channels), nn.Conv2d(channels[-1], embedding_dim, 1))
        self.quantizer = VectorQuantizer(num_embeddings, embedding_dim, ema, decay)
        self.decoder = nn.Sequential(
            nn.Conv2d(embedding_dim, channels[-1], 1),  # (B, channels[-1], h, w)
            *up_stages(channels, sizes),  # (B, channels[0], H, W)
            nn.Conv2d(channels[0], self.out_shape[0], 3, padding=1),  # (B, C', H, W): no activation
        )
        if spectral_norm:
            apply_spectral_norm(self.decoder)

    def quantize(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Quantized:
        """Encode x (B, C, H, W) to z_e (B, D, h, w) and quantize it (EMA codebook update in training mode)."""
        return self.quantizer(self.encoder(x))

    def code_indices(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The code chosen at each position of each image: (B, h, w) int64 in [0, num_embeddings)."""
        return self.quantize(x, y).indices

    def encode(self, x, y=None):
        """(mu, logvar) = (the quantized grid flattened, (B, n_positions * D); -inf): a point mass."""
        mu = self.quantize(x, y).codes.flatten(1)
        return mu, torch.full_like(mu, float("-inf"))

    def decode(self, z, y=None):
        """z (B, n_positions * D), a flattened (D, h, w) grid -> the likelihood's parameters."""
        return self.decoder(z.reshape(len(z), self.embedding_dim, *self.grid))

    # -- the prior: uniform over the K^n_positions code grids --------------------------------------

    def log_prior(self, z):
        """log p(z) = -n_positions * log K for a grid of code vectors (membership is not checked)."""
        return z.new_full(z.shape[:-1], -self.rate)

    def sample_prior(self, n, generator=None):
        raise NotImplementedError(
            "vqvae has no prior over codes to sample from (can_sample = False): sampling "
            "needs a prior learned over the code grids, e.g. the paper's PixelCNN"
        )

    def kl(self, mu, logvar, z):
        """KL(one-hot q(z|x) || uniform prior) = n_positions * log K per example: (B, 1), nats."""
        return mu.new_full((len(mu), 1), self.rate)

    # -- the bounds ---------------------------------------------------------------------------------

    def elbo_terms(self, x, y=None) -> ElboTerms:
        """recon = -log p(x | z_q) (nats per example), kl = n_positions * log K (B, 1), aux = the
        codebook loss (zero with EMA) + commitment_cost * the commitment loss, mean over the batch."""
        q = self.quantize(x, y)
        params = self.decoder(q.z_q)
        recon = self.likelihood.nll(params, x)
        mu = q.codes.flatten(1)
        aux = (q.codebook_loss + self.commitment_cost * q.commitment_loss).mean()
        return ElboTerms(recon, self.kl(mu, None, None), mu, torch.full_like(mu, float("-inf")), params, aux)

    def importance_log_weights(self, x, y, k, posterior=None, decode_batch=None):
        """With a deterministic posterior every draw is the quantized code and every weight the
        ELBO: log w = log p(x | z_q) - n_positions * log K, (k, B)."""
        mu = posterior[0] if posterior is not None else self.encode(x, y)[0]
        log_w = -self.likelihood.nll(self.decode(mu, y), x) - self.rate
        return log_w.expand(k, -1)


def build_vqvae(cfg, data_shape, likelihood, num_classes) -> VQVAE:
    return VQVAE(
        data_shape,
        cfg.latent_dim,
        list(cfg.channels),
        likelihood,
        cfg.num_embeddings,
        cfg.commitment_cost,
        cfg.ema,
        cfg.decay,
        cfg.spectral_norm,
    )


MODELS.register(
    "vqvae",
    ModelFamily(
        build_vqvae,
        VQVAEOptions,
        "VQ-VAE (van den Oord et al. 2017): conv encoder, nearest-neighbour codebook of num_embeddings "
        "vectors of latent_dim numbers, straight-through gradient, codebook and commitment losses",
        model=VQVAE,
    ),
)
