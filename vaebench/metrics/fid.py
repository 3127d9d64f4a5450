"""Sample quality through torch-fidelity: FID (samples and reconstructions vs the test split),
optional KID, and the classifier-based Inception Score with the class distribution of samples.

Two feature extractors, both registered with torch-fidelity:

- `classifier` (torch-fidelity name `vaebench-classifier`): vaebench's small CNN trained on the
  dataset's training split (vaebench/classifier.py); FID and KID on its 128-d penultimate layer,
  the Inception Score on its logits. Works offline.
- `inception` (`vaebench-inception`): torch-fidelity's Inception-v3 (FID on the 2048-d pool
  features, IS on `logits_unbiased`), grayscale repeated to 3 channels, uint8 input. Weights from
  $VAEBENCH_INCEPTION_WEIGHTS (or `vaebench run --inception-weights`), else torch-fidelity's download.

Statistics and distances are torch-fidelity's own functions (`fid_features_to_statistics`,
`fid_statistics_to_metric`, `kid_features_to_metric`, `isc_features_to_metric`); vaebench only
extracts the features itself, so that the reference (the first n test images) is computed once:
its features are cached in this process and on disk (`$VAEBENCH_CACHE/fid_reference/`), keyed by
everything they depend on (extractor, weights file content, layers, dataset checksum, n, torch
version, device type, batch size), and its FID statistics once per process. Each evaluation then
extracts features only for its samples and reconstructions.

Speed: the classifier's features go through `DigitClassifier.inference_features` (the same
function as its `features`, reordered where that is exact, channels_last) in batches of 256 under
`torch.inference_mode`.

Imports: torch-fidelity (and torchvision with it) and the extractor classes live in `_fidelity.py`,
imported on the first FID computation: loading the metric declarations does not pay for them.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

import torch

from ..cache import cache_dir
from ..classifier import cached_classifier
from ..errors import VaebenchError
from ..registry import Registry
from ..runtime import atomic_path
from . import Column, MetricNotApplicable, register_metric, columns as C

try:
    from threadpoolctl import threadpool_limits  # installed with scikit-learn
except ImportError:  # pragma: no cover
    threadpool_limits = None

INCEPTION_WEIGHTS_ENV = "VAEBENCH_INCEPTION_WEIGHTS"


def _tf():
    """torch-fidelity, its metric functions and vaebench's extractors registered with it
    (`_fidelity.py`): imported on the first FID computation, not with this module."""
    from . import _fidelity

    return _fidelity


def __getattr__(name: str):
    if name in ("ClassifierFeatureExtractor", "GrayscaleInception"):  # the extractor classes, imported on use
        return getattr(_tf(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Extractor:
    """A spec-level extractor: its torch-fidelity name, weights and the layers each metric uses."""

    def __init__(self, name: str, fidelity_name: str, weights: str | None, fid_layer: str, isc_layer: str,
                 identity: str, accuracy: float | None = None, batch_size: int = 64) -> None:
        self.name, self.fidelity_name, self.weights = name, fidelity_name, weights
        self.fid_layer, self.isc_layer, self.identity, self.accuracy = fid_layer, isc_layer, identity, accuracy
        self.batch_size = batch_size  # images per forward pass (speed and memory only)
        self.module = _module(fidelity_name, weights, (fid_layer, isc_layer))

    @torch.inference_mode()
    def features(self, images: torch.Tensor, batch_size: int | None = None) -> dict[str, torch.Tensor]:
        """uint8 images (N, C, H, W) -> {layer: (N, F) float64 tensor on the CPU}."""
        batch_size = batch_size or self.batch_size
        out: dict[str, list] = {f: [] for f in self.module.features_list}
        device = next(self.module.parameters()).device
        for i in range(0, len(images), batch_size):
            for name, f in zip(self.module.features_list, self.module(images[i : i + batch_size].to(device))):
                out[name].append(f.double().cpu())
        return {k: torch.cat(v) for k, v in out.items()}


@lru_cache(maxsize=4)
def _module(fidelity_name: str, weights: str | None, layers: tuple[str, ...]):
    kwargs = {"feature_extractor_weights_path": weights, "verbose": False}
    tf = _tf()
    try:
        return tf.torch_fidelity.utils.create_feature_extractor(fidelity_name, list(dict.fromkeys(layers)), cuda=False, **kwargs)
    except VaebenchError:
        raise
    except Exception as e:  # no weights and no network, a bad weights file
        raise VaebenchError(
            f"cannot load the {fidelity_name} feature extractor ({type(e).__name__}: {str(e)[:200]}). "
            f"For Inception FID put torch-fidelity's weights file (weights-inception-2015-12-05-6726825d.pth) "
            f"on this machine and set ${INCEPTION_WEIGHTS_ENV} (or --inception-weights) to its path, or use "
            f"eval.fid_extractor: classifier"
        ) from None


def _classifier(data, device) -> Extractor:
    info = cached_classifier(data, device)
    return Extractor("classifier", "vaebench-classifier", str(info.path), "penultimate", "logits",
                     f"vaebench-classifier-{info.key}", info.test_accuracy, batch_size=256)


def _inception(data, device) -> Extractor:
    weights = os.environ.get(INCEPTION_WEIGHTS_ENV) or None
    return Extractor("inception", "vaebench-inception", weights, "2048", "logits_unbiased", "inception-v3-compat",
                     batch_size=64)


EXTRACTORS: Registry = Registry("FID feature extractor")
EXTRACTORS.register("classifier", _classifier)
EXTRACTORS.register("inception", _inception)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> uint8 0..255 (rounded), the input torch-fidelity's extractors take."""
    with torch.inference_mode():  # (clamp(0, 1) * 255).round(), in place on clamp's copy: same bytes, no extra copies
        return images.clamp(0, 1).mul_(255).round_().to(torch.uint8).cpu()


