"""fashion_mnist, cifar10, svhn and celeba (vaebench/data/torchvision_sets.py) on small fakes written
here in each dataset's exact on-disk format, and RGB end to end: models at 32 and 64 px, per-channel
likelihoods, the FID classifier on RGB, training, the shipped sweeps and colour report figures.

The references are the arrays written (pixels and labels must come back exactly), and torchvision's
own dataset classes reading the same files (their md5 check of the official files patched out)."""

from __future__ import annotations

import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import vaebench
from vaebench.data import DATASETS, load_dataset
from vaebench.errors import DataError
from vaebench.spec.sweep_spec import parse_spec

REPO = Path(__file__).resolve().parents[2]
N_TRAIN, N_TEST = 40, 16
CELEBA_W, CELEBA_H = 178, 218  # the aligned images' size (width x height)
# CelebA fake: the official partition numbers in file order (0 train, 1 valid, 2 test), interleaved
CELEBA_PARTS = [0, 0, 2, 1, 0, 0, 0, 2, 0, 1, 0, 0, 2, 0, 0, 1, 0, 2, 0, 0, 0, 2, 0, 0, 2, 0, 1, 0]


def _cfg(name, **options):
    return parse_spec({"study": "t", "dataset": {"name": name, **options}}).dataset


def _images(rng, n, c, h, w):
    """uint8 images with the full value range and channels that differ (red brighter, blue darker)."""
    a = rng.integers(0, 256, (n, c, h, w), dtype=np.uint8)
    a[:, :, 0, 0], a[:, :, 0, 1] = 0, 255
    if c == 3:
        a[:, 0] = np.maximum(a[:, 0], 128)
        a[:, 2] = np.minimum(a[:, 2], 100)
    return a


# --- Fashion-MNIST: uncompressed IDX files -------------------------------------------------------


def _write_idx(path: Path, a: np.ndarray) -> None:
    """The IDX format: magic 0x00 0x00 0x08 (unsigned byte) <number of dimensions>, each dimension
    as a big-endian uint32, then the bytes in row-major order."""
    path.write_bytes(
        struct.pack(">BBBB", 0, 0, 0x08, a.ndim)
        + struct.pack(f">{a.ndim}I", *a.shape)
        + np.ascontiguousarray(a, dtype=np.uint8).tobytes()
    )


def write_fashion_mnist(root: Path, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    out = {}
    for prefix, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        x, y = _images(rng, n, 1, 28, 28)[:, 0], rng.integers(0, 10, n).astype(np.uint8)
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", x)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", y)
        out[prefix] = (x[:, None], y)
    return out


# --- CIFAR-10: Python 2 pickles of dicts -----------------------------------------------------------


