"""The `image_folder` dataset: images generated here with Pillow, checked against torchvision."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vaebench.data import DATASETS, load_dataset
from vaebench.data.image_folder import ImageFolderOptions
from vaebench.errors import DataError, SpecError
from vaebench.spec.sweep_spec import parse_spec

# class folder -> (number of images, gray level of its images): created in unsorted order on purpose
CLASSES = {"b_circle": (3, 120), "a_square": (4, 40), "c_noise": (5, 220)}
SIZES = [(20, 30), (40, 16), (64, 64), (9, 7), (33, 50)]  # (width, height): mixed sizes and aspect ratios


def _cfg(path, **options):
    return parse_spec({"study": "t", "dataset": {"name": "image_folder", "path": str(path), **options}}).dataset


def _gray_classes(root: Path) -> Path:
    """Class folders of gray PNGs; every image is one flat gray level, that of its class plus k."""
    for cls, (n, level) in CLASSES.items():
        (root / cls).mkdir(parents=True)
        for k in range(n):
            w, h = SIZES[k % len(SIZES)]
            Image.new("L", (w, h), level + k).save(root / cls / f"img{k}.png")
    return root


def _rgb_jpegs(root: Path, n: int = 10) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(n):
        w, h = SIZES[k % len(SIZES)]
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        a[..., 0] = 255  # red channel saturated: the channels differ
        Image.fromarray(a, "RGB").save(root / f"photo{k:02d}.jpg", quality=95)
    return root


def _reference(file: Path, mode: str, size: int) -> torch.Tensor:
    """torchvision's usual ImageFolder pipeline, applied to one image directly."""
    from torchvision import transforms

    t = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size), transforms.ToTensor()])
    with Image.open(file) as img:
        return t(img.convert(mode))


def _all(ds):
    return torch.cat([ds.x_train, ds.x_test]), torch.cat([ds.y_train, ds.y_test])


def test_labeled_gray_class_folders(tmp_path):
    ds = load_dataset(_cfg(_gray_classes(tmp_path / "imgs"), image_size=16, channels=1, test_fraction=0.25))
    assert ds.name == "image_folder" and ds.labeled is True
    assert ds.x_train.shape == (9, 1, 16, 16) and ds.x_test.shape == (3, 1, 16, 16)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    x, y = _all(ds)
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert ds.num_classes == 3
    # classes numbered in sorted folder-name order: a_square = 0, b_circle = 1, c_noise = 2
    assert np.bincount(y.numpy()).tolist() == [4, 3, 5]
    levels = (x.flatten(1) * 255).round()
    assert torch.equal(levels.min(1).values, levels.max(1).values)  # flat images stay flat
    sorted_levels = [CLASSES[c][1] for c in sorted(CLASSES)]
    for level, label in zip(levels[:, 0].tolist(), y.tolist()):
        assert sorted_levels[label] <= level < sorted_levels[label] + CLASSES[sorted(CLASSES)[label]][0]


def test_unlabeled_rgb_jpegs(tmp_path):
    ds = load_dataset(_cfg(_rgb_jpegs(tmp_path / "flat"), image_size=8))
    assert ds.labeled is False
    assert ds.x_train.shape == (8, 3, 8, 8) and ds.x_test.shape == (2, 3, 8, 8)
    x, y = _all(ds)
    assert torch.equal(y, torch.zeros(10, dtype=torch.int64))
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert x[:, 0].mean() > 0.85 and x[:, 1].mean() < 0.7  # red saturated (JPEG's chroma blurs it), green not


def test_unlabeled_stays_unlabeled_when_binarized(tmp_path):
    ds = load_dataset(_cfg(_rgb_jpegs(tmp_path / "flat"), image_size=8, binarize=True))
    assert ds.labeled is False and set(ds.x_test.unique().tolist()) == {0.0, 1.0}


