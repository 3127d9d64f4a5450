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
extracts the features itself so that the test split's statistics are computed once per process.
"""

from __future__ import annotations

import os
from functools import lru_cache

import torch
import torch_fidelity
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from ..classifier import cached_classifier, load_classifier
from ..errors import VaebenchError
from ..registry import Registry
from . import METRICS, columns as C

INCEPTION_WEIGHTS_ENV = "VAEBENCH_INCEPTION_WEIGHTS"


class ClassifierFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity wrapper of a vaebench DigitClassifier checkpoint (uint8 (B, C, H, W) input)."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        if feature_extractor_weights_path is None:
            raise VaebenchError("the classifier feature extractor needs its checkpoint path")
        self.net = load_classifier(feature_extractor_weights_path)
        self.requires_grad_(False)

    @staticmethod
    def get_provided_features_list():
        return ("penultimate", "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": "logits"}.get(metric, "penultimate")

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return None

    def forward(self, x):
        penultimate, logits = self.net.features(x.float() / 255.0)
        by_name = {"penultimate": penultimate, "logits": logits}
        return tuple(by_name[f] for f in self.features_list)


class GrayscaleInception(FeatureExtractorInceptionV3):
    """torch-fidelity's Inception-v3, accepting 1-channel images by repeating them to 3."""

    def forward(self, x):
        return super().forward(x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x)


for _name, _cls in (("vaebench-classifier", ClassifierFeatureExtractor), ("vaebench-inception", GrayscaleInception)):
    if _name not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(_name, _cls)


class Extractor:
    """A spec-level extractor: its torch-fidelity name, weights and the layers each metric uses."""

    def __init__(self, name: str, fidelity_name: str, weights: str | None, fid_layer: str, isc_layer: str,
                 identity: str, accuracy: float | None = None) -> None:
        self.name, self.fidelity_name, self.weights = name, fidelity_name, weights
        self.fid_layer, self.isc_layer, self.identity, self.accuracy = fid_layer, isc_layer, identity, accuracy
        self.module = _module(fidelity_name, weights, (fid_layer, isc_layer))

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch_size: int = 500) -> dict[str, torch.Tensor]:
        """uint8 images (N, C, H, W) -> {layer: (N, F) float64 tensor on the CPU}."""
        out: dict[str, list] = {f: [] for f in self.module.features_list}
        device = next(self.module.parameters()).device
        for i in range(0, len(images), batch_size):
            for name, f in zip(self.module.features_list, self.module(images[i : i + batch_size].to(device))):
                out[name].append(f.double().cpu())
        return {k: torch.cat(v) for k, v in out.items()}


@lru_cache(maxsize=4)
def _module(fidelity_name: str, weights: str | None, layers: tuple[str, ...]):
    kwargs = {"feature_extractor_weights_path": weights, "verbose": False}
    try:
        return torch_fidelity.utils.create_feature_extractor(fidelity_name, list(dict.fromkeys(layers)), cuda=False, **kwargs)
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
                     f"vaebench-classifier-{info.key}", info.test_accuracy)


def _inception(data, device) -> Extractor:
    weights = os.environ.get(INCEPTION_WEIGHTS_ENV) or None
    return Extractor("inception", "vaebench-inception", weights, "2048", "logits_unbiased", "inception-v3-compat")


EXTRACTORS: Registry = Registry("FID feature extractor")
EXTRACTORS.register("classifier", _classifier)
EXTRACTORS.register("inception", _inception)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> uint8 0..255 (rounded), the input torch-fidelity's extractors take."""
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).cpu()


def frechet_distance(f1: torch.Tensor, f2: torch.Tensor) -> float:
    """FID between two feature sets (N, F), through torch-fidelity's statistics and distance."""
    return fid_statistics_to_metric(fid_features_to_statistics(f1), fid_features_to_statistics(f2), False)[KEY_METRIC_FID]


_REFERENCE: dict[tuple, dict[str, torch.Tensor]] = {}


def _reference_features(extractor: Extractor, data, n: int) -> dict[str, torch.Tensor]:
    """Features of the first n test images, cached per (extractor, dataset, n) in this process."""
    key = (extractor.identity, extractor.weights, data.checksum, n)
    if key not in _REFERENCE:
        _REFERENCE.clear()
        _REFERENCE[key] = extractor.features(to_uint8(data.x_test[:n]))
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


@METRICS.register("fid")
def fid(ctx) -> dict:
    """FID of n samples from the prior and of the reconstructions of the first n test images, both
    against the first n test images (n = min(eval.fid_samples, test size)); KID when asked; the
    extractor's Inception Score of the samples and their predicted-class distribution."""
    name = ctx.cfg.eval.fid_extractor
    if name is None:
        return {}
    extractor = EXTRACTORS.get(name)(ctx.data, ctx.x.device)
    n = min(ctx.cfg.eval.fid_samples, len(ctx.x))
    ref = _reference_features(extractor, ctx.data, n)
    gen = extractor.features(to_uint8(_samples(ctx, n)))
    rec = extractor.features(to_uint8(ctx.reconstructions[:n]))
    layer = extractor.fid_layer
    out = {
        C.FID: frechet_distance(gen[layer], ref[layer]),
        C.FID_RECON: frechet_distance(rec[layer], ref[layer]),
        C.FID_EXTRACTOR: extractor.identity,
        C.FID_FEATURE_LAYER: layer,
        C.FID_SAMPLES: n,
        C.FID_REFERENCE: f"test[:{n}]",
        C.TORCH_FIDELITY_VERSION: torch_fidelity.__version__,
        C.CLASSIFIER_ACCURACY: extractor.accuracy,
    }
    isc = isc_features_to_metric(gen[extractor.isc_layer], splits=10)
    out[C.IS] = isc[KEY_METRIC_ISC_MEAN]
    out[C.IS_STD] = isc[KEY_METRIC_ISC_STD]
    classes = gen[extractor.isc_layer].argmax(1)
    out[C.SAMPLE_CLASS_FREQ] = (torch.bincount(classes, minlength=gen[extractor.isc_layer].shape[1]).double() / n).tolist()
    if ctx.cfg.eval.kid:
        subset = min(1000, n)
        kid = kid_features_to_metric(gen[layer], ref[layer], kid_subsets=100, kid_subset_size=subset,
                                     rng_seed=ctx.seed, verbose=False)  # torch-fidelity's default cubic kernel
        out[C.KID] = kid[KEY_METRIC_KID_MEAN]
        out[C.KID_STD] = kid[KEY_METRIC_KID_STD]
    return out

