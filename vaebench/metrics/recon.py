"""Reconstruction metrics on the deterministic reconstruction E[x | z = mu(x)]: MSE and SSIM."""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

from . import METRICS, columns as C

SSIM_SIGMA = 1.5  # Wang et al. 2004
SSIM_TRUNCATE = 3.5  # scikit-image's window: side 2 * int(truncate * sigma + 0.5) + 1 = 11


@METRICS.register("recon_mse")
def recon_mse(ctx) -> dict:
    """Mean over pixels and test images of (x - x_hat)^2, x_hat decoded from mu: per pixel."""
    return {C.RECON_MSE: (ctx.x - ctx.reconstructions).pow(2).mean().item()}


def ssim_window(height: int, width: int) -> tuple[float, int]:
    """(sigma, window side): Wang's sigma = 1.5 (11x11 window) when the image is at least 11 px on
    each side; on smaller images the largest sigma whose window fits (8x8 digits: 0.857, 7x7)."""
    r = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    if 2 * r + 1 > min(height, width):
        r = (min(height, width) - 1) // 2
        return r / SSIM_TRUNCATE, 2 * r + 1
    return SSIM_SIGMA, 2 * r + 1


SSIM_CHUNK = 4096  # images per scikit-image call (bounds memory: ~10 float64 mosaics of this size)


def ssim_per_image(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, int]:
    """SSIM of every image pair, exactly as scikit-image's per-image call computes it.

    x, y: (N, C, H, W) in [0, 1]. Each (image, channel) gets
    structural_similarity(x, y, data_range=1.0, gaussian_weights=True, sigma=sigma,
    use_sample_covariance=False); channels are averaged. Returns (values (N,), sigma, window side).

    Speed: instead of N calls, the images are tiled into one mosaic per chunk and scikit-image
    computes the full SSIM map once. A per-image SSIM is the mean of its map over the image minus a
    border of (window - 1) / 2 pixels, and the Gaussian window (radius (window - 1) / 2) of every
    pixel in that interior lies inside its own tile, so each tile's interior mean equals the
    per-image result (tests/test_metrics.py checks this against direct calls).
    """
    n, c, h, w = x.shape
    sigma, win = ssim_window(h, w)
    pad = (win - 1) // 2
    a_all = x.reshape(n * c, h, w).astype(np.float64)
    b_all = y.reshape(n * c, h, w).astype(np.float64)
    values = []
    for start in range(0, n * c, SSIM_CHUNK):
        a, b = a_all[start : start + SSIM_CHUNK], b_all[start : start + SSIM_CHUNK]
        k = len(a)
        cols = int(np.ceil(np.sqrt(k)))
        rows = int(np.ceil(k / cols))
        fill = rows * cols - k  # blank tiles to complete the grid; their values are dropped

        def mosaic(t: np.ndarray) -> np.ndarray:
            t = np.concatenate([t, np.zeros((fill, h, w))]) if fill else t
            return t.reshape(rows, cols, h, w).transpose(0, 2, 1, 3).reshape(rows * h, cols * w)

        _, ssim_map = structural_similarity(
            mosaic(a), mosaic(b), data_range=1.0, gaussian_weights=True, sigma=sigma,
            use_sample_covariance=False, full=True,
        )
        tiles = ssim_map.reshape(rows, h, cols, w).transpose(0, 2, 1, 3).reshape(rows * cols, h, w)[:k]
        values.append(tiles[:, pad : h - pad, pad : w - pad].mean(axis=(1, 2)))
    return np.concatenate(values).reshape(n, c).mean(1), sigma, win


@METRICS.register("ssim")
def ssim(ctx) -> dict:
    """Mean SSIM between test images and their reconstructions (Wang et al. 2004 settings).
    Reconstructions are clipped to [0, 1], the data range SSIM assumes."""
    values, sigma, win = ssim_per_image(ctx.x.cpu().numpy(), ctx.reconstructions.clamp(0, 1).cpu().numpy())
    return {C.SSIM: float(values.mean()), C.SSIM_SIGMA: sigma, C.SSIM_WIN_SIZE: win}


@METRICS.register("per_class")
def per_class(ctx) -> dict:
    """Reconstruction by true class of the test image (the tutorial's exercise): recon MSE per
    pixel and -log p(x | z = mu(x)) in nats per example, each a list indexed by class."""
    import torch

    with torch.no_grad():
        mu, _ = ctx.posterior
        nll = torch.cat([
            ctx.likelihood.nll(ctx.model.decode(m, y), x)
            for m, (x, y) in zip(mu.split(ctx.batch_size), ctx.batches())
        ])
    mse = (ctx.x - ctx.reconstructions).pow(2).flatten(1).mean(1)
    classes = int(ctx.data.num_classes)
    count = torch.bincount(ctx.y, minlength=classes).double()

    def by_class(v):
        sums = torch.zeros(classes, dtype=torch.float64, device=v.device).index_add_(0, ctx.y, v.double())
        return (sums / count.clamp(min=1)).where(count > 0, torch.full_like(sums, float("nan"))).tolist()

    return {C.RECON_MSE_PER_CLASS: by_class(mse), C.RECON_NLL_PER_CLASS: by_class(nll)}