def frechet_distance(f1: torch.Tensor, f2: torch.Tensor | dict) -> float:
    """FID between two feature sets (N, F), through torch-fidelity's statistics and distance.
    `f2` may also be statistics already computed by `fid_features_to_statistics`."""
    tf = _tf()
    s2 = f2 if isinstance(f2, dict) else tf.fid_features_to_statistics(f2)
    return tf.fid_statistics_to_metric(tf.fid_features_to_statistics(f1), s2, False)[tf.KEY_METRIC_FID]


# ---------------------------------------------------------------------------------------------
# the reference: features of the first n test images, computed once


REFERENCE_FORMAT = 1  # bump when the way reference features are computed changes: old files are then never read


class Reference:
    """Features of the reference images ({layer: (n, F) float64}) and, computed once, the FID
    statistics (torch-fidelity's `fid_features_to_statistics`) of its FID layer."""

    def __init__(self, features: dict[str, torch.Tensor], fid_layer: str) -> None:
        self.features, self.fid_layer = features, fid_layer
        self._stats = None

    @property
    def fid_statistics(self) -> dict:
        if self._stats is None:
            self._stats = _tf().fid_features_to_statistics(self.features[self.fid_layer])
        return self._stats


_REFERENCE: dict[str, Reference] = {}  # this process: the last reference used
_WEIGHTS_DIGEST: dict[tuple, str] = {}


def _weights_digest(path: str | None) -> str:
    """SHA-256 of a weights file's content (memoized per path, size and mtime); 'default' for
    torch-fidelity's own download (a fixed, versioned file)."""
    if path is None:
        return "default"
    stat = os.stat(path)
    memo = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    if memo not in _WEIGHTS_DIGEST:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _WEIGHTS_DIGEST[memo] = h.hexdigest()
    return _WEIGHTS_DIGEST[memo]


