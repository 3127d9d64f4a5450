"""`image_folder`: a dataset read from a folder of PNG / JPEG images, registered like any user dataset.

    dataset: {name: image_folder, path: ./my_images, image_size: 64, channels: 1, test_fraction: 0.2}

Options (see `ImageFolderOptions`):

- `path` (required): the folder. A relative path is resolved against the current folder of the
  process that loads the data (not the data root, not the spec's folder); `~` is expanded.
- `image_size` (default 64, >= 4): the side, in pixels, of every (square) image.
- `channels` (1 or 3, default 3): each image is converted with Pillow to "L" (1) or "RGB" (3),
  whatever its own mode (palette, gray, RGBA, CMYK...; alpha is dropped). 16-bit gray PNGs are
  scaled to 8 bits first (Pillow's own conversion would clip them).
- `test_fraction` (in (0, 1), default 0.2) and `split_seed` (default 0): the split (below).
- `labels` ("auto", "folders" or "none"; default "auto"): where labels come from (below).

Layout, torchvision's `ImageFolder` convention (its `find_classes` / `make_dataset` do the walking):

    path/cat/001.png, path/cat/more/002.jpg, path/dog/003.JPEG  -> labeled: cat = 0, dog = 1
    path/001.png, path/002.jpg                                  -> unlabeled (every label 0)

Files ending in .png, .jpg or .jpeg (any case) are images; other files are ignored, and so are
hidden files and folders (names starting with "."; e.g. `.ipynb_checkpoints`, macOS `._x.jpg`).
Every other sub-folder of `path` is a class; classes are numbered in sorted folder-name order and a class
folder's images are found at any depth. `labels: auto` uses the class folders when every image is in
one, and loads the images unlabeled (`Dataset.labeled` False, with a warning when class folders
exist) when some sit directly in `path`; `folders` requires class folders and refuses images
outside them; `none` loads every image, at any depth, unlabeled. A class folder without images is
an error (as in `ImageFolder`).

Each image: Pillow-decoded (EXIF orientation applied), converted to "L" / "RGB", resized so that its
shorter side is `image_size` (bilinear, antialiased) and center-cropped to `image_size` x
`image_size`: exactly torchvision's `Resize(image_size)`, `CenterCrop(image_size)`, `ToTensor()` on
the converted image. So images of mixed sizes and aspect ratios are fine. Pixels are float32 in
[0, 1] (value / 255), shaped (N, channels, image_size, image_size).

Split: the images sorted by their path under `path`, permuted with `split_seed`; the last
round(N * test_fraction) of the permutation are the test split. Problems (no such folder, no images,
an unreadable image, images outside class folders, an empty split) are `DataError`s naming the
folder or file.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from ..errors import DataError
from ..options import Options
from .base import DATASETS, Dataset, DatasetSource, dataset_from_arrays

NAME = "image_folder"
EXTENSIONS = (".png", ".jpg", ".jpeg")  # the PNG / JPEG part of torchvision's IMG_EXTENSIONS, lower case
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # what Pillow makes of a 16-bit gray PNG


class ImageFolderOptions(Options):
    """A folder of PNG / JPEG images (torchvision's ImageFolder layout; see this module's docstring)."""

    path: str = Field(
        description="the image folder; a relative path is resolved against the current folder (not the data root)"
    )
    image_size: int = Field(64, ge=4, description="side in pixels: shorter side resized to it, then center-cropped")
    channels: Literal[1, 3] = Field(3, description="1: converted to gray ('L'); 3: converted to 'RGB'")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="fraction of the images in the test split")
    split_seed: int = Field(0, description="seed of the permutation that splits the images")
    labels: Literal["auto", "folders", "none"] = Field(
        "auto",
        description="auto: class sub-folders give labels when every image is in one, else unlabeled; "
        "folders: class sub-folders required; none: unlabeled, sub-folders ignored",
    )


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def _list_images(folder: Path, labels: str) -> tuple[list[Path], list[int], bool]:
    """The images under `folder` sorted by relative path, their labels, and whether they are labeled."""
    from torchvision.datasets.folder import find_classes, has_file_allowed_extension, make_dataset

    def is_image(p: str) -> bool:
        return has_file_allowed_extension(p, EXTENSIONS) and not _hidden(Path(p).relative_to(folder))

    try:
        classes = [c for c in find_classes(folder)[0] if not c.startswith(".")]
    except FileNotFoundError:  # torchvision: no sub-folder at all
        classes = []
    top = sorted(Path(e.path) for e in os.scandir(folder) if e.is_file() and is_image(e.path))
    nested = (
        make_dataset(folder, {c: i for i, c in enumerate(classes)}, is_valid_file=is_image, allow_empty=True)
        if classes
        else []
    )
    if labels == "folders" and not classes:
        raise DataError(
            f"{NAME}: labels 'folders' needs class sub-folders in {folder}, found none "
            "(set labels: auto or none for a flat folder)"
        )
    if labels == "folders" and top:
        shown = ", ".join(p.name for p in top[:5]) + (f" (and {len(top) - 5} more)" if len(top) > 5 else "")
        raise DataError(
            f"{NAME}: labels 'folders': {len(top)} image(s) sit directly in {folder}, outside the class "
            f"folders: {shown}. Move them into a class folder, or set labels: auto or none"
        )
    labeled = labels == "folders" or (labels == "auto" and bool(nested) and not top)
    if labels == "auto" and top and nested:
        warnings.warn(
            f"{NAME}: {len(top)} image(s) sit directly in {folder}, outside its class folders: "
            "loading every image unlabeled (set labels: folders to require class folders)",
            stacklevel=3,
        )
    if labeled:
        empty = sorted(set(classes) - {classes[i] for _, i in nested})
        if empty:
            raise DataError(
                f"{NAME}: class folder(s) without {'/'.join(EXTENSIONS)} images in {folder}: "
                f"{', '.join(empty)}. Remove them (every sub-folder is a class), or set labels: none"
            )
        items = [(Path(p), i) for p, i in nested]
    else:
        items = [(p, 0) for p in top] + [(Path(p), 0) for p, _ in nested]
    if not items:
        raise DataError(
            f"{NAME}: no images in {folder} (looked for files ending in {', '.join(EXTENSIONS)}, "
            "any case, in the folder and its sub-folders)"
        )
    items.sort(key=lambda item: item[0].relative_to(folder).parts)
    return [p for p, _ in items], [i for _, i in items], labeled


def _decode(file: Path, channels: int, size: int) -> np.ndarray:
    """One image as uint8 (channels, size, size): converted, resized (shorter side) and center-cropped."""
    import torchvision.transforms.functional as TF
    from PIL import Image, ImageOps

    try:
        with Image.open(file) as img:
            img.load()
            ImageOps.exif_transpose(img, in_place=True)  # as viewers show it (phone photos)
            if img.mode in _SIXTEEN_BIT_MODES:  # 16-bit gray: to 8 bits by scaling (convert("L") would clip)
                a = np.asarray(img, dtype=np.float64)
                img = Image.fromarray(np.clip(np.rint(a / 257.0), 0, 255).astype(np.uint8), "L")
            img = img.convert("L" if channels == 1 else "RGB")
    except Exception as e:  # not an image, truncated, unsupported: name the file and the cause
        raise DataError(f"{NAME}: cannot read image {file}: {type(e).__name__}: {e}") from None
    img = TF.center_crop(TF.resize(img, size, antialias=True), [size, size])
    a = np.asarray(img, dtype=np.uint8)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def load_image_folder(cfg, root: Path | None = None, download: bool = True) -> Dataset:
    """The images of `cfg.path` (see the module docstring); `root` and `download` are not used."""
    import torch

    folder = Path(cfg.path).expanduser().resolve()
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise DataError(
            f"{NAME}: image folder {folder} {what} (dataset.path {cfg.path!r}; a relative path is "
            f"resolved against the current folder, {Path.cwd()})"
        )
    files, targets, labeled = _list_images(folder, cfg.labels)
    n = len(files)
    n_test = int(round(n * cfg.test_fraction))
    if not 0 < n_test < n:
        raise DataError(
            f"{NAME}: test_fraction {cfg.test_fraction} of the {n} image(s) in {folder} leaves an empty split"
        )
    images = np.empty((n, cfg.channels, cfg.image_size, cfg.image_size), dtype=np.uint8)
    for k, file in enumerate(files):
        images[k] = _decode(file, cfg.channels, cfg.image_size)
    perm = torch.from_numpy(np.random.default_rng(cfg.split_seed).permutation(n))
    tr, te = perm[:-n_test], perm[-n_test:]
    x = torch.from_numpy(images)
    y = torch.tensor(targets, dtype=torch.int64)
    ds = dataset_from_arrays(NAME, x[tr].float().div_(255.0), y[tr], x[te].float().div_(255.0), y[te])
    return replace(ds, labeled=labeled)


DATASETS.register(
    NAME,
    DatasetSource(
        load_image_folder, ImageFolderOptions, "PNG / JPEG images from a folder (class sub-folders give labels)"
    ),
)
