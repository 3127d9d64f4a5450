"""FID, KID and the classifier-based Inception Score against independent computations."""

import numpy as np
import pytest
import scipy.linalg
import torch
import torch_fidelity

from tests.conftest import DATA_ROOT, needs_mnist
from vaebench.classifier import cached_classifier
from vaebench.data import load_dataset
from vaebench.errors import VaebenchError
from vaebench.metrics import evaluate
from vaebench.metrics import columns as C
from vaebench.metrics.fid import EXTRACTORS, INCEPTION_WEIGHTS_ENV, _module, frechet_distance, to_uint8
from vaebench.models import build_model
from vaebench.objectives import Bernoulli
from vaebench.spec import DatasetConfig, ModelConfig, RunConfig

DIGITS = load_dataset(DatasetConfig(name="digits"))


def scipy_fid(f1: np.ndarray, f2: np.ndarray) -> float:
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_frechet_distance_equals_scipy_sqrtm():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, 16))
    b = rng.normal(loc=0.3, scale=1.2, size=(1500, 16)) @ rng.normal(size=(16, 16)) * 0.3
    ours = frechet_distance(torch.from_numpy(a), torch.from_numpy(b))
    assert ours == pytest.approx(scipy_fid(a, b), rel=1e-3)
    assert frechet_distance(torch.from_numpy(a), torch.from_numpy(a)) == pytest.approx(0, abs=1e-6)


@pytest.fixture(scope="module")
def digits_extractor():
    return EXTRACTORS.get("classifier")(DIGITS, "cpu")


def test_classifier_is_cached_by_content(digits_extractor):
    again = cached_classifier(DIGITS)
    assert str(again.path) == digits_extractor.weights  # trained once, then loaded
    assert again.test_accuracy == digits_extractor.accuracy > 0.9


def test_fid_equals_torch_fidelity_own_computation(digits_extractor):
    class Images(torch.utils.data.Dataset):
        def __init__(self, x):
            self.x = to_uint8(x)

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return self.x[i]

    real, other = DIGITS.x_test[:300], DIGITS.x_train[:300].flip(-1)  # mirrored digits: a real shift
    theirs = torch_fidelity.calculate_metrics(
        input1=Images(other), input2=Images(real), fid=True, cuda=False, verbose=False, cache=False,
        feature_extractor="vaebench-classifier", feature_layer_fid="penultimate",
        feature_extractor_weights_path=digits_extractor.weights, batch_size=100,
    )["frechet_inception_distance"]
    layer = digits_extractor.fid_layer
    ours = frechet_distance(digits_extractor.features(to_uint8(other))[layer],
                            digits_extractor.features(to_uint8(real))[layer])
    assert ours == pytest.approx(theirs, rel=1e-3)


def test_fid_sanity_halves_vs_noise(digits_extractor):
    layer = digits_extractor.fid_layer
    feats = lambda x: digits_extractor.features(to_uint8(x))[layer]  # noqa: E731
    x = DIGITS.x_train[:1400]
    half = frechet_distance(feats(x[:700]), feats(x[700:]))
    itself = frechet_distance(feats(x[:700]), feats(x[:700]))
    noise = frechet_distance(feats(torch.rand(700, 1, 8, 8, generator=torch.Generator().manual_seed(0))), feats(x[:700]))
    assert itself == pytest.approx(0, abs=1e-6)
    assert half < 0.05 * noise


def test_fid_metric_columns_and_settings():
    torch.manual_seed(0)
    cfg = RunConfig.model_validate({"dataset": {"name": "digits"}, "eval": {"fid_samples": 200, "kid": True}})
    model = build_model(ModelConfig(hidden_dim=16, latent_dim=4), (1, 8, 8), Bernoulli())
    m = evaluate(model, DIGITS, cfg, seed=0, names=["fid"])
    assert m[C.FID_SAMPLES] == 200 and m[C.FID_REFERENCE] == "test[:200]"
    assert m[C.FID_FEATURE_LAYER] == "penultimate" and m[C.FID_EXTRACTOR].startswith("vaebench-classifier-")
    assert m[C.TORCH_FIDELITY_VERSION] == torch_fidelity.__version__
    assert m[C.FID] > 0 and m[C.FID_RECON] > 0 and m[C.KID] is not None
    assert 1 <= m[C.IS] <= 10
    assert len(m[C.SAMPLE_CLASS_FREQ]) == 10 and sum(m[C.SAMPLE_CLASS_FREQ]) == pytest.approx(1)
    again = evaluate(model, DIGITS, cfg, seed=0, names=["fid"])
    assert again[C.FID] == m[C.FID]  # seeded: same model, same samples, same number


def test_fid_can_be_switched_off():
    cfg = RunConfig.model_validate({"dataset": {"name": "digits"}, "eval": {"fid_extractor": None}})
    model = build_model(ModelConfig(hidden_dim=16, latent_dim=4), (1, 8, 8), Bernoulli())
    assert evaluate(model, DIGITS, cfg, seed=0, names=["fid"]) == {"eval_seconds_fid": pytest.approx(0, abs=1)}


def test_inception_plumbing_with_a_weights_file_of_the_right_shapes(tmp_path, monkeypatch):
    from torch_fidelity import feature_extractor_inceptionv3 as fe

    # build a randomly initialized Inception-v3 without any download and save its weights
    monkeypatch.setattr(fe, "load_state_dict_from_url", lambda *a, **k: None)
    monkeypatch.setattr(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None)
    skeleton = fe.FeatureExtractorInceptionV3("skeleton", ["2048"])
    monkeypatch.undo()
    weights = tmp_path / "inception.pth"
    torch.save(skeleton.state_dict(), weights)
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(weights))
    _module.cache_clear()
    ext = EXTRACTORS.get("inception")(DIGITS, "cpu")
    feats = ext.features(to_uint8(DIGITS.x_test[:6]))  # grayscale 8x8 -> 3x299x299 inside
    assert feats["2048"].shape == (6, 2048) and feats["logits_unbiased"].shape == (6, 1008)
    assert ext.identity == "inception-v3-compat" and ext.fid_layer == "2048"
    assert torch.isfinite(feats["2048"]).all()


def test_missing_inception_weights_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(tmp_path / "nope.pth"))
    _module.cache_clear()
    with pytest.raises(VaebenchError, match=INCEPTION_WEIGHTS_ENV):
        EXTRACTORS.get("inception")(DIGITS, "cpu")


@needs_mnist
@pytest.mark.mnist
def test_mnist_classifier_reaches_99_percent():
    info = cached_classifier(load_dataset(DatasetConfig(name="mnist"), DATA_ROOT, download=False))
    assert info.test_accuracy >= 0.99
