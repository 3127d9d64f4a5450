import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("VAEBENCH_DATA_ROOT") or REPO.parent / "shared" / "data")
HAS_MNIST = (DATA_ROOT / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()
needs_mnist = pytest.mark.skipif(
    not HAS_MNIST, reason=f"MNIST raw files not found under {DATA_ROOT} (set VAEBENCH_DATA_ROOT)"
)

# A tiny but real sweep on the digits data: 2 cells x 2 seeds, a few seconds in all.
TINY_SPEC = {
    "study": "tiny",
    "dataset": {"name": "digits"},
    "model": {"name": "mlp", "hidden_dim": 32, "latent_dim": 4},
    "train": {"epochs": 2, "batch_size": 128},
    "grid": {"objective.beta": [0.5, 2.0]},
    "seeds": [0, 1],
}


@pytest.fixture
def write_spec(tmp_path):
    """write_spec(dict or text, name) -> path of a YAML spec file in tmp_path."""

    def _write(content, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False))
        return path

    return _write


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tests train tiny models: one thread each avoids oversubscribing a shared 2-core machine
    (two busy threads competing with other processes made steps 50x slower in our measurements)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True, scope="session")
def _one_worker_by_default():
    """`vaebench run` in tests runs one in-process worker unless a test asks for --workers N."""
    old = os.environ.get("VAEBENCH_WORKERS")
    os.environ["VAEBENCH_WORKERS"] = "1"
    yield
    if old is None:
        os.environ.pop("VAEBENCH_WORKERS", None)
    else:
        os.environ["VAEBENCH_WORKERS"] = old


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Classifiers trained for FID go to a per-session cache, not the user's ~/.cache."""
    old = os.environ.get("VAEBENCH_CACHE")
    os.environ["VAEBENCH_CACHE"] = str(tmp_path_factory.mktemp("vaebench-cache"))
    yield
    if old is None:
        os.environ.pop("VAEBENCH_CACHE", None)
    else:
        os.environ["VAEBENCH_CACHE"] = old