@pytest.mark.parametrize("channels,mode", [(3, "RGB"), (1, "L")])
def test_resize_and_crop_equal_torchvision(tmp_path, channels, mode):
    folder = tmp_path / "two"
    folder.mkdir()
    rng = np.random.default_rng(1)
    files = [folder / "wide.png", folder / "tall.jpg"]
    Image.fromarray(rng.integers(0, 256, (23, 57, 3), dtype=np.uint8)).save(files[0])  # 57x23: shrunk to 40x16
    Image.fromarray(rng.integers(0, 256, (90, 11, 3), dtype=np.uint8)).save(files[1])  # 11x90: enlarged to 16x131
    ds = load_dataset(_cfg(folder, image_size=16, channels=channels, test_fraction=0.5))
    x, _ = _all(ds)
    refs = [_reference(f, mode, 16) for f in files]
    assert refs[0].shape == (channels, 16, 16)
    assert not torch.equal(refs[0], refs[1])
    assert any(torch.equal(x[0], r) for r in refs) and any(torch.equal(x[1], r) for r in refs)
    assert not torch.equal(x[0], x[1])


def test_center_crop_keeps_the_middle(tmp_path):
    """Independent of torchvision: a 3:1 image of red | green | blue thirds keeps only the green."""
    folder = tmp_path / "bands"
    folder.mkdir()
    a = np.zeros((20, 60, 3), dtype=np.uint8)
    a[:, :20, 0], a[:, 20:40, 1], a[:, 40:, 2] = 255, 255, 255
    for k in range(2):
        Image.fromarray(a).save(folder / f"b{k}.png")
    x, _ = _all(load_dataset(_cfg(folder, image_size=10, test_fraction=0.5)))
    assert x.shape == (2, 3, 10, 10)
    inner = x[:, :, :, 1:-1]  # the outer columns blend a little with the bands beside (antialiasing)
    assert inner[:, 1].min() == 1 and inner[:, 0].max() == 0 and inner[:, 2].max() == 0
    assert x[:, 1].min() > 0.8 and x[:, 0].max() < 0.2 and x[:, 2].max() < 0.2  # squashed, they would be 1


def test_split_is_deterministic_and_seeded(tmp_path):
    folder = _gray_classes(tmp_path / "imgs")
    a = load_dataset(_cfg(folder, image_size=8, channels=1))
    b = load_dataset(_cfg(folder, image_size=8, channels=1))
    c = load_dataset(_cfg(folder, image_size=8, channels=1, split_seed=1))
    assert a.checksum == b.checksum and torch.equal(a.x_test, b.x_test) and torch.equal(a.y_train, b.y_train)
    assert len(a.x_train) == 10 and len(a.x_test) == 2  # round(12 * 0.2) = 2
    assert c.checksum != a.checksum and not torch.equal(c.x_test, a.x_test)

    def rows(ds):  # the same images, whatever the split
        x, y = _all(ds)
        return sorted(zip((x.flatten(1)[:, 0] * 255).round().tolist(), y.tolist()))

    assert rows(a) == rows(c)


def test_checksum_covers_the_pixels(tmp_path):
    folder = _rgb_jpegs(tmp_path / "flat", n=4)
    a = load_dataset(_cfg(folder, image_size=8, test_fraction=0.5))
    Image.new("RGB", (9, 7), (1, 2, 3)).save(folder / "photo00.jpg")  # same files, one image changed
    b = load_dataset(_cfg(folder, image_size=8, test_fraction=0.5))
    assert a.checksum != b.checksum


