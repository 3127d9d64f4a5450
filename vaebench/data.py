"""Dataset sources behind one registry: name -> `DatasetSource` (a loader returning in-memory
tensors, and the pydantic `Options` model of the options it reads; see family.py).

Every source returns a `Dataset`: float32 images in [0, 1] shaped (N, C, H, W), int64 labels, the
official (or a fixed, seeded) train/test split, and a checksum of exactly the tensors used. A source
with ground-truth factors of variation (`shapes`) also returns each image's factor indices. The
trainer slices these tensors by index; there is no DataLoader in the training path.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import math
import os
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from pydantic import Field

from .errors import DataError
from .family import NoOptions, Options, check_options_model
from .registry import Registry

DATA_ROOT_ENV = "VAEBENCH_DATA_ROOT"


@dataclass(frozen=True)
class Factor:
    """A ground-truth factor of variation: its values are the indices 0 .. size - 1."""

    name: str
    size: int
    categorical: bool  # True: unordered classes (e.g. shape); False: ordered values (scale, position, ...)


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: torch.Tensor  # (N, C, H, W) float32 in [0, 1]
    y_train: torch.Tensor  # (N,) int64
    x_test: torch.Tensor
    y_test: torch.Tensor
    checksum: str = ""  # sha256 (first 16 hex) of the tensors' bytes (the factor tensors too, when present)
    # Ground-truth factors of variation (datasets rendered from known factors; None / () otherwise):
    factors_train: Optional[torch.Tensor] = None  # (N, K) int64: factor k's value index of each image
    factors_test: Optional[torch.Tensor] = None
    factors: tuple[Factor, ...] = ()  # the K factors, in column order
    labeled: bool = True  # False: y_* are all 0 placeholders (class-based metrics and models do not apply)

    @property
    def has_factors(self) -> bool:
        return self.factors_test is not None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    def to(self, device: torch.device | str) -> "Dataset":
        return replace(
            self,
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_test=self.x_test.to(device),
            y_test=self.y_test.to(device),
            factors_train=None if self.factors_train is None else self.factors_train.to(device),
            factors_test=None if self.factors_test is None else self.factors_test.to(device),
        )


DATASET_COMMON_FIELDS = ("name", "binarize")  # what every dataset section has besides its source's options


@dataclass(frozen=True)
class DatasetSource:
    """A registry entry: `load(cfg, root, download) -> Dataset`, with `cfg` the run's DatasetConfig
    (its source's options as attributes, e.g. `cfg.image_size`), `root` the data root and `download`
    whether fetching missing files is allowed; and the pydantic model of those options."""

    load: Callable[..., Dataset]
    options: type[Options] = NoOptions
    doc: str = ""


def _check_source(name: str, source: DatasetSource) -> None:
    if not isinstance(source, DatasetSource) or not callable(source.load):
        raise ValueError(f"dataset {name!r}: register a vaebench.data.DatasetSource(load, options), got {source!r}")
    check_options_model(source.options, DATASET_COMMON_FIELDS, f"dataset {name!r}")


DATASETS: Registry[DatasetSource] = Registry("dataset", check=_check_source)


def _without_config(loader: Callable[[Path, bool], Dataset], doc: str = "") -> DatasetSource:
    """A source with no options of its own: `loader(root, download)`."""
    return DatasetSource(lambda cfg, root, download: loader(root, download), NoOptions, doc)


def resolve_data_root(data_root: str | Path | None = None) -> Path:
    """--data-root, else $VAEBENCH_DATA_ROOT, else ./data."""
    return Path(data_root or os.environ.get(DATA_ROOT_ENV) or "data")


def checksum(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.numpy().reshape(-1).view(np.uint8))  # the bytes, not a copy of them
    return h.hexdigest()[:16]


def _finish(name: str, x_train, y_train, x_test, y_test, factors_train=None, factors_test=None,
            factors: tuple[Factor, ...] = ()) -> Dataset:
    tensors = [torch.as_tensor(a) for a in (x_train, y_train, x_test, y_test)]
    tensors[0], tensors[2] = tensors[0].float().contiguous(), tensors[2].float().contiguous()
    tensors[1], tensors[3] = tensors[1].long(), tensors[3].long()
    if factors_train is None:  # the checksum of a dataset without factors is that of its four tensors
        return Dataset(name, *tensors, checksum=checksum(*tensors))
    f_train, f_test = (torch.as_tensor(f).long().contiguous() for f in (factors_train, factors_test))
    return Dataset(name, *tensors, checksum=checksum(*tensors, f_train, f_test),
                   factors_train=f_train, factors_test=f_test, factors=tuple(factors))


def ensure_files(title: str, folder: Path, files: Sequence[str], download: bool, fetch: Callable[[], object],
                 what: str, contains: str) -> None:
    """The check every downloadable source makes before reading: `files` (relative to `folder`; a
    name ending in "/" is a folder) must exist. When some are missing and `download` is set,
    `fetch()` (a torchvision download into the data root) is called once and the files are checked
    again. Otherwise, or when the download fails or leaves files missing, raises a DataError (exit
    code 2) naming the missing files, the folder, the reason, and what to put there or where
    --data-root / $VAEBENCH_DATA_ROOT should point (`what`, `contains`: phrases of that sentence)."""

    def absent() -> list[str]:
        return [f for f in files if not ((folder / f).is_dir() if f.endswith("/") else (folder / f).is_file())]

    missing, reason = absent(), ""
    if missing and download:
        try:
            fetch()
        except Exception as e:  # network down, read-only folder, bad mirror: say what we need
            reason = f" (download failed: {type(e).__name__}: {str(e)[:200]})"
        missing = absent()
        if missing and not reason:
            reason = " (still missing after the download)"
    elif missing:
        reason = " (download disabled)"
    if missing:
        raise DataError(
            f"{title} not found: expected {', '.join(missing)} in {folder.resolve()}{reason}. "
            f"Put {what} there, or point --data-root / ${DATA_ROOT_ENV} at the folder that contains {contains}."
        )


MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


IDX_UBYTE = 0x08  # the IDX type code of unsigned bytes, the only one MNIST-format files use


def read_idx_ubyte(path: Path) -> np.ndarray:
    """An uncompressed IDX file of unsigned bytes (MNIST's format: 2 zero bytes, the type code 0x08,
    the number of dimensions, then each dimension as a big-endian int32, then the data) as a
    read-only uint8 array of that shape. Equal to torchvision's `read_sn3_pascalvincent_tensor` on
    such files (tested), without importing torchvision (~1.6 s of start-up per process)."""
    raw = path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != IDX_UBYTE:
        raise DataError(f"{path}: not an IDX file of unsigned bytes (header {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(shape, dtype=np.int64)):
        raise DataError(f"{path}: IDX header says {shape} = {int(np.prod(shape))} bytes, the file has "
                        f"{len(raw) - offset}")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def load_idx_dataset(torchvision_class: str, name: str, title: str, root: Path, download: bool = True) -> Dataset:
    """An MNIST-format dataset in torchvision's raw layout for its class (`MNIST`, `FashionMNIST`:
    same file names, same IDX format, no checksum on reading), official split:
    root/<class name>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (uncompressed), read by
    `read_idx_ubyte`. Downloads through the torchvision class when files are missing and `download`
    is set (`ensure_files`). Pixels / 255, shaped (N, 1, 28, 28); labels the class indices."""
    raw = root / torchvision_class / "raw"  # torchvision's raw_folder

    def fetch() -> None:
        import torchvision.datasets  # only to download: importing torchvision costs ~1.6 s

        cls = getattr(torchvision.datasets, torchvision_class)
        cls(str(root), train=True, download=True)
        cls(str(root), train=False, download=True)

    ensure_files(title, raw, MNIST_FILES, download, fetch, f"torchvision's raw {title} files",
                 f"{torchvision_class}/raw/")
    x_train, y_train, x_test, y_test = (read_idx_ubyte(raw / f) for f in MNIST_FILES)
    for images, labels, split in ((x_train, y_train, "train"), (x_test, y_test, "t10k")):
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"{title} files in {raw.resolve()} cannot be read: {split} images {images.shape} "
                            f"and labels {labels.shape} do not match")
    return _finish(
        name,
        torch.from_numpy(x_train.copy()).unsqueeze(1).float() / 255.0,
        torch.from_numpy(y_train.astype(np.int64)),
        torch.from_numpy(x_test.copy()).unsqueeze(1).float() / 255.0,
        torch.from_numpy(y_test.astype(np.int64)),
    )


def load_mnist(root: Path, download: bool = True) -> Dataset:
    """MNIST, official split (60,000 train / 10,000 test), torchvision's raw layout under `root`.

    Reads root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte. Downloads through
    torchvision when they are missing and `download` is set; otherwise, or when the download fails,
    raises a DataError that names the files, the folder and the environment variable.
    """
    return load_idx_dataset("MNIST", "mnist", "MNIST", root, download)


DATASETS.register("mnist", _without_config(load_mnist, "MNIST, 60,000 / 10,000, torchvision's raw files"))

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits as (images (1797, 8, 8) float64 in 0..16, labels): read from its
    data file `sklearn/datasets/data/digits.csv.gz` as `sklearn.datasets.load_digits` reads it
    (equal arrays, tested) without importing scikit-learn (~0.9 s of start-up per process); through
    `load_digits` itself when the file is not where this scikit-learn keeps it."""
    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    path = Path(next(iter(spec.submodule_search_locations or [""]))) / "datasets" / "data" / "digits.csv.gz" \
        if spec else None
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits as sk_digits

        d = sk_digits()
        return d.images, d.target
    table = np.loadtxt(path, delimiter=",")
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(int)


