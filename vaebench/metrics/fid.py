"""Sample quality through torch-fidelity: FID (samples and reconstructions vs the test split),
optional KID, and the classifier-based Inception Score with the class distribution of samples.

Two feature extractors, both registered with torch-fidelity:

- `classifier` (torch-fidelity name `vaebench-classifier`): vaebench's small CNN trained on the
  dataset's training split (metrics/classifier.py); FID and KID on its 128-d penultimate layer,
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

import torch

from . import column_names as C
from .declarations import Column, MetricNotApplicable, eval_settings, register_metric
from .fid_features import EXTRACTORS, _tf, frechet_distance, reference, to_uint8

try:
    from threadpoolctl import threadpool_limits  # installed with scikit-learn
except ImportError:  # pragma: no cover
    threadpool_limits = None


@torch.no_grad()
def _samples(ctx, n: int) -> torch.Tensor:
    """n images from the prior (conditional models: the reference images' labels), seeded."""
    g = torch.Generator(device=ctx.x.device).manual_seed(ctx.seed)
    labels = ctx.y[:n] if ctx.model.conditional else None
    return torch.cat(
        [
            ctx.model.sample(len(idx), None if labels is None else labels[idx], generator=g)
            for idx in torch.arange(n, device=ctx.x.device).split(ctx.batch_size)
        ]
    )


def _blas_threads():
    """NumPy's BLAS (torch-fidelity's covariances and eigenvalues) limited to torch's thread count:
    a 1-thread worker otherwise runs np.cov on every core, competing with the other workers."""
    if threadpool_limits is None:  # pragma: no cover
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=torch.get_num_threads(), user_api="blas")


FidOptions = eval_settings(
    "FidOptions",
    "fid_extractor",
    "fid_samples",
    "kid",
    doc="FID's options: the eval settings fid_extractor, fid_samples and kid.",
)


@register_metric(
    "fid",
    settings=FidOptions,
    columns=[
        Column(
            C.FID,
            "float",
            "",
            "lower",
            "FID samples",
            "Fréchet distance of samples from the prior to test images, on fid_extractor's features",
        ),
        Column(
            C.FID_RECON,
            "float",
            "",
            "lower",
            "FID recon",
            "Fréchet distance of reconstructions of test images to test images, on the same features",
        ),
        Column(
            C.FID_EXTRACTOR,
            "str",
            "",
            None,
            "FID features",
            "the feature extractor, e.g. vaebench-classifier-<key>-<weights hash> or inception-v3-compat",
        ),
        Column(
            C.FID_WEIGHTS_SHA256,
            "str",
            "",
            None,
            "FID weights SHA-256",
            "SHA-256 of the extractor's weights file (null: torch-fidelity's own Inception download)",
        ),
        Column(
            C.FID_FEATURE_LAYER,
            "str",
            "",
            None,
            "FID layer",
            "penultimate (classifier, 128-d) or 2048 (Inception pool)",
        ),
        Column(C.FID_SAMPLES, "int", "images", None, "FID images", "images on each side"),
        Column(C.FID_REFERENCE, "str", "", None, "FID reference", "which real images: test[:n]"),
        Column(C.TORCH_FIDELITY_VERSION, "str", "", None, "torch-fidelity version", "torch-fidelity's version"),
        Column(
            C.CLASSIFIER_ACCURACY,
            "float",
            "",
            None,
            "Classifier accuracy",
            "test accuracy of the classifier extractor, in [0, 1] (null for inception)",
        ),
        Column(
            C.KID,
            "float",
            "",
            "lower",
            "KID",
            "kernel inception distance (torch-fidelity, cubic polynomial kernel, 100 subsets); eval.kid only",
        ),
        Column(C.KID_STD, "float", "", None, "KID std", "standard deviation of KID over the subsets"),
        Column(
            C.IS,
            "float",
            "",
            "higher",
            "IS",
            "Inception Score of the samples with the extractor's classifier (10 splits)",
        ),
        Column(C.IS_STD, "float", "", None, "IS std", "standard deviation of the Inception Score over the splits"),
        Column(
            C.SAMPLE_CLASS_FREQ,
            "list[float]",
            "fraction",
            None,
            "Sample class frequencies",
            "fraction of samples the extractor's classifier assigns to each class",
        ),
    ],
)
def fid(ctx) -> dict:
    """FID of n samples from the prior and of the reconstructions of the first n test images, both
    against the first n test images (n = min(eval.fid_samples, test size)); KID when asked; the
    extractor's Inception Score of the samples and their predicted-class distribution. Not
    applicable when eval.fid_extractor is null, nor with the classifier extractor on a dataset
    without class labels. For a model that cannot sample (`can_sample = False`) only the FID of
    reconstructions is computed: the sample columns (fid, kid, is_score, sample_class_freq) stay
    null and `metrics_skipped` says "fid (samples): <reason>"."""
    name = ctx.options.fid_extractor
    if name is None:
        raise MetricNotApplicable("switched off (eval.fid_extractor: null)")
    if name == "classifier" and not getattr(ctx.data, "labeled", True):
        raise MetricNotApplicable(
            f"the classifier feature extractor is trained on class labels and dataset "
            f"{getattr(ctx.data, 'name', '?')!r} has none: use fid_extractor: inception"
        )
    with _blas_threads():
        return _fid(ctx, name)


def _fid(ctx, name: str) -> dict:
    tf = _tf()
    extractor = EXTRACTORS.get(name)(ctx.data, ctx.x.device)
    n = min(ctx.options.fid_samples, len(ctx.x))
    ref = reference(extractor, ctx.data, n)
    rec = extractor.features(to_uint8(ctx.reconstructions[:n]))
    layer = extractor.fid_layer
    out = {
        C.FID_RECON: frechet_distance(rec[layer], ref.fid_statistics),
        C.FID_EXTRACTOR: extractor.identity,
        C.FID_WEIGHTS_SHA256: extractor.weights_sha256,
        C.FID_FEATURE_LAYER: layer,
        C.FID_SAMPLES: n,
        C.FID_REFERENCE: f"test[:{n}]",
        C.TORCH_FIDELITY_VERSION: tf.torch_fidelity.__version__,
        C.CLASSIFIER_ACCURACY: extractor.accuracy,
    }
    if not getattr(ctx.model, "can_sample", True):
        ctx.skip(
            "samples",
            f"{type(ctx.model).__name__} has no prior to sample images from (can_sample = False): "
            "fid, kid, is_score and sample_class_freq are null",
        )
        return out
    gen = extractor.features(to_uint8(_samples(ctx, n)))
    out[C.FID] = frechet_distance(gen[layer], ref.fid_statistics)
    isc = tf.isc_features_to_metric(gen[extractor.isc_layer], splits=10)
    out[C.IS] = isc[tf.KEY_METRIC_ISC_MEAN]
    out[C.IS_STD] = isc[tf.KEY_METRIC_ISC_STD]
    classes = gen[extractor.isc_layer].argmax(1)
    out[C.SAMPLE_CLASS_FREQ] = (
        torch.bincount(classes, minlength=gen[extractor.isc_layer].shape[1]).double() / n
    ).tolist()
    if ctx.options.kid:
        subset = min(1000, n)
        kid = tf.kid_features_to_metric(
            gen[layer], ref.features[layer], kid_subsets=100, kid_subset_size=subset, rng_seed=ctx.seed, verbose=False
        )  # torch-fidelity's default cubic kernel
        out[C.KID] = kid[tf.KEY_METRIC_KID_MEAN]
        out[C.KID_STD] = kid[tf.KEY_METRIC_KID_STD]
    return out
