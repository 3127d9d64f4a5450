"""FID, KID and the classifier-based Inception Score against independent computations."""

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
import torch_fidelity

from tests.conftest import DATA_ROOT, needs_mnist, plain_uint8, scipy_fid
from vaebench.data import load_dataset
from vaebench.errors import VaebenchError
from vaebench.metrics import column_names as C
from vaebench.metrics import evaluate
from vaebench.metrics.classifier import cached_classifier
from vaebench.metrics.fid_features import EXTRACTORS, INCEPTION_WEIGHTS_ENV, _module, frechet_distance, to_uint8
from vaebench.models import build_model
from vaebench.objectives.likelihoods import Bernoulli
from vaebench.spec.sweep_spec import DatasetConfig, ModelConfig, RunConfig

DIGITS = load_dataset(DatasetConfig(name="digits"))


def numpy_kid(f1: np.ndarray, f2: np.ndarray) -> float:
    """KID of two feature sets of equal size (Binkowski et al. 2018): the unbiased MMD^2 with the
    cubic polynomial kernel k(a, b) = (a.b / d + 1)^3 (diagonals of the within-set sums left out)."""
    m, d = f1.shape
    kxx, kyy, kxy = ((a @ b.T / d + 1) ** 3 for a, b in ((f1, f1), (f2, f2), (f1, f2)))
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2 * kxy.mean())


