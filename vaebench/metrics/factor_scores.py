"""The other disentanglement scores of disentanglement_lib (Locatello et al. 2019): DCI, the FactorVAE
and β-VAE scores, modularity and explicitness, and the unsupervised scores of the codes' covariance
and mutual information.

Every score follows google-research/disentanglement_lib's reference code (evaluation/metrics/
dci.py, factor_vae.py, beta_vae.py, modularity_explicitness.py, unsupervised_metrics.py; their
published settings in evaluation/metrics/*.gin and the study's config), and the functions below
take plain arrays, so that tests/metrics/test_disentanglement_crosscheck.py compares them with
disent's implementations (and a test-only port of disentanglement_lib's where disent has none) on
the same codes. Codes: (N, D) float; factors: (N, K) integer value indices.

Where the images come from. disentanglement_lib draws fresh images from the whole factor grid for
every score. vaebench scores the test split (images the model never trained on), through
`factor_codes`: the posterior means (and log-variances) of every test image, and a permutation of
the split drawn with `eval.disentanglement_seed`, whose first images are each score's training
sample and the next its test sample (`split_sizes`: scaled down together when the split holds fewer).
The FactorVAE and β-VAE scores need images with one factor fixed: they draw them from the test
split's images that share that factor's value (uniformly, with replacement, as disentanglement_lib
samples factors with replacement), seeded by `eval.disentanglement_seed`. On `shapes`, whose test
split is a random quarter of the full product grid, the other factors of those images are then
(nearly) uniform and independent, as in disentanglement_lib's sampler.

The settings and their disentanglement_lib values (each run records its own in sibling columns):

- DCI (Eastwood & Williams 2018): per factor, a `GradientBoostingClassifier` of scikit-learn with
  its defaults (100 stages of depth-3 regression trees, learning rate 0.1, all features;
  disentanglement_lib's and disent's importance model), fit on `train_samples` codes and scored on
  `test_samples` others; the importance of latent d for factor k is |feature_importances_[d]|.
  Disentanglement: per latent, 1 - the entropy (base K) of its importances over the factors,
  weighted by the latent's share of all importance; completeness: per factor, 1 - the entropy (base
  D) of its importances over the latents, weighted by the factor's share. Both in [0, 1]
  (1e-11 is added to every importance before the entropies, as in the reference). Informativeness:
  the trees' test accuracy, mean over factors, in [0, 1] (disentanglement_lib reports it as
  `informativeness_test`; it is an accuracy, not Eastwood & Williams' prediction error). Default
  1,000 / 500 images (disent's "fast" setting): one boosted model per factor with one tree per class
  and stage (51 classes x 100 stages on `shapes`) took 79 s on 2,000 / 1,000 codes of the `shapes`
  test split here (2 shared cores); disentanglement_lib's 10,000 / 5,000 would take several minutes per
  run. Give `eval.dci: {train_samples: 10000, test_samples: 5000}` to match it.
- FactorVAE score (Kim & Mnih 2018): each latent's variance over `variance_samples` images (ddof 1;
  disentanglement_lib 10,000); a vote: a factor k drawn uniformly, `batch_size` (64) images sharing
  one value of k, the variance of each latent over them (ddof 1) over its global variance, and the
  vote (k, the latent with the smallest ratio). The classifier maps each latent to the factor with
  most of its `train_votes` (10,000) votes (majority vote; ties to the lower factor index); the score
  is its accuracy on `eval_votes` (5,000) other votes, in [0, 1]; 1/K is chance. Latents with zero
  global variance cannot vote (disentanglement_lib prunes latents whose standard deviation is below
  its threshold 0, i.e. none; a constant latent's ratio is NaN there).
- β-VAE score (Higgins et al. 2017): a point: a factor k drawn uniformly, `batch_size` (64) pairs of
  images sharing k's value (the first image of each pair uniform over the test split, the second
  uniform among the images with the same value of k), the feature mean_pairs |z1 - z2| (D,). A
  `LogisticRegression` of scikit-learn with its defaults (L2, C = 1, lbfgs, multinomial, 100
  iterations; `random_state` = the seed) is fit on `train_points` (10,000) points and scored on
  `eval_points` (5,000) others: the accuracy, in [0, 1]. disentanglement_lib calls
  `LogisticRegression(random_state=...)` too; under the scikit-learn 0.20 of its published runs that
  default was liblinear one-vs-rest, so numbers from those runs can differ by the solver.
- Modularity and explicitness (Ridgeway & Mozer 2018): modularity from the MI matrix m (D, K) of the
  binned latents (`bins` equal-width bins, as MIG) and the factors on `train_samples` (10,000)
  codes: per latent 1 - (sum_k m^2 - max_k m^2) / (max_k m^2 (K - 1)) (0 for a latent with no MI),
  mean over latents, in [0, 1]. Explicitness: per factor a `LogisticRegression` (scikit-learn
  defaults) on the codes standardized with the training mean and standard deviation, its test
  ROC-AUC one class against the rest, macro-averaged over the factor's classes, on `test_samples`
  (5,000) other codes; the mean over factors, in [0.5, 1] for a classifier better than chance. A
  class absent from the test codes is left out of that factor's average (disentanglement_lib's
  MultiLabelBinarizer fails on it).
- Unsupervised (no factors needed, reported alongside the factor scores on the same datasets): on
  `samples` (10,000) codes of the `representation` ("sampled": one draw z ~ q(z|x) per image,
  seeded by eval.disentanglement_seed, as Locatello et al. report them; "mean": mu(x)), with the
  covariance C (np.cov, ddof 1): the Gaussian total correlation 1/2 (sum log diag C - log det C),
  nats, >= 0, the KL from N(0, C) to the product of its marginals; the Gaussian Wasserstein
  correlation 2 tr C - 2 tr sqrt(C diag(C)) (squared latent units) and the same over tr C; the
  mutual-information score, the mean over pairs d != d' of I(binned z_d; binned z_d') in nats
  (`bins` bins, as MIG). Lower is more factorized.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
from pydantic import Field

from ..options import Options
from . import column_names as C
from .declarations import Column, MetricNotApplicable, register_metric
from .disentanglement import discretize, factor_codes, split_sizes

GBT = "GradientBoostingClassifier(n_estimators=100, max_depth=3, learning_rate=0.1), |feature_importances_|"
LOGISTIC = "LogisticRegression(C=1, lbfgs, multinomial, max_iter=100)"
ENTROPY_EPS = 1e-11  # added to every importance before the entropies (disentanglement_lib's dci.py)
VOTE_CHUNK = 1000  # votes or points drawn at a time: (chunk, batch, D) codes in memory


# ---------------------------------------------------------------------------------------------
# DCI


def dci_importance(codes_train, factors_train, codes_test, factors_test, random_state=0):
    """(importance (D, K), train accuracy (K,), test accuracy (K,)) of one GradientBoostingClassifier
    (scikit-learn defaults) per factor, fit on the training codes."""
    from sklearn.ensemble import GradientBoostingClassifier

    z_tr, z_te = np.asarray(codes_train, np.float64), np.asarray(codes_test, np.float64)
    v_tr, v_te = np.asarray(factors_train), np.asarray(factors_test)
    d_count, k_count = z_tr.shape[1], v_tr.shape[1]
    importance = np.zeros((d_count, k_count))
    train_acc, test_acc = np.zeros(k_count), np.zeros(k_count)
    for k in range(k_count):
        model = GradientBoostingClassifier(random_state=random_state).fit(z_tr, v_tr[:, k])
        importance[:, k] = np.abs(model.feature_importances_)
        train_acc[k] = np.mean(model.predict(z_tr) == v_tr[:, k])
        test_acc[k] = np.mean(model.predict(z_te) == v_te[:, k])
    return importance, train_acc, test_acc


def _weighted_one_minus_entropy(importance: np.ndarray) -> float:
    """sum over rows of (1 - entropy of the row, base = its length) x the row's share of the total."""
    from scipy.stats import entropy

    per_row = 1.0 - entropy(importance.T + ENTROPY_EPS, base=importance.shape[1])
    if importance.sum() == 0.0:
        importance = np.ones_like(importance)
    return float(np.sum(per_row * importance.sum(axis=1) / importance.sum()))


