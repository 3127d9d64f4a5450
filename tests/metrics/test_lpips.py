"""LPIPS through the `lpips` package (vaebench/metrics/perceptual.py).

The real backbone weights (torchvision's ImageNet AlexNet) cannot be downloaded here, so these tests
save a *randomly initialised* torchvision AlexNet state_dict and point vaebench at it: the values
they check are meaningless as perceptual distances and only test the plumbing — where the weights
come from, the input scaling, the averaging, the skip reasons, the row's columns. The reference is
the `lpips` package called directly with its backbone loaded by torchvision itself from the cache
file it would download (`$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth`).
"""

import hashlib
import math
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch

pytest.importorskip("lpips", reason='the lpips extra is not installed: pip install -e ".[dev,lpips]"')

from vaebench.data import Dataset, load_dataset  # noqa: E402
from vaebench.errors import VaebenchError  # noqa: E402
from vaebench.metrics import METRICS, EvalContext, evaluate  # noqa: E402
from vaebench.metrics import perceptual as P  # noqa: E402
from vaebench.models import build_model  # noqa: E402
from vaebench.objectives.likelihoods import Bernoulli  # noqa: E402
from vaebench.spec.sweep_spec import DatasetConfig, ModelConfig, RunConfig  # noqa: E402

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"  # the file torchvision downloads for alexnet(weights=IMAGENET1K_V1)
COLUMNS = (P.LPIPS, P.LPIPS_NET, P.LPIPS_WEIGHTS, P.LPIPS_SAMPLES, P.LPIPS_IMAGE_SIZE, P.LPIPS_PACKAGE_VERSION)


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory):
    """A TORCH_HOME whose torchvision cache holds a randomly initialised AlexNet under the name of
    the real weights file (written once per module: ~240 MB)."""
    import torchvision

    home = tmp_path_factory.mktemp("torch-home")
    (home / "hub" / "checkpoints").mkdir(parents=True)
    torch.manual_seed(1234)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), home / "hub" / "checkpoints" / ALEXNET_FILE)
    return home


