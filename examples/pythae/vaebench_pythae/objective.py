"""Training a pythae model on its own loss, and what that leaves of vaebench's `objective:` section.

`PythaeObjective` is the `TrainingObjective` a `PythaeVAE` hands the trainer
(`PythaeVAE.training_objective`): the batch's loss is pythae's `forward(...).loss`, called as
pythae's `BaseTrainer` calls it (`epoch` 1-based, `dataset_size` the training examples,
`uses_ddp=False`). pythae's losses are means over the batch of per-example sums over pixels, so
where the loss is an ELBO it already is nats per example; for the other models it is in pythae's own
units (e.g. IWAE's surrogate, whose value is not the bound; MSSSIM_VAE's similarity).

The bookkeeping terms (`recon` (B,), `kl` (B, D), the history's `train_recon`/`train_kl`) are
vaebench's one-sample ELBO terms of the batch, comparable across families: one more forward pass
without gradients, in eval mode (batch norm's running statistics untouched), inside a forked random
state, so that the random numbers pythae's loss draws are exactly those pythae's trainer would draw
(`tests/models/test_pythae_training.py` checks the loss curve against `BaseTrainer`).

`check_run` (the family's `ModelFamily.check_run`, at spec time): the likelihood must be one pythae
has a reconstruction loss for, vaebench's own loss settings (estimator, beta, free bits, reduction,
the KL schedule) must stay at their defaults, since a pythae model does not read them, the
MNIST benchmark networks need a dataset of 1x28x28 images (where the dataset's name fixes its
shape), and the bce loss trains in fp32 (torch's CUDA autocast refuses F.binary_cross_entropy).
"""

from __future__ import annotations

import contextlib

import torch

from vaebench.objectives import LossOut
from vaebench.objectives.training import Step, TrainingObjective

# objective: fields a pythae model reads (the likelihood picks its reconstruction loss)
READ_FIELDS = ("likelihood", "variance")
# vaebench's built-in datasets whose image shape their name fixes: the benchmark networks' shape is
# checked against them at spec time (other datasets' shapes are known once loaded: checked at build)
FIXED_SHAPES = {"mnist": (1, 28, 28), "digits": (1, 8, 8), "synthetic": (1, 10, 12)}


@contextlib.contextmanager
def _side_effect_free(model):
    """No gradients, eval mode, and the random state as it was: for bookkeeping passes."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    was_training = model.training
    with torch.no_grad(), torch.random.fork_rng(devices=devices):
        model.eval()
        try:
            yield
        finally:
            model.train(was_training)


class PythaeObjective(TrainingObjective):
    """pythae's own training loss (see the module docstring)."""

    def forward(self, model, x: torch.Tensor, y: torch.Tensor | None, step: Step) -> LossOut:
        out, terms = self.pythae_forward(model, x, y, step)
        return LossOut(out["loss"], terms.recon, terms.kl)

    def pythae_forward(self, model, x, y, step: Step):
        """(pythae's output for the batch, vaebench's one-sample ELBO terms for the bookkeeping)."""
        from pythae.data.datasets import DatasetOutput

        epoch = step.step // step.steps_per_epoch + 1  # pythae's epochs count from 1
        out = model.net(DatasetOutput(data=x), epoch=epoch, dataset_size=step.dataset_size, uses_ddp=False)
        with _side_effect_free(model):
            terms = model.elbo_terms(x, y)
        return out, terms


def check_run(cfg) -> None:
    """The `pythae` family's spec-time check of the whole run (ValueError: a spec error)."""
    from vaebench.spec.sections import ObjectiveConfig, ScheduleConfig

    from .build import check_config  # build imports the wrappers, which import this module

    loss = check_config(cfg.model.family_options(), cfg.objective, FIXED_SHAPES.get(cfg.dataset.name))
    if loss == "bce" and cfg.train.precision != "fp32":
        raise ValueError(
            f"train.precision {cfg.train.precision!r}: pythae's bce loss is F.binary_cross_entropy on "
            "probabilities, which torch's CUDA autocast refuses (pythae's own trainer runs it without amp): "
            "use precision fp32"
        )
    defaults = ObjectiveConfig()
    ignored = [
        f"objective.{name} ({getattr(cfg.objective, name)!r})"
        for name in ObjectiveConfig.model_fields
        if name not in READ_FIELDS and getattr(cfg.objective, name) != getattr(defaults, name)
    ]
    if cfg.schedule != ScheduleConfig():
        ignored.append(f"schedule.name ({cfg.schedule.name!r})")
    if ignored:
        raise ValueError(
            f"pythae model {cfg.model.model!r} trains on its own loss, which does not read "
            f"{', '.join(ignored)}: remove them (give the model's own weights in model.config, e.g. beta)"
        )
