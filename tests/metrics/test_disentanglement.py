"""MIG and SAP (vaebench/metrics/disentanglement.py) on synthetic codes whose answer is known, against
direct re-implementations (numpy histograms + scikit-learn's mutual_info_score, scikit-learn's
LinearRegression + r2_score and scipy's linregress, a direct LinearSVC), and the `disentanglement`
metric end to end on a tiny shapes dataset."""

import math
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from scipy import stats
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mutual_info_score, r2_score
from sklearn.svm import LinearSVC

from vaebench.data import load_dataset
from vaebench.engine.train import train
from vaebench.metrics import METRICS, EvalContext, evaluate
from vaebench.metrics import column_names as C
from vaebench.metrics.disentanglement import (
    discretize,
    factor_entropy,
    mig,
    mig_per_factor,
    mutual_information,
    sample_sizes,
    sap,
    sap_per_factor,
    sap_score_matrix,
)
from vaebench.spec.sweep_spec import RunConfig

# A dSprites-like factor layout: shape (3 classes, categorical), scale, orientation, x, y (ordered).
SIZES = (3, 6, 10, 16, 16)
CATEGORICAL = [True, False, False, False, False]


def draw_factors(n: int, seed: int, sizes=SIZES) -> np.ndarray:
    """n independent uniform draws of the factor grid: (n, K) value indices."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, s, n) for s in sizes], axis=1)


def perfect_code(factors: np.ndarray, n_noise: int, seed: int) -> np.ndarray:
    """Latent k = factor k (as a number), then `n_noise` latents of pure noise."""
    rng = np.random.default_rng(seed)
    return np.hstack([factors.astype(np.float64), rng.normal(size=(len(factors), n_noise))])


def standardized(factors: np.ndarray) -> np.ndarray:
    f = factors.astype(np.float64)
    return (f - f.mean(0)) / f.std(0)


def split(codes, factors, n_train):
    return codes[:n_train], factors[:n_train], codes[n_train:], factors[n_train:]


# ---- independent re-implementations -----------------------------------------------------------


def reference_mig_per_factor(codes, factors, n_bins=20):
    """disentanglement_lib's formula written out: bin each latent with numpy's histogram edges,
    I(z_d; v_k) with scikit-learn, H(v_k) from the value counts, (top - second) / H per factor."""
    n, d_count = codes.shape
    binned = np.empty(codes.shape, dtype=np.int64)
    for d in range(d_count):
        _, edges = np.histogram(codes[:, d], bins=n_bins)
        binned[:, d] = np.digitize(codes[:, d], edges[:-1])
    out = []
    for k in range(factors.shape[1]):
        mi = sorted((mutual_info_score(factors[:, k], binned[:, d]) for d in range(d_count)), reverse=True)
        p = np.unique(factors[:, k], return_counts=True)[1] / n
        h = -np.sum(p * np.log(p))
        second = mi[1] if d_count > 1 else 0.0
        out.append((mi[0] - second) / h if h > 0 else np.nan)
    return np.array(out)


def reference_r2(z_train, v_train, z_test, v_test):
    """Held-out R^2: scikit-learn's least-squares line fit on the training codes, r2_score on the
    test codes, clipped at 0 (a latent that predicts worse than the mean predicts nothing)."""
    line = LinearRegression().fit(z_train[:, None], v_train.astype(np.float64))
    return max(0.0, r2_score(v_test.astype(np.float64), line.predict(z_test[:, None])))


def reference_svm_accuracy(z_train, v_train, z_test, v_test, dual, c=0.01):
    """disentanglement_lib's classifier, LinearSVC(C=0.01, class_weight='balanced'), fit directly on the
    latent standardized with its training mean and std; the dual form is run to convergence (its
    default iteration cap is not enough on one feature)."""
    kw = {"max_iter": 1_000_000, "tol": 1e-10} if dual else {}
    mean, std = z_train.mean(), z_train.std()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = LinearSVC(C=c, class_weight="balanced", dual=dual, **kw).fit(((z_train - mean) / std)[:, None], v_train)
    return float(np.mean(clf.predict(((z_test - mean) / std)[:, None]) == v_test))


def reference_sap_per_factor(z_tr, v_tr, z_te, v_te, categorical):
    k_count, d_count = v_tr.shape[1], z_tr.shape[1]
    gaps = []
    for k in range(k_count):
        if categorical[k]:
            s = [
                reference_svm_accuracy(z_tr[:, d], v_tr[:, k], z_te[:, d], v_te[:, k], dual=True)
                for d in range(d_count)
            ]
        else:
            s = [reference_r2(z_tr[:, d], v_tr[:, k], z_te[:, d], v_te[:, k]) for d in range(d_count)]
        s = sorted(s, reverse=True)
        gaps.append(s[0] - (s[1] if d_count > 1 else 0.0))
    return np.array(gaps)


# ---- MIG -------------------------------------------------------------------------------------


def test_discretize_gives_equal_width_bins_one_to_n():
    z = np.array([[0.0], [0.049], [0.05], [0.5], [0.999], [1.0]])
    b = discretize(z, 20)
    # width 1/20: 0 and 0.049 in bin 1, 0.05 opens bin 2, the maximum is in the last bin
    assert b.ravel().tolist() == [1, 1, 2, 11, 20, 20]
    rng = np.random.default_rng(0)
    b = discretize(rng.normal(size=(5000, 3)), 7)
    assert b.min() == 1 and b.max() == 7 and all(len(np.unique(b[:, d])) == 7 for d in range(3))


def test_perfect_code_scores_mig_one():
    f = draw_factors(10_000, seed=0)
    per = mig_per_factor(perfect_code(f, n_noise=3, seed=1), f)
    # every factor has <= 20 values, so its copy falls into distinct bins: I(z_k; v_k) = H(v_k) exactly;
    # the second latent's MI is only the estimator's bias, ~ (bins - 1)(values - 1) / 2N nats
    assert per.shape == (5,)
    assert np.all(per > 0.99) and np.all(per <= 1.0)
    assert mig(perfect_code(f, 3, 1), f) == pytest.approx(per.mean())
    mi = mutual_information(perfect_code(f, 3, 1), f)
    assert np.allclose(np.diag(mi[:5]), factor_entropy(f), rtol=0, atol=1e-12)
    assert np.allclose(factor_entropy(f), np.log(SIZES), atol=0.01)  # near-uniform factors


def test_a_perfect_code_of_a_factor_with_more_values_than_bins_is_capped():
    # 32 values into 20 equal-width bins of width 31/20: 12 bins hold two values, 8 hold one, so even
    # the factor's own copy carries only H(bin) < H(v) (as in disentanglement_lib: MIG < 1 on dSprites'
    # 32 positions). The bin of value i is floor(20 i / 31) + 1 (no value falls on an inner edge).
    v = np.tile(np.arange(32), 300)[:, None]
    z = np.hstack([v.astype(np.float64), np.random.default_rng(41).normal(size=(len(v), 2))])
    bins = np.minimum(np.floor(v[:, 0] * 20 / 31).astype(int), 19)
    p_bin = np.bincount(bins) / len(v)
    assert sorted(np.bincount(bins).tolist()) == [300] * 8 + [600] * 12
    expected = -np.sum(p_bin * np.log(p_bin)) / np.log(32)
    assert expected == pytest.approx((12 / 16 * 4 + 8 / 32 * 5) / 5)  # in bits: 4.25 of 5
    assert mig(z, v) == pytest.approx(expected, abs=0.01)
    assert mutual_information(z, v)[0, 0] == pytest.approx(expected * np.log(32), abs=1e-12)


def test_mixed_and_noise_codes_score_mig_near_zero():
    f = draw_factors(10_000, seed=2)
    # every latent the sum of all standardized factors with random signs: each latent carries the same
    # information about every factor, so no latent stands out for any factor
    signs = np.random.default_rng(3).choice([-1.0, 1.0], size=(5, 8))
    mixed = standardized(f) @ signs
    assert np.all(mig_per_factor(mixed, f) < 0.02)
    noise = np.random.default_rng(4).normal(size=(10_000, 8))
    assert np.all(mig_per_factor(noise, f) < 0.01)
    assert mig(noise, f) < 0.005


def test_gaussian_mixes_score_far_below_a_perfect_code():
    # a random Gaussian mixing matrix lets some latents lean towards a factor by chance, so its MIG is
    # not 0, but it stays far below the perfect code's (observed 0.05-0.28 over these seeds)
    f = draw_factors(10_000, seed=5)
    for s in range(5):
        mixed = standardized(f) @ np.random.default_rng(s).normal(size=(5, 8))
        assert mig(mixed, f) < 0.4


@pytest.mark.parametrize("code", ["perfect", "noisy", "random"])
def test_mig_equals_a_direct_reimplementation(code):
    f = draw_factors(4000, seed=6)
    rng = np.random.default_rng(7)
    if code == "perfect":
        z = perfect_code(f, 2, seed=8)
    elif code == "noisy":  # each factor in one latent plus noise, plus a leak of the next factor
        z = standardized(f) + 0.5 * rng.normal(size=f.shape) + 0.3 * np.roll(standardized(f), 1, axis=1)
        z = np.hstack([z, rng.normal(size=(len(f), 3))])
    else:
        z = rng.normal(size=(4000, 6)) * rng.uniform(0.1, 10, size=6)
    for n_bins in (20, 7):
        ref = reference_mig_per_factor(z, f, n_bins)
        np.testing.assert_allclose(mig_per_factor(z, f, n_bins), ref, rtol=0, atol=1e-12)
        assert mig(z, f, n_bins) == pytest.approx(ref.mean(), abs=1e-12)
    if code == "perfect":  # N = 4000: the estimator's bias alone (~ 19 * 15 / 2N nats, 16 values) costs ~0.013
        assert mig(z, f) > 0.98
    elif code == "noisy":
        assert mig(z, f) > 0.1


def test_permuting_latents_leaves_mig_and_sap_unchanged():
    f = draw_factors(4000, seed=9)
    rng = np.random.default_rng(10)
    z = np.hstack([standardized(f) + 0.7 * rng.normal(size=f.shape), rng.normal(size=(4000, 3))])
    perm = rng.permutation(z.shape[1])
    assert np.array_equal(mig_per_factor(z[:, perm], f), mig_per_factor(z, f))
    a = sap_per_factor(*split(z, f, 3000), CATEGORICAL)
    b = sap_per_factor(*split(z[:, perm], f, 3000), CATEGORICAL)
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-12)
    assert a.min() > 0.05  # a structured code: the test compares real, non-zero scores


def test_scaling_or_shifting_a_latent_leaves_mig_unchanged():
    f = draw_factors(4000, seed=11)
    rng = np.random.default_rng(12)
    z = np.hstack([standardized(f) + 0.6 * rng.normal(size=f.shape), rng.normal(size=(4000, 2))])
    base = mig_per_factor(z, f)
    for scale, shift in [(3.0, 5.0), (1e-3, -2.0), (-2.0, 0.0), (250.0, 1e4)]:
        t = z.copy()
        t[:, 0] = scale * t[:, 0] + shift
        t[:, 4] = t[:, 4] * abs(scale) - shift
        np.testing.assert_allclose(mig_per_factor(t, f), base, rtol=0, atol=1e-12)
    # R^2 is affine invariant too (sign included)
    t = z.copy()
    t[:, 1] = -4 * t[:, 1] + 7
    np.testing.assert_allclose(
        sap_per_factor(*split(t, f, 3000), False), sap_per_factor(*split(z, f, 3000), False), rtol=0, atol=1e-12
    )


def test_constant_factor_has_no_mig_and_is_left_out():
    f = draw_factors(3000, seed=13)
    f[:, 2] = 4  # orientation constant over the sample
    z = perfect_code(f, 2, seed=14)
    per = mig_per_factor(z, f)
    assert np.isnan(per[2]) and np.all(np.isfinite(np.delete(per, 2)))
    assert mig(z, f) == pytest.approx(np.mean(np.delete(per, 2)))
    assert factor_entropy(f)[2] == 0.0
    # SAP: a constant factor cannot be predicted better or worse by any latent: no SAP (NaN), left
    # out of the mean, R^2 and SVM alike
    for cat in (CATEGORICAL, True):
        per = sap_per_factor(*split(z, f, 2000), cat)
        assert np.isnan(per[2]) and not np.isnan(np.delete(per, 2)).any()
        assert sap(*split(z, f, 2000), cat) == pytest.approx(np.mean(np.delete(per, 2)), abs=1e-12)


def test_one_latent_gap_is_to_zero():
    f = draw_factors(3000, seed=15, sizes=(4,))
    rng = np.random.default_rng(16)
    z = f + 0.3 * rng.normal(size=f.shape)
    h = factor_entropy(f)[0]
    assert mig_per_factor(z, f)[0] == pytest.approx(mutual_info_score(f[:, 0], discretize(z)[:, 0]) / h, abs=1e-12)
    assert 0.2 < mig(z, f) < 1
    z_tr, f_tr, z_te, f_te = split(z, f, 2000)
    assert sap(z_tr, f_tr, z_te, f_te, False) == pytest.approx(
        reference_r2(z_tr[:, 0], f_tr[:, 0], z_te[:, 0], f_te[:, 0]), abs=1e-12
    )
    assert sap(z_tr, f_tr, z_te, f_te, True) == pytest.approx(
        reference_svm_accuracy(z_tr[:, 0], f_tr[:, 0], z_te[:, 0], f_te[:, 0], dual=False), abs=1e-12
    )


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_codes_raise(bad):
    f = draw_factors(100, seed=17)
    z = np.random.default_rng(18).normal(size=(100, 4))
    z[7, 2] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        mig(z, f)
    with pytest.raises(ValueError, match="NaN or infinite"):
        sap(z[:50], f[:50], np.nan_to_num(z[50:]), f[50:], CATEGORICAL)
    with pytest.raises(ValueError, match="NaN or infinite"):
        sap(np.nan_to_num(z[50:]), f[50:], z[:50], f[:50], CATEGORICAL)


def test_shape_mismatch_raises():
    f = draw_factors(100, seed=19)
    with pytest.raises(ValueError, match="same N"):
        mig(np.zeros((99, 3)), f)
    with pytest.raises(ValueError, match="same N"):
        mig(np.zeros(100), f)


# ---- SAP -------------------------------------------------------------------------------------


def test_perfect_code_scores_sap_one_on_ordered_factors_and_near_the_bound_on_shape():
    f_tr, f_te = draw_factors(5000, seed=20), draw_factors(5000, seed=21)
    z_tr, z_te = perfect_code(f_tr, 3, seed=22), perfect_code(f_te, 3, seed=23)
    scores = sap_score_matrix(z_tr, f_tr, z_te, f_te, CATEGORICAL)
    assert scores.shape == (8, 5)
    # ordered factors: the copy has R^2 = 1, every other latent ~ 1/N
    for k in range(1, 5):
        assert scores[k, k] == pytest.approx(1.0, abs=1e-12)
        assert np.all(np.delete(scores[:, k], k) < 0.005)
    per = sap_per_factor(z_tr, f_tr, z_te, f_te, CATEGORICAL)
    assert np.all(per[1:] > 0.99)
    # shape (3 classes, SVM accuracy): the copy is classified perfectly - one-vs-rest on one feature
    # takes the argmax of three lines, which carves the middle class out too - but every other latent
    # still predicts about 1/3 (balanced classes), so the gap is bounded by 1 - chance = 2/3, not 1
    assert scores[0, 0] == 1.0
    others = np.delete(scores[:, 0], 0)
    assert np.all(np.abs(others - 1 / 3) < 0.03)
    assert per[0] == pytest.approx(1 - others.max(), abs=1e-12)
    assert per[0] == pytest.approx(2 / 3, abs=0.03) and per[0] <= 2 / 3 + 0.02
    assert sap(z_tr, f_tr, z_te, f_te, CATEGORICAL) == pytest.approx(per.mean())
    assert sap(z_tr, f_tr, z_te, f_te, CATEGORICAL) > 0.9


def test_svm_on_every_factor_underrates_a_perfect_code_on_many_valued_factors():
    # disentanglement_lib's convention (categorical=True for every factor): a linear one-vs-rest SVM
    # on one latent cannot separate 6-16 ordered values, so even the perfect code scores little there
    f_tr, f_te = draw_factors(3000, seed=24), draw_factors(3000, seed=25)
    z_tr, z_te = perfect_code(f_tr, 2, seed=26), perfect_code(f_te, 2, seed=27)
    per = sap_per_factor(z_tr, f_tr, z_te, f_te, True)
    assert per[0] == pytest.approx(2 / 3, abs=0.03)
    assert np.all(per[1:] < 0.5)
    assert per[4] < per[1]  # the more values, the worse


def test_mixed_and_noise_codes_score_sap_near_zero():
    f = draw_factors(10_000, seed=28)
    signs = np.random.default_rng(29).choice([-1.0, 1.0], size=(5, 8))
    mixed = standardized(f) @ signs
    assert np.all(sap_per_factor(*split(mixed, f, 5000), CATEGORICAL) < 0.03)
    noise = np.random.default_rng(30).normal(size=(10_000, 8))
    assert np.all(sap_per_factor(*split(noise, f, 5000), CATEGORICAL) < 0.03)
    assert sap(*split(noise, f, 5000), CATEGORICAL) < 0.01


def test_r2_of_a_gaussian_mix_is_each_factors_share_of_the_latent_variance():
    # independent standardized factors: z_d = sum_k A_kd v_k has R^2(z_d, v_k) = A_kd^2 / sum_j A_jd^2
    f = draw_factors(20_000, seed=31)
    a = np.random.default_rng(32).normal(size=(5, 6))
    z = standardized(f) @ a
    scores = sap_score_matrix(*split(z, f, 10_000), False)
    expected = (a**2 / (a**2).sum(0)).T  # (D, K)
    assert np.allclose(scores, expected, atol=0.02)
    ranked = np.sort(expected, axis=0)
    assert sap(*split(z, f, 10_000), False) == pytest.approx(np.mean(ranked[-1] - ranked[-2]), abs=0.02)


def _signal_codes(n, f, rng):
    return np.hstack([standardized(f) * [0.2, 1, 2, 3, 4] + rng.normal(size=f.shape), rng.normal(size=(n, 2))])


def test_r2_is_held_out_and_equals_scikit_learn_and_linregress():
    f_tr, f_te = draw_factors(3000, seed=33), draw_factors(1000, seed=34)
    rng = np.random.default_rng(35)
    z_tr, z_te = _signal_codes(3000, f_tr, rng), _signal_codes(1000, f_te, rng)
    scores = sap_score_matrix(z_tr, f_tr, z_te, f_te, False)
    for d in range(7):
        for k in range(5):
            assert scores[d, k] == pytest.approx(
                reference_r2(z_tr[:, d], f_tr[:, k], z_te[:, d], f_te[:, k]), abs=1e-12
            )
    assert scores.max() > 0.5  # real signal, not just noise
    # scored on its own training codes, the held-out R^2 is the in-sample R^2 of least squares: r^2
    in_sample = sap_score_matrix(z_tr, f_tr, z_tr, f_tr, False)
    for d in range(7):
        for k in range(5):
            assert in_sample[d, k] == pytest.approx(stats.linregress(z_tr[:, d], f_tr[:, k]).rvalue ** 2, abs=1e-12)
            assert in_sample[d, k] == pytest.approx(np.corrcoef(z_tr[:, d], f_tr[:, k])[0, 1] ** 2, abs=1e-12)
    # the test codes matter: codes that carry nothing at test time score 0 (clipped, never negative)
    held = sap_score_matrix(z_tr, f_tr, rng.normal(size=(1000, 7)), f_te, False)
    assert held.max() < 0.01 and (held == 0.0).sum() >= 10 and held.min() >= 0.0
    # a constant latent scores 0, not NaN
    z_tr[:, 6] = 1.5
    assert np.all(sap_score_matrix(z_tr, f_tr, z_te, f_te, False)[6] == 0.0)


def test_shifting_or_scaling_a_latent_leaves_sap_unchanged():
    rng = np.random.default_rng(41)
    f_tr, f_te = draw_factors(400, seed=42), draw_factors(1000, seed=43)
    z_tr, z_te = _signal_codes(400, f_tr, rng), _signal_codes(1000, f_te, rng)
    base = sap_score_matrix(z_tr, f_tr, z_te, f_te, CATEGORICAL)
    for shift, scale in [(20.0, 1.0), (-5.0, 0.01), (3.0, 40.0)]:
        moved = sap_score_matrix(z_tr * scale + shift, f_tr, z_te * scale + shift, f_te, CATEGORICAL)
        np.testing.assert_allclose(moved, base, rtol=0, atol=2 / 1000 + 1e-9)  # at most ~1 test image's rounding


def test_svm_accuracy_equals_a_direct_linear_svc():
    rng = np.random.default_rng(36)
    n_tr, n_te = 200, 1000
    f_tr, f_te = draw_factors(n_tr, seed=37), draw_factors(n_te, seed=38)
    # latents of decreasing information about the shape, with offsets (no-ops: the latent is
    # standardized) and a leak of x
    noise, offset = np.array([0.3, 0.5, 1.5, 3.0]), np.array([0.0, 5.0, 2.0, 0.0])
    z_tr = f_tr[:, [0]] + noise * rng.normal(size=(n_tr, 4)) + offset + 0.1 * f_tr[:, [3]]
    z_te = f_te[:, [0]] + noise * rng.normal(size=(n_te, 4)) + offset + 0.1 * f_te[:, [3]]
    cat = [True, False, False, True, False]
    scores = sap_score_matrix(z_tr, f_tr, z_te, f_te, cat)
    other_c = []
    for d in range(4):
        for k in (0, 3):
            primal = reference_svm_accuracy(z_tr[:, d], f_tr[:, k], z_te[:, d], f_te[:, k], dual=False)
            dual = reference_svm_accuracy(z_tr[:, d], f_tr[:, k], z_te[:, d], f_te[:, k], dual=True)
            assert scores[d, k] == primal
            # the deliberate difference (primal instead of disentanglement_lib's dual): the same classifier
            # (up to the solver tolerance: at most one test image on the other side of the boundary)
            assert abs(scores[d, k] - dual) * n_te <= 1 + 1e-9
            other_c.append(reference_svm_accuracy(z_tr[:, d], f_tr[:, k], z_te[:, d], f_te[:, k], False, c=1.0))
    # the comparison is sensitive to the classifier's settings: C = 1 gives other accuracies here
    assert np.abs(np.array(other_c) - scores[:4][:, [0, 3]].ravel()).max() > 0.02  # 20 test images, not 1
    assert scores[0, 0] > 0.65 and scores[0, 0] > scores[3, 0]
    # and the whole SAP against the reference built from linregress and the dual LinearSVC
    ours = sap_per_factor(z_tr, f_tr, z_te, f_te, cat)
    ref = reference_sap_per_factor(z_tr, f_tr, z_te, f_te, cat)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=2 / n_te + 1e-12)


def test_categorical_takes_one_flag_or_one_per_factor():
    f = draw_factors(2000, seed=39)
    z = perfect_code(f, 1, seed=40)
    args = split(z, f, 1000)
    all_r2 = sap_score_matrix(*args, False)
    all_svm = sap_score_matrix(*args, True)
    mixed = sap_score_matrix(*args, CATEGORICAL)
    assert np.array_equal(mixed[:, 0], all_svm[:, 0]) and np.array_equal(mixed[:, 1:], all_r2[:, 1:])
    with pytest.raises(ValueError):
        sap_score_matrix(*args, [True, False])  # neither one flag nor one per factor


def test_a_single_class_training_sample_predicts_that_class():
    z_tr, f_tr = np.zeros((10, 1)) + np.arange(10)[:, None], np.zeros((10, 1), dtype=int)
    z_te, f_te = np.arange(4.0)[:, None], np.array([[0], [1], [0], [2]])
    assert sap_score_matrix(z_tr, f_tr, z_te, f_te, True)[0, 0] == 0.5


# ---- sample sizes ------------------------------------------------------------------------------


def test_sample_sizes():
    # enough images: the asked counts
    assert sample_sizes(20_000, 10_000, 5000, 5000) == (10_000, 5000, 5000)
    assert sample_sizes(10_000, 10_000, 5000, 5000) == (10_000, 5000, 5000)  # exactly enough
    # fewer: MIG on all of them, SAP's parts scaled down together to fill the split, ratio kept
    assert sample_sizes(9999, 10_000, 5000, 5000) == (9999, 4999, 5000)
    assert sample_sizes(1200, 10_000, 8000, 2000) == (1200, 960, 240)
    assert sample_sizes(1000, 500, 300, 900) == (500, 250, 750)
    assert sample_sizes(2, 10_000, 5000, 5000) == (2, 1, 1)
    assert sample_sizes(3, 10_000, 2, 5000) == (3, 1, 2)  # at least one training image
    for n in range(2, 300):
        for tr, te in [(5000, 5000), (2, 1), (7, 1000), (1000, 3)]:
            n_mig, n_tr, n_te = sample_sizes(n, 10_000, tr, te)
            assert n_mig == min(n, 10_000)
            assert n_tr >= 1 and n_te >= 1 and n_tr + n_te <= n
            if tr + te > n:
                assert n_tr + n_te == n and abs(n_tr / n - tr / (tr + te)) <= 1 / n + 1e-12


# ---- the metric end to end ---------------------------------------------------------------------

TINY = {"name": "shapes", "image_size": 16, "scales": 2, "orientations": 2, "positions": 4}


def _run_cfg(dataset: dict, eval_kw: dict | None = None, epochs: int = 1) -> RunConfig:
    return RunConfig.model_validate(
        {
            "dataset": dataset,
            "model": {"name": "mlp", "hidden_dim": 32, "latent_dim": 4},
            "train": {"epochs": epochs, "batch_size": 32},
            "eval": {"fid_extractor": None, **(eval_kw or {})},
        }
    )


@pytest.fixture(scope="module")
def tiny_shapes():
    cfg = _run_cfg(TINY, epochs=2)
    data = load_dataset(cfg.dataset)
    result = train(cfg, data, seed=0, device="cpu")
    assert result.status == "ok"
    return cfg, data, result.model


def _codes(model, data):
    with torch.no_grad():
        mu, _ = model.encode(data.x_test, data.y_test)
    return mu.double().numpy()


# the declared columns and the Arrow type each dtype is stored as (written out here, not read from vaebench)
DECLARED = {
    C.MIG: "float",
    C.SAP_DLIB: "float",
    C.SAP: "float",
    C.MIG_PER_FACTOR: "list[float]",
    C.SAP_PER_FACTOR: "list[float]",
    C.SAP_DLIB_PER_FACTOR: "list[float]",
    C.DISENTANGLEMENT_FACTORS: "list[str]",
    C.MIG_SAMPLES: "int",
    C.MIG_BINS: "int",
    C.SAP_TRAIN_SAMPLES: "int",
    C.SAP_TEST_SAMPLES: "int",
    C.DISENTANGLEMENT_SEED: "int",
}
ARROW = {
    "float": pa.float64(),
    "int": pa.int64(),
    "list[float]": pa.list_(pa.float64()),
    "list[str]": pa.list_(pa.string()),
}


class _GivenCodes(torch.nn.Module):
    """A stand-in model whose posterior means are given codes (N, D), handed out batch after batch."""

    def __init__(self, codes: torch.Tensor):
        super().__init__()
        self.codes, self.i = codes, 0
        self.likelihood = None
        self.w = torch.nn.Parameter(torch.zeros(1))

    def encode(self, x, y=None):
        mu = self.codes[self.i : self.i + len(x)]
        self.i += len(x)
        return mu, torch.zeros_like(mu)


def _expected(codes: np.ndarray, factors: np.ndarray, categorical, seed: int = 0) -> dict:
    """MIG and SAP per factor of the default subsets (all N test images for MIG, SAP fit on the first
    half of the seeded permutation and scored on the second: N < the 5,000 + 5,000 asked), from the
    re-implementations above."""
    n = len(codes)
    order = np.random.default_rng(seed).permutation(n)
    m, tr, te = order, order[: n // 2], order[n // 2 :]
    return {
        "mig": reference_mig_per_factor(codes[m], factors[m]),
        "sap": reference_sap_per_factor(codes[tr], factors[tr], codes[te], factors[te], categorical),
        "n_test": len(te),
    }


def _assert_values(row: dict, expected: dict) -> None:
    tol = 2 / expected["n_test"] + 1e-12  # the primal SVM against the reference's dual: one test image at most
    assert row[C.MIG_PER_FACTOR] == pytest.approx(list(expected["mig"]), abs=1e-12)
    assert row[C.SAP_PER_FACTOR] == pytest.approx(list(expected["sap"]), abs=tol)
    assert row[C.MIG] == pytest.approx(np.mean(expected["mig"]), abs=1e-12)
    assert row[C.SAP] == pytest.approx(np.mean(expected["sap"]), abs=tol)


def test_metric_is_registered_and_a_row_holds_what_it_computes(tmp_path):
    import vaebench

    spec = METRICS.get("disentanglement")
    assert "disentanglement" in METRICS.names()
    assert {c.name: c.dtype for c in spec.columns} == DECLARED
    cfg = _run_cfg(TINY)
    data = load_dataset(cfg.dataset)
    factors, categorical = data.factors_test.numpy(), [f.categorical for f in data.factors]
    assert [f.size for f in data.factors] == [3, 2, 2, 4, 4] and len(factors) == 48
    # the compute function on a known input: a perfect code of the factors (latent k = factor k) and
    # two noise latents, in float32 as a model's means are
    codes = perfect_code(factors, n_noise=2, seed=0).astype(np.float32)
    out = spec(EvalContext(_GivenCodes(torch.from_numpy(codes)), data, cfg))
    expected = _expected(codes.astype(np.float64), factors, categorical)
    _assert_values(out, expected)
    assert np.all(expected["mig"] > 0.5) and np.all(expected["sap"][1:] > 0.9)  # a perfect code scores high
    # a real run's row: every declared column with its dtype's Arrow type, holding the metric's values
    # for the saved model's posterior means
    spec_dict = {
        "study": "dis",
        "dataset": TINY,
        "model": {"name": "mlp", "hidden_dim": 32, "latent_dim": 4},
        "train": {"epochs": 1, "batch_size": 32},
        "eval": {"fid_extractor": None, "nll_examples": 8, "nll_k": 2},
        "seeds": [0],
    }
    status = vaebench.run(spec_dict, workers=1, results=tmp_path)
    assert status.done == status.total == 1
    (path,) = (tmp_path / "dis" / "runs").glob("*.parquet")
    table = pq.read_table(path)
    for name, dtype in DECLARED.items():
        assert table.schema.field(name).type == ARROW[dtype], name
    row = table.to_pylist()[0]
    assert row["status"] == "ok" and row[C.DISENTANGLEMENT_FACTORS] == ["shape", "scale", "orientation", "x", "y"]
    assert (row[C.MIG_SAMPLES], row[C.SAP_TRAIN_SAMPLES], row[C.SAP_TEST_SAMPLES]) == (48, 24, 24)
    assert (row[C.MIG_BINS], row[C.DISENTANGLEMENT_SEED]) == (20, 0)
    model, _ = vaebench.load_model(row["run_id"], results=tmp_path)
    _assert_values(row, _expected(_codes(model, data), factors, categorical))


def test_metric_end_to_end_on_tiny_shapes(tiny_shapes):
    cfg, data, model = tiny_shapes
    n_test = len(data.x_test)
    assert n_test == 48  # 192 images, a quarter in the test split
    out = evaluate(model, data, cfg, seed=0, names=["disentanglement"])
    assert set(out) == {
        C.MIG,
        C.SAP,
        C.SAP_DLIB,
        C.MIG_PER_FACTOR,
        C.SAP_PER_FACTOR,
        C.SAP_DLIB_PER_FACTOR,
        C.DISENTANGLEMENT_FACTORS,
        C.MIG_SAMPLES,
        C.MIG_BINS,
        C.SAP_TRAIN_SAMPLES,
        C.SAP_TEST_SAMPLES,
        C.DISENTANGLEMENT_SEED,
        "eval_seconds_disentanglement",
        "metrics_skipped",
    }
    assert out["metrics_skipped"] == []
    assert out[C.DISENTANGLEMENT_FACTORS] == ["shape", "scale", "orientation", "x", "y"]
    assert len(out[C.MIG_PER_FACTOR]) == len(out[C.SAP_PER_FACTOR]) == 5
    # the defaults ask for 10,000 / 5,000 / 5,000: the 48 test images are all used, SAP split 24 / 24
    assert (out[C.MIG_SAMPLES], out[C.SAP_TRAIN_SAMPLES], out[C.SAP_TEST_SAMPLES]) == (48, 24, 24)
    assert out[C.MIG_BINS] == 20 and out[C.DISENTANGLEMENT_SEED] == 0
    assert all(
        isinstance(out[c], int)
        for c in (C.MIG_SAMPLES, C.MIG_BINS, C.SAP_TRAIN_SAMPLES, C.SAP_TEST_SAMPLES, C.DISENTANGLEMENT_SEED)
    )
    assert all(
        math.isfinite(v) and -1e-12 <= v <= 1
        for v in [out[C.MIG], out[C.SAP], *out[C.MIG_PER_FACTOR], *out[C.SAP_PER_FACTOR]]
    )
    assert out[C.MIG] == pytest.approx(np.mean(out[C.MIG_PER_FACTOR]))
    assert out[C.SAP] == pytest.approx(np.mean(out[C.SAP_PER_FACTOR]))
    # the values are MIG and SAP of the posterior means of the whole test split (shuffled: same scores)
    codes, factors = _codes(model, data), data.factors_test.numpy()
    assert out[C.MIG_PER_FACTOR] == pytest.approx(list(mig_per_factor(codes, factors)), abs=1e-12)
    # deterministic: a second call gives the same numbers
    again = evaluate(model, data, cfg, seed=0, names=["disentanglement"])
    assert {k: v for k, v in again.items() if not k.startswith("eval_seconds")} == {
        k: v for k, v in out.items() if not k.startswith("eval_seconds")
    }


def test_metric_uses_the_seeded_subsets_and_stores_their_sizes(tiny_shapes):
    _, data, model = tiny_shapes
    eval_kw = {
        "mig_samples": 30,
        "mig_bins": 5,
        "sap_train_samples": 20,
        "sap_test_samples": 10,
        "disentanglement_seed": 3,
    }
    cfg = _run_cfg(TINY, eval_kw)
    out = evaluate(model, data, cfg, seed=0, names=["disentanglement"])
    assert (
        out[C.MIG_SAMPLES],
        out[C.MIG_BINS],
        out[C.SAP_TRAIN_SAMPLES],
        out[C.SAP_TEST_SAMPLES],
        out[C.DISENTANGLEMENT_SEED],
    ) == (30, 5, 20, 10, 3)
    codes, factors = _codes(model, data), data.factors_test.numpy()
    order = np.random.default_rng(3).permutation(len(codes))
    m, tr, te = order[:30], order[:20], order[20:30]
    cat = [f.categorical for f in data.factors]
    assert cat == [True, False, False, False, False]
    assert out[C.MIG_PER_FACTOR] == pytest.approx(list(mig_per_factor(codes[m], factors[m], 5)), abs=1e-12, nan_ok=True)
    assert out[C.SAP_PER_FACTOR] == pytest.approx(
        list(sap_per_factor(codes[tr], factors[tr], codes[te], factors[te], cat)), abs=1e-12
    )
    # disentanglement_lib's convention on the same images: an SVM for every factor, the latent as it is
    dlib = sap_per_factor(codes[tr], factors[tr], codes[te], factors[te], True, standardize=False)
    assert out[C.SAP_DLIB_PER_FACTOR] == pytest.approx(list(dlib), abs=1e-12)
    assert out[C.SAP_DLIB] == pytest.approx(np.mean(dlib), abs=1e-12)
    # another seed, other images, other numbers; the evaluation seed does not matter
    other = evaluate(
        model, data, _run_cfg(TINY, {**eval_kw, "disentanglement_seed": 4}), seed=0, names=["disentanglement"]
    )
    assert other[C.SAP_PER_FACTOR] != out[C.SAP_PER_FACTOR]
    same = evaluate(model, data, cfg, seed=123, names=["disentanglement"])
    assert same[C.SAP_PER_FACTOR] == out[C.SAP_PER_FACTOR]


def test_single_value_factors_are_left_out():
    cfg = _run_cfg({**TINY, "scales": 1})
    data = load_dataset(cfg.dataset)
    assert [f.size for f in data.factors] == [3, 1, 2, 4, 4]
    result = train(cfg, data, seed=0, device="cpu")
    out = evaluate(result.model, data, cfg, seed=0, names=["disentanglement"])
    assert out[C.DISENTANGLEMENT_FACTORS] == ["shape", "orientation", "x", "y"]
    assert len(out[C.MIG_PER_FACTOR]) == len(out[C.SAP_PER_FACTOR]) == 4
    codes = _codes(result.model, data)
    factors = data.factors_test.numpy()[:, [0, 2, 3, 4]]
    assert out[C.MIG_PER_FACTOR] == pytest.approx(list(mig_per_factor(codes, factors)), abs=1e-12)


def test_nothing_on_a_dataset_without_factors():
    cfg = RunConfig.model_validate(
        {
            "dataset": {"name": "digits"},
            "model": {"name": "mlp", "hidden_dim": 16, "latent_dim": 3},
            "train": {"epochs": 1},
        }
    )
    data = load_dataset(cfg.dataset)
    assert not data.has_factors
    model = train(cfg, data, seed=0, device="cpu").model
    out = evaluate(model, data, cfg, seed=0, names=["disentanglement"])
    assert out.pop("metrics_skipped") == ["disentanglement: dataset 'digits' has no ground-truth factors"]
    assert set(out) == {
        C.MIG,
        C.SAP,
        C.SAP_DLIB,
        C.MIG_PER_FACTOR,
        C.SAP_PER_FACTOR,
        C.SAP_DLIB_PER_FACTOR,
        C.DISENTANGLEMENT_FACTORS,
        C.MIG_SAMPLES,
        C.MIG_BINS,
        C.SAP_TRAIN_SAMPLES,
        C.SAP_TEST_SAMPLES,
        C.DISENTANGLEMENT_SEED,
        "eval_seconds_disentanglement",
    }
    assert all(out[k] is None for k in out if not k.startswith("eval_seconds"))  # the columns stay null


def test_nothing_for_a_model_whose_codes_are_not_numbers(tiny_shapes):
    import copy

    cfg, data, model = tiny_shapes
    broken = copy.deepcopy(model)
    with torch.no_grad():
        next(broken.parameters()).fill_(float("nan"))
    assert not torch.isfinite(broken.encode(data.x_test[:4], data.y_test[:4])[0]).all()
    out = evaluate(broken, data, cfg, seed=0, names=["disentanglement"])
    assert out.pop("metrics_skipped") == ["disentanglement: the posterior means are not all finite"]
    assert out[C.MIG] is None and out[C.SAP] is None
    assert all(out[k] is None for k in out if not k.startswith("eval_seconds"))
