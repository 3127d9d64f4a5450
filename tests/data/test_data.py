import numpy as np
import pytest
import torch

from tests.conftest import DATA_ROOT, HAS_MNIST, needs_mnist
from vaebench.data import DATASETS, checksum, load_dataset
from vaebench.data.builtin import MNIST_FILES, _digits_arrays, load_mnist, read_idx_ubyte
from vaebench.errors import DataError
from vaebench.spec.sweep_spec import DatasetConfig


def test_digits_split_is_fixed_and_in_unit_range():
    a = load_dataset(DatasetConfig(name="digits"))
    b = load_dataset(DatasetConfig(name="digits"))
    assert a.x_train.shape == (1438, 1, 8, 8) and a.x_test.shape == (359, 1, 8, 8)
    assert a.x_train.dtype == torch.float32 and a.y_train.dtype == torch.int64
    assert 0 <= a.x_train.min() and a.x_train.max() == 1.0
    assert torch.equal(a.x_test, b.x_test) and a.checksum == b.checksum
    assert a.num_classes == 10


def test_synthetic_is_deterministic_non_square():
    a, b = load_dataset(DatasetConfig(name="synthetic")), load_dataset(DatasetConfig(name="synthetic"))
    assert a.shape == (1, 10, 12) and len(a.x_train) == 512 and len(a.x_test) == 128
    assert torch.equal(a.x_train, b.x_train) and set(a.y_train.tolist()) == {0, 1, 2, 3}


def test_checksum_tracks_content():
    x = torch.zeros(3, 1, 2, 2)
    y = x.clone()
    y[0, 0, 0, 0] = 1e-6
    assert checksum(x) != checksum(y)
    assert checksum(x) == checksum(x.clone())


def test_binarize_makes_a_fixed_binary_test_split():
    a = load_dataset(DatasetConfig(name="digits", binarize=True))
    b = load_dataset(DatasetConfig(name="digits", binarize=True))
    plain = load_dataset(DatasetConfig(name="digits"))
    assert set(a.x_test.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(a.x_test, b.x_test)
    assert torch.equal(a.x_train, plain.x_train)  # training images stay grayscale (binarized per batch)
    assert a.checksum != plain.checksum


def test_missing_mnist_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEBENCH_DATA_ROOT", str(tmp_path))
    with pytest.raises(DataError) as info:
        load_dataset(DatasetConfig(name="mnist"), download=False)
    msg = str(info.value)
    for f in MNIST_FILES:
        assert f in msg
    assert str((tmp_path / "MNIST" / "raw").resolve()) in msg
    assert "VAEBENCH_DATA_ROOT" in msg and "--data-root" in msg


def test_failed_download_is_a_clear_error(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    with pytest.raises(DataError, match="download failed: OSError: network is unreachable"):
        load_mnist(tmp_path, download=True)


@needs_mnist
@pytest.mark.mnist
def test_real_mnist_files():
    ds = load_dataset(DatasetConfig(name="mnist"), DATA_ROOT, download=False)
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert ds.y_train[:5].tolist() == [5, 0, 4, 1, 9]
    assert np.bincount(ds.y_train.numpy()).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert ds.x_train.mean().item() == pytest.approx(0.1307, abs=1e-4)
    assert ds.x_train.std().item() == pytest.approx(0.3081, abs=1e-4)
    assert 0 <= ds.x_train.min() and ds.x_train.max() <= 1


def test_registry_has_the_built_in_sources():
    # data/base.py's own, data/image_folder.py's and data/torchvision_sets.py's
    assert DATASETS.names() == [
        "celeba",
        "cifar10",
        "digits",
        "fashion_mnist",
        "image_folder",
        "mnist",
        "shapes",
        "svhn",
        "synthetic",
    ]
    assert list(DATASETS.get("shapes").options.model_fields) == [
        "preset",
        "image_size",
        "scales",
        "orientations",
        "orientation_values",
        "positions",
        "pixels",
        "test_fraction",
    ]
    assert all(not DATASETS.get(n).options.model_fields for n in ["digits", "mnist", "synthetic"])


# --- readers that spare each worker process an import ----------------------------------------------


def test_idx_reader_equals_torchvisions(tmp_path):
    """`read_idx_ubyte` against torchvision's own IDX reader on files in the exact on-disk format
    (and on the real MNIST files where they are), and a clear error on a file that is not IDX."""
    import struct

    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor

    rng = np.random.default_rng(0)
    for shape in ((7, 28, 28), (7,), (3, 5, 4)):
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        path = tmp_path / f"a{len(shape)}"
        path.write_bytes(struct.pack(">BBBB", 0, 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes())
        got = read_idx_ubyte(path)
        assert got.shape == shape and np.array_equal(got, a)
        assert torch.equal(torch.from_numpy(got.copy()), read_sn3_pascalvincent_tensor(str(path)))
    if HAS_MNIST:
        for f in MNIST_FILES:
            path = DATA_ROOT / "MNIST" / "raw" / f
            assert torch.equal(torch.from_numpy(read_idx_ubyte(path).copy()), read_sn3_pascalvincent_tensor(str(path)))
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x1f\x8b\x08\x00" + bytes(20))  # a gzip header: the compressed file, not the IDX
    with pytest.raises(DataError, match=r"bad: not an IDX file of unsigned bytes \(header 1f8b0800\)"):
        read_idx_ubyte(bad)
    short = tmp_path / "short"
    short.write_bytes(struct.pack(">BBBB", 0, 0, 0x08, 1) + struct.pack(">I", 10) + bytes(4))
    with pytest.raises(DataError, match=r"says \(10,\) = 10 bytes, the file has 4"):
        read_idx_ubyte(short)


def test_digits_read_from_scikit_learns_file_equal_load_digits():
    from sklearn.datasets import load_digits as sk_digits

    images, target = _digits_arrays()
    d = sk_digits()
    assert np.array_equal(images, d.images) and np.array_equal(target, d.target)
