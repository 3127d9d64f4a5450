"""The disentangling objectives of Locatello et al.'s study (2019), as `ESTIMATORS` entries.

Each trains a one-Gaussian-layer VAE with the N(0, I) prior (`objective.estimator` picks one; the
model family stays the architecture). Losses are nats per example (mean over the batch); the
regularizer is multiplied by the KL schedule's w(t) (1 under the default constant schedule).

- `btcvae` (Chen et al. 2018): recon + w (MI + beta TC + dimension-wise KL), the KL's decomposition
  estimated on the minibatch with q(z) by minibatch-weighted (`mws`) or minibatch-stratified (`mss`)
  sampling; N, the dataset size in the estimator, is the run's training examples.
- `factorvae` (Kim & Mnih 2018): recon + w (KL + gamma TC), TC estimated by a discriminator between
  codes z ~ q(z) and codes with each dimension permuted across the batch (its log density ratio),
  trained by its own Adam (lr `discriminator_lr`, betas (0.5, 0.9)) after every VAE step on the
  same batch's codes (as disentanglement_lib does; the paper draws a second batch).
- `dipvae` (Kumar et al. 2018): recon + w (beta KL + lambda_od sum_{i!=j} C_ij^2 + lambda_d
  sum_i (C_ii - 1)^2), C = Cov_batch[mu(x)] (DIP-VAE-I) or E[diag sigma^2(x)] + Cov_batch[mu(x)]
  (DIP-VAE-II), covariances over the batch with 1/B.
- `annealed` (Burgess et al. 2018): recon + w gamma |KL - C(t)|, KL the batch's mean total KL and
  C(t) = C_max min(1, t / (capacity_warmup epochs)).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .bounds import ESTIMATORS, LossOut
from .gaussian import gaussian_log_density, std_normal_log_prob
from .training import Estimator, Step, TrainingObjective


def standard_vae_reason(model_cls: type) -> str | None:
    """Why models of class `model_cls` cannot be trained by a disentangling objective, or None: the
    objectives need one diagonal-Gaussian latent layer with the N(0, I) prior (`VAE.standard_gaussian_reason`)."""
    reason = getattr(model_cls, "standard_gaussian_reason", None)
    return f"{model_cls.__name__} is not a vaebench VAE" if reason is None else reason()


def _sampled(model, x, y):
    """The one-sample ELBO terms with the sampled z (base VAE.elbo_terms)."""
    t = model.elbo_terms(x, y)
    if t.z is None:
        raise ValueError(f"{type(model).__name__}.elbo_terms does not return the sampled z")
    return t


# ----------------------------------------------------------------------------------- beta-TCVAE


def stratified_log_weights(batch: int, dataset_size: int, device=None) -> torch.Tensor:
    """log w_ij of minibatch-stratified sampling (Chen et al. 2018, appendix C.2), (B, B): the
    estimate of q(z_i) is sum_j w_ij q(z_i|x_j). The example z_i was drawn from counts 1/N (j = i);
    the other N - 1 examples of the dataset are represented by the other B - 1 of the batch, B - 2 of
    them at 1/(B - 1) and one (j = i + 1 mod B) at (N - B + 1) / (N (B - 1)), the rest of its stratum.
    Every row sums to 1 (Chen et al.'s released code gives one row two stratum weights and the last
    none; here each row has one)."""
    n, m = float(dataset_size), batch - 1
    w = torch.full((batch, batch), 1.0 / m, device=device)
    idx = torch.arange(batch, device=device)
    w[idx, (idx + 1) % batch] = (n - m) / (n * m)
    w[idx, idx] = 1.0 / n
    return w.log()


def log_qz_estimates(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, dataset_size: int, sampling: str = "mws"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Minibatch estimates of log q(z_i) and sum_d log q(z_id) at each code z_i of the batch, nats,
    (B,) each, where q(z) = E_x q(z|x) is the aggregate posterior over the N training examples.

    mws (minibatch-weighted sampling): log q(z_i) ~ logsumexp_j log q(z_i|x_j) - log(N B), likewise per
    dimension. Its constant -log(N B) makes the TC estimate biased by (D - 1) log B (no gradient).
    mss: the stratified weights of `stratified_log_weights`, which sum to 1 for every code."""
    b = z.shape[0]
    pair = gaussian_log_density(z.unsqueeze(1), mu.unsqueeze(0), logvar.unsqueeze(0))  # [i, j, d]: log q(z_id|x_j)
    if sampling == "mws" or b < 2:  # (a batch of one has no stratum to weight)
        log_w = -math.log(b * dataset_size)
        return torch.logsumexp(pair.sum(2), 1) + log_w, (torch.logsumexp(pair, 1) + log_w).sum(1)
    log_w = stratified_log_weights(b, dataset_size, z.device).to(pair.dtype)
    return torch.logsumexp(pair.sum(2) + log_w, 1), torch.logsumexp(pair + log_w.unsqueeze(2), 1).sum(1)