@pytest.fixture
def weights(torch_home):
    return torch_home / "hub" / "checkpoints" / ALEXNET_FILE


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    """No weights anywhere: neither the environment variable nor torchvision's cache."""
    monkeypatch.delenv(P.LPIPS_WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    return tmp_path / "empty-torch-home"


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    """Nothing here may try to download (torch.hub's only download function raises)."""

    def refuse(url, *args, **kwargs):
        raise AssertionError(f"attempted download of {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def _dataset(channels: int = 1, side: int = 32, n: int = 60) -> Dataset:
    """The first n digits, upsampled to side x side (channels > 1: each channel tinted differently)."""
    d = load_dataset(DatasetConfig(name="digits"))
    x = torch.nn.functional.interpolate(d.x_test[:n], size=(side, side), mode="bilinear", align_corners=False)
    if channels == 3:
        x = torch.cat([x, x.flip(-1) * 0.7, (1 - x) * 0.5], 1)
    return Dataset("digits-big", x, d.y_test[:n], x.clone(), d.y_test[:n].clone())


def _model(data: Dataset):
    torch.manual_seed(0)
    return build_model(ModelConfig(hidden_dim=16, latent_dim=4), data.shape, Bernoulli())


def _cfg(**lpips) -> RunConfig:
    return RunConfig.model_validate({"dataset": {"name": "digits"}, "eval": {"lpips": lpips} if lpips else {}})


def _reference(torch_home, monkeypatch, x, x_hat) -> float:
    """The lpips package's own LPIPS with its backbone loaded by torchvision from its cache file."""
    import warnings

    import lpips

    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    with warnings.catch_warnings():  # torchvision's deprecation of the `pretrained=True` lpips passes it
        warnings.simplefilter("ignore")
        ref = lpips.LPIPS(net="alex", verbose=False)  # pretrained backbone: torchvision finds the cached file
    if x.shape[1] == 1:
        x, x_hat = x.repeat(1, 3, 1, 1), x_hat.repeat(1, 3, 1, 1)
    with torch.no_grad():
        return ref(x, x_hat, normalize=True).mean().item()  # normalize=True: lpips' own [0, 1] -> [-1, 1]


@pytest.mark.parametrize("channels", [1, 3])
def test_lpips_equals_the_lpips_package_called_directly(channels, torch_home, weights, monkeypatch):
    monkeypatch.setenv(P.LPIPS_WEIGHTS_ENV, str(weights))
    monkeypatch.setenv("TORCH_HOME", str(torch_home.parent / "nothing-here"))  # the variable alone
    data = _dataset(channels)
    model = _model(data)
    out = evaluate(model, data, _cfg(samples=40), seed=0, names=["lpips"])
    assert out["metrics_skipped"] == []
    assert math.isfinite(out[P.LPIPS]) and out[P.LPIPS] > 0
    x = data.x_test[:40]
    with torch.no_grad():
        x_hat = model.reconstruct(x).clamp(0, 1)
    assert out[P.LPIPS] == pytest.approx(_reference(torch_home, monkeypatch, x, x_hat), rel=1e-5)
    # the settings columns
    assert out[P.LPIPS_NET] == "alex"
    assert out[P.LPIPS_WEIGHTS] == "sha256:" + hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    assert out[P.LPIPS_SAMPLES] == 40
    assert out[P.LPIPS_IMAGE_SIZE] == "32x32"
    from importlib.metadata import version

    assert out[P.LPIPS_PACKAGE_VERSION] == version("lpips")


def test_the_weights_are_found_in_torchvisions_cache(torch_home, monkeypatch):
    monkeypatch.delenv(P.LPIPS_WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    assert P.backbone_weights_file("alex") == torch_home / "hub" / "checkpoints" / ALEXNET_FILE
    data = _dataset()
    out = evaluate(_model(data), data, _cfg(), seed=0, names=["lpips"])
    assert out["metrics_skipped"] == [] and math.isfinite(out[P.LPIPS])
    assert out[P.LPIPS_SAMPLES] == 60  # default 2000, at most the split


def _ctx(data, reconstructions, **lpips) -> EvalContext:
    """An EvalContext whose reconstructions are the given images."""
    ctx = EvalContext(_model(data), data, _cfg(**lpips))
    ctx.__dict__["_decoded_mu"] = (reconstructions, torch.zeros(len(reconstructions)))
    return ctx


def test_identical_images_give_zero_and_noise_makes_it_grow(weights, monkeypatch):
    monkeypatch.setenv(P.LPIPS_WEIGHTS_ENV, str(weights))
    data = _dataset()
    x = data.x_test
    lpips_metric = METRICS.get("lpips")
    assert lpips_metric(_ctx(data, x.clone()))[P.LPIPS] == pytest.approx(0.0, abs=1e-7)
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape, generator=gen)
    values = [lpips_metric(_ctx(data, x + s * noise))[P.LPIPS] for s in (0.02, 0.1, 0.3, 1.0)]
    assert all(a < b for a, b in zip(values, values[1:])), values
    # reconstructions outside [0, 1] are clamped first: far outside counts as the boundary
    assert lpips_metric(_ctx(data, x * 0 + 5))[P.LPIPS] == pytest.approx(lpips_metric(_ctx(data, x * 0 + 1))[P.LPIPS])


def test_without_weights_the_row_has_null_lpips_and_the_reason(empty_torch_home):
    data = _dataset()
    out = evaluate(_model(data), data, _cfg(), seed=0, names=["lpips"])
    assert all(out[c] is None for c in COLUMNS)
    [reason] = out["metrics_skipped"]
    assert reason.startswith("lpips: no alex backbone weights")
    assert "--lpips-weights" in reason and P.LPIPS_WEIGHTS_ENV in reason
    assert str(empty_torch_home / "hub" / "checkpoints" / ALEXNET_FILE) in reason
    assert not empty_torch_home.exists()  # nothing was downloaded (or even attempted: see _no_downloads)


def test_a_missing_file_in_the_variable_is_a_skip_naming_it(empty_torch_home, tmp_path, monkeypatch):
    monkeypatch.setenv(P.LPIPS_WEIGHTS_ENV, str(tmp_path / "nope.pth"))
    data = _dataset()
    out = evaluate(_model(data), data, _cfg(), seed=0, names=["lpips"])
    assert out[P.LPIPS] is None
    assert out["metrics_skipped"] == [
        f"lpips: ${P.LPIPS_WEIGHTS_ENV} = {tmp_path / 'nope.pth'}: no such file "
        "(it should be torchvision's ImageNet weights of the alex backbone)"
    ]


def test_without_the_lpips_package_it_is_skipped_with_the_install_command(weights, monkeypatch):
    monkeypatch.setenv(P.LPIPS_WEIGHTS_ENV, str(weights))
    monkeypatch.setitem(sys.modules, "lpips", None)  # import lpips -> ImportError
    data = _dataset()
    out = evaluate(_model(data), data, _cfg(), seed=0, names=["lpips"])
    assert out[P.LPIPS] is None
    assert out["metrics_skipped"] == ['lpips: the lpips package is not installed: pip install "vaebench[lpips]"']


def test_small_images_are_skipped_unless_resized(weights, monkeypatch):
    monkeypatch.setenv(P.LPIPS_WEIGHTS_ENV, str(weights))
    data = load_dataset(DatasetConfig(name="digits"))  # 8x8
    model = _model(data)
    out = evaluate(model, data, _cfg(samples=30), seed=0, names=["lpips"])
    assert out[P.LPIPS] is None
    assert out["metrics_skipped"] == [
        "lpips: 8x8 images are smaller than the alex backbone accepts (31 px a side): "
        "set eval.lpips.resize (LPIPS was calibrated on 64x64 patches)"
    ]
    out = evaluate(model, data, _cfg(samples=30, resize=32), seed=0, names=["lpips"])
    assert out["metrics_skipped"] == [] and math.isfinite(out[P.LPIPS])
    assert out[P.LPIPS_IMAGE_SIZE] == "32x32" and out[P.LPIPS_SAMPLES] == 30


def test_the_cache_file_names_are_torchvisions():
    import torchvision.models as tvm

    enums = {"alex": tvm.AlexNet_Weights, "vgg": tvm.VGG16_Weights, "squeeze": tvm.SqueezeNet1_1_Weights}
    assert P.TORCHVISION_FILES == {net: os.path.basename(e.IMAGENET1K_V1.url) for net, e in enums.items()}


@pytest.mark.parametrize("net", ["alex", "vgg", "squeeze"])
def test_the_minimum_sides_are_what_the_backbones_accept(net):
    import warnings

    import lpips

    with warnings.catch_warnings():  # torchvision's deprecation of lpips' `pretrained=False`
        warnings.simplefilter("ignore")
        model = lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False)
    side = P.MIN_SIDE[net]
    with torch.no_grad():
        model(torch.zeros(1, 3, side, side), torch.zeros(1, 3, side, side))
        with pytest.raises(RuntimeError):
            model(torch.zeros(1, 3, side - 1, side - 1), torch.zeros(1, 3, side - 1, side - 1))


def test_a_file_that_is_not_the_backbone_is_an_error_naming_it(tmp_path, monkeypatch):
    bad = tmp_path / "bad.pth"
    torch.save({"weight": torch.zeros(3)}, bad)
    monkeypatch.setenv(P.LPIPS_WEIGHTS_ENV, str(bad))
    data = _dataset()
    with pytest.raises(VaebenchError, match="is not torchvision's state_dict of the alex backbone") as info:
        evaluate(_model(data), data, _cfg(), seed=0, names=["lpips"])
    assert str(bad) in str(info.value) and ALEXNET_FILE in str(info.value)


def test_options_are_validated_in_the_spec():
    with pytest.raises(Exception, match="net"):
        RunConfig.model_validate({"eval": {"lpips": {"net": "resnet"}}})
    with pytest.raises(Exception, match="samples"):
        RunConfig.model_validate({"eval": {"lpips": {"samples": 0}}})
    assert METRICS.get("lpips").options_for(RunConfig()) == P.LpipsOptions(samples=2000, net="alex", resize=None)


def test_cli_lpips_weights_reaches_the_row(tmp_path, weights, empty_torch_home, write_spec, monkeypatch):
    """`vaebench run --lpips-weights FILE` sets $VAEBENCH_LPIPS_WEIGHTS for the workers: the row has LPIPS."""
    from typer.testing import CliRunner

    from vaebench.cli.commands import app

    spec = write_spec(
        {
            "study": "lpips",
            "dataset": {"name": "digits"},
            "model": {"name": "mlp", "hidden_dim": 16, "latent_dim": 2},
            "train": {"epochs": 1, "batch_size": 256},
            "eval": {"fid_extractor": None, "nll_examples": 20, "nll_k": 2, "lpips": {"samples": 50, "resize": 32}},
            "seeds": [0],
        }
    )
    runner = CliRunner()
    r = runner.invoke(
        app,
        ["run", str(spec), "--results", str(tmp_path / "r"), "--lpips-weights", str(tmp_path / "missing.pth"), "-q"],
    )
    assert r.exit_code == 2 and "--lpips-weights" in r.output and "no such file" in r.output, r.output
    r = runner.invoke(app, ["run", str(spec), "--results", str(tmp_path / "r"), "--lpips-weights", str(weights), "-q"])
    assert r.exit_code == 0, r.output
    row = pd.read_parquet(tmp_path / "r" / "lpips" / "runs").iloc[0]
    assert math.isfinite(row[P.LPIPS]) and row[P.LPIPS] > 0
    assert row[P.LPIPS_NET] == "alex" and row[P.LPIPS_SAMPLES] == 50 and row[P.LPIPS_IMAGE_SIZE] == "32x32"
    assert row[P.LPIPS_WEIGHTS] == "sha256:" + hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    assert row["param.eval.lpips.resize"] == 32
    assert not any(s.startswith("lpips") for s in row["metrics_skipped"])
    for command in ("run", "worker"):
        assert "--lpips-weights" in runner.invoke(app, [command, "--help"]).output


def test_vaebench_works_without_the_lpips_package(tmp_path):
    """With `lpips` absent the metric declarations load and the metric is skipped with the install
    command; installed but without weights, the skip imports neither lpips nor torchvision."""
    code = (
        "import sys\nsys.modules['lpips'] = None\n"
        "import vaebench\nfrom vaebench.metrics import METRICS, declared_columns, evaluate\n"
        "from vaebench.data import load_dataset\nfrom vaebench.models import build_model\n"
        "from vaebench.objectives import Bernoulli\nfrom vaebench.spec.sweep_spec import RunConfig\n"
        "assert 'lpips' in METRICS.names() and declared_columns()['lpips'][0] == 'lpips'\n"
        "cfg = RunConfig.model_validate({'dataset': {'name': 'digits'}})\n"
        "data = load_dataset(cfg.dataset)\nmodel = build_model(cfg.model, (1, 8, 8), Bernoulli())\n"
        "print(evaluate(model, data, cfg, 0, names=['lpips'])['metrics_skipped'])\n"
        "del sys.modules['lpips']  # installed again, no weights anywhere\n"
        "print(evaluate(model, data, cfg, 0, names=['lpips'])['metrics_skipped'][0][:32])\n"
        "print('lpips' in sys.modules, 'torchvision' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != P.LPIPS_WEIGHTS_ENV}
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**env, "TORCH_HOME": str(tmp_path)}
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        """['lpips: the lpips package is not installed: pip install "vaebench[lpips]"']""",
        "lpips: no alex backbone weights:",
        "False False",
    ]
