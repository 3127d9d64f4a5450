"""LPIPS (Zhang et al. 2018): the learned perceptual distance between each test image and its
reconstruction E[x | z = mu(x)], through the authors' own package `lpips` (PyPI `lpips`, optional:
`pip install vaebench[lpips]`).

What is computed: `lpips.LPIPS(net=eval.lpips.net, version="0.1")` — the backbone's (AlexNet, VGG16
or SqueezeNet 1.1) unit-normalized activations at its 5 (7) layers, squared differences weighted by
the package's linear layers calibrated on human judgments (shipped inside the package), averaged
over space and summed over layers — on the first `eval.lpips.samples` test images x and their
reconstructions x_hat clamped to [0, 1], both scaled to [-1, 1] as LPIPS expects (2x - 1), a
grayscale channel repeated to 3; optionally resized (bilinear) so the shorter side is
`eval.lpips.resize` pixels. The column is the mean over those images; 0 for identical images.

Backbone weights. The linear layers ship with `lpips`, but the backbone's ImageNet weights are the
file torchvision downloads (`alexnet-owt-7be5be79.pth`, `vgg16-397923af.pth`,
`squeezenet1_1-b8a52dc0.pth`). vaebench never downloads them: it builds the backbone randomly
initialised (`pnet_rand=True`, no download) and loads the weights from a local file, looked for in
this order:
1. `$VAEBENCH_LPIPS_WEIGHTS` (set by `vaebench run --lpips-weights FILE` / `vaebench worker
   --lpips-weights FILE`): a torchvision state_dict of the backbone named by `eval.lpips.net`;
2. torchvision's cache, `<torch.hub.get_dir()>/checkpoints/<the file torchvision would download>`
   (`$TORCH_HOME/hub/checkpoints/`, default `~/.cache/torch/hub/checkpoints/`), there on a machine
   where torchvision has downloaded it once.
When neither exists the metric is skipped (`metrics_skipped` names the paths looked at and how to
provide the file); when `lpips` is not installed, likewise. `lpips_weights` records the file's
SHA-256 prefix (torchvision's own file names carry the first 8 hex digits of it: the real AlexNet
weights give `sha256:7be5be79...`).

Values computed with any other weights — e.g. the randomly initialised backbone the tests save to a
file to exercise this plumbing offline — are not LPIPS: they are meaningless as a perceptual
distance and only show that the metric runs end to end.

Image size: the backbones' pooling needs a minimum input side (AlexNet 31 px, VGG16 16 px,
SqueezeNet 17 px, `MIN_SIDE`): smaller images (8x8 digits; 28x28 MNIST with AlexNet) are skipped
with a reason unless `eval.lpips.resize` upsamples them. LPIPS was calibrated on 64x64 patches.

Neither `lpips` nor torchvision is imported with this module, nor when the metric is skipped: only
when it computes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Literal, Optional

import torch
from pydantic import Field

from ..errors import VaebenchError
from ..options import Options
from .declarations import Column, MetricNotApplicable, register_metric

LPIPS_WEIGHTS_ENV = "VAEBENCH_LPIPS_WEIGHTS"
LPIPS_VERSION = "0.1"  # the linear layers' version (the package's default and latest; v0.0 had a scaling bug)
LPIPS_BATCH = 50  # images per forward pass (speed and memory only)
# The file torchvision downloads into its cache for each backbone `lpips` builds (pretrained_networks.py:
# alexnet, vgg16, squeezenet1_1 with weights IMAGENET1K_V1; the name is that url's last part, the hex its
# SHA-256 prefix). Written out so that looking for it imports nothing; tests/metrics/test_lpips.py checks them
# against torchvision's enums.
TORCHVISION_FILES = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}
MIN_SIDE = {"alex": 31, "vgg": 16, "squeeze": 17}  # smallest input side each backbone's pooling accepts (px)
INSTALL_HINT = 'pip install "vaebench[lpips]"'

# result columns
LPIPS = "lpips"  # mean over images of LPIPS(x, x_hat); dimensionless, 0 for identical images
LPIPS_NET = "lpips_net"  # backbone: alex, vgg or squeeze
LPIPS_WEIGHTS = "lpips_weights"  # sha256:<first 16 hex digits> of the backbone weights file
LPIPS_SAMPLES = "lpips_samples"  # test images averaged over (the first N of the split)
LPIPS_IMAGE_SIZE = "lpips_image_size"  # "HxW" fed to the backbone (after eval.lpips.resize)
LPIPS_PACKAGE_VERSION = "lpips_package_version"  # version of the `lpips` package


class LpipsOptions(Options):
    """`eval.lpips` in a spec."""

    samples: int = Field(
        2000,
        ge=1,
        description="test images (the first N of the split, at most all) "
        "whose LPIPS to their reconstructions is averaged",
    )
    net: Literal["alex", "vgg", "squeeze"] = Field(
        "alex", description="LPIPS backbone (lpips' net): alex (Zhang et al.'s default), vgg or squeeze"
    )
    resize: Optional[int] = Field(
        None,
        ge=1,
        description="resize images (bilinear) so the shorter side is this many pixels before "
        "LPIPS; null: native size (images smaller than the backbone accepts are then skipped)",
    )


def torchvision_cache_file(net: str) -> Path:
    """Where torchvision keeps the backbone's ImageNet weights once downloaded (nothing is fetched)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILES[net]