def kl_decomposition(z, mu, logvar, dataset_size: int, sampling: str = "mws"):
    """(MI, TC, dimension-wise KL) per example (B,) each, nats: log q(z|x) - log q(z), log q(z) -
    sum_d log q(z_d), sum_d log q(z_d) - log p(z) at the sampled z; their sum is the one-sample Monte
    Carlo KL log q(z|x) - log p(z) whatever the estimates of q(z)."""
    log_qz, log_prod = log_qz_estimates(z, mu, logvar, dataset_size, sampling)
    log_qzx = gaussian_log_density(z, mu, logvar).sum(1)
    log_pz = std_normal_log_prob(z)
    return log_qzx - log_qz, log_qz - log_prod, log_prod - log_pz


class BetaTCVAE(TrainingObjective):
    def __init__(self, cfg) -> None:
        super().__init__()
        self.beta, self.sampling = cfg.beta, cfg.tc_sampling

    def forward(self, model, x, y, step: Step) -> LossOut:
        t = _sampled(model, x, y)
        mi, tc, dwkl = kl_decomposition(t.z.float(), t.mu.float(), t.logvar.float(), step.dataset_size, self.sampling)
        loss = t.recon.mean() + step.weight * (mi + self.beta * tc + dwkl).mean()
        return LossOut(loss, t.recon, t.kl)


# ----------------------------------------------------------------------------------- FactorVAE


def permute_dims(z: torch.Tensor) -> torch.Tensor:
    """Each latent dimension shuffled independently across the batch: samples of prod_d q(z_d)."""
    return torch.stack([col[torch.randperm(len(z), device=z.device)] for col in z.unbind(1)], 1)


def discriminator(latent_dim: int, hidden: int, layers: int) -> nn.Sequential:
    """The FactorVAE discriminator: `layers` Linear(hidden) + LeakyReLU(0.2), then 2 logits (class 0:
    a code of q(z); class 1: a permuted code). Kim & Mnih use 6 layers of 1000 units."""
    mods, width = [], latent_dim
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
        width = hidden
    return nn.Sequential(*mods, nn.Linear(width, 2))


def density_ratio_tc(logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's TC estimate per code, nats: log D(z) / (1 - D(z)) = logit_0 - logit_1, an
    estimate of log q(z) / prod_d q(z_d) when D is optimal."""
    return logits[:, 0] - logits[:, 1]


def discriminator_loss(disc: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the discriminator on the codes z (class 0) and their permutation (class 1)."""
    zeros = torch.zeros(len(z), dtype=torch.long, device=z.device)
    return 0.5 * (F.cross_entropy(disc(z), zeros) + F.cross_entropy(disc(permute_dims(z)), zeros + 1))


class FactorVAE(TrainingObjective):
    def __init__(self, cfg, model, info) -> None:
        super().__init__()
        self.gamma = cfg.tc_weight
        self.discriminator = discriminator(model.latent_dim, cfg.discriminator_hidden, cfg.discriminator_layers)
        self.discriminator.to(info.device)
        self._opt = torch.optim.Adam(self.discriminator.parameters(), lr=cfg.discriminator_lr, betas=(0.5, 0.9))

    def forward(self, model, x, y, step: Step) -> LossOut:
        t = _sampled(model, x, y)
        tc = density_ratio_tc(self.discriminator(t.z))
        loss = t.recon.mean() + step.weight * (t.kl.sum(1) + self.gamma * tc).mean()
        return LossOut(loss, t.recon, t.kl, {"z": t.z.detach()})

    def auxiliary_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"discriminator": self._opt}

    def auxiliary_loss(self, name, model, x, y, out: LossOut, step: Step) -> torch.Tensor:
        return discriminator_loss(self.discriminator, out.extras["z"])