class _Py2Pickler(pickle._Pickler):
    """Pickles as Python 2's cPickle wrote the CIFAR-10 batches: protocol 2, every string (keys,
    the array's raw bytes, dtype codes) a Python 2 str (SHORT_BINSTRING / BINSTRING), NumPy's
    reconstruct function under its NumPy 1 name. Loaded with encoding="latin1" (torchvision) the
    strings are str; with encoding="bytes", bytes (the CIFAR page's b"data")."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _py2_str(self, obj):
        b = obj.encode("latin1") if isinstance(obj, str) else bytes(obj)
        self.write(
            pickle.SHORT_BINSTRING + bytes([len(b)]) + b
            if len(b) < 256
            else pickle.BINSTRING + struct.pack("<i", len(b)) + b
        )
        self.memoize(obj)

    dispatch[str] = _py2_str
    dispatch[bytes] = _py2_str

    def save_global(self, obj, name=None):
        if getattr(obj, "__name__", "") == "_reconstruct":
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
        else:
            super().save_global(obj, name)

    dispatch[type(np.zeros(1).__reduce__()[0])] = save_global


def _py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def _cifar_rows(x: np.ndarray) -> np.ndarray:
    """(N, 3, 32, 32) -> (N, 3072), spelled out as the format says: the 1024 red values of the
    image row by row, then the 1024 green, then the 1024 blue."""
    return np.concatenate([x[:, c].reshape(len(x), 1024) for c in range(3)], axis=1)


def write_cifar10(root: Path, seed: int = 0, keys_as_bytes: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    key = (lambda k: k.encode()) if keys_as_bytes else (lambda k: k)
    dump = (lambda o: pickle.dumps(o, protocol=2)) if keys_as_bytes else _py2_pickle
    names = [("data_batch_%d" % i, N_TRAIN // 5, "training batch %d of 5" % i) for i in range(1, 6)]
    out = {"train": [], "test": []}
    for fname, n, label in names + [("test_batch", N_TEST, "testing batch 1 of 1")]:
        x, y = _images(rng, n, 3, 32, 32), rng.integers(0, 10, n)
        batch = {
            key("batch_label"): label,
            key("labels"): [int(v) for v in y],
            key("data"): _cifar_rows(x),
            key("filenames"): [f"img_{fname}_{i}.png" for i in range(n)],
        }
        (folder / fname).write_bytes(dump(batch))
        out["test" if fname == "test_batch" else "train"].append((x, y))
    meta = {
        key("num_cases_per_batch"): 10000,
        key("num_vis"): 3072,
        key("label_names"): ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
    }
    (folder / "batches.meta").write_bytes(dump(meta))
    return {k: (np.concatenate([x for x, _ in v]), np.concatenate([y for _, y in v])) for k, v in out.items()}


# --- SVHN: MATLAB files X (32, 32, 3, N) uint8, y (N, 1) with 10 for the digit 0 ---------------------


def write_svhn(root: Path, seed: int = 0) -> dict:
    import scipy.io

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        x, digits = _images(rng, n, 3, 32, 32), np.arange(n) % 10  # every digit, 0 included
        X = np.ascontiguousarray(x.transpose(2, 3, 1, 0))  # X[h, w, c, n] = x[n, c, h, w]
        y = np.where(digits == 0, 10, digits).astype(np.uint8)[:, None]
        scipy.io.savemat(str(root / f"{split}_32x32.mat"), {"X": X, "y": y})
        out[split] = (x, digits)
    return out


# --- CelebA: 178x218 JPEGs and the official partition list ------------------------------------------


def write_celeba(root: Path, seed: int = 0, annotations: bool = False) -> list[Path]:
    """JPEGs (smooth colour fields, a different hue per image) and list_eval_partition.txt; with
    `annotations`, also the four other .txt files torchvision's CelebA class reads."""
    rng = np.random.default_rng(seed)
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    yy, xx = np.mgrid[0:CELEBA_H, 0:CELEBA_W]
    files = []
    for i, part in enumerate(CELEBA_PARTS):
        phase = rng.uniform(0, 2 * np.pi, 3)
        a = np.stack([127 + 120 * np.sin(xx / (9 + 4 * c) + yy / (13 + 3 * c) + phase[c]) for c in range(3)], -1)
        name = f"{i + 1:06d}.jpg"
        Image.fromarray(a.astype(np.uint8), "RGB").save(folder / "img_align_celeba" / name, quality=95)
        files.append(folder / "img_align_celeba" / name)
    lines = [f"{f.name} {p}" for f, p in zip(files, CELEBA_PARTS)]
    (folder / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    if annotations:
        n, names = len(files), [f.name for f in files]
        attrs = ["5_o_Clock_Shadow", "Arched_Eyebrows", "Smiling"]
        (folder / "identity_CelebA.txt").write_text("".join(f"{m} {i % 7 + 1}\n" for i, m in enumerate(names)))
        (folder / "list_attr_celeba.txt").write_text(
            f"{n}\n{' '.join(attrs)}\n" + "".join(f"{m} {' '.join(['-1', '1', '-1'])}\n" for m in names)
        )
        (folder / "list_bbox_celeba.txt").write_text(
            f"{n}\nimage_id x_1 y_1 width height\n" + "".join(f"{m} 95 71 226 313\n" for m in names)
        )
        (folder / "list_landmarks_align_celeba.txt").write_text(
            f"{n}\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x "
            "rightmouth_y\n" + "".join(f"{m} 69 109 106 113 77 142 73 152 108 154\n" for m in names)
        )
    return files


def _decoded(file: Path) -> np.ndarray:
    """The JPEG's pixels as Pillow decodes them: (3, 218, 178) uint8."""
    with Image.open(file) as img:
        return np.asarray(img.convert("RGB")).transpose(2, 0, 1)


def _pytorch_vae_pipeline(size=64, crop=148):
    from torchvision import transforms

    return transforms.Compose([transforms.CenterCrop(crop), transforms.Resize(size), transforms.ToTensor()])


def _no_md5(monkeypatch, module: str) -> None:
    """torchvision's check of the official md5 sums, reduced to 'the file exists' (for the fakes)."""
    import importlib

    monkeypatch.setattr(
        importlib.import_module(f"torchvision.datasets.{module}"),
        "check_integrity",
        lambda fpath, md5=None: os.path.isfile(fpath),
    )


def _u8(x: torch.Tensor) -> np.ndarray:
    """float images in [0, 1] back to the uint8 they came from (exact: v / 255 rounds back to v)."""
    return (x * 255).round().to(torch.uint8).numpy()


# ---------------------------------------------------------------------------------------------------
# reading: values, labels, shapes, splits


def test_registered_with_documented_options():
    assert {"fashion_mnist", "cifar10", "svhn", "celeba"} <= set(DATASETS.names())
    for name in ("fashion_mnist", "cifar10", "svhn", "celeba"):
        source = DATASETS.get(name)
        assert source.doc and all(f.description for f in source.options.model_fields.values())
        assert {"max_train", "max_test", "subset_seed"} <= set(source.options.model_fields)
    assert set(DATASETS.get("celeba").options.model_fields) == {
        "max_train",
        "max_test",
        "subset_seed",
        "image_size",
        "crop",
    }
    d = _cfg("celeba")
    assert (d.image_size, d.crop, d.max_train, d.max_test, d.subset_seed) == (64, 148, None, None, 0)


def test_fashion_mnist_round_trips_exactly(tmp_path):
    written = write_fashion_mnist(tmp_path)
    ds = load_dataset(_cfg("fashion_mnist"), tmp_path, download=False)
    assert ds.name == "fashion_mnist" and ds.labeled
    assert ds.x_train.shape == (N_TRAIN, 1, 28, 28) and ds.x_test.shape == (N_TEST, 1, 28, 28)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert ds.x_train.min() == 0 and ds.x_train.max() == 1
    for x, y, (wx, wy) in ((ds.x_train, ds.y_train, written["train"]), (ds.x_test, ds.y_test, written["t10k"])):
        assert np.array_equal(_u8(x), wx) and np.array_equal(y.numpy(), wy)
        assert torch.equal(x, torch.from_numpy(wx).float() / 255)


@pytest.mark.parametrize("keys_as_bytes", [False, True])
def test_cifar10_round_trips_exactly(tmp_path, keys_as_bytes):
    written = write_cifar10(tmp_path, keys_as_bytes=keys_as_bytes)
    ds = load_dataset(_cfg("cifar10"), tmp_path, download=False)
    assert ds.name == "cifar10" and ds.labeled
    assert ds.x_train.shape == (N_TRAIN, 3, 32, 32) and ds.x_test.shape == (N_TEST, 3, 32, 32)
    for x, y, (wx, wy) in ((ds.x_train, ds.y_train, written["train"]), (ds.x_test, ds.y_test, written["test"])):
        assert np.array_equal(_u8(x), wx) and np.array_equal(y.numpy(), wy)
    r, g, b = ds.x_train.mean((0, 2, 3)).tolist()
    assert r > g + 0.1 and g > b + 0.1  # the fake's red >= 128, blue <= 100: R, G, B in order


def test_cifar10_fakes_are_what_torchvision_reads(tmp_path, monkeypatch):
    """The fake Python 2 pickles load in torchvision's CIFAR10 (md5 check patched out) to the same
    arrays vaebench's reader returns: the fakes are in the real format, and the readers agree."""
    from torchvision.datasets import CIFAR10

    write_cifar10(tmp_path)
    _no_md5(monkeypatch, "cifar")
    ds = load_dataset(_cfg("cifar10"), tmp_path, download=False)
    for train, x, y in ((True, ds.x_train, ds.y_train), (False, ds.x_test, ds.y_test)):
        tv = CIFAR10(str(tmp_path), train=train)
        assert np.array_equal(_u8(x), tv.data.transpose(0, 3, 1, 2)) and y.tolist() == tv.targets
    assert tv.classes[0] == "airplane"


def test_svhn_round_trips_exactly_with_label_10_as_0(tmp_path, monkeypatch):
    from torchvision.datasets import SVHN

    written = write_svhn(tmp_path)
    ds = load_dataset(_cfg("svhn"), tmp_path, download=False)
    assert ds.name == "svhn" and ds.labeled and ds.num_classes == 10
    assert ds.x_train.shape == (N_TRAIN, 3, 32, 32) and ds.x_test.shape == (N_TEST, 3, 32, 32)
    for x, y, (wx, wy) in ((ds.x_train, ds.y_train, written["train"]), (ds.x_test, ds.y_test, written["test"])):
        assert np.array_equal(_u8(x), wx) and np.array_equal(y.numpy(), wy)
    assert set(ds.y_train.tolist()) == set(range(10))  # the 10s became 0s
    _no_md5(monkeypatch, "svhn")
    tv = SVHN(str(tmp_path), split="test")
    assert np.array_equal(_u8(ds.x_test), tv.data) and np.array_equal(ds.y_test.numpy(), tv.labels)


def test_celeba_split_crop_and_pixels(tmp_path):
    files = write_celeba(tmp_path)
    ds = load_dataset(_cfg("celeba", image_size=148), tmp_path, download=False)  # crop only, no resize
    assert ds.name == "celeba" and ds.labeled is False
    train = [f for f, p in zip(files, CELEBA_PARTS) if p == 0]
    test = [f for f, p in zip(files, CELEBA_PARTS) if p == 2]
    assert ds.x_train.shape == (len(train), 3, 148, 148) and ds.x_test.shape == (len(test), 3, 148, 148)
    assert not ds.y_train.any() and not ds.y_test.any()
    # the 148x148 center crop of the decoded 178x218 image: rows 35..182, columns 15..162
    for x, split in ((ds.x_train, train), (ds.x_test, test)):
        ref = np.stack([_decoded(f)[:, 35:183, 15:163] for f in split])
        assert np.array_equal(_u8(x), ref)


def test_celeba_64_is_pytorch_vaes_pipeline(tmp_path):
    files = write_celeba(tmp_path)
    ds = load_dataset(_cfg("celeba"), tmp_path, download=False)
    assert ds.x_train.shape[1:] == (3, 64, 64)
    pipeline = _pytorch_vae_pipeline()
    test = [f for f, p in zip(files, CELEBA_PARTS) if p == 2]
    ref = torch.stack([pipeline(Image.open(f).convert("RGB")) for f in test])
    assert torch.equal(ds.x_test, ref)
    # independent of torchvision: each 64x64 image is the crop shrunk (block means of 148/64 px)
    crop = torch.from_numpy(np.stack([_decoded(f)[:, 35:183, 15:163] for f in test])).float() / 255
    shrunk = torch.nn.functional.interpolate(crop, size=64, mode="area")
    assert (ds.x_test - shrunk).abs().mean() < 0.01
    other = load_dataset(_cfg("celeba", image_size=32, crop=100), tmp_path, download=False)
    assert other.x_test.shape == (len(test), 3, 32, 32) and other.checksum != ds.checksum


def test_celeba_equals_torchvisions_celeba_class(tmp_path, monkeypatch):
    """With all five annotation files and the md5 check patched out, torchvision's CelebA with
    PyTorch-VAE's transforms gives the same splits, order and pixels."""
    from torchvision.datasets import CelebA

    write_celeba(tmp_path, annotations=True)
    _no_md5(monkeypatch, "celeba")
    ds = load_dataset(_cfg("celeba"), tmp_path, download=False)
    for split, x in (("train", ds.x_train), ("test", ds.x_test)):
        tv = CelebA(str(tmp_path), split=split, target_type=[], transform=_pytorch_vae_pipeline())
        assert len(tv) == len(x)
        assert torch.equal(torch.stack([tv[i][0] for i in range(len(tv))]), x)


def test_subsets_are_seeded_sorted_and_drawn_before_decoding(tmp_path, monkeypatch):
    write_cifar10(tmp_path)
    full = load_dataset(_cfg("cifar10"), tmp_path, download=False)
    a = load_dataset(_cfg("cifar10", max_train=7, max_test=5), tmp_path, download=False)
    b = load_dataset(_cfg("cifar10", max_train=7, max_test=5), tmp_path, download=False)
    c = load_dataset(_cfg("cifar10", max_train=7, max_test=5, subset_seed=1), tmp_path, download=False)
    assert a.x_train.shape == (7, 3, 32, 32) and a.x_test.shape == (5, 3, 32, 32)
    assert a.checksum == b.checksum and a.checksum != c.checksum and a.checksum != full.checksum
    rows = {tuple(_u8(img).ravel()): k for k, img in enumerate(full.x_train)}
    picked = [rows[tuple(_u8(img).ravel())] for img in a.x_train]  # every image is one of the split's
    assert picked == sorted(picked) and len(set(picked)) == 7
    assert torch.equal(a.y_train, full.y_train[picked])
    assert (
        load_dataset(_cfg("cifar10", max_train=N_TRAIN, max_test=999), tmp_path, download=False).checksum
        == full.checksum
    )
    # celeba: only the chosen images are decoded
    import vaebench.data.torchvision_sets as dtv

    write_celeba(tmp_path / "c")
    decoded = []
    real = dtv.decode_celeba
    monkeypatch.setattr(dtv, "decode_celeba", lambda f, crop, size: decoded.append(f) or real(f, crop, size))
    ds = load_dataset(_cfg("celeba", max_train=4, max_test=2), tmp_path / "c", download=False)
    assert len(ds.x_train) == 4 and len(ds.x_test) == 2 and len(decoded) == 6


# ---------------------------------------------------------------------------------------------------
# missing files: the offline error (exit code 2) and failed downloads

EXPECTED = {
    "fashion_mnist": (
        "FashionMNIST/raw",
        ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"],
    ),
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]),
    "svhn": (".", ["train_32x32.mat", "test_32x32.mat"]),
    "celeba": ("celeba", ["img_align_celeba/", "list_eval_partition.txt"]),
}
TORCHVISION_CLASS = {"fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10", "svhn": "SVHN", "celeba": "CelebA"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_offline_error_names_files_and_folder(tmp_path, name):
    folder, files = EXPECTED[name]
    with pytest.raises(DataError) as info:
        load_dataset(_cfg(name), tmp_path, download=False)
    msg = str(info.value)
    assert info.value.exit_code == 2
    assert all(f in msg for f in files), msg
    assert f" in {(tmp_path / folder).resolve()} (download disabled)" in msg
    assert "--data-root" in msg and "VAEBENCH_DATA_ROOT" in msg


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_failed_download_says_why(tmp_path, monkeypatch, name):
    import torchvision.datasets

    def offline(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(getattr(torchvision.datasets, TORCHVISION_CLASS[name]), "download", offline)
    with pytest.raises(DataError, match="download failed: OSError: network is unreachable") as info:
        load_dataset(_cfg(name), tmp_path, download=True)
    assert EXPECTED[name][1][0] in str(info.value)


def test_only_the_missing_files_are_named(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataError) as info:
        load_dataset(_cfg("cifar10"), tmp_path, download=False)
    msg = str(info.value)
    assert "expected data_batch_3 in" in msg and "data_batch_2" not in msg


def test_cli_no_download_exits_2_naming_files_and_folder(tmp_path, write_spec):
    from typer.testing import CliRunner

    from vaebench.cli.commands import app

    spec = write_spec({"study": "offline", "dataset": {"name": "cifar10"}, "model": {"name": "conv"}})
    empty = tmp_path / "empty"
    empty.mkdir()
    r = CliRunner().invoke(
        app,
        ["run", str(spec), "--no-download", "--data-root", str(empty), "--results", str(tmp_path / "results"), "-q"],
    )
    out = " ".join(r.output.split())
    assert r.exit_code == 2, r.output
    assert "CIFAR-10 not found" in out and "data_batch_1" in out and "test_batch" in out
    assert str((empty / "cifar-10-batches-py").resolve()) in out
    assert not (tmp_path / "results").exists()


def test_unreadable_files_are_named(tmp_path):
    write_cifar10(tmp_path / "a")
    batch = tmp_path / "a" / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:500])  # truncated
    with pytest.raises(DataError, match="cannot read") as info:
        load_dataset(_cfg("cifar10"), tmp_path / "a", download=False)
    assert str(batch) in str(info.value)

    class Evil:  # a pickle that would run a command: refused, not run
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    batch.write_bytes(pickle.dumps({"data": Evil(), "labels": []}, protocol=2))
    with pytest.raises(DataError, match="refused"):
        load_dataset(_cfg("cifar10"), tmp_path / "a", download=False)

    write_celeba(tmp_path / "c")
    (tmp_path / "c" / "celeba" / "img_align_celeba" / "000003.jpg").unlink()  # a test image
    with pytest.raises(DataError, match="000003.jpg"):
        load_dataset(_cfg("celeba"), tmp_path / "c", download=False)
    (tmp_path / "c" / "celeba" / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg train\n")
    with pytest.raises(DataError, match="line 2"):
        load_dataset(_cfg("celeba"), tmp_path / "c", download=False)


# ---------------------------------------------------------------------------------------------------
# RGB through the models, likelihoods and the FID classifier


@pytest.mark.parametrize("family", ["conv", "resnet"])
@pytest.mark.parametrize("side", [32, 64])
def test_conv_families_at_32_and_64_px_rgb(family, side):
    """The default 4 stride-2 stages: 32 -> 16, 8, 4, 2 and 64 -> 32, 16, 8, 4, and the decoder
    lands on the encoder's size at every stage, with 2 output channels per colour channel for a
    two-parameter likelihood."""
    from vaebench.models import build_model
    from vaebench.models.conv import stage_sizes
    from vaebench.objectives.likelihoods import GaussianLearned

    torch.manual_seed(0)
    cfg = parse_spec({"study": "t", "model": {"name": family, "latent_dim": 8}}).model
    m = build_model(cfg, (3, side, side), GaussianLearned()).eval()
    sizes = stage_sizes(side, side, 4)
    assert sizes[-1] == (side // 16, side // 16)
    seen = []
    stages = [mod for mod in m.decoder if isinstance(mod, torch.nn.Sequential)]
    hooks = [mod.register_forward_hook(lambda mod, i, o: seen.append(tuple(o.shape[-2:]))) for mod in stages]
    x = torch.rand(2, 3, side, side)
    with torch.no_grad():
        mu, _ = m.encode(x)
        params = m.decode(mu)
    for h in hooks:
        h.remove()
    assert mu.shape == (2, 8) and params.shape == (2, 6, side, side)
    assert seen == [sizes[i] for i in reversed(range(4))]
    assert m.reconstruct(x).shape == x.shape and m.sample(3).shape == (3, 3, side, side)


def test_mlp_on_rgb():
    from vaebench.models import build_model
    from vaebench.objectives.likelihoods import Bernoulli

    m = build_model(
        parse_spec({"study": "t", "model": {"name": "mlp", "hidden_dim": 16, "latent_dim": 4}}).model,
        (3, 32, 32),
        Bernoulli(),
    )
    assert m.encoder[0].in_features == 3 * 32 * 32 and m.reconstruct(torch.rand(2, 3, 32, 32)).shape == (2, 3, 32, 32)


def test_likelihoods_sum_over_channels_and_pixels():
    """-log p(x|z) of an RGB image is the sum over C*H*W: equal to the sum of the per-channel NLLs,
    and to torch.distributions' log-densities summed (an independent reference)."""
    from torch.distributions import Laplace as TLaplace
    from torch.distributions import Normal

    from vaebench.objectives.likelihoods import Bernoulli, Gaussian, GaussianLearned, Laplace

    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 8, 8, generator=g, dtype=torch.float64)
    p = torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64)
    p2 = torch.randn(4, 6, 8, 8, generator=g, dtype=torch.float64)
    for lik, params in ((Bernoulli(), p), (Gaussian(0.3), p), (Laplace(0.7), p), (GaussianLearned(), p2)):
        k = lik.param_channels
        per_channel = sum(
            lik.nll(
                torch.cat([params[:, c : c + 1], params[:, 3 + c : 4 + c]] if k == 2 else [params[:, c : c + 1]], 1),
                x[:, c : c + 1],
            )
            for c in range(3)
        )
        assert torch.allclose(lik.nll(params, x), per_channel, rtol=1e-12)
    ref = -Normal(p, 0.3**0.5).log_prob(x).sum((1, 2, 3))
    assert torch.allclose(Gaussian(0.3).nll(p, x), ref, rtol=1e-12)
    assert torch.allclose(Laplace(0.7).nll(p, x), -TLaplace(p, 0.7).log_prob(x).sum((1, 2, 3)), rtol=1e-12)
    m, var = GaussianLearned().split(p2)
    assert torch.allclose(GaussianLearned().nll(p2, x), -Normal(m, var.sqrt()).log_prob(x).sum((1, 2, 3)), rtol=1e-10)