def backbone_weights_file(net: str) -> Path:
    """The local backbone weights file ($VAEBENCH_LPIPS_WEIGHTS, else torchvision's cache);
    MetricNotApplicable naming what is missing and how to provide it when there is none."""
    given = os.environ.get(LPIPS_WEIGHTS_ENV)
    if given:
        path = Path(given)
        if not path.is_file():
            raise MetricNotApplicable(
                f"${LPIPS_WEIGHTS_ENV} = {given}: no such file (it should be torchvision's "
                f"ImageNet weights of the {net} backbone)"
            )
        return path
    cached = torchvision_cache_file(net)
    if cached.is_file():
        return cached
    raise MetricNotApplicable(
        f"no {net} backbone weights: ${LPIPS_WEIGHTS_ENV} is not set and torchvision's cache has no {cached} "
        f"(vaebench never downloads them); put torchvision's file {cached.name} on this machine and pass "
        f"--lpips-weights FILE to vaebench run/worker (or set ${LPIPS_WEIGHTS_ENV}), or copy it into {cached.parent}"
    )


@lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_identity(path: Path) -> str:
    """sha256:<first 16 hex digits> of the file's bytes (hashed once per process and file version)."""
    st = path.stat()
    return "sha256:" + _sha256(str(path.resolve()), st.st_size, st.st_mtime_ns)[:16]


@lru_cache(maxsize=2)
def _lpips_module(net: str, path: str, size: int, mtime_ns: int):
    """lpips.LPIPS with its packaged linear layers and the backbone loaded from `path`, in eval mode."""
    import lpips

    with warnings.catch_warnings():  # torchvision's deprecation of `pretrained=`, which lpips passes
        warnings.simplefilter("ignore")
        model = lpips.LPIPS(net=net, version=LPIPS_VERSION, pretrained=True, pnet_rand=True, verbose=False)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        # lpips' backbone holds torchvision's `features[i]` as `slice<k>.<i>` (pretrained_networks.py)
        wanted = model.net.state_dict()
        missing = [k for k in wanted if "features." + k.split(".", 1)[1] not in state]
        if missing:
            raise ValueError(f"no {'features.' + missing[0].split('.', 1)[1]!r} among its keys")
        model.net.load_state_dict({k: state["features." + k.split(".", 1)[1]] for k in wanted}, strict=True)
    except Exception as e:
        raise VaebenchError(
            f"LPIPS: {path} is not torchvision's state_dict of the {net} backbone "
            f"({type(e).__name__}: {str(e)[:300]}); give the file torchvision downloads for "
            f"eval.lpips.net: {net} ({TORCHVISION_FILES[net]})"
        ) from None
    return model.eval().requires_grad_(False)


