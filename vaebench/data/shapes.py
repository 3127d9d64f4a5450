"""shapes: dSprites-like images (Higgins et al. 2017) rendered here from a full product of known
factors (shape, scale, orientation, x, y), with each image's factor indices: the dataset of the
disentanglement metrics. The rendered grid is cached on disk (`shapes_images`), keyed by its
parameters and the renderer version.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from pydantic import Field

from ..errors import DataError
from ..options import Options
from ..runtime.cache import cache_dir
from .base import DATASETS, Dataset, DatasetSource, Factor, dataset_from_arrays

SHAPES = ("square", "ellipse", "heart")
SHAPES_RENDERER_VERSION = 1  # bump when the rendering changes: cached arrays of another version are never read
SHAPES_SUPERSAMPLE = 4  # each pixel is the fraction of its 4x4 sub-pixel centres inside the shape
SHAPES_MAX_RADIUS = 0.2  # a shape at scale 1 fits in a disc of radius 0.2 * image_size around its centroid
SHAPES_MIN_SCALE = 0.5  # scales run linearly from 0.5 to 1 (dSprites' range)
SHAPES_MARGIN = 1.0  # pixels between the largest shape's disc and the image border
SHAPES_SPLIT_SEED = 0
# Symmetry period of each shape: its orientations are k * period / n, k = 0 .. n - 1, so that no two
# images of the grid are the same picture (a square turned by pi/2 is the same square).
SHAPES_PERIOD = {"square": math.pi / 2, "ellipse": math.pi, "heart": 2 * math.pi}
# The heart is the region (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0 (y up). Its area centroid is at
# (0, 0.2935) and its farthest point from there is the tip (0, -1), at 1.2935: the shape is shifted
# and scaled so that the centroid is at the origin and that point at radius 1, like the others.
HEART_CENTROID_Y = 0.2935
HEART_RADIUS = 1.2935
SHAPES_FACTORS = ("shape", "scale", "orientation", "x", "y")


def _inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether the points (u, v) of the shape's own frame (v up, the centroid at the origin, the
    farthest point of the shape at radius 1) lie inside it."""
    if shape == "square":  # side sqrt(2): corners at radius 1
        return np.maximum(np.abs(u), np.abs(v)) <= math.sqrt(0.5)
    if shape == "ellipse":  # semi-axes 1 (along u) and 0.5
        return u * u + 4.0 * v * v <= 1.0
    x, y = u * HEART_RADIUS, v * HEART_RADIUS + HEART_CENTROID_Y
    r2 = x * x + y * y - 1.0
    return r2 * r2 * r2 - x * x * y * y * y <= 0.0


def shapes_factor_values(image_size: int, scales: int, orientations: int, positions: int) -> dict[str, list]:
    """The value behind every factor index: scale (fraction of the largest size), orientation
    (radians, per shape), x and y (pixel coordinates of the shape's centroid, from the left and
    from the top edge; pixel (i, j) covers [j, j + 1) x [i, i + 1))."""
    radius = SHAPES_MAX_RADIUS * image_size
    lo, hi = radius + SHAPES_MARGIN, image_size - radius - SHAPES_MARGIN
    pos = np.linspace(lo, hi, positions) if positions > 1 else np.array([image_size / 2])
    return {
        "shape": list(SHAPES),
        "scale": (np.linspace(SHAPES_MIN_SCALE, 1.0, scales) if scales > 1 else np.array([1.0])).tolist(),
        "orientation": {s: [k * SHAPES_PERIOD[s] / orientations for k in range(orientations)] for s in SHAPES},
        "x": pos.tolist(),
        "y": pos.tolist(),
    }