def _colour_classes(side: int, n: int, seed: int):
    """3 classes that differ only in colour: class k has channel k bright; the gray level (channel
    mean) has the same distribution in every class, so a classifier blind to colour is at chance."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = 0.1 + 0.1 * torch.rand(n, 3, side, side, generator=g)
    x[torch.arange(n), y] += 0.6
    return x, y


@pytest.mark.parametrize("side", [32, 64])
def test_fid_classifier_trains_on_rgb(side, monkeypatch):
    from vaebench.data import dataset_from_arrays
    from vaebench.metrics import classifier as clf

    monkeypatch.setattr(clf, "MIN_EXAMPLES_PER_EPOCH", 300)  # a short training: 60 images x 5 x 2 epochs
    monkeypatch.setitem(clf.TRAIN_SETTINGS, "epochs", 2)
    x, y = _colour_classes(side, 60, 0)
    xt, yt = _colour_classes(side, 60, 1)
    data = dataset_from_arrays(f"rgb{side}", x, y, xt, yt)
    info = clf.cached_classifier(data, "cpu")
    assert info.test_accuracy > 0.9  # colour is the only cue
    assert torch.load(info.path, weights_only=True)["info"]["test_accuracy"] == info.test_accuracy  # recorded
    if side == 32:  # the same images in gray: the classifier is at chance
        gray = dataset_from_arrays(f"gray{side}", x.mean(1, keepdims=True), y, xt.mean(1, keepdims=True), yt)
        assert clf.train_classifier(gray, "cpu")[1] < 0.6
    model = clf.load_classifier(info.path)
    assert model.conv1.in_channels == 3 and torch.load(info.path, weights_only=True)["in_channels"] == 3
    feats, logits = model.features(xt[:8])
    fast, fast_logits = model.inference_features(xt[:8])
    assert feats.shape == (8, clf.FEATURE_DIM) and logits.shape == (8, 3)
    assert torch.allclose(feats, fast, atol=1e-5) and torch.allclose(logits, fast_logits, atol=1e-5)


# ---------------------------------------------------------------------------------------------------
# training and the shipped sweeps on the fakes

WRITERS = {"fashion_mnist": write_fashion_mnist, "cifar10": write_cifar10, "svhn": write_svhn, "celeba": write_celeba}
MODEL_FOR = {
    "fashion_mnist": {"name": "mlp", "hidden_dim": 16},
    "cifar10": {"name": "conv", "channels": [8, 16]},
    "svhn": {"name": "resnet", "channels": [8, 16]},
    "celeba": {"name": "conv", "channels": [8, 16, 16]},
}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_one_epoch_of_training(tmp_path, name):
    from vaebench.engine.train import train

    WRITERS[name](tmp_path)
    spec = parse_spec(
        {
            "study": "t",
            "dataset": {"name": name, **({"max_train": 12} if name == "celeba" else {})},
            "model": {**MODEL_FOR[name], "latent_dim": 4},
            "train": {"epochs": 1, "batch_size": 8},
        }
    )
    cfg = spec.base()
    data = load_dataset(cfg.dataset, tmp_path, download=False)
    result = train(cfg, data, seed=0)
    assert result.status == "ok" and len(result.history) == 1
    assert np.isfinite(result.history[0]["test_loss"]) and result.history[0]["test_loss"] > 0
    shape = (1, 28, 28) if name == "fashion_mnist" else (3, 64, 64) if name == "celeba" else (3, 32, 32)
    assert data.shape == shape and result.model.sample(2, torch.device("cpu")).shape == (2, *shape)


def _shrunk(spec: dict) -> dict:
    """The shipped spec at test size: 1 epoch, small model, one seed, cheap metrics."""
    return {
        **spec,
        "train": {**spec["train"], "epochs": 1, "batch_size": 16},
        "model": {**spec["model"], "channels": [8, 16], "latent_dim": 4},
        "seeds": [0],
        "eval": {**spec.get("eval", {}), "nll_k": 4, "fid_samples": N_TEST},
    }


@pytest.mark.parametrize("name", ["cifar10", "fashion_mnist"])
def test_shipped_beta_sweep_runs_on_the_fake(tmp_path, monkeypatch, name):
    from vaebench.metrics import classifier as clf
    from vaebench.reporting.figures import images  # the figure of samples, test images and reconstructions

    monkeypatch.setattr(clf, "MIN_EXAMPLES_PER_EPOCH", 1)  # the FID classifier: a short training on the fake
    monkeypatch.setitem(clf.TRAIN_SETTINGS, "epochs", 1)
    path = REPO / "sweeps" / f"{name}_beta.yaml"
    raw = yaml.safe_load(path.read_text())
    spec = vaebench.parse_spec(raw)  # the shipped spec, as written, is valid
    assert spec.dataset.name == name and spec.model.name == "conv" and spec.train.epochs >= 20
    assert "objective.beta" in spec.grid and len(spec.seeds) >= 3
    root = tmp_path / "data"
    WRITERS[name](root)
    status = vaebench.run(_shrunk(raw), workers=1, results=tmp_path / "results", data_root=root, download=False)
    assert status.done == status.total == len(spec.grid["objective.beta"])
    df = vaebench.load_results(spec.study, tmp_path / "results")
    assert len(df) == status.total and (df["status"] == "ok").all()
    assert sorted(df["param.objective.beta"]) == sorted(spec.grid["objective.beta"])
    assert df["fid"].notna().all() and df["classifier_test_accuracy"].between(0, 1).all()
    assert df["ssim"].between(-1, 1).all() and np.isfinite(df["neg_elbo"]).all()
    if name == "cifar10":  # the report's image grid draws RGB in colour
        fig = images(df, tmp_path / "results")
        px = np.asarray(Image.open(io.BytesIO(fig.png)).convert("RGB")).astype(int)
        chroma = px.max(-1) - px.min(-1)
        assert (chroma > 60).mean() > 0.02  # the fake's red-heavy images: gray drawing would give 0
