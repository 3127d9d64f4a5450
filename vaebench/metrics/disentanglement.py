"""Disentanglement against ground-truth factors: MIG (Chen et al. 2018) and SAP (Kumar et al. 2018),
in two conventions.

Both follow the definitions of google-research/disentanglement_lib (evaluation/metrics/mig.py,
sap_score.py, utils.py), the reference implementation; where vaebench differs it says so below.
Codes are posterior means mu(x), (N, D); factors are integer value indices, (N, K). The other
factor scores (DCI, FactorVAE and β-VAE scores, modularity, explicitness, the unsupervised scores)
are in factor_scores.py and share this module's sampling (`factor_codes`, `split_sizes`).

MIG. Each latent is discretized into `n_bins` equal-width bins between its minimum and maximum over
the N codes (numpy's histogram edges; `np.digitize` against all edges but the last, so the maximum
falls in the last bin). I(z_d; v_k) = `sklearn.metrics.mutual_info_score` of the factor and the binned
latent (nats); H(v_k) = I(v_k; v_k). Per factor: (the largest I(z_d; v_k) over latents - the second
largest) / H(v_k); MIG is the mean over factors, in [0, 1]. This is disentanglement_lib's
`_compute_mig` (and disent's `disent.metrics._mig._compute_mig`) exactly: tests/metrics/
test_disentanglement_crosscheck.py compares them on the same codes.

SAP. A score matrix S (D, K): S[d, k] is how well latent d alone predicts factor k, measured on
held-out codes. Per factor: the largest S[d, k] - the second largest; SAP is the mean over factors,
in [0, 1]. Two conventions for S, in two columns:

- `sap_dlib`, disentanglement_lib's convention, the one of published SAP numbers (Locatello et al.
  2019 score dSprites with `continuous_factors = False`): EVERY factor, categorical or ordered, is
  classified: S[d, k] is the test accuracy of `LinearSVC(C=0.01, class_weight="balanced")`
  (one-vs-rest) fit on the training codes of latent d as they are (not standardized), as
  disentanglement_lib's `_compute_score_matrix` does (disent's `_compute_sap` is the same code; the
  cross-check test finds the same score matrix). A linear one-vs-rest classifier on a single latent
  cannot carve out more than a couple of an ordered factor's 6-40 values, so even a perfect code
  scores little on those factors: on shapes β-VAEs this SAP is 11-25x smaller than `sap`'s
  (0.005-0.009 vs 0.122 in the check that issue 27 reports; 0.032 vs 0.347 for a β = 4, 10-latent MLP
  trained 5 epochs on the 32 px sweep grid here).
- `sap`, vaebench's convention by factor kind (the column of the rows committed before `sap_dlib`
  existed; it keeps this meaning), as Kumar et al. define SAP: classification for categorical
  factors (shape), the same LinearSVC but on the latent standardized with its training mean and
  standard deviation; for an ordered factor (scale, orientation, x, y) the test R^2 of the
  least-squares line of the factor on the latent fit on the training codes,
  1 - sum (v - a z - b)^2 / sum (v - mean v)^2 over the test codes, clipped to [0, 1] (a latent
  whose training variance is <= 1e-12 predicts the training mean). Not comparable with published SAP.

About `sap`'s deliberate differences from disentanglement_lib:
- Its R^2 is held out. disentanglement_lib's R^2 for continuous factors (`continuous_factors = True`,
  which its published configurations do not use) is the squared correlation on the training codes.
  In expectation the two differ by O(1/N) (the training R^2 is optimistic by about (1 - R^2)/N, the
  held-out one pessimistic by about as much); on one draw of codes they also differ by the sampling
  noise of an R^2 estimated on different codes, of order 2 r (1 - r^2) / sqrt(N) for a correlation r,
  so up to a few hundredths on 5,000 codes for a partly informative latent, and 0 only for r = 0 or
  |r| = 1. The held-out one cannot reward overfitting.
- The latent is standardized before the SVM: liblinear penalizes the intercept too, so without it a
  latent's score depends on where its values sit (an offset of 20 turned a 0.74 accuracy into 0.65 on
  5,000 codes), not only on how well it separates the classes. Standardized, `sap` is unchanged by
  any shift or positive rescaling of a latent, as MIG is; `sap_dlib`, like disentanglement_lib's, is not.

Both conventions:
- The SVM is solved in its primal form (`dual=False`, liblinear; scikit-learn's default `dual="auto"`
  picks it too for one feature). The problem (squared hinge, L2 penalty on the weight and the
  intercept, C = 0.01, balanced class weights) is the same as disentanglement_lib's (which ran the
  dual of scikit-learn 0.20) and strictly convex, so both forms reach the same classifier up to the
  solver tolerance; the primal converges in a few iterations on one feature, the dual often stops at
  its iteration cap.
- With a single latent (D = 1) there is no second latent: the gap is to 0.
- A factor that is constant over the sample (H = 0; constant over the SAP training codes) has no MIG
  (no SAP); it is left out of the mean (NaN in the per-factor list). Datasets' factors with one
  value are not passed at all.

Samples: disentanglement_lib draws fresh images from the whole factor grid (MIG 10,000; SAP 10,000
train / 5,000 test). vaebench scores images the model never trained on: random subsets of the test
split, drawn with `eval.disentanglement_seed` (the same images for every run of a dataset), MIG on
min(`eval.mig_samples`, test size) of them, SAP (both conventions, on the same images) fit on
`eval.sap_train_samples` and scored on the next `eval.sap_test_samples` of the same permutation
(scaled down together when the split holds fewer).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

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
    standardize: bool = True,
) -> np.ndarray:
    """(D, K): S[d, k], how well latent d alone predicts factor k on the test codes, fit on the
    training codes: accuracy of a linear SVM for a categorical factor, R^2 of a line for an ordered one.
    `categorical`: one bool for every factor (disentanglement_lib's convention: True) or one per factor.
    `standardize`: whether the SVM sees the latent standardized with its training mean and std
    (vaebench's `sap`) or as it is (disentanglement_lib's, `sap_dlib`)."""
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
                scores[d, k] = _svm_accuracy(z_tr[:, d], v_tr[:, k], z_te[:, d], v_te[:, k], standardize)
            else:
                scores[d, k] = _r2(z_tr[:, d], v_tr[:, k], z_te[:, d], v_te[:, k])
    return scores


def _svm_accuracy(
    z_train: np.ndarray, v_train: np.ndarray, z_test: np.ndarray, v_test: np.ndarray, standardize: bool = True
) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    if len(np.unique(v_train)) < 2:  # nothing to classify: every prediction is the one class
        return float(np.mean(v_test == v_train[0]))
    mean, scale = 0.0, 1.0
    if standardize:
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


def sap_per_factor(
    codes_train, factors_train, codes_test, factors_test, categorical=True, standardize: bool = True
) -> np.ndarray:
    """(K,): per factor, the best latent's score minus the second best's; NaN for a factor that is
    constant over the training codes. disentanglement_lib's convention (`sap_dlib`):
    `categorical=True, standardize=False`."""
    matrix = sap_score_matrix(codes_train, factors_train, codes_test, factors_test, categorical, standardize)
    gaps = _top_two_gap(matrix)
    constant = np.array([len(np.unique(col)) < 2 for col in np.asarray(factors_train).T])
    return np.where(constant, np.nan, gaps)


def sap(codes_train, factors_train, codes_test, factors_test, categorical=True, standardize: bool = True) -> float:
    """Separated Attribute Predictability: the mean over factors of `sap_per_factor`, in [0, 1]."""
    per_factor = sap_per_factor(codes_train, factors_train, codes_test, factors_test, categorical, standardize)
    return float(np.nanmean(per_factor))


def _check(codes: np.ndarray, factors: np.ndarray) -> None:
    codes, factors = np.asarray(codes), np.asarray(factors)
    if codes.ndim != 2 or factors.ndim != 2 or len(codes) != len(factors):
        raise ValueError(f"codes (N, D) and factors (N, K) must have the same N; got {codes.shape} and {factors.shape}")
    if not np.isfinite(codes).all():
        raise ValueError("codes contain NaN or infinite values")


def split_sizes(n: int, train: int, test: int) -> tuple[int, int]:
    """(train, test) counts of two disjoint parts out of n images: as asked, or scaled down together
    (keeping their ratio) when they need more than n."""
    if train + test <= n:
        return train, test
    n_train = max(1, math.floor(n * train / (train + test)))
    return n_train, n - n_train


def sample_sizes(n: int, mig_samples: int, sap_train: int, sap_test: int) -> tuple[int, int, int]:
    """(MIG, SAP train, SAP test) counts out of a split of n images: MIG at most n; SAP's two disjoint
    parts scaled down together (keeping their ratio) when they need more than n."""
    return (min(mig_samples, n), *split_sizes(n, sap_train, sap_test))


DisentanglementOptions = eval_settings(
    "DisentanglementOptions",
    "mig_samples",
    "mig_bins",
    "sap_train_samples",
    "sap_test_samples",
    "disentanglement_seed",
    doc="MIG's and SAP's options: the eval settings mig_*, sap_* and disentanglement_seed.",
)


@dataclass(frozen=True)
class FactorCodes:
    """What every factor score reads: the test split's posterior means and ground-truth factors (the
    factors with more than one value), and the seeded permutation its subsets are taken from."""

    codes: np.ndarray  # (N, D) float64: posterior means of the test images
    logvar: np.ndarray  # (N, D) float64: their posterior log-variances (sampled representations)
    factors: np.ndarray  # (N, K) int64: factor value indices
    names: list  # the K factor names
    categorical: list  # the K factors' kinds
    order: np.ndarray  # (N,): permutation of the test split drawn with eval.disentanglement_seed
    seed: int  # eval.disentanglement_seed


def factor_codes(ctx) -> FactorCodes:
    """The posterior means and factors of the test split, or MetricNotApplicable (with the reason) for a
    dataset without ground-truth factors, a model without a Gaussian posterior, or non-finite codes.
    The permutation is drawn with `eval.disentanglement_seed` (the same images for every run and metric)."""
    if not getattr(ctx.model, "gaussian_posterior", True):
        raise MetricNotApplicable(
            f"{type(ctx.model).__name__}'s encode is not a Gaussian posterior "
            "(gaussian_posterior = False): no posterior means to score"
        )
    data = ctx.data
    if not getattr(data, "has_factors", False):
        raise MetricNotApplicable(f"dataset {getattr(data, 'name', '?')!r} has no ground-truth factors")
    mu, logvar = ctx.posterior  # (N, D): the whole test split, shared with the other latent metrics
    codes = mu.detach().double().cpu().numpy()
    if not np.isfinite(codes).all():  # no score for a model whose codes are not numbers
        raise MetricNotApplicable("the posterior means are not all finite")
    keep = [k for k, f in enumerate(data.factors) if f.size > 1]
    seed = int(ctx.cfg.eval.disentanglement_seed)
    return FactorCodes(
        codes=codes,
        logvar=logvar.detach().double().cpu().numpy(),
        factors=data.factors_test.cpu().numpy()[:, keep],
        names=[data.factors[k].name for k in keep],
        categorical=[data.factors[k].categorical for k in keep],
        order=np.random.default_rng(seed).permutation(len(codes)),
        seed=seed,
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
            C.SAP_DLIB,
            "float",
            "",
            "higher",
            "SAP (dlib)",
            "SAP in disentanglement_lib's convention (LinearSVC accuracy for every factor), in [0, 1]: "
            "comparable with published SAP",
        ),
        Column(
            C.SAP,
            "float",
            "",
            "higher",
            "SAP (by kind)",
            "Separated Attribute Predictability (Kumar et al. 2018), in [0, 1], vaebench's convention by factor "
            "kind (SVM accuracy for categorical, held-out R^2 for ordered factors): not comparable with published SAP",
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
            "SAP (by kind) per factor",
            "each factor's score gap, in disentanglement_factors order",
        ),
        Column(
            C.SAP_DLIB_PER_FACTOR,
            "list[float]",
            "",
            "higher",
            "SAP (dlib) per factor",
            "each factor's score gap in disentanglement_lib's convention, in disentanglement_factors order",
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
    """MIG and SAP (both conventions) of the posterior means of test images (datasets with
    ground-truth factors; not applicable to others, nor to models without a Gaussian posterior,
    `gaussian_posterior`). Factors with a single value are left out."""
    fc = factor_codes(ctx)
    codes, factors, ev = fc.codes, fc.factors, ctx.options
    n_mig, n_train, n_test = sample_sizes(len(codes), ev.mig_samples, ev.sap_train_samples, ev.sap_test_samples)
    m, tr, te = fc.order[:n_mig], fc.order[:n_train], fc.order[n_train : n_train + n_test]
    mig_k = mig_per_factor(codes[m], factors[m], ev.mig_bins)
    sap_k = sap_per_factor(codes[tr], factors[tr], codes[te], factors[te], fc.categorical)
    dlib_k = sap_per_factor(codes[tr], factors[tr], codes[te], factors[te], True, standardize=False)
    return {
        C.MIG: float(np.nanmean(mig_k)),
        C.SAP: float(np.nanmean(sap_k)),
        C.SAP_DLIB: float(np.nanmean(dlib_k)),
        C.MIG_PER_FACTOR: [float(v) for v in mig_k],
        C.SAP_PER_FACTOR: [float(v) for v in sap_k],
        C.SAP_DLIB_PER_FACTOR: [float(v) for v in dlib_k],
        C.DISENTANGLEMENT_FACTORS: fc.names,
        C.MIG_SAMPLES: int(n_mig),
        C.MIG_BINS: int(ev.mig_bins),
        C.SAP_TRAIN_SAMPLES: int(n_train),
        C.SAP_TEST_SAMPLES: int(n_test),
        C.DISENTANGLEMENT_SEED: int(ev.disentanglement_seed),
    }
