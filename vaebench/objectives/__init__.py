"""Objectives: what a VAE is scored by, in nats per example (summed over pixels and latent
dimensions, averaged over examples).

- `gaussian.py`: the diagonal-Gaussian formulas: the one KL (`gaussian_kl`, `gaussian_kl_between`),
  log-densities, the precision-weighted merge of two Gaussians;
- `likelihoods.py`: p(x|z) behind the `LIKELIHOODS` registry (bernoulli, gaussian, laplace,
  gaussian_learned);
- `bounds.py`: the single-sample ELBO terms, importance samples (IWAE, IS-NLL), free bits, and the
  training losses behind the `ESTIMATORS` registry;
- `schedules.py`: KL-weight schedules, pure functions of the step, behind `SCHEDULES`;
- `training.py`: the `TrainingObjective` protocol the trainer minimizes (a loss per batch, auxiliary
  networks with their own optimizers), built from an `ESTIMATORS` entry or owned by a model family;
- `disentangle.py`: the disentangling objectives (btcvae, factorvae, dipvae, annealed).

Models, metrics and the trainer import the module that holds what they use; this package's names
are the public face for plugins (`from vaebench.objectives import gaussian_log_prob`).
"""

from . import disentangle  # noqa: F401,E402  (registers the disentangling estimators)
from .bounds import (
    ESTIMATORS,
    ElboTerms,
    ImportanceSamples,
    LossOut,
    elbo_terms,
    free_bits_kl,
    importance_samples,
    training_loss,
)
from .gaussian import gaussian_kl, gaussian_kl_between, gaussian_log_prob, precision_weighted_merge, std_normal_log_prob
from .likelihoods import LIKELIHOODS, Bernoulli, Gaussian, GaussianLearned, Laplace, Likelihood, build_likelihood
from .schedules import SCHEDULES, kl_weight
from .training import Estimator, Step, TrainingInfo, TrainingObjective, build_objective

__all__ = [
    "ESTIMATORS",
    "LIKELIHOODS",
    "SCHEDULES",
    "Bernoulli",
    "ElboTerms",
    "Estimator",
    "Gaussian",
    "GaussianLearned",
    "ImportanceSamples",
    "Laplace",
    "Likelihood",
    "LossOut",
    "Step",
    "TrainingInfo",
    "TrainingObjective",
    "build_likelihood",
    "build_objective",
    "elbo_terms",
    "free_bits_kl",
    "gaussian_kl",
    "gaussian_kl_between",
    "gaussian_log_prob",
    "importance_samples",
    "kl_weight",
    "precision_weighted_merge",
    "std_normal_log_prob",
    "training_loss",
]
