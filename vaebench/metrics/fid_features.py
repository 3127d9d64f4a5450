"""FID's feature extractors and its reference features (vaebench/metrics/fid.py is the metric).

An `Extractor` names a torch-fidelity feature extractor (vaebench's `classifier` or the
`inception` one, both registered with torch-fidelity in `_fidelity.py`), its weights and the layers
FID and the Inception Score use; its `identity` goes into every row's `fid_extractor` and includes
the SHA-256 of the weights file, so FIDs of differently trained classifiers never share an id. The
reference (the first n test images' features) is cached in this process and on disk
(`$VAEBENCH_CACHE/fid_reference/`), keyed by everything it depends on.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

import torch

from ..errors import VaebenchError
from ..registry import Registry
from ..runtime.cache import cache_dir
from ..runtime.files import atomic_path
from .classifier import cached_classifier

INCEPTION_WEIGHTS_ENV = "VAEBENCH_INCEPTION_WEIGHTS"


def _tf():
    """torch-fidelity, its metric functions and vaebench's extractors registered with it
    (`_fidelity.py`): imported on the first FID computation, not with this module."""
    from . import _fidelity

    return _fidelity


class Extractor:
    """A spec-level extractor: its torch-fidelity name, weights and the layers each metric uses."""

    def __init__(
        self,
        name: str,
        fidelity_name: str,
        weights: str | None,
        fid_layer: str,
        isc_layer: str,
        identity: str,
        accuracy: float | None = None,
        batch_size: int = 64,
    ) -> None:
        self.name, self.fidelity_name, self.weights = name, fidelity_name, weights
        self.fid_layer, self.isc_layer, self.identity, self.accuracy = fid_layer, isc_layer, identity, accuracy
        self.batch_size = batch_size  # images per forward pass (speed and memory only)
        self.module = _module(fidelity_name, weights, (fid_layer, isc_layer))  # (a missing file: a clear error)
        self.weights_sha256 = None if weights is None else _weights_digest(weights)  # None: torch-fidelity's download

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
        return tf.torch_fidelity.utils.create_feature_extractor(
            fidelity_name, list(dict.fromkeys(layers)), cuda=False, **kwargs
        )
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
    """vaebench's classifier for `data`; its identity is vaebench-classifier-<cache key>-<first 16 hex
    digits of its weights file's SHA-256>: the key says how it was trained, the hash which weights
    a training gave (a retrained classifier gives FIDs about 1% apart)."""
    info = cached_classifier(data, device)
    identity = f"vaebench-classifier-{info.key}-{_weights_digest(str(info.path))[:16]}"
    return Extractor(
        "classifier",
        "vaebench-classifier",
        str(info.path),
        "penultimate",
        "logits",
        identity,
        info.test_accuracy,
        batch_size=256,
    )


def _inception(data, device) -> Extractor:
    weights = os.environ.get(INCEPTION_WEIGHTS_ENV) or None
    return Extractor(
        "inception", "vaebench-inception", weights, "2048", "logits_unbiased", "inception-v3-compat", batch_size=64
    )


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
        "format": REFERENCE_FORMAT,
        "extractor": extractor.identity,
        "fidelity_name": extractor.fidelity_name,
        "weights": _weights_digest(extractor.weights),
        "layers": list(extractor.module.features_list),
        "dataset": data.checksum,
        "n": n,
        "reference": f"test[:{n}]",
        "torch": torch.__version__,
        "device": torch.device(device).type,
        "batch_size": extractor.batch_size,
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
                torch.save(
                    {
                        "key": key,
                        "features": {k: _compact(v) for k, v in features.items()},
                        "extractor": extractor.identity,
                        "dataset_checksum": data.checksum,
                        "n": n,
                    },
                    tmp,
                )
    _REFERENCE.clear()
    _REFERENCE[key] = Reference(features, extractor.fid_layer)
    return _REFERENCE[key]