def scipy_inception_score(logits: np.ndarray, splits: int, order: np.ndarray) -> tuple[float, float]:
    """Inception Score (Salimans et al. 2016) of the rows of `logits` taken in `order`, in `splits`
    consecutive chunks: exp(mean_i KL(p(y|x_i) || p(y))) per chunk, p(y) the chunk's mean; (mean,
    population std) over the chunks. Softmax and KL from scipy."""
    p = scipy.special.softmax(logits[order].astype(np.float64), axis=1)
    n = len(p)
    scores = []
    for i in range(splits):
        chunk = p[i * n // splits : (i + 1) * n // splits]
        kl = scipy.stats.entropy(chunk, np.broadcast_to(chunk.mean(0), chunk.shape), axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


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


def test_classifier_identity_includes_the_sha256_of_its_weights(digits_extractor, tmp_path, monkeypatch):
    """Two classifiers trained with the same settings but with different weights (a retraining)
    never share an `fid_extractor` id: the id ends with the weights file's SHA-256 prefix."""
    import dataclasses
    import hashlib
    from pathlib import Path

    from vaebench.metrics import fid_features

    digest = hashlib.sha256(Path(digits_extractor.weights).read_bytes()).hexdigest()
    assert digits_extractor.weights_sha256 == digest
    assert digits_extractor.identity == f"vaebench-classifier-{cached_classifier(DIGITS).key}-{digest[:16]}"
    checkpoint = torch.load(digits_extractor.weights, weights_only=False)
    first = next(iter(checkpoint["state_dict"]))
    checkpoint["state_dict"][first] = checkpoint["state_dict"][first] + 1e-3  # "retrained": other weights
    other = tmp_path / "retrained.pt"
    torch.save(checkpoint, other)
    info = dataclasses.replace(cached_classifier(DIGITS), path=other)
    monkeypatch.setattr(fid_features, "cached_classifier", lambda data, device=None: info)
    retrained = fid_features._classifier(DIGITS, "cpu")
    assert retrained.identity.startswith(f"vaebench-classifier-{info.key}-")  # same training settings
    assert retrained.identity != digits_extractor.identity  # different weights: another id
    assert retrained.weights_sha256 == hashlib.sha256(other.read_bytes()).hexdigest()


def test_a_retraining_reproduces_the_classifier_file_byte_for_byte(digits_extractor):
    """The checkpoint is a function of the weights alone, and training runs on a fixed thread count:
    retraining (here under another process thread setting) writes the same bytes, so the FID
    extractor id (which hashes them) is reproducible wherever the same torch build runs."""
    import hashlib
    from pathlib import Path

    from vaebench.metrics import classifier as clf

    threads = torch.get_num_threads()
    torch.set_num_threads(2 if threads == 1 else 1)
    try:
        model, acc = clf.train_classifier(DIGITS, "cpu")
    finally:
        torch.set_num_threads(threads)
    assert torch.get_num_threads() == threads  # training restored the process's setting
    saved = torch.load(digits_extractor.weights, weights_only=True)
    again = clf.checkpoint_bytes(model, saved["info"])
    assert acc == saved["info"]["test_accuracy"]
    assert hashlib.sha256(again).hexdigest() == digits_extractor.weights_sha256
    assert "train_seconds" not in saved["info"]  # times go in the .json beside it
    assert Path(digits_extractor.weights).with_suffix(".json").is_file()


def test_classifier_is_cached_by_content(digits_extractor):
    again = cached_classifier(DIGITS)
    assert str(again.path) == digits_extractor.weights  # trained once, then loaded
    assert again.test_accuracy == digits_extractor.accuracy > 0.9
    # the recorded accuracy is the loaded weights' accuracy on the test split
    with torch.no_grad():
        logits = digits_extractor.module.net.features(DIGITS.x_test)[1]
    correct = (logits.argmax(1).numpy() == DIGITS.y_test.numpy()).sum()
    assert again.test_accuracy == correct / len(DIGITS.y_test)


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
        input1=Images(other),
        input2=Images(real),
        fid=True,
        cuda=False,
        verbose=False,
        cache=False,
        feature_extractor="vaebench-classifier",
        feature_layer_fid="penultimate",
        feature_extractor_weights_path=digits_extractor.weights,
        batch_size=100,
    )["frechet_inception_distance"]
    layer = digits_extractor.fid_layer
    ours = frechet_distance(
        digits_extractor.features(to_uint8(other))[layer], digits_extractor.features(to_uint8(real))[layer]
    )
    assert ours == pytest.approx(theirs, rel=1e-3)


def test_fid_sanity_halves_vs_noise(digits_extractor):
    layer = digits_extractor.fid_layer
    feats = lambda x: digits_extractor.features(to_uint8(x))[layer]  # noqa: E731
    x = DIGITS.x_train[:1400]
    half = frechet_distance(feats(x[:700]), feats(x[700:]))
    itself = frechet_distance(feats(x[:700]), feats(x[:700]))
    noise = frechet_distance(
        feats(torch.rand(700, 1, 8, 8, generator=torch.Generator().manual_seed(0))), feats(x[:700])
    )
    assert itself == pytest.approx(0, abs=1e-6)
    assert half < 0.05 * noise


def test_fid_metric_columns_and_settings(digits_extractor):
    torch.manual_seed(0)
    cfg = RunConfig.model_validate({"dataset": {"name": "digits"}, "eval": {"fid_samples": 200, "kid": True}})
    model = build_model(ModelConfig(hidden_dim=16, latent_dim=4), (1, 8, 8), Bernoulli())
    m = evaluate(model, DIGITS, cfg, seed=0, names=["fid"])
    assert m[C.FID_SAMPLES] == 200 and m[C.FID_REFERENCE] == "test[:200]"
    assert m[C.FID_FEATURE_LAYER] == "penultimate" and m[C.FID_EXTRACTOR].startswith("vaebench-classifier-")
    assert m[C.FID_EXTRACTOR].endswith(m[C.FID_WEIGHTS_SHA256][:16])
    assert m[C.TORCH_FIDELITY_VERSION] == torch_fidelity.__version__
    assert m[C.CLASSIFIER_ACCURACY] == digits_extractor.accuracy
    # every value recomputed from the extractor's features of the same images: the first 200 test
    # images, their reconstructions sigmoid(decode(mu(x))), and 200 samples decoded from z drawn
    # from a generator seeded with the run seed (one batch: eval.batch_size >= 200)
    n = 200
    assert cfg.eval.batch_size >= n
    real = DIGITS.x_test[:n]
    with torch.no_grad():
        recon = torch.sigmoid(model.decode(model.encode(real)[0]))
        samples = torch.sigmoid(model.decode(torch.randn(n, 4, generator=torch.Generator().manual_seed(0))))

    def feats(x):
        return {k: v.numpy() for k, v in digits_extractor.features(plain_uint8(x)).items()}

    ref, rec, gen = feats(real), feats(recon), feats(samples)
    assert m[C.FID] == pytest.approx(scipy_fid(gen["penultimate"], ref["penultimate"]), rel=1e-4)
    assert m[C.FID_RECON] == pytest.approx(scipy_fid(rec["penultimate"], ref["penultimate"]), rel=1e-4)
    assert m[C.FID] > 1 and m[C.FID_RECON] > 1  # an untrained decoder: noise, far from digits
    # KID: 100 subsets of size min(1000, n) = n, i.e. 100 orderings of the same two sets: one value
    assert m[C.KID] == pytest.approx(numpy_kid(gen["penultimate"], ref["penultimate"]), rel=1e-6)
    assert m[C.KID_STD] == pytest.approx(0, abs=1e-9 * abs(m[C.KID]))
    # IS over 10 splits of the samples after torch-fidelity's shuffle (its default rng_seed 2020)
    order = np.random.RandomState(2020).permutation(n)
    is_mean, is_std = scipy_inception_score(gen["logits"], 10, order)
    assert m[C.IS] == pytest.approx(is_mean, rel=1e-9) and m[C.IS_STD] == pytest.approx(is_std, rel=1e-6)
    classes = np.bincount(gen["logits"].argmax(1), minlength=10) / n
    assert m[C.SAMPLE_CLASS_FREQ] == pytest.approx(classes.tolist(), abs=1e-15)
    again = evaluate(model, DIGITS, cfg, seed=0, names=["fid"])
    assert again[C.FID] == m[C.FID]  # seeded: same model, same samples, same number


class _Identity(torch.nn.Module):
    """A stand-in VAE whose reconstructions are the inputs (mu(x) = logit(x), decode = reshape, so
    sigmoid(decode(mu(x))) rounds to x's bytes) and whose samples are training images drawn with
    the generator it is given: real digits of every class, not the reference images."""

    conditional, can_sample = False, True

    def __init__(self):
        super().__init__()
        self.likelihood = Bernoulli()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def encode(self, x, y=None):
        mu = torch.logit(x.clamp(1e-6, 1 - 1e-6)).flatten(1)
        return mu, torch.zeros_like(mu)

    def decode(self, z, y=None):
        return z.view(len(z), 1, 8, 8)

    def sample(self, n, y=None, generator=None):
        return DIGITS.x_train[torch.randint(len(DIGITS.x_train), (n,), generator=generator)]


def test_fid_is_zero_for_the_reference_itself_and_the_scores_of_real_digits(digits_extractor):
    n = 300
    cfg = RunConfig.model_validate({"dataset": {"name": "digits"}, "eval": {"fid_samples": n, "kid": True}})
    m = evaluate(_Identity(), DIGITS, cfg, seed=0, names=["fid"])
    assert m[C.FID_RECON] == pytest.approx(0, abs=1e-6)  # the reconstructions are the reference images
    samples = _Identity().sample(n, generator=torch.Generator().manual_seed(0))  # one batch: eval.batch_size >= n
    gen = {k: v.numpy() for k, v in digits_extractor.features(plain_uint8(samples)).items()}
    ref = digits_extractor.features(plain_uint8(DIGITS.x_test[:n]))["penultimate"].numpy()
    assert m[C.FID] == pytest.approx(scipy_fid(gen["penultimate"], ref), rel=1e-6)
    assert m[C.KID] == pytest.approx(numpy_kid(gen["penultimate"], ref), rel=1e-6)
    # other digits of the same distribution: a small FID, and the classifier sees every class
    noise = digits_extractor.features(plain_uint8(torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(1))))
    assert 0 < m[C.FID] < 0.1 * scipy_fid(noise["penultimate"].numpy(), ref)
    is_mean, is_std = scipy_inception_score(gen["logits"], 10, np.random.RandomState(2020).permutation(n))
    assert m[C.IS] == pytest.approx(is_mean, rel=1e-9) and m[C.IS_STD] == pytest.approx(is_std, rel=1e-6)
    assert m[C.IS] > 5  # confident and diverse predictions
    classes = np.bincount(gen["logits"].argmax(1), minlength=10) / n
    assert m[C.SAMPLE_CLASS_FREQ] == pytest.approx(classes.tolist(), abs=1e-15) and (classes > 0.05).all()