def dci_disentanglement(importance: np.ndarray) -> float:
    """From importance (D, K): per latent 1 - H_K(its importances over factors), weighted by its share."""
    return _weighted_one_minus_entropy(np.asarray(importance, np.float64))


def dci_completeness(importance: np.ndarray) -> float:
    """From importance (D, K): per factor 1 - H_D(its importances over latents), weighted by its share."""
    return _weighted_one_minus_entropy(np.asarray(importance, np.float64).T)


def dci(codes_train, factors_train, codes_test, factors_test, random_state=0) -> dict:
    """{disentanglement, completeness, informativeness (test accuracy), informativeness_train}."""
    importance, train_acc, test_acc = dci_importance(codes_train, factors_train, codes_test, factors_test, random_state)
    return {
        "disentanglement": dci_disentanglement(importance),
        "completeness": dci_completeness(importance),
        "informativeness": float(np.mean(test_acc)),
        "informativeness_train": float(np.mean(train_acc)),
    }


# ---------------------------------------------------------------------------------------------
# sampling images that share one factor's value


class FactorSampler:
    """Draws rows of a (N, K) factor table: uniformly, or uniformly among the rows sharing one factor's
    value with given rows (with replacement)."""

    def __init__(self, factors: np.ndarray) -> None:
        self.factors = np.asarray(factors)
        self.n, self.k = self.factors.shape
        self.sorted = [np.argsort(self.factors[:, k], kind="stable") for k in range(self.k)]
        self.starts, self.counts = [], []
        for k in range(self.k):
            values = self.factors[self.sorted[k], k]
            start = np.searchsorted(values, self.factors[:, k], side="left")
            self.starts.append(start)  # (N,): where row i's value begins in the sorted order
            self.counts.append(np.searchsorted(values, self.factors[:, k], side="right") - start)

    def same_value(self, k: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """For each (k[i], rows[i, j]) a row drawn uniformly among those with the same value of factor k[i]."""
        out = np.empty_like(rows)
        u = rng.random(rows.shape)
        for factor in np.unique(k):
            sel = k == factor
            r = rows[sel]
            pick = self.starts[factor][r] + np.floor(u[sel] * self.counts[factor][r]).astype(np.int64)
            out[sel] = self.sorted[factor][pick]
        return out


# ---------------------------------------------------------------------------------------------
# FactorVAE score


def factorvae_argmin(batches: np.ndarray, global_variance: np.ndarray) -> np.ndarray:
    """(t,): for each batch of codes (t, B, D) sharing one factor's value, the latent whose variance over
    the batch (ddof 1) over its global variance is smallest; latents of zero global variance never."""
    active = global_variance > 0
    local = np.asarray(batches, np.float64).var(axis=1, ddof=1)  # (t, D)
    ratio = np.where(active, local / np.where(active, global_variance, 1.0), np.inf)
    return np.argmin(ratio, axis=1)


def factorvae_votes(codes, factors, global_variance, n_votes: int, batch_size: int, rng) -> np.ndarray:
    """(K, D) vote counts: per vote, a uniform factor k, `batch_size` rows sharing the value of k of a
    uniform row, and their `factorvae_argmin` latent."""
    codes = np.asarray(codes, np.float64)
    sampler = FactorSampler(factors)
    votes = np.zeros((sampler.k, codes.shape[1]), dtype=np.int64)
    for start in range(0, n_votes, VOTE_CHUNK):
        t = min(VOTE_CHUNK, n_votes - start)
        k = rng.integers(sampler.k, size=t)
        ref = rng.integers(sampler.n, size=t)
        rows = sampler.same_value(k, np.repeat(ref[:, None], batch_size, axis=1), rng)  # (t, B)
        np.add.at(votes, (k, factorvae_argmin(codes[rows], global_variance)), 1)
    return votes


def factorvae_accuracy(train_votes: np.ndarray, eval_votes: np.ndarray) -> tuple[float, float]:
    """(train accuracy, eval accuracy) of the majority-vote classifier latent -> factor built from
    `train_votes` (K, D)."""
    classifier = np.argmax(train_votes, axis=0)  # (D,): each latent's factor
    cols = np.arange(train_votes.shape[1])
    return (
        float(train_votes[classifier, cols].sum() / max(train_votes.sum(), 1)),
        float(eval_votes[classifier, cols].sum() / max(eval_votes.sum(), 1)),
    )


def factorvae_score(
    codes,
    factors,
    batch_size=64,
    train_votes=10000,
    eval_votes=5000,
    variance_samples=10000,
    seed=0,
) -> dict:
    """{score (eval accuracy), train_accuracy, active_dims}: the global variances on the first
    `variance_samples` rows of a seeded permutation, then the votes from all rows."""
    codes = np.asarray(codes, np.float64)
    rng = np.random.default_rng(seed)
    subset = rng.permutation(len(codes))[:variance_samples]
    global_variance = codes[subset].var(axis=0, ddof=1)
    if not (global_variance > 0).any():
        return {"score": 0.0, "train_accuracy": 0.0, "active_dims": 0}
    train = factorvae_votes(codes, factors, global_variance, train_votes, batch_size, rng)
    evaluated = factorvae_votes(codes, factors, global_variance, eval_votes, batch_size, rng)
    train_acc, eval_acc = factorvae_accuracy(train, evaluated)
    return {"score": eval_acc, "train_accuracy": train_acc, "active_dims": int((global_variance > 0).sum())}


# ---------------------------------------------------------------------------------------------
# β-VAE score


def betavae_features(codes1: np.ndarray, codes2: np.ndarray) -> np.ndarray:
    """(t, D): mean over the B pairs of |z1 - z2|, from two (t, B, D) batches of paired codes."""
    return np.abs(np.asarray(codes1, np.float64) - np.asarray(codes2, np.float64)).mean(axis=1)


def betavae_points(codes, factors, n_points: int, batch_size: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(points (n, D), labels (n,)): per point a uniform factor k and the mean |z1 - z2| over
    `batch_size` pairs of rows sharing their value of k (the first row of each pair uniform)."""
    codes = np.asarray(codes, np.float64)
    sampler = FactorSampler(factors)
    points, labels = np.empty((n_points, codes.shape[1])), np.empty(n_points, dtype=np.int64)
    for start in range(0, n_points, VOTE_CHUNK):
        t = min(VOTE_CHUNK, n_points - start)
        k = rng.integers(sampler.k, size=t)
        first = rng.integers(sampler.n, size=(t, batch_size))
        second = sampler.same_value(k, first, rng)
        points[start : start + t] = betavae_features(codes[first], codes[second])
        labels[start : start + t] = k
    return points, labels


def betavae_accuracy(train_points, train_labels, eval_points, eval_labels, random_state=0) -> tuple[float, float]:
    """(train accuracy, eval accuracy) of scikit-learn's default LogisticRegression fit on the training points."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # lbfgs' 100 iterations, as in the reference
        model = LogisticRegression(random_state=random_state).fit(train_points, train_labels)
    return (
        float(np.mean(model.predict(train_points) == train_labels)),
        float(np.mean(model.predict(eval_points) == eval_labels)),
    )


def betavae_score(codes, factors, batch_size=64, train_points=10000, eval_points=5000, seed=0) -> dict:
    """{score (eval accuracy), train_accuracy}."""
    rng = np.random.default_rng(seed)
    x_tr, y_tr = betavae_points(codes, factors, train_points, batch_size, rng)
    x_ev, y_ev = betavae_points(codes, factors, eval_points, batch_size, rng)
    if len(np.unique(y_tr)) < 2:
        return {"score": 1.0, "train_accuracy": 1.0}  # a single factor: nothing to tell apart
    train_acc, eval_acc = betavae_accuracy(x_tr, y_tr, x_ev, y_ev, seed)
    return {"score": eval_acc, "train_accuracy": train_acc}


# ---------------------------------------------------------------------------------------------
# modularity and explicitness


def modularity(mutual_information: np.ndarray) -> float:
    """From the MI matrix (D, K): per latent 1 - (sum m^2 - max m^2) / (max m^2 (K - 1)), 0 for a latent
    with no MI; the mean over latents (K = 1: 1 for every informative latent)."""
    squared = np.square(np.asarray(mutual_information, np.float64))
    top = squared.max(axis=1)
    k = squared.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = (squared.sum(axis=1) - top) / (top * (k - 1)) if k > 1 else np.zeros_like(top)
    return float(np.mean(np.where(top == 0.0, 0.0, 1.0 - delta)))


def _standardized(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 0, std, 1.0)  # a constant latent stays constant (0)
    return (train - mean) / std, (test - mean) / std


def _macro_auc(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """ROC-AUC of each class against the rest, averaged over the classes present with both labels."""
    from sklearn.metrics import roc_auc_score

    aucs = []
    for j, c in enumerate(classes):
        truth = y == c
        if truth.all() or not truth.any():
            continue
        aucs.append(roc_auc_score(truth, proba[:, j]))
    return float(np.mean(aucs)) if aucs else float("nan")


def explicitness(codes_train, factors_train, codes_test, factors_test) -> tuple[float, float]:
    """(train, test) explicitness: per factor the macro one-vs-rest ROC-AUC of a default
    LogisticRegression on the standardized codes; the mean over factors."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    z_tr, z_te = _standardized(np.asarray(codes_train, np.float64), np.asarray(codes_test, np.float64))
    v_tr, v_te = np.asarray(factors_train), np.asarray(factors_test)
    train, test = [], []
    for k in range(v_tr.shape[1]):
        if len(np.unique(v_tr[:, k])) < 2:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = LogisticRegression().fit(z_tr, v_tr[:, k])
        train.append(_macro_auc(v_tr[:, k], clf.predict_proba(z_tr), clf.classes_))
        test.append(_macro_auc(v_te[:, k], clf.predict_proba(z_te), clf.classes_))
    return float(np.nanmean(train)), float(np.nanmean(test))


# ---------------------------------------------------------------------------------------------
# unsupervised scores


def gaussian_total_correlation(cov: np.ndarray) -> float:
    """KL(N(0, C) || prod_d N(0, C_dd)) = 1/2 (sum log diag C - log det C), nats."""
    cov = np.asarray(cov, np.float64)
    return float(0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1]))


def gaussian_wasserstein_correlation(cov: np.ndarray) -> float:
    """Squared 2-Wasserstein distance from N(0, C) to the product of its marginals:
    2 tr C - 2 tr sqrt(C diag(C)) (squared latent units)."""
    from scipy.linalg import sqrtm

    cov = np.asarray(cov, np.float64)
    root = sqrtm(cov * np.diag(cov)[:, None])
    return float(2 * np.trace(cov) - 2 * np.trace(np.real(root)))


def mutual_info_score(codes: np.ndarray, n_bins: int = 20) -> float:
    """Mean over pairs d != d' of I(binned z_d; binned z_d'), nats (0 for a single latent)."""
    from sklearn.metrics import mutual_info_score as mi

    binned = discretize(codes, n_bins)
    d = binned.shape[1]
    if d < 2:
        return 0.0
    total = sum(mi(binned[:, i], binned[:, j]) for i in range(d) for j in range(d) if i != j)
    return float(total / (d * d - d))


def unsupervised_scores(codes: np.ndarray, n_bins: int = 20) -> dict:
    """{gaussian_total_correlation, gaussian_wasserstein_correlation(_norm), mutual_info_score}."""
    codes = np.asarray(codes, np.float64)
    cov = np.atleast_2d(np.cov(codes, rowvar=False))
    w = gaussian_wasserstein_correlation(cov)
    return {
        "gaussian_total_correlation": gaussian_total_correlation(cov),
        "gaussian_wasserstein_correlation": w,
        "gaussian_wasserstein_correlation_norm": float(w / np.trace(cov)),
        "mutual_info_score": mutual_info_score(codes, n_bins),
    }


# ---------------------------------------------------------------------------------------------
# the registered metrics: options, columns


class DciOptions(Options):
    """DCI's samples (disentanglement_lib: 10,000 / 5,000; smaller here, see factor_scores.py)."""

    train_samples: int = Field(1000, ge=2, description="test images the boosted trees are fit on")
    test_samples: int = Field(500, ge=1, description="other test images they are scored on")


class FactorVaeOptions(Options):
    """The FactorVAE score's settings (disentanglement_lib's defaults)."""

    batch_size: int = Field(64, ge=2, description="images per vote, sharing one factor's value")
    train_votes: int = Field(10000, ge=1, description="votes the majority-vote classifier is built from")
    eval_votes: int = Field(5000, ge=1, description="other votes it is scored on")
    variance_samples: int = Field(10000, ge=2, description="test images of each latent's global variance")


class BetaVaeOptions(Options):
    """The β-VAE score's settings (disentanglement_lib's defaults)."""

    batch_size: int = Field(64, ge=1, description="image pairs averaged into one point")
    train_points: int = Field(10000, ge=2, description="points the logistic regression is fit on")
    eval_points: int = Field(5000, ge=1, description="other points it is scored on")


class ModularityOptions(Options):
    """Modularity's and explicitness's settings (disentanglement_lib's defaults)."""

    train_samples: int = Field(10000, ge=2, description="test images of the MI and of the classifiers' fit")
    test_samples: int = Field(5000, ge=1, description="other test images explicitness is scored on")
    bins: int = Field(20, ge=2, description="equal-width bins per latent for the MI")


class UnsupervisedOptions(Options):
    """The unsupervised scores' settings (disentanglement_lib's defaults)."""

    samples: int = Field(10000, ge=2, description="test images (at most the split)")
    bins: int = Field(20, ge=2, description="equal-width bins per latent for the mutual-information score")
    representation: Literal["sampled", "mean"] = Field(
        "sampled", description="sampled: one z ~ q(z|x) per image (Locatello et al.); mean: mu(x)"
    )


def _setting(name: str, unit: str, label: str, doc: str, dtype: str = "int") -> Column:
    return Column(name, dtype, unit, None, label, doc)


@register_metric(
    "dci",
    options=DciOptions,
    columns=[
        Column(
            C.DCI_DISENTANGLEMENT, "float", "", "higher", "DCI disentanglement", "Eastwood & Williams 2018, in [0, 1]"
        ),
        Column(C.DCI_COMPLETENESS, "float", "", "higher", "DCI completeness", "in [0, 1]"),
        Column(
            C.DCI_INFORMATIVENESS,
            "float",
            "",
            "higher",
            "DCI informativeness",
            "test accuracy of the per-factor boosted trees, mean over factors, in [0, 1]",
        ),
        Column(
            C.DCI_INFORMATIVENESS_TRAIN,
            "float",
            "",
            "higher",
            "DCI informativeness (train)",
            "the same on the trees' training codes",
            rank=False,
        ),
        _setting(C.DCI_TRAIN_SAMPLES, "images", "DCI fit images", "test images the trees were fit on"),
        _setting(C.DCI_TEST_SAMPLES, "images", "DCI scored images", "other test images they were scored on"),
        _setting(C.DCI_IMPORTANCE, "", "DCI importance model", "the importance model and its settings", "str"),
    ],
)
def dci_metric(ctx) -> dict:
    """DCI of the posterior means (datasets with ground-truth factors); settings in factor_scores.py."""
    fc = factor_codes(ctx)
    n_train, n_test = split_sizes(len(fc.codes), ctx.options.train_samples, ctx.options.test_samples)
    tr, te = fc.order[:n_train], fc.order[n_train : n_train + n_test]
    out = dci(fc.codes[tr], fc.factors[tr], fc.codes[te], fc.factors[te], random_state=fc.seed)
    return {
        C.DCI_DISENTANGLEMENT: out["disentanglement"],
        C.DCI_COMPLETENESS: out["completeness"],
        C.DCI_INFORMATIVENESS: out["informativeness"],
        C.DCI_INFORMATIVENESS_TRAIN: out["informativeness_train"],
        C.DCI_TRAIN_SAMPLES: int(n_train),
        C.DCI_TEST_SAMPLES: int(n_test),
        C.DCI_IMPORTANCE: GBT,
    }


@register_metric(
    "factorvae_score",
    options=FactorVaeOptions,
    columns=[
        Column(
            C.FACTORVAE_SCORE,
            "float",
            "",
            "higher",
            "FactorVAE score",
            "Kim & Mnih 2018: accuracy of the majority vote on held-out votes, in [0, 1]",
        ),
        Column(
            C.FACTORVAE_TRAIN_ACCURACY,
            "float",
            "",
            "higher",
            "FactorVAE score (train)",
            "the majority vote's accuracy on its own votes",
            rank=False,
        ),
        _setting(C.FACTORVAE_BATCH_SIZE, "images", "FactorVAE images per vote", "images sharing one factor's value"),
        _setting(C.FACTORVAE_TRAIN_VOTES, "votes", "FactorVAE train votes", "votes the classifier is built from"),
        _setting(C.FACTORVAE_EVAL_VOTES, "votes", "FactorVAE eval votes", "other votes it is scored on"),
        _setting(C.FACTORVAE_VARIANCE_SAMPLES, "images", "FactorVAE variance images", "images of the global variances"),
    ],
)
def factorvae_metric(ctx) -> dict:
    """The FactorVAE score of the posterior means (datasets with ground-truth factors)."""
    fc, o = factor_codes(ctx), ctx.options
    out = factorvae_score(
        fc.codes, fc.factors, o.batch_size, o.train_votes, o.eval_votes, o.variance_samples, seed=fc.seed
    )
    if out["active_dims"] == 0:
        raise MetricNotApplicable("every posterior mean is constant over the test images")
    return {
        C.FACTORVAE_SCORE: out["score"],
        C.FACTORVAE_TRAIN_ACCURACY: out["train_accuracy"],
        C.FACTORVAE_BATCH_SIZE: o.batch_size,
        C.FACTORVAE_TRAIN_VOTES: o.train_votes,
        C.FACTORVAE_EVAL_VOTES: o.eval_votes,
        C.FACTORVAE_VARIANCE_SAMPLES: min(o.variance_samples, len(fc.codes)),
    }


@register_metric(
    "betavae_score",
    options=BetaVaeOptions,
    columns=[
        Column(
            C.BETAVAE_SCORE,
            "float",
            "",
            "higher",
            "β-VAE score",
            "Higgins et al. 2017: held-out accuracy of the linear classifier of the fixed factor, in [0, 1]",
        ),
        Column(
            C.BETAVAE_TRAIN_ACCURACY,
            "float",
            "",
            "higher",
            "β-VAE score (train)",
            "its accuracy on its training points",
            rank=False,
        ),
        _setting(C.BETAVAE_BATCH_SIZE, "pairs", "β-VAE pairs per point", "image pairs averaged into one point"),
        _setting(C.BETAVAE_TRAIN_POINTS, "points", "β-VAE train points", "points the classifier was fit on"),
        _setting(C.BETAVAE_EVAL_POINTS, "points", "β-VAE eval points", "other points it was scored on"),
        _setting(C.BETAVAE_CLASSIFIER, "", "β-VAE classifier", "the classifier and its settings", "str"),
    ],
)
def betavae_metric(ctx) -> dict:
    """The β-VAE score of the posterior means (datasets with ground-truth factors)."""
    fc, o = factor_codes(ctx), ctx.options
    out = betavae_score(fc.codes, fc.factors, o.batch_size, o.train_points, o.eval_points, seed=fc.seed)
    return {
        C.BETAVAE_SCORE: out["score"],
        C.BETAVAE_TRAIN_ACCURACY: out["train_accuracy"],
        C.BETAVAE_BATCH_SIZE: o.batch_size,
        C.BETAVAE_TRAIN_POINTS: o.train_points,
        C.BETAVAE_EVAL_POINTS: o.eval_points,
        C.BETAVAE_CLASSIFIER: LOGISTIC,
    }


@register_metric(
    "modularity",
    options=ModularityOptions,
    columns=[
        Column(C.MODULARITY, "float", "", "higher", "Modularity", "Ridgeway & Mozer 2018, in [0, 1]"),
        Column(
            C.EXPLICITNESS,
            "float",
            "",
            "higher",
            "Explicitness",
            "Ridgeway & Mozer 2018: held-out one-vs-rest ROC-AUC of a logistic regression per factor, mean",
        ),
        Column(
            C.EXPLICITNESS_TRAIN,
            "float",
            "",
            "higher",
            "Explicitness (train)",
            "the same on its training codes",
            rank=False,
        ),
        _setting(C.MODULARITY_TRAIN_SAMPLES, "images", "Modularity fit images", "test images of the MI and the fit"),
        _setting(C.MODULARITY_TEST_SAMPLES, "images", "Explicitness scored images", "other test images"),
        _setting(C.MODULARITY_BINS, "bins", "Modularity bins", "equal-width bins per latent"),
    ],
)
def modularity_metric(ctx) -> dict:
    """Modularity and explicitness of the posterior means (datasets with ground-truth factors)."""
    from .disentanglement import mutual_information

    fc, o = factor_codes(ctx), ctx.options
    n_train, n_test = split_sizes(len(fc.codes), o.train_samples, o.test_samples)
    tr, te = fc.order[:n_train], fc.order[n_train : n_train + n_test]
    train, test = explicitness(fc.codes[tr], fc.factors[tr], fc.codes[te], fc.factors[te])
    return {
        C.MODULARITY: modularity(mutual_information(fc.codes[tr], fc.factors[tr], o.bins)),
        C.EXPLICITNESS: test,
        C.EXPLICITNESS_TRAIN: train,
        C.MODULARITY_TRAIN_SAMPLES: int(n_train),
        C.MODULARITY_TEST_SAMPLES: int(n_test),
        C.MODULARITY_BINS: o.bins,
    }


@register_metric(
    "unsupervised",
    options=UnsupervisedOptions,
    columns=[
        Column(
            C.GAUSSIAN_TOTAL_CORRELATION,
            "float",
            "nats",
            "lower",
            "Gaussian TC",
            "total correlation of a Gaussian with the codes' covariance, >= 0",
        ),
        Column(
            C.GAUSSIAN_WASSERSTEIN_CORRELATION,
            "float",
            "squared latent units",
            "lower",
            "Gaussian W2 correlation",
            "squared 2-Wasserstein distance of that Gaussian to the product of its marginals",
        ),
        Column(
            C.GAUSSIAN_WASSERSTEIN_CORRELATION_NORM,
            "float",
            "",
            "lower",
            "Gaussian W2 correlation / trace",
            "the same over the trace of the covariance",
        ),
        Column(C.MUTUAL_INFO_SCORE, "float", "nats", "lower", "Mutual info score", "mean MI between pairs of latents"),
        _setting(C.UNSUPERVISED_SAMPLES, "images", "Unsupervised images", "test images of the unsupervised scores"),
        _setting(C.UNSUPERVISED_BINS, "bins", "Unsupervised bins", "equal-width bins per latent for the MI"),
        _setting(
            C.UNSUPERVISED_REPRESENTATION, "", "Unsupervised representation", "sampled (z ~ q(z|x)) or mean", "str"
        ),
    ],
)
def unsupervised_metric(ctx) -> dict:
    """disentanglement_lib's unsupervised scores of the sampled (or mean) representation of test images
    (reported on datasets with ground-truth factors, with the factor scores)."""
    fc, o = factor_codes(ctx), ctx.options
    n = min(o.samples, len(fc.codes))
    rows = fc.order[:n]
    codes = fc.codes[rows]
    if o.representation == "sampled":
        noise = np.random.default_rng([fc.seed, 1]).standard_normal(codes.shape)
        codes = codes + np.exp(0.5 * fc.logvar[rows]) * noise
    if not np.isfinite(codes).all() or (codes.var(axis=0) <= 0).any():
        raise MetricNotApplicable("a latent of the representation is constant or not finite: no Gaussian to score")
    out = unsupervised_scores(codes, o.bins)
    return {
        C.GAUSSIAN_TOTAL_CORRELATION: out["gaussian_total_correlation"],
        C.GAUSSIAN_WASSERSTEIN_CORRELATION: out["gaussian_wasserstein_correlation"],
        C.GAUSSIAN_WASSERSTEIN_CORRELATION_NORM: out["gaussian_wasserstein_correlation_norm"],
        C.MUTUAL_INFO_SCORE: out["mutual_info_score"],
        C.UNSUPERVISED_SAMPLES: int(n),
        C.UNSUPERVISED_BINS: o.bins,
        C.UNSUPERVISED_REPRESENTATION: o.representation,
    }
