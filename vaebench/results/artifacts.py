"""What a report's figures need from a trained model, saved at the end of each trial.

Per finished run, next to its results row:
    results/<study>/models/<run_id>.pt      the model's state_dict (torch.save), to re-make anything
    results/<study>/artifacts/<run_id>.npz  the arrays the figures draw (numpy, images in [0, 1]):
        samples        (64, C, H, W)  decoded from z ~ p(z) (the likelihood's mean); absent for a
                                      model that cannot sample (`can_sample = False`, e.g. vqvae)
        originals      (8, C, H, W)   the first 8 test images
        reconstructions(8, C, H, W)   their reconstructions (decoding the posterior mean)
        interpolation  (10, C, H, W)  decodes of z = (1 - t) mu(x_a) + t mu(x_b), t = 0, 1/9, ..., 1,
                                      between the first two test images of different classes
        latent_mu      (N, 2), latent_labels (N,)   posterior means and classes of the first
                                      N = 2000 test images, only when latent_dim == 2 and the
                                      posterior is Gaussian (`gaussian_posterior`)
So a report never retrains and never needs the dataset. Both files are written atomically before
the row, so a row never names a missing file.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from ..data import Dataset
from ..runtime.files import atomic_path

N_SAMPLES, N_RECON, N_INTERP, N_LATENT = 64, 8, 10, 2000


def models_dir(results_root: Path, study: str) -> Path:
    return Path(results_root) / study / "models"


def artifacts_dir(results_root: Path, study: str) -> Path:
    return Path(results_root) / study / "artifacts"


@torch.no_grad()
def figure_arrays(model, data: Dataset, seed: int) -> dict[str, np.ndarray]:
    """The arrays listed in the module docstring, from a trained model in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    x, y = data.x_test.to(device), data.y_test.to(device)
    labels = torch.arange(N_SAMPLES, device=device) % max(data.num_classes, 1)
    out = {"samples": model.sample(N_SAMPLES, labels, generator=gen)} if getattr(model, "can_sample", True) else {}
    out["originals"] = x[:N_RECON]
    out["reconstructions"] = model.reconstruct(x[:N_RECON], y[:N_RECON])
    b = int(torch.nonzero(y != y[0])[0]) if bool((y != y[0]).any()) else 1
    mu, _ = model.encode(x[[0, b]], y[[0, b]])
    t = torch.linspace(0, 1, N_INTERP, device=device)[:, None]
    z = (1 - t) * mu[0] + t * mu[1]
    out["interpolation"] = model.likelihood.mean(model.decode(z, y[[0] * N_INTERP]))
    if model.latent_dim == 2 and getattr(model, "gaussian_posterior", True):
        mu, _ = model.encode(x[:N_LATENT], y[:N_LATENT])
        out["latent_mu"], out["latent_labels"] = mu, y[:N_LATENT]
    return {k: v.detach().float().cpu().numpy() if v.is_floating_point() else v.cpu().numpy() for k, v in out.items()}


def save_trial_artifacts(
    model, data: Dataset, seed: int, results_root: Path, study: str, run_id: str
) -> dict[str, str]:
    """Write the model's weights and the figure arrays; return the row's path columns (relative to
    results/<study>/)."""
    model_path = models_dir(results_root, study) / f"{run_id}.pt"
    with atomic_path(model_path) as tmp:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    arrays = figure_arrays(model, data, seed)
    art_path = artifacts_dir(results_root, study) / f"{run_id}.npz"
    with atomic_path(art_path) as tmp:
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        tmp.write_bytes(buf.getvalue())
    return {"model_path": f"models/{run_id}.pt", "artifacts_path": f"artifacts/{run_id}.npz"}


def load_arrays(results_root: Path, study: str, relative: str) -> dict[str, np.ndarray] | None:
    """The figure arrays of a row (None when the file is absent, e.g. rows of another machine)."""
    path = Path(results_root) / study / relative
    if not path.is_file():
        return None
    with np.load(path) as f:
        return {k: f[k] for k in f.files}
