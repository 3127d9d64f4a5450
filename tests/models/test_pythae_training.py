"""Training pythae models through vaebench (examples/pythae): the adapter's digits smoke spec over
five pythae models through the whole pipeline, and one epoch through vaebench's trainer against one
epoch through pythae's own `BaseTrainer` with the same weights, random state, data order and
optimizer: the same loss at every step."""

import math
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
PLUGIN_ROOT = REPO / "examples" / "pythae"
if str(PLUGIN_ROOT) not in sys.path:
    sys.path.insert(0, str(PLUGIN_ROOT))

from pythae.data.datasets import BaseDataset, collate_dataset_output  # noqa: E402
from pythae.trainers import BaseTrainer, BaseTrainerConfig  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from vaebench.cli.commands import app  # noqa: E402
from vaebench.data import load_dataset  # noqa: E402
from vaebench.engine.train import train  # noqa: E402
from vaebench.models import build_model  # noqa: E402
from vaebench.objectives.likelihoods import build_likelihood  # noqa: E402
from vaebench.runtime.seeding import seed_everything  # noqa: E402
from vaebench.spec.sweep_spec import load_spec, parse_spec  # noqa: E402
from vaebench_pythae.adversarial import OBJECTIVES  # noqa: E402
from vaebench_pythae.objective import PythaeObjective  # noqa: E402

SMOKE = PLUGIN_ROOT / "pythae_smoke.yaml"


def test_the_smoke_spec_runs_five_pythae_models_through_the_pipeline(tmp_path):
    spec = load_spec(SMOKE)
    models = [r.config.model.model for r in spec.runs()]
    assert models == ["VAE", "BetaTCVAE", "IWAE", "VAMP", "INFOVAE_MMD"]
    results, reports = tmp_path / "results", tmp_path / "reports"
    r = CliRunner().invoke(
        app, ["run", str(SMOKE), "--results", str(results), "--workers", "1", "--threads", "1", "-q"]
    )
    assert r.exit_code == 0, r.output
    df = pd.read_parquet(results / "pythae_smoke" / "runs").set_index("param.model.model").loc[models]
    assert (df["status"] == "ok").all(), df[["status", "reason"]]
    for col in ("neg_elbo", "nll_is", "recon_mse", "active_units"):
        assert df[col].map(math.isfinite).all(), (col, df[col])
    # the NLL is a tighter bound than the one-sample -ELBO, up to Monte Carlo error
    assert (df["nll_is"] < df["neg_elbo"] + 1.0).all(), df[["nll_is", "neg_elbo"]]
    # VAMP's KL does not decompose by dimension: no per-dimension KL column for it
    assert df.loc["VAMP", "kl_per_dim"] is None
    assert (df["epochs_completed"] == 1).all()
    assert len(df.loc["VAE", "kl_per_dim"]) == 4
    # a saved pythae run reloads through vaebench's API and re-evaluates to its row
    import vaebench

    row = df.loc["VAMP"]
    model, config = vaebench.load_model(row["run_id"], results=results)
    assert type(model).__name__ == "PythaeVampVAE" and model.pythae_model == "VAMP"
    again = vaebench.evaluate(
        model, config=config, metrics=["elbo", "nll"], seed=int(row["seed"]), threads=int(row["torch_threads"])
    )
    assert again["neg_elbo"] == row["neg_elbo"] and again["nll_is"] == row["nll_is"]
    r = CliRunner().invoke(app, ["report", "--results", str(results), "--out", str(reports)])
    assert r.exit_code == 0, r.output
    md = (reports / "pythae_smoke.md").read_text()
    assert all(v in md for v in ("β-TCVAE (β = 6)", "IWAE (k = 5)", "VAMP (K = 10)", "InfoVAE (MMD)"))


def _run_config(model: str, config: dict):
    spec = {
        "study": "equivalence",
        "plugins": ["vaebench_pythae"],
        "dataset": {"name": "digits"},
        "model": {"name": "pythae", "model": model, "config": config, "latent_dim": 4},
        "train": {"epochs": 1, "batch_size": 64, "lr": 1e-3, "grad_clip": None},  # pythae's trainer does not clip
    }
    return parse_spec(spec).cells()[0]