def test_extensions_case_hidden_and_other_files(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ["a.PNG", "b.JPEG", "c.Jpg", "d.png"]:
        Image.new("RGB", (8, 8), (10, 20, 30)).save(folder / name, format="PNG" if "p" in name.lower()[-3:] else "JPEG")
    Image.new("RGB", (8, 8)).save(folder / "e.bmp")  # torchvision reads .bmp; image_folder does not
    Image.new("RGB", (8, 8)).save(folder / "f.gif")
    (folder / "notes.txt").write_text("not an image")
    (folder / "._d.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS metadata: hidden, ignored
    (folder / ".ipynb_checkpoints").mkdir()
    Image.new("RGB", (8, 8)).save(folder / ".ipynb_checkpoints" / "x.png")
    ds = load_dataset(_cfg(folder, image_size=4, test_fraction=0.25))
    assert len(ds.x_train) + len(ds.x_test) == 4 and ds.labeled is False


def test_mixed_modes_are_converted(tmp_path):
    folder = tmp_path / "modes"
    folder.mkdir()
    Image.new("P", (10, 12), 3).save(folder / "palette.png")
    Image.new("RGBA", (10, 12), (255, 0, 0, 0)).save(folder / "rgba.png")
    Image.new("LA", (12, 10), (128, 255)).save(folder / "la.png")
    Image.new("1", (12, 10), 1).save(folder / "bits.png")
    Image.new("CMYK", (12, 10), (0, 0, 0, 0)).save(folder / "cmyk.jpg")
    Image.fromarray(np.full((10, 10), 32768, dtype=np.uint16)).save(folder / "sixteen.png")  # 16-bit gray
    assert Image.open(folder / "sixteen.png").mode.startswith("I")
    for channels in (1, 3):
        ds = load_dataset(_cfg(folder, image_size=6, channels=channels, test_fraction=0.5))
        x, _ = _all(ds)
        assert x.shape == (6, channels, 6, 6) and 0 <= x.min() and x.max() <= 1
    ds = load_dataset(_cfg(folder, image_size=6, channels=1, labels="none", test_fraction=1 / 6))
    # the 16-bit image is scaled (half gray), not clipped to white: find it among the flat images
    means = sorted(round(v, 3) for v in _all(ds)[0].flatten(1).mean(1).tolist())
    assert round(128 / 255, 3) in means and means.count(1.0) == 2  # bits.png and cmyk.jpg (white) only


def test_exif_orientation_is_applied(tmp_path):
    folder = tmp_path / "exif"
    folder.mkdir()
    a = np.zeros((20, 40), dtype=np.uint8)
    a[:, 20:] = 255  # left half black, right half white (as stored)
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise: top half black, bottom white
    for k in range(2):
        Image.fromarray(a).save(folder / f"r{k}.png", exif=exif)
    x, _ = _all(load_dataset(_cfg(folder, image_size=20, channels=1, test_fraction=0.5)))
    assert x[0, 0, :8].max() == 0 and x[0, 0, 12:].min() == 1  # rows: black above, white below


def test_labels_none_ignores_class_folders(tmp_path):
    ds = load_dataset(_cfg(_gray_classes(tmp_path / "imgs"), image_size=8, channels=1, labels="none"))
    assert ds.labeled is False and len(ds.x_train) + len(ds.x_test) == 12
    assert _all(ds)[1].abs().sum() == 0


def test_labels_auto_with_images_outside_classes_is_unlabeled(tmp_path):
    folder = _gray_classes(tmp_path / "imgs")
    Image.new("L", (8, 8), 7).save(folder / "stray.png")
    with pytest.warns(UserWarning, match="outside its class folders"):
        ds = load_dataset(_cfg(folder, image_size=8, channels=1))
    assert ds.labeled is False and len(ds.x_train) + len(ds.x_test) == 13


def test_labels_folders_refuses_images_outside_classes(tmp_path):
    folder = _gray_classes(tmp_path / "imgs")
    Image.new("L", (8, 8), 7).save(folder / "stray.png")
    with pytest.raises(DataError, match="stray.png") as info:
        load_dataset(_cfg(folder, labels="folders"))
    assert str(folder.resolve()) in str(info.value)


def test_labels_folders_needs_class_folders(tmp_path):
    folder = _rgb_jpegs(tmp_path / "flat")
    with pytest.raises(DataError, match="class sub-folders") as info:
        load_dataset(_cfg(folder, labels="folders"))
    assert str(folder.resolve()) in str(info.value)


def test_empty_class_folder_is_an_error(tmp_path):
    folder = _gray_classes(tmp_path / "imgs")
    (folder / "d_empty").mkdir()
    (folder / "d_empty" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match="d_empty"):
        load_dataset(_cfg(folder))


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(DataError, match="does not exist") as info:
        load_dataset(_cfg(tmp_path / "nowhere"))
    assert str(tmp_path / "nowhere") in str(info.value)
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(DataError, match="is not a folder"):
        load_dataset(_cfg(tmp_path / "file.png"))


def test_folder_without_images_is_an_error(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="no images in") as info:
        load_dataset(_cfg(folder))
    assert str(folder.resolve()) in str(info.value)


@pytest.mark.parametrize("content,cause", [(b"not a png at all", "UnidentifiedImageError"), (None, "truncated")])
def test_unreadable_image_names_the_file_and_cause(tmp_path, content, cause):
    folder = _rgb_jpegs(tmp_path / "flat", n=3)
    bad = folder / "broken.jpg"
    if content is None:  # a JPEG cut in half
        content = (folder / "photo00.jpg").read_bytes()
        content = content[: len(content) // 2]
    bad.write_bytes(content)
    with pytest.raises(DataError, match="cannot read image") as info:
        load_dataset(_cfg(folder))
    assert str(bad.resolve()) in str(info.value) and cause in str(info.value)


def test_empty_split_is_an_error(tmp_path):
    folder = _rgb_jpegs(tmp_path / "flat", n=2)
    with pytest.raises(DataError, match="empty split") as info:
        load_dataset(_cfg(folder, test_fraction=0.1))
    assert str(folder.resolve()) in str(info.value)


def test_relative_path_is_resolved_against_the_current_folder(tmp_path, monkeypatch):
    _rgb_jpegs(tmp_path / "here" / "imgs", n=4)
    monkeypatch.chdir(tmp_path / "here")
    ds = load_dataset(_cfg("imgs", image_size=4, test_fraction=0.5), data_root=tmp_path / "elsewhere")
    assert len(ds.x_train) == 2
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=str(tmp_path / "imgs")):
        load_dataset(_cfg("imgs"))


def test_spec_accepts_image_folder_and_refuses_typos(tmp_path):
    spec = parse_spec(
        {
            "study": "t",
            "dataset": {
                "name": "image_folder",
                "path": "./my_images",
                "image_size": 32,
                "channels": 1,
                "test_fraction": 0.3,
            },
        }
    )
    d = spec.dataset
    assert (d.path, d.image_size, d.channels, d.test_fraction, d.split_seed, d.labels) == (
        "./my_images",
        32,
        1,
        0.3,
        0,
        "auto",
    )
    with pytest.raises(SpecError) as info:
        parse_spec({"study": "t", "dataset": {"name": "image_folder", "path": "x", "imgae_size": 32}})
    msg = str(info.value)
    assert "dataset.imgae_size" in msg and "Did you mean 'image_size'?" in msg
    with pytest.raises(SpecError, match="dataset.path"):  # path is required
        parse_spec({"study": "t", "dataset": {"name": "image_folder"}})
    for bad in ({"channels": 2}, {"image_size": 3}, {"test_fraction": 1.0}, {"labels": "classes"}):
        with pytest.raises(SpecError, match=f"dataset.{next(iter(bad))}"):
            parse_spec({"study": "t", "dataset": {"name": "image_folder", "path": "x", **bad}})


def test_registered_with_documented_options():
    source = DATASETS.get("image_folder")
    assert source.options is ImageFolderOptions and source.doc
    assert set(ImageFolderOptions.model_fields) == {
        "path",
        "image_size",
        "channels",
        "test_fraction",
        "split_seed",
        "labels",
    }
    assert all(f.description for f in ImageFolderOptions.model_fields.values())


def test_trains_an_mlp_end_to_end(tmp_path):
    from vaebench.engine.train import train

    folder = _gray_classes(tmp_path / "imgs")
    spec = parse_spec(
        {
            "study": "t",
            "dataset": {
                "name": "image_folder",
                "path": str(folder),
                "image_size": 8,
                "channels": 1,
                "test_fraction": 0.25,
            },
            "model": {"name": "mlp", "hidden_dim": 16, "latent_dim": 2},
            "train": {"epochs": 1, "batch_size": 4},
        }
    )
    cfg = spec.base()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning from a well-formed labeled folder
        data = load_dataset(cfg.dataset)
    result = train(cfg, data, seed=0)
    assert result.status == "ok" and len(result.history) == 1
    assert np.isfinite(result.history[0]["test_loss"])
    assert result.model.sample(3, torch.device("cpu")).shape == (3, 1, 8, 8)
