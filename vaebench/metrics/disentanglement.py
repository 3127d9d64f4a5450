"""Disentanglement against ground-truth factors: MIG (Chen et al. 2018) and SAP (Kumar et al. 2018).

Both follow the definitions of google-research/disentanglement_lib (evaluation/metrics/mig.py,
sap_score.py, utils.py), the reference implementation; where vaebench differs it says so below.
Codes are posterior means mu(x), (N, D); factors are integer value indices, (N, K).

MIG. Each latent is discretized into `n_bins` equal-width bins between its minimum and maximum over
the N codes (numpy's histogram edges; `np.digitize` against all edges but the last, so the maximum
falls in the last bin). I(z_d; v_k) = `sklearn.metrics.mutual_info_score` of the factor and the binned
latent (nats); H(v_k) = I(v_k; v_k). Per factor: (the largest I(z_d; v_k) over latents - the second
largest) / H(v_k); MIG is the mean over factors, in [0, 1].

SAP. A score matrix S (D, K): S[d, k] is how well latent d alone predicts factor k, measured on
held-out codes. For a categorical factor, the test accuracy of a linear SVM fit on the training codes
of that one latent (`LinearSVC(C=0.01, class_weight="balanced")`, one-vs-rest), the latent
standardized with its training mean and standard deviation; for an ordered factor, the test R^2 of
the least-squares line of the factor on the latent fit on the training codes,
1 - sum (v - a z - b)^2 / sum (v - mean v)^2 over the test codes, clipped to [0, 1] (a latent whose
training variance is <= 1e-12 predicts the training mean). Per factor: the largest S[d, k] - the
second largest; SAP is the mean over factors, in [0, 1].

Differences from disentanglement_lib, all deliberate:
- It treats every factor of a dataset alike (its studies score dSprites with `continuous_factors =
  False`: an SVM for every factor). vaebench uses the factor's kind, as Kumar et al. define SAP:
  classification for categorical factors (shape) and R^2 for ordered ones (scale, orientation,
  position). A linear one-vs-rest classifier on a single latent cannot carve out more than a couple
  of the 6-40 ordered values, so with an SVM on every factor even a perfect code scores little on
  them. `sap(..., categorical=...)` takes either convention.
- Both scores are held out (the SAP definition asks for predictability on held-out data):
  disentanglement_lib's R^2 for continuous factors is the squared correlation on the training codes.
  With thousands of codes the two differ by about 1/N; the held-out one cannot reward overfitting.
- The latent is standardized before the SVM: liblinear penalizes the intercept too, so without it a
  latent's score depends on where its values sit (an offset of 20 turned a 0.74 accuracy into 0.65 on
  5,000 codes), not only on how well it separates the classes. Standardized, SAP is unchanged by
  any shift or positive rescaling of a latent, as MIG is.
- The SVM is solved in its primal form (`dual=False`, liblinear). The problem (squared hinge, L2
  penalty on the weight and the intercept, C = 0.01, balanced class weights) is the same and
  strictly convex, so both forms reach the same classifier up to the solver tolerance; the primal
  converges in a few iterations on one feature, the dual often stops at its iteration cap.
- With a single latent (D = 1) there is no second latent: the gap is to 0.
- A factor that is constant over the sample (H = 0; constant over the SAP training codes) has no MIG
  (no SAP); it is left out of the mean (NaN in the per-factor list). Datasets' factors with one
  value are not passed at all.

Samples: disentanglement_lib draws fresh images from the whole factor grid (MIG 10,000; SAP 10,000
train / 5,000 test). vaebench scores images the model never trained on: random subsets of the test
split, drawn with `eval.disentanglement_seed` (the same images for every run of a dataset), MIG on
min(`eval.mig_samples`, test size) of them, SAP fit on `eval.sap_train_samples` and scored on the next
`eval.sap_test_samples` of the same permutation (scaled down together when the split holds fewer).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from . import column_names as C
from .declarations import Column, MetricNotApplicable, eval_settings, register_metric

# scikit-learn (mutual_info_score, LinearSVC) is imported where it is used: importing it would add to
# the start of every worker process, and only datasets with ground-truth factors need it.

SVM_C = 0.01  # disentanglement_lib's LinearSVC(C=0.01, class_weight="balanced")
MIN_VARIANCE = 1e-12  # disentanglement_lib: a latent with var <= this scores R^2 = 0


def discretize(codes: np.ndarray, n_bins: int = 20) -> np.ndarray:
    """Each column of `codes` (N, D) as bin indices 1..n_bins of n_bins equal-width bins between its
    min and max (disentanglement_lib's histogram discretizer)."""
    codes = np.asarray(codes, dtype=np.float64)
    out = np.empty(codes.shape, dtype=np.int64)
    for d in range(codes.shape[1]):
        edges = np.histogram(codes[:, d], n_bins)[1]
        out[:, d] = np.digitize(codes[:, d], edges[:-1])
    return out


def mutual_information(codes: np.ndarray, factors: np.ndarray, n_bins: int = 20) -> np.ndarray:
    """(D, K): I(binned z_d; v_k) in nats."""
    from sklearn.metrics import mutual_info_score

    binned = discretize(codes, n_bins)
    factors = np.asarray(factors)
    return np.array(
        [
            [mutual_info_score(factors[:, k], binned[:, d]) for k in range(factors.shape[1])]
            for d in range(binned.shape[1])
        ]
    ).reshape(binned.shape[1], factors.shape[1])


def factor_entropy(factors: np.ndarray) -> np.ndarray:
    """(K,): H(v_k) in nats, as I(v_k; v_k)."""
    from sklearn.metrics import mutual_info_score

    factors = np.asarray(factors)
    return np.array([mutual_info_score(factors[:, k], factors[:, k]) for k in range(factors.shape[1])])


def _top_two_gap(matrix: np.ndarray) -> np.ndarray:
    """(K,): per column, the largest entry minus the second largest (minus 0 with one row)."""
    ranked = np.sort(matrix, axis=0)[::-1]
    second = ranked[1] if len(ranked) > 1 else np.zeros(matrix.shape[1])
    return ranked[0] - second


def mig_per_factor(codes: np.ndarray, factors: np.ndarray, n_bins: int = 20) -> np.ndarray:
    """(K,): the mutual information gap of each factor, normalized by its entropy; NaN for a
    factor that is constant over the sample."""
    _check(codes, factors)
    gap = _top_two_gap(mutual_information(codes, factors, n_bins))
    h = factor_entropy(factors)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(h > 0, gap / np.where(h > 0, h, 1.0), np.nan)


def mig(codes: np.ndarray, factors: np.ndarray, n_bins: int = 20) -> float:
    """Mutual Information Gap: the mean over factors of `mig_per_factor`, in [0, 1]."""
    return float(np.nanmean(mig_per_factor(codes, factors, n_bins)))


def _categorical_mask(categorical, k: int) -> np.ndarray:
    mask = np.broadcast_to(np.asarray(categorical, dtype=bool), (k,))
    return mask.copy()


def sap_score_matrix(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    categorical=True,
) -> np.ndarray:
    """(D, K): S[d, k], how well latent d alone predicts factor k on the test codes, fit on the
    training codes: accuracy of a linear SVM for a categorical factor, R^2 of a line for an ordered one.
    `categorical`: one bool for every factor (disentanglement_lib's convention: True) or one per factor."""
    _check(codes_train, factors_train)
    _check(codes_test, factors_test)
    z_tr, z_te = np.asarray(codes_train, np.float64), np.asarray(codes_test, np.float64)
    v_tr, v_te = np.asarray(factors_train), np.asarray(factors_test)
    d_count, k_count = z_tr.shape[1], v_tr.shape[1]
    mask = _categorical_mask(categorical, k_count)
    scores = np.zeros((d_count, k_count))
    for k in range(k_count):
        for d in range(d_count):
            if mask[k]:
                scores[d, k] = _svm_accuracy(z_tr[:, d], v_tr[:, k], z_te[:, d], v_te[:, k])
            else:
                scores[d, k] = _r2(z_tr[:, d], v_tr[:, k], z_te[:, d], v_te[:, k])
    return scores


def _svm_accuracy(z_train: np.ndarray, v_train: np.ndarray, z_test: np.ndarray, v_test: np.ndarray) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    if len(np.unique(v_train)) < 2:  # nothing to classify: every prediction is the one class
        return float(np.mean(v_test == v_train[0]))
    mean, std = z_train.mean(), z_train.std()
    scale = std if std * std > MIN_VARIANCE else 1.0  # a constant latent stays constant (0)
    clf = LinearSVC(C=SVM_C, class_weight="balanced", dual=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(((z_train - mean) / scale)[:, None], v_train)
    return float(np.mean(clf.predict(((z_test - mean) / scale)[:, None]) == v_test))


def _r2(z_train: np.ndarray, v_train: np.ndarray, z_test: np.ndarray, v_test: np.ndarray) -> float:
    """Held-out R^2 of the least-squares line v ~ a z + b fit on the training codes, clipped to [0, 1]."""
    v_train, v_test = v_train.astype(np.float64), v_test.astype(np.float64)
    var_z = z_train.var()
    cov = np.mean((z_train - z_train.mean()) * (v_train - v_train.mean()))
    slope = 0.0 if var_z <= MIN_VARIANCE else float(cov / var_z)
    predicted = v_train.mean() + slope * (z_test - z_train.mean())
    total = np.sum((v_test - v_test.mean()) ** 2)
    if total == 0:  # a factor constant over the test codes: nothing to explain
        return 0.0
    return float(np.clip(1.0 - np.sum((v_test - predicted) ** 2) / total, 0.0, 1.0))


def sap_per_factor(codes_train, factors_train, codes_test, factors_test, categorical=True) -> np.ndarray:
    """(K,): per factor, the best latent's score minus the second best's; NaN for a factor that is
    constant over the training codes."""
    gaps = _top_two_gap(sap_score_matrix(codes_train, factors_train, codes_test, factors_test, categorical))
    constant = np.array([len(np.unique(col)) < 2 for col in np.asarray(factors_train).T])
    return np.where(constant, np.nan, gaps)


def sap(codes_train, factors_train, codes_test, factors_test, categorical=True) -> float:
    """Separated Attribute Predictability: the mean over factors of `sap_per_factor`, in [0, 1]."""
    return float(np.nanmean(sap_per_factor(codes_train, factors_train, codes_test, factors_test, categorical)))


def _check(codes: np.ndarray, factors: np.ndarray) -> None:
    codes, factors = np.asarray(codes), np.asarray(factors)
    if codes.ndim != 2 or factors.ndim != 2 or len(codes) != len(factors):
        raise ValueError(f"codes (N, D) and factors (N, K) must have the same N; got {codes.shape} and {factors.shape}")
    if not np.isfinite(codes).all():
        raise ValueError("codes contain NaN or infinite values")


def sample_sizes(n: int, mig_samples: int, sap_train: int, sap_test: int) -> tuple[int, int, int]:
    """(MIG, SAP train, SAP test) counts out of a split of n images: MIG at most n; SAP's two disjoint
    parts scaled down together (keeping their ratio) when they need more than n."""
    n_mig = min(mig_samples, n)
    if sap_train + sap_test <= n:
        return n_mig, sap_train, sap_test
    n_train = max(1, math.floor(n * sap_train / (sap_train + sap_test)))
    return n_mig, n_train, n - n_train


DisentanglementOptions = eval_settings(
    "DisentanglementOptions",
    "mig_samples",
    "mig_bins",
    "sap_train_samples",
    "sap_test_samples",
    "disentanglement_seed",
    doc="MIG's and SAP's options: the eval settings mig_*, sap_* and disentanglement_seed.",
)


@register_metric(
    "disentanglement",
    settings=DisentanglementOptions,
    columns=[
        Column(
            C.MIG,
            "float",
            "",
            "higher",
            "MIG",
            "Mutual Information Gap (Chen et al. 2018), in [0, 1]: mean over factors of the normalized gap",
        ),
        Column(
            C.SAP,
            "float",
            "",
            "higher",
            "SAP",
            "Separated Attribute Predictability (Kumar et al. 2018), in [0, 1]: mean over factors of the score gap",
        ),
        Column(
            C.MIG_PER_FACTOR,
            "list[float]",
            "",
            "higher",
            "MIG per factor",
            "each factor's normalized MI gap, in disentanglement_factors order",
        ),
        Column(
            C.SAP_PER_FACTOR,
            "list[float]",
            "",
            "higher",
            "SAP per factor",
            "each factor's score gap, in disentanglement_factors order",
        ),
        Column(C.DISENTANGLEMENT_FACTORS, "list[str]", "", None, "Factors", "the factor names, e.g. shape, scale, x"),
        Column(C.MIG_SAMPLES, "int", "images", None, "MIG images", "test images MIG was computed on"),
        Column(C.MIG_BINS, "int", "bins", None, "MIG bins", "equal-width bins per latent"),
        Column(
            C.SAP_TRAIN_SAMPLES, "int", "images", None, "SAP fit images", "test images SAP's predictors were fit on"
        ),
        Column(C.SAP_TEST_SAMPLES, "int", "images", None, "SAP scored images", "other test images SAP was scored on"),
        Column(
            C.DISENTANGLEMENT_SEED, "int", "", None, "Disentanglement seed", "seed of the MIG and SAP image subsets"
        ),
    ],
)
def disentanglement(ctx) -> dict:
    """MIG and SAP of the posterior means of test images (datasets with ground-truth factors; not
    applicable to others, nor to models without a Gaussian posterior, `gaussian_posterior`). Factors
    with a single value are left out."""
    if not getattr(ctx.model, "gaussian_posterior", True):
        raise MetricNotApplicable(
            f"{type(ctx.model).__name__}'s encode is not a Gaussian posterior "
            "(gaussian_posterior = False): no posterior means to score"
        )
    data = ctx.data
    if not getattr(data, "has_factors", False):
        raise MetricNotApplicable(f"dataset {getattr(data, 'name', '?')!r} has no ground-truth factors")
    ev = ctx.options
    mu, _ = ctx.posterior  # (N, D): the whole test split, shared with the other latent metrics
    codes = mu.detach().double().cpu().numpy()
    if not np.isfinite(codes).all():  # no score for a model whose codes are not numbers
        raise MetricNotApplicable("the posterior means are not all finite")
    keep = [k for k, f in enumerate(data.factors) if f.size > 1]
    factors = data.factors_test.cpu().numpy()[:, keep]
    categorical = [data.factors[k].categorical for k in keep]
    order = np.random.default_rng(ev.disentanglement_seed).permutation(len(codes))
    n_mig, n_train, n_test = sample_sizes(len(codes), ev.mig_samples, ev.sap_train_samples, ev.sap_test_samples)
    m, tr, te = order[:n_mig], order[:n_train], order[n_train : n_train + n_test]
    mig_k = mig_per_factor(codes[m], factors[m], ev.mig_bins)
    sap_k = sap_per_factor(codes[tr], factors[tr], codes[te], factors[te], categorical)
    return {
        C.MIG: float(np.nanmean(mig_k)),
        C.SAP: float(np.nanmean(sap_k)),
        C.MIG_PER_FACTOR: [float(v) for v in mig_k],
        C.SAP_PER_FACTOR: [float(v) for v in sap_k],
        C.DISENTANGLEMENT_FACTORS: [data.factors[k].name for k in keep],
        C.MIG_SAMPLES: int(n_mig),
        C.MIG_BINS: int(ev.mig_bins),
        C.SAP_TRAIN_SAMPLES: int(n_train),
        C.SAP_TEST_SAMPLES: int(n_test),
        C.DISENTANGLEMENT_SEED: int(ev.disentanglement_seed),
    }