def test_fid_can_be_switched_off():
    cfg = RunConfig.model_validate({"dataset": {"name": "digits"}, "eval": {"fid_extractor": None}})
    model = build_model(ModelConfig(hidden_dim=16, latent_dim=4), (1, 8, 8), Bernoulli())
    out = evaluate(model, DIGITS, cfg, seed=0, names=["fid"])
    assert out.pop("eval_seconds_fid") == pytest.approx(0, abs=1)
    assert out.pop("metrics_skipped") == ["fid: switched off (eval.fid_extractor: null)"]
    assert out and all(v is None for v in out.values()) and C.FID in out  # every FID column, null


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
@pytest.mark.slow
def test_mnist_classifier_reaches_99_percent():
    info = cached_classifier(load_dataset(DatasetConfig(name="mnist"), DATA_ROOT, download=False))
    assert info.test_accuracy >= 0.99


# ---------------------------------------------------------------------------------------------
# the fast feature pass and the reference cache


def _reference_digits_like(shape, seed=0):
    """uint8-quantized images in [0, 1] (what the extractor sees), mostly dark like digits."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(shape, generator=g) ** 3 * 255).round() / 255
    return x


@pytest.mark.parametrize("shape", [(300, 1, 28, 28), (64, 1, 8, 8), (50, 1, 10, 12), (40, 3, 13, 15), (20, 1, 3, 5)])
def test_inference_features_equal_the_training_definition(shape):
    """The FID pass (pool before ReLU, strided-view max pooling, channels_last, no dropout, no
    identity pooling) computes DigitClassifier.features in eval mode, on every input size."""
    from vaebench.metrics.classifier import DigitClassifier

    torch.manual_seed(0)
    net = DigitClassifier(shape[1], 10).eval()
    x = _reference_digits_like(shape)
    with torch.no_grad():
        pen, logits = net.features(x)
    fast_pen, fast_logits = net.inference_features(x)
    assert torch.allclose(fast_pen, pen, rtol=1e-5, atol=1e-5)
    assert torch.allclose(fast_logits, logits, rtol=1e-5, atol=1e-5)
    assert (fast_pen > 0).any() and (fast_pen == 0).any()  # the ReLU is exercised both ways
    net.train()  # in training mode it is the training definition itself (dropout on)
    torch.manual_seed(1)
    a = net.inference_features(x)[0]
    torch.manual_seed(1)
    assert torch.equal(a, net.features(x)[0])


def test_inference_features_of_the_trained_digits_classifier(digits_extractor):
    net = digits_extractor.module.net
    x = DIGITS.x_test[:500]
    with torch.no_grad():
        pen, logits = net.features(x)
    fast_pen, fast_logits = net.inference_features(x)
    assert torch.allclose(fast_pen, pen, rtol=1e-5, atol=1e-5) and torch.equal(fast_logits.argmax(1), logits.argmax(1))


def test_strided_max_pool_is_max_pool2d():
    from vaebench.metrics.classifier import _max_pool2

    g = torch.Generator().manual_seed(0)
    for shape in [(3, 16, 28, 28), (2, 64, 14, 14), (2, 5, 6, 4), (2, 4, 7, 9)]:  # even and odd sides
        h = torch.randn(shape, generator=g)
        h[0, 0, 0, 1] = float("nan")
        for t in (h, h.contiguous(memory_format=torch.channels_last)):
            ours, theirs = _max_pool2(t), torch.nn.functional.max_pool2d(t, 2)
            assert torch.equal(ours.isnan(), theirs.isnan())
            assert torch.equal(ours.nan_to_num(), theirs.nan_to_num())


def test_to_uint8_rounds_like_the_plain_formula():
    x = torch.cat([torch.rand(20000), torch.tensor([-0.5, 0.0, 1 / 510, 0.5, 1.0, 1.5, 254.5 / 255, 0.5 / 255])])
    assert torch.equal(to_uint8(x), (x.clamp(0, 1) * 255).round().to(torch.uint8))


def _fid_cfg(n=300, kid=True):
    return RunConfig.model_validate({"dataset": {"name": "digits"}, "eval": {"fid_samples": n, "kid": kid}})


def _digits_model():
    torch.manual_seed(0)
    return build_model(ModelConfig(hidden_dim=16, latent_dim=4), (1, 8, 8), Bernoulli())


def test_reference_cache_gives_the_fids_of_a_fresh_computation(digits_extractor, monkeypatch):
    from vaebench.metrics import fid as fid_module
    from vaebench.metrics import fid_features

    model, cfg = _digits_model(), _fid_cfg()
    keys = (C.FID, C.FID_RECON, C.KID, C.KID_STD, C.IS, C.IS_STD, C.SAMPLE_CLASS_FREQ)
    # uncached: no memory entry, no disk file, and the reference computed the way the metric
    # computed it before the cache existed (features of the first n test images, then
    # torch-fidelity's statistics from those features on every call)
    fid_features._REFERENCE.clear()
    path = fid_features.reference_path(fid_features.reference_key(digits_extractor, DIGITS, 300, torch.device("cpu")))
    path.unlink(missing_ok=True)
    monkeypatch.setattr(
        fid_module,
        "reference",
        lambda ext, data, n: fid_features.Reference(ext.features(to_uint8(data.x_test[:n])), ext.fid_layer),
    )
    fresh = evaluate(model, DIGITS, cfg, seed=0, names=["fid"])
    assert not path.exists()
    monkeypatch.undo()
    # cached: computed once and written to disk, then served from memory, then from disk
    first = evaluate(model, DIGITS, cfg, seed=0, names=["fid"])
    assert path.is_file()
    from_memory = evaluate(model, DIGITS, cfg, seed=0, names=["fid"])
    calls = []
    real = fid_features.Extractor.features
    monkeypatch.setattr(
        fid_features.Extractor, "features", lambda self, x, *a, **k: (calls.append(len(x)), real(self, x, *a, **k))[1]
    )
    fid_features._REFERENCE.clear()
    from_disk = evaluate(model, DIGITS, cfg, seed=0, names=["fid"])
    assert calls == [300, 300]  # samples and reconstructions only: the reference came from disk
    for k in keys:
        assert fresh[k] == first[k] == from_memory[k] == from_disk[k], k


def test_reference_key_covers_what_the_features_depend_on(digits_extractor, tmp_path):
    from vaebench.data import Dataset
    from vaebench.metrics import fid_features

    cpu = torch.device("cpu")
    key = fid_features.reference_key(digits_extractor, DIGITS, 300, cpu)
    assert key == fid_features.reference_key(digits_extractor, DIGITS, 300, cpu)
    assert key != fid_features.reference_key(digits_extractor, DIGITS, 299, cpu)
    other = Dataset("digits", DIGITS.x_train, DIGITS.y_train, DIGITS.x_test.flip(-1), DIGITS.y_test)
    assert other.checksum != DIGITS.checksum
    assert key != fid_features.reference_key(digits_extractor, other, 300, cpu)
    # the weights file's content, not its name
    ckpt = torch.load(digits_extractor.weights, weights_only=True)
    ckpt["state_dict"]["fc2.bias"] = ckpt["state_dict"]["fc2.bias"] + 1
    changed = tmp_path / "classifier.pt"
    torch.save(ckpt, changed)
    ext2 = fid_features.Extractor(
        "classifier",
        "vaebench-classifier",
        str(changed),
        "penultimate",
        "logits",
        digits_extractor.identity,
        batch_size=digits_extractor.batch_size,
    )
    assert key != fid_features.reference_key(ext2, DIGITS, 300, cpu)


def test_a_damaged_reference_file_is_recomputed(digits_extractor):
    from vaebench.metrics import fid as fid_module
    from vaebench.metrics import fid_features

    fid_features._REFERENCE.clear()
    ref = fid_module.reference(digits_extractor, DIGITS, 123)
    path = fid_features.reference_path(fid_features.reference_key(digits_extractor, DIGITS, 123, torch.device("cpu")))
    path.write_bytes(b"not a torch file")
    fid_features._REFERENCE.clear()
    again = fid_module.reference(digits_extractor, DIGITS, 123)
    for layer in ref.features:
        assert torch.equal(again.features[layer], ref.features[layer]) and again.features[layer].dtype == torch.float64
    assert torch.load(path, weights_only=True)["key"] == path.stem  # rewritten


def test_frechet_distance_accepts_reference_statistics():
    from torch_fidelity.metric_fid import fid_features_to_statistics

    rng = np.random.default_rng(3)
    a, b = torch.from_numpy(rng.normal(size=(500, 8))), torch.from_numpy(rng.normal(0.2, 1.1, size=(400, 8)))
    assert frechet_distance(a, fid_features_to_statistics(b)) == frechet_distance(a, b)