# ----------------------------------------------------------------------------------- DIP-VAE


def dip_covariance(mu: torch.Tensor, logvar: torch.Tensor, dip_type: str) -> torch.Tensor:
    """(D, D): Cov_batch[mu(x)] (1/B) for DIP-VAE-I; plus E_batch[diag sigma^2(x)] for DIP-VAE-II (the
    covariance of z under the aggregate posterior)."""
    centered = mu - mu.mean(0, keepdim=True)
    cov = centered.T @ centered / len(mu)
    return cov + torch.diag(logvar.exp().mean(0)) if dip_type == "ii" else cov


def dip_penalty(cov: torch.Tensor, lambda_od: float, lambda_d: float) -> torch.Tensor:
    """lambda_od sum_{i != j} C_ij^2 + lambda_d sum_i (C_ii - 1)^2."""
    diag = torch.diagonal(cov)
    return lambda_od * (cov - torch.diag(diag)).pow(2).sum() + lambda_d * (diag - 1.0).pow(2).sum()


class DIPVAE(TrainingObjective):
    def __init__(self, cfg) -> None:
        super().__init__()
        self.beta, self.dip_type, self.lambda_od = cfg.beta, cfg.dip_type, cfg.lambda_od
        default_factor = 10.0 if cfg.dip_type == "i" else 1.0  # Kumar et al.; disentanglement_lib's defaults
        self.lambda_d = cfg.lambda_d if cfg.lambda_d is not None else default_factor * cfg.lambda_od

    def forward(self, model, x, y, step: Step) -> LossOut:
        t = _sampled(model, x, y)
        penalty = dip_penalty(
            dip_covariance(t.mu.float(), t.logvar.float(), self.dip_type), self.lambda_od, self.lambda_d
        )
        loss = t.recon.mean() + step.weight * (self.beta * t.kl.sum(1).mean() + penalty)
        return LossOut(loss, t.recon, t.kl)


# ----------------------------------------------------------------------------------- AnnealedVAE


def capacity(step: Step, capacity_max: float, warmup_epochs: float) -> float:
    """C(t) = C_max min(1, t / T), T = warmup_epochs * steps_per_epoch optimizer steps, nats."""
    return capacity_max * min(1.0, step.step / (warmup_epochs * step.steps_per_epoch))


class AnnealedVAE(TrainingObjective):
    def __init__(self, cfg) -> None:
        super().__init__()
        self.c_max, self.warmup, self.gamma = cfg.capacity_max, cfg.capacity_warmup, cfg.capacity_gamma

    def forward(self, model, x, y, step: Step) -> LossOut:
        t = _sampled(model, x, y)
        c = capacity(step, self.c_max, self.warmup)
        loss = t.recon.mean() + step.weight * self.gamma * (t.kl.sum(1).mean() - c).abs()
        return LossOut(loss, t.recon, t.kl)


# name -> (builder (cfg, model, info) -> objective, the `objective:` fields it reads, its name in the papers)
_OBJECTIVES = {
    "btcvae": (lambda cfg, model, info: BetaTCVAE(cfg), ("beta", "tc_sampling"), "β-TCVAE"),
    "factorvae": (
        FactorVAE,
        ("tc_weight", "discriminator_lr", "discriminator_hidden", "discriminator_layers"),
        "FactorVAE",
    ),
    "dipvae": (lambda cfg, model, info: DIPVAE(cfg), ("beta", "dip_type", "lambda_od", "lambda_d"), "DIP-VAE"),
    "annealed": (
        lambda cfg, model, info: AnnealedVAE(cfg),
        ("capacity_max", "capacity_warmup", "capacity_gamma"),
        "AnnealedVAE",
    ),
}
for _name, (_build, _fields, _paper) in _OBJECTIVES.items():
    ESTIMATORS.register(_name, Estimator(_build, _fields, _paper, unsupported=standard_vae_reason, label=_paper))
