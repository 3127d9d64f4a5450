"""Matplotlib figures of one study, drawn from its Parquet rows and per-run artifact arrays only.

Every figure is a `Figure` holding PNG bytes; Markdown links the PNG files, HTML embeds them.
Curves and points are means over seeds; bands and error bars are 95% Student-t confidence
intervals (stats.ci95). Losses in nats per test example, as everywhere. Captions are in prose.yaml
(`caption_<figure key>`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd
from matplotlib.figure import Figure as _Canvas

from ..results.artifacts import load_arrays
from ..results.rows import grid_column
from .columns import cell_label, param_label
from .disentanglement_study import is_disentanglement_study, oriented_name, rank_correlation_matrix
from .prose import prose
from .settings import finished
from .stats import ci95
from .summary import cell_groups
from .titles import ARCHITECTURE_TITLE, FIGURES_TITLE

DPI = 100


@dataclass(frozen=True)
class Figure:
    key: str  # file stem: reports/<study>/figures/<key>.png
    title: str
    caption: str
    png: bytes


def _subplots(*grid, figsize, **kw):
    """(figure, axes) as `plt.subplots` makes them, without pyplot: no backend is chosen or changed
    (a notebook's inline plots keep working after a report) and no figure stays open."""
    fig = _Canvas(figsize=figsize)
    return fig, fig.subplots(*grid, **kw)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def _cells(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(label, finished rows) per grid cell, in grid order."""
    keys = list(df["grid_keys"].iloc[0])
    return [(cell_label(keys, values) or "all runs", g) for values, g in cell_groups(finished(df), keys)]


def _epochs(g: pd.DataFrame) -> pd.DataFrame:
    """The training histories of a cell's runs as one frame, a row per run and epoch."""
    return pd.DataFrame([rec for h in g["history"] for rec in h])


def _figure(key: str, title: str, fig, **fields) -> Figure:
    """The figure `key` with its caption (prose.yaml: caption_<key>, filled with `fields`) and the plot as PNG."""
    return Figure(key, title, prose(f"caption_{key}", **fields), _png(fig))


CURVE_PREFIX = {"validation": "val", "test": "test"}  # the history fields of each held-out split


def curve_split(df: pd.DataFrame) -> str:
    """The held-out split the finished runs' per-epoch losses were measured on: "validation" when
    some history record has a `val_loss` (runs with a validation split), else "test"
    (results.fields.selection_loss reads the same fields)."""
    for h in finished(df)["history"] if "history" in df else []:
        if h is not None and any(rec.get("val_loss") is not None for rec in h):
            return "validation"
    return "test"


def training_curves(df: pd.DataFrame, root: Path) -> Optional[Figure]:
    """The per-epoch -ELBO, reconstruction and KL on the held-out split (validation when the runs have
    one, else test; the title and caption say which), and the KL weight; one line per cell."""
    cells = [(label, g) for label, g in _cells(df) if len(g)]
    if not cells:
        return None
    split = curve_split(df)
    prefix = CURVE_PREFIX[split]
    panels = [
        (f"{prefix}_loss", "−ELBO (nats)"),
        (f"{prefix}_recon", "reconstruction (nats)"),
        (f"{prefix}_kl", "KL (nats)"),
        ("kl_weight", "KL weight β·w(t)"),
    ]
    fig, axes = _subplots(1, 4, figsize=(16, 3.6))
    for label, g in cells:
        hist = _epochs(g)
        if hist.empty:  # rows without a training history (a result added from outside the sweep)
            continue
        per_epoch = hist.groupby("epoch")
        for ax, (col, name) in zip(axes, panels):
            m = per_epoch[col].mean() if col in hist else pd.Series(dtype=float)
            ax.plot(m.index, m.values, marker="." if len(m) < 30 else None, label=label)
            ax.set_title(name, fontsize=10)
            ax.set_xlabel("epoch")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Training curves ({split} split, mean over seeds)", fontsize=11)
    return _figure("training_curves", "Training curves", fig, split=split)


def compute_curves(df: pd.DataFrame, root: Path) -> Optional[Figure]:
    """For an architecture comparison: the per-epoch held-out -ELBO (validation when the runs have a
    validation split, else test) against training seconds and against epochs, one line per
    architecture. Equal epochs are not equal compute: the seconds panel is the compute-matched view
    (which architecture is best at a given training time)."""
    from .tables import study_title  # (tables imports nothing of the figures)

    if study_title(df) != ARCHITECTURE_TITLE:
        return None
    cells = [(label, g) for label, g in _cells(df) if len(g) and any(len(h) for h in g["history"])]
    if not cells:
        return None
    split = curve_split(df)
    fig, axes = _subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for label, g in cells:
        per_epoch = _epochs(g).groupby("epoch")
        loss, seconds = per_epoch[f"{CURVE_PREFIX[split]}_loss"].mean(), per_epoch["seconds"].mean()
        axes[0].plot(seconds.values, loss.values, marker=".", label=label)
        axes[1].plot(loss.index, loss.values, marker=".", label=label)
    axes[0].set_xlabel("training seconds (mean over seeds)")
    axes[1].set_xlabel("epoch")
    axes[0].set_ylabel(f"{split} −ELBO (nats)")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{split.capitalize()} −ELBO against training time and against epochs", fontsize=11)
    return _figure("compute_curves", "−ELBO against training time", fig, split_title=split.capitalize())


MARKERS = "osD^v<>Ph*X"
CROWDED = 0.08  # two points closer than this fraction of the axes' spans (in both directions) crowd


def _crowded(points: list[tuple[float, float]]) -> bool:
    """Whether two of the points lie within CROWDED of each other in both coordinates, each
    coordinate scaled by the points' span in it (a label beside each point would overprint)."""
    xy = np.array(points, dtype=float)
    span = np.ptp(xy, axis=0)
    span[span == 0] = 1.0
    scaled = xy / span
    return any(np.all(np.abs(scaled[i] - scaled[j]) < CROWDED) for i in range(len(xy)) for j in range(i + 1, len(xy)))


def rate_distortion(df: pd.DataFrame, root: Path) -> Optional[Figure]:
    """KL (rate) against reconstruction NLL (distortion), one point per cell, 95% CI bars; each
    point labelled beside it, or in a legend (a marker per cell) when two points crowd (_crowded)."""
    cells = [(label, g) for label, g in _cells(df) if len(g) and g["kl"].notna().all()]
    if len(cells) < 2:
        return None
    points = []
    for label, g in cells:
        kx, khw, _ = ci95(g["kl"].astype(float))
        dy, dhw, _ = ci95(g["recon_nll"].astype(float))
        points.append((label, kx, khw, dy, dhw))
    crowded = _crowded([(p[1], p[3]) for p in points])
    fig, ax = _subplots(figsize=(9, 4.5) if crowded else (6, 4.5))
    for i, (label, kx, khw, dy, dhw) in enumerate(points):
        marker = MARKERS[i % len(MARKERS)] if crowded else "o"
        ax.errorbar(kx, dy, xerr=np.nan_to_num(khw), yerr=np.nan_to_num(dhw), marker=marker, capsize=3, label=label)
        if not crowded:
            ax.annotate(label, (kx, dy), textcoords="offset points", xytext=(5, 5), fontsize=8)
    if crowded:  # labels beside the points would overprint each other: a legend instead
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    ax.set_xlabel("rate: KL(q(z|x) ‖ p(z)) (nats)")
    ax.set_ylabel("distortion: −E_q log p(x|z) (nats)")
    ax.set_title("Rate–distortion", fontsize=11)
    return _figure("rate_distortion", "Rate–distortion", fig)


PARAM_METRICS = [
    ("recon_mse", "recon MSE (per pixel)"),
    ("kl", "KL (nats)"),
    ("neg_elbo", "−ELBO (nats)"),
    ("fid", "FID of samples"),
]


def metric_vs_param(df: pd.DataFrame, root: Path) -> Optional[Figure]:
    """For a study with one numeric grid key: each metric against it, mean and 95% CI band."""
    keys = list(df["grid_keys"].iloc[0])
    ok = finished(df)
    if len(keys) != 1 or keys[0] == "variant" or not pd.api.types.is_numeric_dtype(ok[grid_column(keys[0])]):
        return None
    col = grid_column(keys[0])
    metrics = [(m, name) for m, name in PARAM_METRICS if m in ok and ok[m].notna().any()]
    xs = sorted(ok[col].unique())
    if len(xs) < 2 or not metrics:
        return None
    fig, axes = _subplots(1, len(metrics), figsize=(4 * len(metrics), 3.4))
    for ax, (m, name) in zip(np.atleast_1d(axes), metrics):
        stats = [ci95(ok[ok[col] == x][m].dropna().astype(float)) for x in xs]
        mean = np.array([s[0] for s in stats])
        hw = np.nan_to_num(np.array([s[1] for s in stats]))
        ax.plot(xs, mean, marker="o")
        ax.fill_between(xs, mean - hw, mean + hw, alpha=0.25)
        if min(xs) > 0 and max(xs) / min(xs) >= 10:
            ax.set_xscale("log")
        ax.set_xlabel(param_label(keys[0]))
        ax.set_title(name, fontsize=10)
    fig.suptitle(f"Metrics against {param_label(keys[0])} (mean, 95% CI band)", fontsize=11)
    return _figure("metric_vs_param", f"Metrics against {param_label(keys[0])}", fig)


def grid_image(images: np.ndarray, cols: int) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> one (rows*H, cols*W[, 3]) image with 1-pixel gaps."""
    n, c, h, w = images.shape
    rows = int(np.ceil(n / cols))
    canvas = np.ones((rows * (h + 1) - 1, cols * (w + 1) - 1, c), dtype=np.float32)
    for i, img in enumerate(images):
        r, k = divmod(i, cols)
        canvas[r * (h + 1) : r * (h + 1) + h, k * (w + 1) : k * (w + 1) + w] = np.clip(img.transpose(1, 2, 0), 0, 1)
    return canvas[..., 0] if c == 1 else canvas


def _show(ax, images: np.ndarray, cols: int, title: str) -> None:
    img = grid_image(images, cols)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def _first_artifact(g: pd.DataFrame, root: Path, study: str) -> Optional[tuple[str, dict]]:
    """(path relative to results/<study>/, arrays) of the cell's lowest-seed run that has them."""
    for _, r in g.sort_values("seed").iterrows():
        rel = r.get("artifacts_path")
        if isinstance(rel, str) and (arrays := load_arrays(root, study, rel)) is not None:
            return rel, arrays
    return None


def _first_arrays(g: pd.DataFrame, root: Path, study: str) -> Optional[dict]:
    """The artifact arrays of the cell's lowest-seed run that has them."""
    found = _first_artifact(g, root, study)
    return None if found is None else found[1]


def figure_artifacts(df: pd.DataFrame, root: Path) -> list[str]:
    """The artifact files (relative to results/<study>/) the figures draw: one per cell, its
    lowest seed's. These are the ones to commit beside the rows (tools/commit_results.py)."""
    study = df["study"].iloc[0]
    return [found[0] for _, g in _cells(df) if (found := _first_artifact(g, Path(root), study)) is not None]


def images(df: pd.DataFrame, root: Path) -> Optional[Figure]:
    """Per cell (lowest seed): prior samples, originals over reconstructions, an interpolation."""
    study = df["study"].iloc[0]
    cells = [(label, a) for label, g in _cells(df) if (a := _first_arrays(g, root, study)) is not None]
    if not cells:
        return None
    fig, axes = _subplots(
        len(cells), 3, figsize=(13, 2.6 * len(cells)), squeeze=False, gridspec_kw={"width_ratios": [1, 1.2, 1.5]}
    )
    for (label, a), row in zip(cells, axes):
        if "samples" in a:
            _show(row[0], a["samples"][:32], 8, f"{label}: samples from the prior")
        else:  # a model that cannot sample (can_sample = False, e.g. vqvae): no prior samples saved
            row[0].set_title(f"{label}: no prior to sample from", fontsize=9)
            row[0].axis("off")
        _show(
            row[1],
            np.concatenate([a["originals"], a["reconstructions"]]),
            len(a["originals"]),
            "test images (top) and reconstructions",
        )
        _show(row[2], a["interpolation"], len(a["interpolation"]), "latent interpolation between two test images")
    return _figure("images", "Samples, reconstructions, interpolations", fig)


def latent_scatter(df: pd.DataFrame, root: Path) -> Optional[Figure]:
    """Posterior means of 2,000 test images coloured by class, for cells with latent_dim = 2."""
    study = df["study"].iloc[0]
    cells = [
        (label, a) for label, g in _cells(df) if (a := _first_arrays(g, root, study)) is not None and "latent_mu" in a
    ]
    if not cells:
        return None
    fig, axes = _subplots(1, len(cells), figsize=(5 * len(cells), 4.5), squeeze=False)
    for (label, a), ax in zip(cells, axes[0]):
        sc = ax.scatter(a["latent_mu"][:, 0], a["latent_mu"][:, 1], c=a["latent_labels"], cmap="tab10", s=4)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("z₁")
        ax.set_ylabel("z₂")
    fig.colorbar(sc, ax=axes[0].tolist(), label="class")
    return _figure("latent_scatter", "2-D latent space", fig)


def rank_correlations(df: pd.DataFrame, root: Path) -> Optional[Figure]:
    """For a disentanglement study: the rank-correlation matrix between its metrics as a heatmap
    (disentanglement_study.rank_correlation_matrix; ρ in [−1, 1], written in each square)."""
    if not is_disentanglement_study(df):
        return None
    metrics, rho, _ = rank_correlation_matrix(df)
    k = len(metrics)
    fig, ax = _subplots(figsize=(1.5 + 0.7 * k, 1.0 + 0.6 * k))
    image = ax.imshow(np.ma.masked_invalid(rho), cmap="RdBu", vmin=-1, vmax=1)
    for i in range(k):
        for j in range(k):
            if np.isfinite(rho[i, j]):
                colour = "white" if abs(rho[i, j]) > 0.6 else "black"  # readable on the dark ends of the map
                ax.text(j, i, f"{rho[i, j]:.2f}", ha="center", va="center", fontsize=7, color=colour)
    names = [oriented_name(m) for m in metrics]
    ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), names, fontsize=8)
    fig.colorbar(image, ax=ax, label="Spearman's ρ over runs")
    ax.set_title("Rank correlation between the metrics", fontsize=11)
    return _figure("rank_correlations", "Rank correlation between the metrics", fig, runs=len(finished(df)))


FIGURES: list[Callable[[pd.DataFrame, Path], Optional[Figure]]] = [
    training_curves,
    compute_curves,
    rate_distortion,
    metric_vs_param,
    images,
    latent_scatter,
    rank_correlations,
]


def study_figures(df: pd.DataFrame, results_root: Path) -> list[Figure]:
    """Every figure the study's rows and artifacts allow, in report order."""
    return [f for make in FIGURES if (f := make(df, Path(results_root))) is not None]


def markdown_section(figures: list[Figure], folder: str) -> str:
    """The report's Figures section: each figure as an image link `folder/<key>.png` and caption."""
    if not figures:
        return ""
    lines = ["", f"## {FIGURES_TITLE}", ""]
    for f in figures:
        lines += [f"### {f.title}", "", f"![{f.title}]({folder}/{f.key}.png)", "", f"*{f.caption}*", ""]
    return "\n".join(lines)