@pytest.mark.parametrize(
    "model, config",
    [
        ("VAE", {}),
        ("BetaTCVAE", {"beta": 6, "alpha": 1}),  # reads dataset_size
        ("DisentangledBetaVAE", {"C": 10, "warmup_epoch": 2}),  # reads epoch
        ("IWAE", {"number_samples": 3}),
        ("VAMP", {"number_components": 10}),
        ("VAE_IAF", {"hidden_size": 32}),
        ("SVAE", {}),  # a rejection sampler: a varying number of draws per step
        ("FactorVAE", {"gamma": 6}),  # pythae's AdversarialTrainer; the discriminator an auxiliary network here
        ("Adversarial_AE", {"adversarial_loss_scale": 0.5}),  # likewise
    ],
)
def test_one_epoch_through_vaebench_gives_pythaes_trainer_loss_at_every_step(model, config, tmp_path, monkeypatch):
    """The same initial weights (the same seed and build), the same random state at the first step
    (vaebench's, after it built the model: pythae's `set_seed` is replaced by restoring it), the same
    data order (vaebench's permutation, fed to pythae's trainer as its sampler) and the same
    optimizers (Adam, lr 1e-3, fused for the model, no clipping): the per-step losses agree to float
    tolerance. pythae's BaseTrainer, or its AdversarialTrainer for FactorVAE and Adversarial_AE
    (autoencoder and discriminator optimizers). The adapter's bookkeeping pass draws no random numbers and leaves
    batch norm alone, which is what keeps the two random streams in step."""
    import pythae.trainers.adversarial_trainer.adversarial_trainer as adversarial_trainer
    import pythae.trainers.base_trainer.base_trainer as base_trainer
    from pythae.trainers import AdversarialTrainer, AdversarialTrainerConfig

    cfg = _run_config(model, config)
    data = load_dataset(cfg.dataset)
    x_train, y_train = data.training_examples()
    n, bs, lr = len(x_train), cfg.train.batch_size, cfg.train.lr

    ours = []
    objective = OBJECTIVES.get(model, PythaeObjective)
    forward = objective.forward
    monkeypatch.setattr(objective, "forward", lambda self, *a: ours.append(out := forward(self, *a)) or out)
    train(cfg, data, seed=0, device="cpu")
    ours = [o.loss.item() for o in ours]

    seed_everything(0)  # vaebench's trainer: seed, then build the model
    net = build_model(cfg.model, data.shape, build_likelihood(cfg.objective)).net
    state = torch.get_rng_state()
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0)).tolist()  # vaebench's epoch-1 order
    theirs = []
    if model in OBJECTIVES:  # the discriminator back into pythae's model, for pythae's trainer
        net.add_module("discriminator", net.__dict__.pop("discriminator"))
        trainer_cls, trainer_config = (
            AdversarialTrainer,
            AdversarialTrainerConfig(
                autoencoder_learning_rate=lr,
                discriminator_learning_rate=lr,
                autoencoder_optimizer_params={"fused": True},  # vaebench's Adam for the model
            ),
        )
    else:
        trainer_cls, trainer_config = BaseTrainer, BaseTrainerConfig(learning_rate=lr, optimizer_params={"fused": True})
    trainer_config.output_dir, trainer_config.num_epochs, trainer_config.no_cuda = str(tmp_path), 1, True
    trainer_config.per_device_train_batch_size = bs

    class SameOrder(trainer_cls):
        def get_train_dataloader(self, dataset):
            # vaebench's order as the sampler; the loader's own generator for the base seed every
            # iterator draws (else it is drawn from torch's global generator, shifting the codes' noise)
            return torch.utils.data.DataLoader(
                dataset, bs, sampler=order, collate_fn=collate_dataset_output, generator=torch.Generator()
            )

        def _optimizers_step(self, model_output=None):
            theirs.append(model_output.loss.item())
            super()._optimizers_step(model_output)

    restore = lambda seed: torch.set_rng_state(state)  # noqa: E731
    monkeypatch.setattr(base_trainer, "set_seed", restore)
    monkeypatch.setattr(adversarial_trainer, "set_seed", restore)
    SameOrder(net, BaseDataset(x_train, y_train), training_config=trainer_config).train()

    print("OURS", ours[:6], "THEIRS", theirs[:6])
    assert len(ours) == len(theirs) == math.ceil(n / bs)
    ours, theirs = torch.tensor(ours), torch.tensor(theirs)
    if model != "FactorVAE":
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-5)  # measured: equal bit for bit
    else:
        # pythae back-propagates the autoencoder and the discriminator losses in two passes whose
        # gradients add up in the encoder's .grad; vaebench's trainer back-propagates their sum once.
        # The same gradient up to rounding (measured: 2.5e-7 relative on one batch), which the
        # adversarial game amplifies: equal for the first steps, within 1% over the epoch (measured:
        # 0.4% at the last step)
        torch.testing.assert_close(ours[:4], theirs[:4], rtol=1e-6, atol=1e-5)
        torch.testing.assert_close(ours, theirs, rtol=1e-2, atol=0)
    assert theirs[-1] < theirs[0]  # it trained


@pytest.mark.parametrize(
    "model, config",
    [("VAMP", {"number_components": 10}), ("SVAE", {}), ("FactorVAE", {"gamma": 6}), ("Adversarial_AE", {})],
)
def test_a_pythae_run_resumed_from_its_checkpoint_equals_an_uninterrupted_one(model, config, tmp_path):
    """Killed after the checkpoint at the end of epoch 1 and resumed: the row (metrics, history but
    its seconds) is the uninterrupted run's, bit for bit — pythae's loss, its random draws (SVAE's
    rejection sampler), VAMP's pseudo-inputs and FactorVAE's discriminator (the objective's auxiliary
    network) and its optimizer all continue from the checkpoint."""
    from tests.engine.test_checkpoint import _Crash, _crash_at, _execute, _Notes, _results
    from vaebench.engine.checkpoint import checkpoint_path

    spec = parse_spec(
        {
            "study": "ckpt",
            "plugins": ["vaebench_pythae"],
            "dataset": {"name": "digits"},
            "model": {"name": "pythae", "model": model, "config": config, "latent_dim": 4},
            "train": {"epochs": 3, "batch_size": 128, "checkpoint_every": 1},
            "eval": {"fid_extractor": None, "nll_examples": 50, "nll_k": 10},
        }
    )
    reference = _execute(spec, tmp_path / "reference")
    root = tmp_path / "killed"
    with pytest.raises(_Crash):
        _execute(spec, root, stop_check=_crash_at(2))
    assert checkpoint_path(root, "ckpt", reference["run_id"]).is_file()
    resumed = _execute(spec, root, _Notes())
    assert resumed["resumed_from_epoch"] == 2
    assert _results(resumed) == _results(reference)