def render_shapes(image_size: int, scales: int, orientations: int, positions: int) -> np.ndarray:
    """Every image of the factor grid shape x scale x orientation x x x y, in that (C) order:
    uint8 (N, image_size, image_size), white shapes on black, N = 3 * scales * orientations * positions^2.

    A pixel's value is round(255 * c / 16), c the number of its 4x4 sub-pixel centres inside the
    shape (anti-aliasing by supersampling). A shape of scale s and orientation t centred at (x, y):
    a sub-pixel centre (px, py) is inside when the shape's own frame point
    R(-t) (px - x, y - py) / (s * 0.2 * image_size) is (`_inside`; t turns the shape anticlockwise
    on the screen). Only a patch around the centre is evaluated; everything else is black."""
    values = shapes_factor_values(image_size, scales, orientations, positions)
    radius = SHAPES_MAX_RADIUS * image_size
    ss = SHAPES_SUPERSAMPLE
    patch = math.ceil(2 * radius) + 3  # pixels: holds a disc of `radius` around any centre in it
    sub = (np.arange(patch * ss) + 0.5) / ss  # sub-pixel centres across a patch, from its left edge
    pos = np.asarray(values["x"])
    origin = np.floor(pos).astype(np.int64) - patch // 2  # each position's patch origin (pixels)
    d = origin[:, None] + sub[None, :] - pos[:, None]  # (P, patch*ss): sub-pixel offsets from the centre
    pad = patch  # the canvas is padded so that patches never need clipping
    canvas = np.zeros((positions, image_size + 2 * pad, image_size + 2 * pad), dtype=np.uint8)
    n = len(SHAPES) * scales * orientations * positions * positions
    out = np.empty((n, image_size, image_size), dtype=np.uint8)
    i = 0
    for shape in SHAPES:
        for scale in values["scale"]:
            r = scale * radius
            for angle in values["orientation"][shape]:
                c, s = math.cos(angle), math.sin(angle)
                dx = d[:, None, :] / r  # (P_x, 1, patch*ss)
                for b in range(positions):  # y index: one row of positions at a time
                    dv = -d[b][None, :, None] / r  # (1, patch*ss, 1): up is -y on the screen
                    u, v = c * dx + s * dv, -s * dx + c * dv  # R(-angle) (dx, dv): (P_x, patch*ss, patch*ss)
                    hits = _inside(shape, u, v).reshape(positions, patch, ss, patch, ss).sum((2, 4))
                    pixels = ((hits * 255 + ss * ss // 2) // (ss * ss)).astype(np.uint8)  # (P_x, patch, patch)
                    canvas[:] = 0
                    oy = origin[b] + pad
                    for a in range(positions):
                        ox = origin[a] + pad
                        canvas[a, oy : oy + patch, ox : ox + patch] = pixels[a]
                    out[i : i + positions] = canvas[:, pad : pad + image_size, pad : pad + image_size]
                    i += positions
    # the loops run x innermost and y next; the grid's C order has y innermost: reorder
    shaped = out.reshape(len(SHAPES), scales, orientations, positions, positions, image_size, image_size)
    return np.ascontiguousarray(shaped.transpose(0, 1, 2, 4, 3, 5, 6)).reshape(n, image_size, image_size)


def _shapes_key(image_size: int, scales: int, orientations: int, positions: int) -> str:
    settings = {
        "renderer": SHAPES_RENDERER_VERSION,
        "image_size": image_size,
        "scales": scales,
        "orientations": orientations,
        "positions": positions,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _images_sha256(images: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()


def shapes_cache_path(image_size: int, scales: int, orientations: int, positions: int) -> Path:
    """Where the rendered grid is cached: <vaebench cache>/datasets/shapes-<S>px-<key>.npz, the key
    hashing the grid's parameters and the renderer version."""
    key = _shapes_key(image_size, scales, orientations, positions)
    return cache_dir() / "datasets" / f"shapes-{image_size}px-{key}.npz"


def _read_cached(path: Path) -> Optional[np.ndarray]:
    """The cached images, or None when the file is absent, unreadable or fails its checksum."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as f:
            images, expected = f["images"], str(f["sha256"])
    except Exception:  # truncated or foreign file: render again
        return None
    if _images_sha256(images) != expected:
        warnings.warn(f"{path}: cached shapes images fail their checksum; rendering them again", stacklevel=3)
        return None
    return images


def shapes_images(image_size: int, scales: int, orientations: int, positions: int) -> np.ndarray:
    """`render_shapes(...)`, from the cache when there, else rendered once and cached (under a file
    lock, so concurrent workers render it once; written atomically with its sha256, verified on read)."""
    from ..runtime.files import atomic_path, file_lock

    path = shapes_cache_path(image_size, scales, orientations, positions)
    if (images := _read_cached(path)) is not None:
        return images
    with file_lock(path.with_suffix(".lock")):
        if (images := _read_cached(path)) is not None:  # another process rendered it meanwhile
            return images
        t0 = time.perf_counter()
        images = render_shapes(image_size, scales, orientations, positions)
        info = {
            "image_size": image_size,
            "scales": scales,
            "orientations": orientations,
            "positions": positions,
            "renderer": SHAPES_RENDERER_VERSION,
            "images": len(images),
            "sha256": _images_sha256(images),
            "render_seconds": round(time.perf_counter() - t0, 3),
        }
        buf = io.BytesIO()
        np.savez_compressed(buf, images=images, sha256=np.array(info["sha256"]))
        with atomic_path(path) as tmp:
            tmp.write_bytes(buf.getvalue())
        with atomic_path(path.with_suffix(".json")) as tmp:  # what was rendered, for people (never read)
            tmp.write_text(json.dumps(info, indent=2) + "\n")
    return images


def load_shapes(cfg, root: Path | None = None, download: bool = True) -> Dataset:
    """dSprites-like shapes (Higgins et al. 2017) rendered by vaebench: one image for every point of
    the grid shape (square, ellipse, heart) x scale x orientation x x x y (`cfg.scales`,
    `cfg.orientations`, `cfg.positions` values), `cfg.image_size` pixels a side, 1 channel. Labels
    are the shape index; the factor indices of every image come with both splits.

    Split: a permutation of the grid with seed 0; its last round(N * test_fraction) images are the
    test split (so every split is a uniform random sample of the grid, in random order)."""
    grid = (cfg.image_size, cfg.scales, cfg.orientations, cfg.positions)
    images = shapes_images(*grid)
    sizes = (len(SHAPES), cfg.scales, cfg.orientations, cfg.positions, cfg.positions)
    factors = np.indices(sizes).reshape(len(sizes), -1).T  # (N, 5): row i is the grid point of image i
    perm = np.random.default_rng(SHAPES_SPLIT_SEED).permutation(len(images))
    n_test = int(round(len(images) * cfg.test_fraction))
    if not 0 < n_test < len(images):
        raise DataError(f"shapes: test_fraction {cfg.test_fraction} of {len(images)} images leaves an empty split")
    tr, te = perm[:-n_test], perm[-n_test:]
    x = torch.from_numpy(images).unsqueeze(1)  # (N, 1, S, S) uint8

    def split(idx: np.ndarray):
        return x[torch.from_numpy(idx)].float().div_(255.0), factors[idx, 0], factors[idx]

    x_train, y_train, f_train = split(tr)
    x_test, y_test, f_test = split(te)
    kinds = [Factor(n, k, categorical=(n == "shape")) for n, k in zip(SHAPES_FACTORS, sizes)]
    return dataset_from_arrays("shapes", x_train, y_train, x_test, y_test, f_train, f_test, tuple(kinds))


class ShapesOptions(Options):
    """The rendered grid of `shapes` (dSprites-like; see `render_shapes`)."""

    image_size: int = Field(32, ge=16, le=256, description="image side in pixels (dSprites: 64)")
    scales: int = Field(6, ge=1, description="scale values, linearly from 0.5 to 1 (dSprites: 6)")
    orientations: int = Field(
        10, ge=1, description="orientation values over each shape's symmetry period (dSprites: 40 over 2 pi)"
    )
    positions: int = Field(16, ge=1, description="position values along x and along y (dSprites: 32)")
    test_fraction: float = Field(0.25, gt=0.0, lt=1.0, description="fraction of the grid in the test split")


DATASETS.register("shapes", DatasetSource(load_shapes, ShapesOptions, "dSprites-like shapes with ground-truth factors"))