def load_digits(root: Path, download: bool = True) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 images, no download); pixels 0..16 scaled to [0, 1].

    Fixed split: a permutation with seed 0, the last 20% (359 images) as the test split.
    """
    images, target = _digits_arrays()
    x = images.astype(np.float32)[:, None] / 16.0
    perm = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(x))
    n_test = int(round(len(x) * DIGITS_TEST_FRACTION))
    tr, te = perm[:-n_test], perm[-n_test:]
    return _finish("digits", x[tr], target[tr], x[te], target[te])


DATASETS.register("digits", _without_config(load_digits, "scikit-learn's bundled 8x8 digits, no download"))


def load_synthetic(root: Path, download: bool = True) -> Dataset:
    """Deterministic toy images for unit tests: 512 train / 128 test, 1x10x12 (non-square).

    Each image is one Gaussian blob; its label (0..3) is the quadrant of the blob's centre.
    """
    g = np.random.default_rng(1234)
    n, h, w = 640, 10, 12
    cy, cx = g.uniform(1, h - 2, n), g.uniform(1, w - 2, n)
    width = g.uniform(1.0, 2.5, n)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.exp(-((yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2) / (2 * width[:, None, None] ** 2))
    x = img.astype(np.float32)[:, None]
    y = (cy > h / 2).astype(np.int64) * 2 + (cx > w / 2).astype(np.int64)
    return _finish("synthetic", x[:512], y[:512], x[512:], y[512:])


DATASETS.register("synthetic", _without_config(load_synthetic, "deterministic 10x12 blobs for tests"))



# ---------------------------------------------------------------------------------------------
# shapes: dSprites-like images rendered here from a full product of known factors

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
    settings = {"renderer": SHAPES_RENDERER_VERSION, "image_size": image_size, "scales": scales,
                "orientations": orientations, "positions": positions}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _images_sha256(images: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()


def shapes_cache_path(image_size: int, scales: int, orientations: int, positions: int) -> Path:
    """Where the rendered grid is cached: <vaebench cache>/datasets/shapes-<S>px-<key>.npz, the key
    hashing the grid's parameters and the renderer version."""
    from .classifier import cache_dir  # the one cache folder ($VAEBENCH_CACHE); imported late: it imports data

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
    from .runtime import atomic_path, file_lock

    path = shapes_cache_path(image_size, scales, orientations, positions)
    if (images := _read_cached(path)) is not None:
        return images
    with file_lock(path.with_suffix(".lock")):
        if (images := _read_cached(path)) is not None:  # another process rendered it meanwhile
            return images
        t0 = time.perf_counter()
        images = render_shapes(image_size, scales, orientations, positions)
        info = {"image_size": image_size, "scales": scales, "orientations": orientations, "positions": positions,
                "renderer": SHAPES_RENDERER_VERSION, "images": len(images), "sha256": _images_sha256(images),
                "render_seconds": round(time.perf_counter() - t0, 3)}
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
    return _finish("shapes", x_train, y_train, x_test, y_test, f_train, f_test, tuple(kinds))


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


BINARIZE_TEST_SEED = 0


def load_dataset(cfg, data_root: str | Path | None = None, download: bool = True) -> Dataset:
    """Load the dataset a `DatasetConfig` names. With `binarize`, the test split is one fixed
    Bernoulli draw (seed 0) so that every run is evaluated on the same binary images; the training
    split stays grayscale and the trainer draws a fresh binarization per batch."""
    ds = DATASETS.get(cfg.name).load(cfg, resolve_data_root(data_root), download)
    if cfg.binarize:
        g = torch.Generator().manual_seed(BINARIZE_TEST_SEED)
        x_test = torch.bernoulli(ds.x_test, generator=g)
        ds = replace(_finish(ds.name, ds.x_train, ds.y_train, x_test, ds.y_test, ds.factors_train, ds.factors_test,
                             ds.factors), labeled=ds.labeled)
    return ds


from . import image_folder  # noqa: E402,F401  (registers image_folder: a user-style dataset in its own module)
from . import datasets_torchvision  # noqa: E402,F401  (registers fashion_mnist, cifar10, svhn, celeba)
