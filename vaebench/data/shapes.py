"""shapes: dSprites-like images (Higgins et al. 2017) rendered here from a full product of known
factors (shape, scale, orientation, x, y), with each image's factor indices: the dataset of the
disentanglement metrics. The rendered grid is cached on disk (`shapes_images`), keyed by its
parameters and the renderer version.

How it differs from dSprites (Matthey et al. 2017, `dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`:
737,280 binary 64x64 images, latents color (1) x shape (3) x scale (6) x orientation (40) x posX (32)
x posY (32), posY fastest):

- factors: the same five besides dSprites' constant color, in the same order (row i of the grid is
  dSprites' `latents_classes[i][1:]` for the same sizes); shapes square, ellipse (semi-axes 1 : 0.5),
  heart.
- sizes: default 3 x 6 x 10 x 16 x 16 = 46,080 images of 32x32 px; `preset: dsprites` renders
  dSprites' 3 x 6 x 40 x 32 x 32 = 737,280 at 64x64 (`SHAPES_PRESETS`).
- scale: 6 values linear in [0.5, 1] as dSprites, the fraction of a largest shape whose farthest
  point from its area centroid is 0.2 * image_size (dSprites' sprite sizes in pixels are not in its
  metadata).
- orientation: by default `orientations` angles k * P / n over each shape's symmetry period P
  (square pi/2, ellipse pi, heart 2 pi), so that no two anti-aliased images are the same picture
  (binary ones can be, at small scales); dSprites uses linspace(0, 2 pi, 40) for every shape, both
  ends included (`orientation_values: dsprites`): its angles 0 and 2 pi are the same, and a
  square's picture nearly repeats every pi/2 (713,814 of the preset's 737,280 images are distinct).
- position: centroid pixel coordinates from r + 1 to image_size - r - 1 (r = 0.2 * image_size), so
  the largest shape never touches the border; dSprites' posX / posY are 32 values in [0, 1] whose
  pixel extent is not in its metadata.
- pixels: by default anti-aliased (the fraction of 4x4 sub-pixel centres inside, in 1/255 steps);
  dSprites' are binary (`pixels: binary`: a pixel is on when its centre is inside).

The preset's cost here (docs/spec.md, "`shapes` and dSprites"): a 13 s render (binary; 229 s of CPU
anti-aliased), 3.02 GB of uint8 images, 12.08 GB as the float32 splits of a `Dataset`, 16.2 GB peak
while loading.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
import warnings
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import torch
from pydantic import Field, model_validator

from ..errors import DataError
from ..options import Options
from ..runtime.cache import cache_dir
from .base import DATASETS, Dataset, DatasetSource, Factor, dataset_from_arrays

SHAPES = ("square", "ellipse", "heart")
SHAPES_RENDERER_VERSION = 1  # bump when the rendering changes: cached arrays of another version are never read
SHAPES_MAX_RADIUS = 0.2  # a shape at scale 1 fits in a disc of radius 0.2 * image_size around its centroid
SHAPES_MIN_SCALE = 0.5  # scales run linearly from 0.5 to 1 (dSprites' range)
SHAPES_MARGIN = 1.0  # pixels between the largest shape's disc and the image border
SHAPES_SPLIT_SEED = 0
SHAPES_CONVERT_CHUNK = 65536  # images converted to float32 at a time (bounds the uint8 copy of a split)
# Symmetry period of each shape: its default orientations are k * period / n, k = 0 .. n - 1, so that
# no two anti-aliased images of the grid are the same picture (a square turned by pi/2 is the same square).
SHAPES_PERIOD = {"square": math.pi / 2, "ellipse": math.pi, "heart": 2 * math.pi}
# The heart is the region (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0 (y up). Its area centroid is at
# (0, 0.2935) and its farthest point from there is the tip (0, -1), at 1.2935: the shape is shifted
# and scaled so that the centroid is at the origin and that point at radius 1, like the others.
HEART_CENTROID_Y = 0.2935
HEART_RADIUS = 1.2935
SHAPES_FACTORS = ("shape", "scale", "orientation", "x", "y")


def _period_angles(shape: str, n: int) -> list[float]:
    """n angles k * P / n, k = 0 .. n - 1, over the shape's symmetry period P: no two turn the shape
    alike."""
    return [k * SHAPES_PERIOD[shape] / n for k in range(n)]


def _dsprites_angles(shape: str, n: int) -> list[float]:
    """dSprites' angles for every shape: linspace(0, 2 pi, n), both ends included (its metadata's
    `latents_possible_values['orientation']` for n = 40: 0, 2 pi / 39, ..., 2 pi)."""
    return np.linspace(0.0, 2 * math.pi, n).tolist() if n > 1 else [0.0]


# orientation_values -> the angles (radians, anticlockwise) of a shape's `orientations` values
SHAPES_ORIENTATIONS = {"period": _period_angles, "dsprites": _dsprites_angles}
# pixels -> sub-pixel samples per side: a pixel is the fraction of its ss x ss sub-pixel centres
# inside the shape (ss = 1: on when its own centre is inside, 0 or 255, as dSprites' binary images)
SHAPES_PIXELS = {"antialiased": 4, "binary": 1}
# preset -> the options it sets (a spec's own keys override them)
SHAPES_PRESETS = {
    "dsprites": {
        "image_size": 64,
        "scales": 6,
        "orientations": 40,
        "positions": 32,
        "orientation_values": "dsprites",
        "pixels": "binary",
    }
}
DEFAULT_STYLE = {"orientation_values": "period", "pixels": "antialiased"}


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


def shapes_factor_values(
    image_size: int, scales: int, orientations: int, positions: int, orientation_values: str = "period"
) -> dict[str, list]:
    """The value behind every factor index: scale (fraction of the largest size), orientation
    (radians, per shape: `SHAPES_ORIENTATIONS[orientation_values]`), x and y (pixel coordinates of
    the shape's centroid, from the left and from the top edge; pixel (i, j) covers [j, j + 1) x [i, i + 1))."""
    radius = SHAPES_MAX_RADIUS * image_size
    lo, hi = radius + SHAPES_MARGIN, image_size - radius - SHAPES_MARGIN
    pos = np.linspace(lo, hi, positions) if positions > 1 else np.array([image_size / 2])
    angles = SHAPES_ORIENTATIONS[orientation_values]
    return {
        "shape": list(SHAPES),
        "scale": (np.linspace(SHAPES_MIN_SCALE, 1.0, scales) if scales > 1 else np.array([1.0])).tolist(),
        "orientation": {s: angles(s, orientations) for s in SHAPES},
        "x": pos.tolist(),
        "y": pos.tolist(),
    }


def render_shapes(
    image_size: int,
    scales: int,
    orientations: int,
    positions: int,
    orientation_values: str = "period",
    pixels: str = "antialiased",
) -> np.ndarray:
    """Every image of the factor grid shape x scale x orientation x x x y, in that (C) order:
    uint8 (N, image_size, image_size), white shapes on black, N = 3 * scales * orientations * positions^2.

    A pixel's value is round(255 * c / ss^2), c the number of its ss x ss sub-pixel centres inside the
    shape (ss = `SHAPES_PIXELS[pixels]`: 4, anti-aliasing by supersampling, or 1, binary). A shape of
    scale s and orientation t centred at (x, y): a sub-pixel centre (px, py) is inside when the
    shape's own frame point R(-t) (px - x, y - py) / (s * 0.2 * image_size) is (`_inside`; t turns
    the shape anticlockwise on the screen). Only a patch around the centre is evaluated; everything
    else is black. Memory: the N * image_size^2 bytes of the result and a few MB besides."""
    values = shapes_factor_values(image_size, scales, orientations, positions, orientation_values)
    radius = SHAPES_MAX_RADIUS * image_size
    ss = SHAPES_PIXELS[pixels]
    patch = math.ceil(2 * radius) + 3  # pixels: holds a disc of `radius` around any centre in it
    sub = (np.arange(patch * ss) + 0.5) / ss  # sub-pixel centres across a patch, from its left edge
    pos = np.asarray(values["x"])
    origin = np.floor(pos).astype(np.int64) - patch // 2  # each position's patch origin (pixels)
    d = origin[:, None] + sub[None, :] - pos[:, None]  # (P, patch*ss): sub-pixel offsets from the centre
    pad = patch  # the canvas is padded so that patches never need clipping
    canvas = np.zeros((positions, image_size + 2 * pad, image_size + 2 * pad), dtype=np.uint8)
    grid = (len(SHAPES), scales, orientations, positions, positions)
    out = np.empty((*grid, image_size, image_size), dtype=np.uint8)
    for si, shape in enumerate(SHAPES):
        for ai, scale in enumerate(values["scale"]):
            r = scale * radius
            for oi, angle in enumerate(values["orientation"][shape]):
                c, s = math.cos(angle), math.sin(angle)
                dx = d[:, None, :] / r  # (P_x, 1, patch*ss)
                for b in range(positions):  # y index: one row of positions at a time
                    dv = -d[b][None, :, None] / r  # (1, patch*ss, 1): up is -y on the screen
                    u, v = c * dx + s * dv, -s * dx + c * dv  # R(-angle) (dx, dv): (P_x, patch*ss, patch*ss)
                    hits = _inside(shape, u, v).reshape(positions, patch, ss, patch, ss).sum((2, 4))
                    pix = ((hits * 255 + ss * ss // 2) // (ss * ss)).astype(np.uint8)  # (P_x, patch, patch)
                    canvas[:] = 0
                    oy = origin[b] + pad
                    for a in range(positions):
                        ox = origin[a] + pad
                        canvas[a, oy : oy + patch, ox : ox + patch] = pix[a]
                    out[si, ai, oi, :, b] = canvas[:, pad : pad + image_size, pad : pad + image_size]
    return out.reshape(-1, image_size, image_size)


def _grid_settings(image_size: int, scales: int, orientations: int, positions: int, **style: str) -> dict:
    """The grid's parameters as cached: `style` (orientation_values, pixels) only where it is not
    the default, so that the default grids keep the keys (and cache files) they always had."""
    settings = {"image_size": image_size, "scales": scales, "orientations": orientations, "positions": positions}
    unknown = set(style) - set(DEFAULT_STYLE)
    if unknown:
        raise TypeError(f"unknown shapes grid parameters: {sorted(unknown)}")
    return settings | {k: v for k, v in style.items() if v != DEFAULT_STYLE[k]}


def _shapes_key(image_size: int, scales: int, orientations: int, positions: int, **style: str) -> str:
    settings = {
        "renderer": SHAPES_RENDERER_VERSION,
        **_grid_settings(image_size, scales, orientations, positions, **style),
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _images_sha256(images: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(images).reshape(-1)).hexdigest()  # hashes the buffer, no copy


def shapes_cache_path(image_size: int, scales: int, orientations: int, positions: int, **style: str) -> Path:
    """Where the rendered grid is cached: <vaebench cache>/datasets/shapes-<S>px-<key>.npz, the key
    hashing the grid's parameters and the renderer version."""
    key = _shapes_key(image_size, scales, orientations, positions, **style)
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


def shapes_images(image_size: int, scales: int, orientations: int, positions: int, **style: str) -> np.ndarray:
    """`render_shapes(...)`, from the cache when there, else rendered once and cached (under a file
    lock, so concurrent workers render it once; written atomically with its sha256, verified on read).
    `style`: orientation_values, pixels (`render_shapes`)."""
    from ..runtime.files import atomic_path, file_lock

    path = shapes_cache_path(image_size, scales, orientations, positions, **style)
    if (images := _read_cached(path)) is not None:
        return images
    with file_lock(path.with_suffix(".lock")):
        if (images := _read_cached(path)) is not None:  # another process rendered it meanwhile
            return images
        t0 = time.perf_counter()
        images = render_shapes(image_size, scales, orientations, positions, **style)
        info = {
            **_grid_settings(image_size, scales, orientations, positions, **style),
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
    test split (so every split is a uniform random sample of the grid, in random order).

    Memory: the splits are float32 (4 bytes a pixel, like every `Dataset`) beside the uint8 grid
    while they are built: 5 * N * image_size^2 bytes at the peak (15.1 GB for `preset: dsprites`)."""
    grid = (cfg.image_size, cfg.scales, cfg.orientations, cfg.positions)
    images = shapes_images(*grid, orientation_values=cfg.orientation_values, pixels=cfg.pixels)
    sizes = (len(SHAPES), cfg.scales, cfg.orientations, cfg.positions, cfg.positions)
    factors = np.indices(sizes).reshape(len(sizes), -1).T  # (N, 5): row i is the grid point of image i
    perm = np.random.default_rng(SHAPES_SPLIT_SEED).permutation(len(images))
    n_test = int(round(len(images) * cfg.test_fraction))
    if not 0 < n_test < len(images):
        raise DataError(f"shapes: test_fraction {cfg.test_fraction} of {len(images)} images leaves an empty split")
    tr, te = perm[:-n_test], perm[-n_test:]
    x = torch.from_numpy(images).unsqueeze(1)  # (N, 1, S, S) uint8

    def split(idx: np.ndarray):
        out = torch.empty((len(idx), *x.shape[1:]), dtype=torch.float32)
        for a in range(0, len(idx), SHAPES_CONVERT_CHUNK):  # a chunk at a time: no uint8 copy of the split
            out[a : a + SHAPES_CONVERT_CHUNK] = (
                x[torch.from_numpy(idx[a : a + SHAPES_CONVERT_CHUNK])].float().div_(255.0)
            )
        return out, factors[idx, 0], factors[idx]

    x_train, y_train, f_train = split(tr)
    x_test, y_test, f_test = split(te)
    kinds = [Factor(n, k, categorical=(n == "shape")) for n, k in zip(SHAPES_FACTORS, sizes)]
    return dataset_from_arrays("shapes", x_train, y_train, x_test, y_test, f_train, f_test, tuple(kinds))


class ShapesOptions(Options):
    """The rendered grid of `shapes` (dSprites-like; see `render_shapes`). `preset` fills the options
    it names (`SHAPES_PRESETS`) that the spec does not give, and is then cleared: the run records the
    options themselves, so a spec with the preset and one that writes them out are the same runs."""

    preset: Optional[Literal[tuple(SHAPES_PRESETS)]] = Field(  # type: ignore[valid-type]
        None,
        description="dsprites: dSprites' grid (image_size 64, scales 6, orientations 40, positions 32, "
        "orientation_values dsprites, pixels binary: 737,280 images); keys given beside it override it",
    )
    image_size: int = Field(32, ge=16, le=256, description="image side in pixels (dSprites: 64)")
    scales: int = Field(6, ge=1, description="scale values, linearly from 0.5 to 1 (dSprites: 6)")
    orientations: int = Field(10, ge=1, description="orientation values per shape (dSprites: 40)")
    orientation_values: Literal[tuple(SHAPES_ORIENTATIONS)] = Field(  # type: ignore[valid-type]
        "period",
        description="period: k * P / n over each shape's symmetry period P (square pi/2, ellipse pi, heart 2 pi), "
        "no repeated angle; dsprites: linspace(0, 2 pi, n) for every shape, both ends included",
    )
    positions: int = Field(16, ge=1, description="position values along x and along y (dSprites: 32)")
    pixels: Literal[tuple(SHAPES_PIXELS)] = Field(  # type: ignore[valid-type]
        "antialiased",
        description="antialiased: the fraction of 4x4 sub-pixel centres inside, in 1/255 steps; binary: 0 or 1, "
        "on when the pixel's centre is inside (dSprites)",
    )
    test_fraction: float = Field(0.25, gt=0.0, lt=1.0, description="fraction of the grid in the test split")

    @model_validator(mode="before")
    @classmethod
    def _expand_preset(cls, data):
        if isinstance(data, dict) and data.get("preset") in SHAPES_PRESETS:  # another value: the field refuses it
            data = {**SHAPES_PRESETS[data["preset"]], **data, "preset": None}
        return data


DATASETS.register("shapes", DatasetSource(load_shapes, ShapesOptions, "dSprites-like shapes with ground-truth factors"))