def reference_key(extractor: Extractor, data, n: int, device: torch.device) -> str:
    """The cache key of the reference features: a hash of everything they depend on. The torch
    version, device type and batch size are in it because float32 convolutions may round
    differently across them; a cached file is thus bit-identical to a fresh computation."""
    parts = {
        "format": REFERENCE_FORMAT, "extractor": extractor.identity, "fidelity_name": extractor.fidelity_name,
        "weights": _weights_digest(extractor.weights), "layers": list(extractor.module.features_list),
        "dataset": data.checksum, "n": n, "reference": f"test[:{n}]", "torch": torch.__version__,
        "device": torch.device(device).type, "batch_size": extractor.batch_size,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def reference_path(key: str) -> Path:
    return cache_dir() / "fid_reference" / f"{key}.pt"


def _compact(t: torch.Tensor) -> torch.Tensor:
    """float32 when that is lossless (features of float32 networks), else as is."""
    f = t.float()
    return f if torch.equal(f.double(), t) else t


def reference(extractor: Extractor, data, n: int, use_disk: bool = True) -> Reference:
    """The reference of FID: the first n test images' features, from this process's memory, else
    the disk cache, else computed (and then written to the disk cache atomically)."""
    device = next(extractor.module.parameters()).device
    key = reference_key(extractor, data, n, device)
    if key in _REFERENCE:
        return _REFERENCE[key]
    path = reference_path(key)
    features = None
    if use_disk and path.is_file():
        try:
            saved = torch.load(path, weights_only=True)
            if saved.get("key") == key:
                features = {k: v.double() for k, v in saved["features"].items()}
        except Exception:  # a damaged file: recompute and overwrite it
            features = None
    if features is None:
        features = extractor.features(to_uint8(data.x_test[:n]))
        if use_disk:
            with atomic_path(path) as tmp:
                torch.save({"key": key, "features": {k: _compact(v) for k, v in features.items()},
                            "extractor": extractor.identity, "dataset_checksum": data.checksum, "n": n}, tmp)
    _REFERENCE.clear()
    _REFERENCE[key] = Reference(features, extractor.fid_layer)
    return _REFERENCE[key]


@torch.no_grad()
def _samples(ctx, n: int) -> torch.Tensor:
    """n images from the prior (conditional models: the reference images' labels), seeded."""
    g = torch.Generator(device=ctx.x.device).manual_seed(ctx.seed)
    labels = ctx.y[:n] if ctx.model.conditional else None
    return torch.cat([
        ctx.model.sample(len(idx), None if labels is None else labels[idx], generator=g)
        for idx in torch.arange(n, device=ctx.x.device).split(ctx.batch_size)
    ])


def _blas_threads():
    """NumPy's BLAS (torch-fidelity's covariances and eigenvalues) limited to torch's thread count:
    a 1-thread worker otherwise runs np.cov on every core, competing with the other workers."""
    if threadpool_limits is None:  # pragma: no cover
        import contextlib
        return contextlib.nullcontext()
    return threadpool_limits(limits=torch.get_num_threads(), user_api="blas")


@register_metric("fid", columns=[
    Column(C.FID, "float", "", "lower", "FID samples",
           "Fréchet distance of samples from the prior to test images, on fid_extractor's features"),
    Column(C.FID_RECON, "float", "", "lower", "FID recon",
           "Fréchet distance of reconstructions of test images to test images, on the same features"),
    Column(C.FID_EXTRACTOR, "str", "", None, "FID features",
           "the feature extractor, e.g. vaebench-classifier-<hash> or inception-v3-compat"),
    Column(C.FID_FEATURE_LAYER, "str", "", None, "FID layer",
           "penultimate (classifier, 128-d) or 2048 (Inception pool)"),
    Column(C.FID_SAMPLES, "int", "images", None, "FID images", "images on each side"),
    Column(C.FID_REFERENCE, "str", "", None, "FID reference", "which real images: test[:n]"),
    Column(C.TORCH_FIDELITY_VERSION, "str", "", None, "torch-fidelity version", "torch-fidelity's version"),
    Column(C.CLASSIFIER_ACCURACY, "float", "", None, "Classifier accuracy",
           "test accuracy of the classifier extractor, in [0, 1] (null for inception)"),
    Column(C.KID, "float", "", "lower", "KID",
           "kernel inception distance (torch-fidelity, cubic polynomial kernel, 100 subsets); eval.kid only"),
    Column(C.KID_STD, "float", "", None, "KID std", "standard deviation of KID over the subsets"),
    Column(C.IS, "float", "", "higher", "IS",
           "Inception Score of the samples with the extractor's classifier (10 splits)"),
    Column(C.IS_STD, "float", "", None, "IS std", "standard deviation of the Inception Score over the splits"),
    Column(C.SAMPLE_CLASS_FREQ, "list[float]", "fraction", None, "Sample class frequencies",
           "fraction of samples the extractor's classifier assigns to each class"),
])
def fid(ctx) -> dict:
    """FID of n samples from the prior and of the reconstructions of the first n test images, both
    against the first n test images (n = min(eval.fid_samples, test size)); KID when asked; the
    extractor's Inception Score of the samples and their predicted-class distribution. Not
    applicable when eval.fid_extractor is null, nor with the classifier extractor on a dataset
    without class labels. For a model that cannot sample (`can_sample = False`) only the FID of
    reconstructions is computed: the sample columns (fid, kid, is_score, sample_class_freq) stay
    null and `metrics_skipped` says "fid (samples): <reason>"."""
    name = ctx.cfg.eval.fid_extractor
    if name is None:
        raise MetricNotApplicable("switched off (eval.fid_extractor: null)")
    if name == "classifier" and not getattr(ctx.data, "labeled", True):
        raise MetricNotApplicable(f"the classifier feature extractor is trained on class labels and dataset "
                                  f"{getattr(ctx.data, 'name', '?')!r} has none: use fid_extractor: inception")
    with _blas_threads():
        return _fid(ctx, name)


def _fid(ctx, name: str) -> dict:
    tf = _tf()
    extractor = EXTRACTORS.get(name)(ctx.data, ctx.x.device)
    n = min(ctx.cfg.eval.fid_samples, len(ctx.x))
    ref = reference(extractor, ctx.data, n)
    rec = extractor.features(to_uint8(ctx.reconstructions[:n]))
    layer = extractor.fid_layer
    out = {
        C.FID_RECON: frechet_distance(rec[layer], ref.fid_statistics),
        C.FID_EXTRACTOR: extractor.identity,
        C.FID_FEATURE_LAYER: layer,
        C.FID_SAMPLES: n,
        C.FID_REFERENCE: f"test[:{n}]",
        C.TORCH_FIDELITY_VERSION: tf.torch_fidelity.__version__,
        C.CLASSIFIER_ACCURACY: extractor.accuracy,
    }
    if not getattr(ctx.model, "can_sample", True):
        ctx.skip("samples", f"{type(ctx.model).__name__} has no prior to sample images from (can_sample = False): "
                 "fid, kid, is_score and sample_class_freq are null")
        return out
    gen = extractor.features(to_uint8(_samples(ctx, n)))
    out[C.FID] = frechet_distance(gen[layer], ref.fid_statistics)
    isc = tf.isc_features_to_metric(gen[extractor.isc_layer], splits=10)
    out[C.IS] = isc[tf.KEY_METRIC_ISC_MEAN]
    out[C.IS_STD] = isc[tf.KEY_METRIC_ISC_STD]
    classes = gen[extractor.isc_layer].argmax(1)
    out[C.SAMPLE_CLASS_FREQ] = (torch.bincount(classes, minlength=gen[extractor.isc_layer].shape[1]).double() / n).tolist()
    if ctx.cfg.eval.kid:
        subset = min(1000, n)
        kid = tf.kid_features_to_metric(gen[layer], ref.features[layer], kid_subsets=100, kid_subset_size=subset,
                                     rng_seed=ctx.seed, verbose=False)  # torch-fidelity's default cubic kernel
        out[C.KID] = kid[tf.KEY_METRIC_KID_MEAN]
        out[C.KID_STD] = kid[tf.KEY_METRIC_KID_STD]
    return out