def lpips_model(net: str, path: Path):
    st = path.stat()
    return _lpips_module(net, str(path.resolve()), st.st_size, st.st_mtime_ns)


def lpips_input(images: torch.Tensor, resize: Optional[int]) -> torch.Tensor:
    """[0, 1] images (N, C, H, W), C in (1, 3) -> LPIPS's input: 3 channels (gray repeated), resized
    if asked, in [-1, 1]."""
    x = images.clamp(0, 1)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if resize is not None:
        h, w = x.shape[-2:]
        scale = resize / min(h, w)
        x = torch.nn.functional.interpolate(
            x, size=(round(h * scale), round(w * scale)), mode="bilinear", align_corners=False
        )
    return x * 2 - 1


@register_metric(
    "lpips",
    options=LpipsOptions,
    columns=[
        Column(
            LPIPS,
            "float",
            "",
            "lower",
            "LPIPS",
            "mean LPIPS (Zhang et al. 2018, lpips package v0.1) of test images and their reconstructions",
        ),
        Column(LPIPS_NET, "str", "", None, "LPIPS backbone", "alex, vgg or squeeze"),
        Column(
            LPIPS_WEIGHTS,
            "str",
            "",
            None,
            "LPIPS backbone weights",
            "sha256:<first 16 hex> of the backbone weights file (torchvision's AlexNet: sha256:7be5be79...)",
        ),
        Column(LPIPS_SAMPLES, "int", "images", None, "LPIPS images", "test images averaged over (the first N)"),
        Column(LPIPS_IMAGE_SIZE, "str", "pixels", None, "LPIPS input size", "HxW of the images fed to the backbone"),
        Column(LPIPS_PACKAGE_VERSION, "str", "", None, "lpips version", "version of the lpips package"),
    ],
)
def lpips_metric(ctx) -> dict:
    """Mean LPIPS (Zhang et al. 2018) between test images and their reconstructions, through the
    `lpips` package; needs the backbone's weights as a local file (never downloaded)."""
    opts: LpipsOptions = ctx.options
    if importlib.util.find_spec("lpips") is None:  # the optional extra (not imported before it is used)
        raise MetricNotApplicable(f"the lpips package is not installed: {INSTALL_HINT}")
    path = backbone_weights_file(opts.net)
    n = min(opts.samples, len(ctx.x))
    if n == 0:
        raise MetricNotApplicable("the test split is empty")
    channels, h, w = ctx.x.shape[1:]
    if channels not in (1, 3):
        raise MetricNotApplicable(f"LPIPS takes grayscale or RGB images, not {channels} channels")
    size = tuple(lpips_input(ctx.x[:1], opts.resize).shape[-2:])
    if min(size) < MIN_SIDE[opts.net]:
        raise MetricNotApplicable(
            f"{size[0]}x{size[1]} images are smaller than the {opts.net} backbone accepts ({MIN_SIDE[opts.net]} px "
            f"a side): {'raise' if opts.resize else 'set'} eval.lpips.resize (LPIPS was calibrated on 64x64 patches)"
            + (" or eval.lpips.net: vgg" if min(size) >= MIN_SIDE["vgg"] else "")
        )
    model = lpips_model(opts.net, path).to(ctx.x.device)
    x, x_hat = ctx.x[:n], ctx.reconstructions[:n]
    values = []
    with torch.inference_mode():
        for start in range(0, n, LPIPS_BATCH):
            a = lpips_input(x[start : start + LPIPS_BATCH], opts.resize)
            b = lpips_input(x_hat[start : start + LPIPS_BATCH], opts.resize)
            values.append(model(a, b).flatten().double().cpu())
    from importlib.metadata import version

    return {
        LPIPS: torch.cat(values).mean().item(),
        LPIPS_NET: opts.net,
        LPIPS_WEIGHTS: weights_identity(path),
        LPIPS_SAMPLES: n,
        LPIPS_IMAGE_SIZE: f"{size[0]}x{size[1]}",
        LPIPS_PACKAGE_VERSION: version("lpips"),
    }
