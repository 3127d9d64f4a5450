"""torch-fidelity and vaebench's two feature extractors registered with it, imported by `fid.py` on
first use only: torch-fidelity brings torchvision (a large import), which loading the metric
declarations (results/rows.py, the spec, the report) must not pay for."""

from __future__ import annotations

import torch_fidelity
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from ..errors import VaebenchError
from .classifier import load_classifier

__all__ = [
    "torch_fidelity",
    "KEY_METRIC_FID",
    "fid_features_to_statistics",
    "fid_statistics_to_metric",
    "KEY_METRIC_ISC_MEAN",
    "KEY_METRIC_ISC_STD",
    "isc_features_to_metric",
    "KEY_METRIC_KID_MEAN",
    "KEY_METRIC_KID_STD",
    "kid_features_to_metric",
    "ClassifierFeatureExtractor",
    "GrayscaleInception",
]


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
        penultimate, logits = self.net.inference_features(x.float() / 255.0)
        by_name = {"penultimate": penultimate, "logits": logits}
        return tuple(by_name[f] for f in self.features_list)


class GrayscaleInception(FeatureExtractorInceptionV3):
    """torch-fidelity's Inception-v3, accepting 1-channel images by repeating them to 3."""

    def forward(self, x):
        return super().forward(x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x)


for _name, _cls in (("vaebench-classifier", ClassifierFeatureExtractor), ("vaebench-inception", GrayscaleInception)):
    if _name not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(_name, _cls)
