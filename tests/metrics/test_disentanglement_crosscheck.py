"""vaebench's disentanglement scores against the field's own code, on the same codes and factors.

The reference is disent 0.8.0 (the `crosscheck` extra; .ci/run installs it and fails without it, so
these tests cannot skip there), whose metrics are disentanglement_lib's code ported to PyTorch's
ecosystem, and for what disent lacks (the β-VAE score, modularity and explicitness) a test-only port
of google-research/disentanglement_lib (Apache-2.0) below, citing file and function.

Three representations of one small factor grid (3 x 3 x 4 x 5 x 5 = 900 points, every combination
once): a perfectly disentangled code (latent k = factor k, plus two noise latents), an entangled
rotation of it (a seeded random orthogonal mix of all seven latents), and the posterior means of a
real trained encoder (a small β-VAE trained for a few epochs on the `shapes` dataset rendered with
that grid). The codes of a grid point are its observation in a disent ArrayGroundTruthData, so
disent samples the grid exactly as it samples dSprites, and the representation function records
what it was given: vaebench then scores the very samples disent drew.

How the protocols differ, and how each comparison matches them:
- MIG, SAP (disentanglement_lib's convention), DCI, the unsupervised scores: disent draws its
  training (and test) codes itself, uniformly from the grid with replacement; vaebench takes a
  seeded subset of the test split. Compared on disent's recorded draws: the same numbers
  (to 1e-12; DCI's boosted trees draw their feature order from numpy's global generator in both,
  seeded alike).
- FactorVAE score: disent (and disentanglement_lib) draw the global variances from a sample of the
  grid, and per vote fix a factor's value and draw the other factors uniformly; vaebench draws the
  images sharing the value from the test split. The votes disent recorded give the same votes and
  the same accuracies through vaebench's `factorvae_argmin`; vaebench's own sampler on the grid
  gives an accuracy within sampling error of disent's.
- β-VAE score: the port of disentanglement_lib's sampler (two uniform factor draws sharing factor k)
  vs vaebench's (the second image uniform among the test images sharing k's value): the same
  features and accuracy on the port's draws, and within sampling error on each's own.
- Modularity and explicitness: the port of disentanglement_lib's functions on the same codes.
- Sample sizes are smaller than the published 10,000 / 5,000 (seconds per test), the same on both sides.
"""

import numpy as np
import pytest

disent = pytest.importorskip(
    "disent", reason="the crosscheck extra: pip install -e '.[crosscheck]' (.ci/run installs it and fails without it)"
)

from disent.dataset import DisentDataset  # noqa: E402
from disent.dataset.data import ArrayGroundTruthData  # noqa: E402
from disent.metrics import _dci, _factor_vae, _mig, _sap, _unsupervised  # noqa: E402
from disent.metrics import utils as disent_utils  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.preprocessing import MultiLabelBinarizer  # noqa: E402

from vaebench.metrics import factor_scores as F  # noqa: E402
from vaebench.metrics.disentanglement import mig, mutual_information, sap, sap_score_matrix  # noqa: E402

SIZES = (3, 3, 4, 5, 5)  # shape, scale, orientation, x, y
N_NOISE = 2


def grid_factors(sizes=SIZES) -> np.ndarray:
    """Every grid point once, in C order (disent's pos_to_idx): (N, K) value indices."""
    return np.stack(np.unravel_index(np.arange(int(np.prod(sizes))), sizes), axis=1)


def perfect(factors: np.ndarray, sizes=SIZES) -> np.ndarray:
    rng = np.random.default_rng(0)
    scaled = factors / (np.asarray(sizes) - 1.0)
    return np.hstack([scaled, rng.uniform(size=(len(factors), N_NOISE))])


def rotated(factors: np.ndarray) -> np.ndarray:
    code = perfect(factors)
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(code.shape[1],) * 2))
    return code @ q


@pytest.fixture(scope="module")
def trained():
    """A small β-VAE (β = 4) trained 8 epochs on shapes rendered on the SIZES grid (16x16 px): its
    posterior means of every grid image, in grid order."""
    import torch

    from vaebench.data import load_dataset
    from vaebench.engine.train import train
    from vaebench.spec.sweep_spec import RunConfig

    scales, orientations, positions = SIZES[1], SIZES[2], SIZES[3]
    cfg = RunConfig.model_validate(
        {
            "dataset": {
                "name": "shapes",
                "image_size": 16,
                "scales": scales,
                "orientations": orientations,
                "positions": positions,
            },
            "model": {"name": "mlp", "hidden_dim": 64, "latent_dim": 6},
            "objective": {"beta": 4},
            "train": {"epochs": 8, "batch_size": 32},
            "eval": {"fid_extractor": None},
        }
    )
    data = load_dataset(cfg.dataset)
    result = train(cfg, data, seed=0, device="cpu")
    assert result.status == "ok"
    x = torch.cat([data.x_train, data.x_test])
    f = torch.cat([data.factors_train, data.factors_test]).numpy()
    with torch.no_grad():
        mu, _ = result.model.encode(x, None)
    codes = np.empty((len(f), mu.shape[1]))
    codes[np.ravel_multi_index(f.T, SIZES)] = mu.double().numpy()
    return codes


@pytest.fixture(scope="module", params=["perfect", "rotated", "trained"])
def code(request):
    factors = grid_factors()
    if request.param == "perfect":
        return request.param, perfect(factors), factors
    if request.param == "rotated":
        return request.param, rotated(factors), factors
    return request.param, request.getfixturevalue("trained"), factors


class Recorder:
    """disent's dataset of a code table (each grid point's observation is its code and its factors)
    and a representation function that returns the codes and records every batch it was given."""

    def __init__(self, codes: np.ndarray, factors: np.ndarray) -> None:
        table = np.hstack([codes, factors]).astype(np.float64)[:, None, None, :]  # (N, H=1, W=1, C)
        gt = ArrayGroundTruthData(table, ("shape", "scale", "orientation", "x", "y"), SIZES)
        self.dataset = DisentDataset(gt)
        self.d = codes.shape[1]
        self.batches: list[tuple[np.ndarray, np.ndarray]] = []

    def __call__(self, x):
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        z, v = x[:, : self.d], np.rint(x[:, self.d :]).astype(np.int64)
        self.batches.append((z, v))
        return z

    def drawn(self, start: int = 0, stop=None) -> tuple[np.ndarray, np.ndarray]:
        part = self.batches[start:stop]
        return np.vstack([z for z, _ in part]), np.vstack([v for _, v in part])


def _split(rec: Recorder, n_train: int) -> tuple:
    z, v = rec.drawn()
    return z[:n_train], v[:n_train], z[n_train:], v[n_train:]


def test_mig_equals_disents(code):
    _, codes, factors = code
    rec = Recorder(codes, factors)
    np.random.seed(0)
    theirs = _mig.metric_mig(rec.dataset, rec, num_train=1000, batch_size=50)["mig.discrete_score"]
    z, v = rec.drawn()
    assert len(z) == 1000
    assert mig(z, v) == pytest.approx(theirs, abs=1e-12)


def test_sap_in_disentanglement_libs_convention_equals_disents(code):
    name, codes, factors = code
    rec = Recorder(codes, factors)
    np.random.seed(0)
    theirs = _sap.metric_sap(rec.dataset, rec, num_train=600, num_test=300, batch_size=50, continuous_factors=False)
    z_tr, v_tr, z_te, v_te = _split(rec, 600)
    ours = sap(z_tr, v_tr, z_te, v_te, categorical=True, standardize=False)
    assert ours == pytest.approx(theirs["sap.score"], abs=1e-12)
    matrix = sap_score_matrix(z_tr, v_tr, z_te, v_te, categorical=True, standardize=False)
    assert matrix == pytest.approx(_sap._compute_score_matrix(z_tr.T, v_tr.T, z_te.T, v_te.T, False), abs=1e-12)
    if name == "perfect":
        # vaebench's convention by factor kind scores the same perfect code far higher: the R^2 of a
        # line is 1 for every ordered factor, the SVM on one latent carves out a couple of values
        assert sap(z_tr, v_tr, z_te, v_te, categorical=[True, False, False, False, False]) > ours + 0.3


def test_dci_equals_disents(code):
    _, codes, factors = code
    rec = Recorder(codes, factors)
    np.random.seed(0)  # disent's sampling of the training and test codes, as metric_dci draws them
    disent_utils.generate_batch_factor_code(rec.dataset, rec, 300, 50)
    disent_utils.generate_batch_factor_code(rec.dataset, rec, 150, 50)
    z_tr, v_tr, z_te, v_te = _split(rec, 300)
    np.random.seed(1)
    theirs = _dci._compute_dci(z_tr.T, v_tr.T, z_te.T, v_te.T)
    np.random.seed(1)  # the trees' feature order: numpy's global generator, as disent's default GBT uses it
    ours = F.dci(z_tr, v_tr, z_te, v_te, random_state=None)
    assert ours["disentanglement"] == pytest.approx(theirs["dci.disentanglement"], abs=1e-12)
    assert ours["completeness"] == pytest.approx(theirs["dci.completeness"], abs=1e-12)
    assert ours["informativeness"] == pytest.approx(theirs["dci.informativeness_test"], abs=1e-12)
    assert ours["informativeness_train"] == pytest.approx(theirs["dci.informativeness_train"], abs=1e-12)


def test_unsupervised_scores_equal_disents(code):
    _, codes, factors = code
    rec = Recorder(codes, factors)
    np.random.seed(0)
    theirs = _unsupervised.metric_unsupervised(rec.dataset, rec, num_train=800, batch_size=50)
    ours = F.unsupervised_scores(rec.drawn()[0])
    assert ours["gaussian_total_correlation"] == pytest.approx(theirs["unsup.gauss_total_corr"], abs=1e-9)
    assert ours["gaussian_wasserstein_correlation"] == pytest.approx(theirs["unsup.gauss_wasser_corr"], abs=1e-9)
    assert ours["gaussian_wasserstein_correlation_norm"] == pytest.approx(
        theirs["unsup.gauss_wasser_corr_norm"], abs=1e-9
    )
    assert ours["mutual_info_score"] == pytest.approx(theirs["unsup.mi_score"], abs=1e-12)


def test_factorvae_score_equals_disents_on_its_votes_and_agrees_on_vaebenchs_own(code):
    name, codes, factors = code
    rec = Recorder(codes, factors)
    np.random.seed(0)
    n_var, batch, n_train, n_eval = len(codes), 64, 400, 400
    theirs = _factor_vae.metric_factor_vae(
        rec.dataset, rec, batch_size=batch, num_train=n_train, num_eval=n_eval, num_variance_estimate=n_var
    )
    # disent's batches: first the variance sample (64 at a time), then one batch of 64 per vote
    n_var_batches = -(-n_var // 64)
    z_var, _ = rec.drawn(0, n_var_batches)
    global_variance = z_var.var(axis=0, ddof=1)
    votes = []
    for part in (slice(n_var_batches, n_var_batches + n_train), slice(n_var_batches + n_train, None)):
        batches = rec.batches[part]
        zs = np.stack([z for z, _ in batches])  # (votes, 64, D)
        fixed = [np.flatnonzero((v == v[0]).all(axis=0)) for _, v in batches]
        assert all(len(f) == 1 for f in fixed)  # the one factor fixed in the batch: the vote's label
        counts = np.zeros((len(SIZES), codes.shape[1]), dtype=np.int64)
        np.add.at(counts, (np.array([f[0] for f in fixed]), F.factorvae_argmin(zs, global_variance)), 1)
        votes.append(counts)
    train_acc, eval_acc = F.factorvae_accuracy(*votes)
    assert train_acc == pytest.approx(theirs["factor_vae.train_accuracy"], abs=1e-12)
    assert eval_acc == pytest.approx(theirs["factor_vae.eval_accuracy"], abs=1e-12)
    # vaebench's own sampler on the same grid: the same score up to sampling error (binomial, 400
    # eval votes each side: sd of the difference <= 0.035; 0.12 is 3.4 sd)
    own = F.factorvae_score(codes, factors, batch, n_train, n_eval, n_var, seed=0)
    assert own["score"] == pytest.approx(theirs["factor_vae.eval_accuracy"], abs=0.12)
    if name == "perfect":
        assert own["score"] == theirs["factor_vae.eval_accuracy"] == 1.0


# ---- a test-only port of google-research/disentanglement_lib (Apache-2.0) ----------------------


def dlib_beta_vae_sample(codes, random_state, batch_size):
    """disentanglement_lib/evaluation/metrics/beta_vae.py, `_generate_training_sample`, on the grid:
    `sample_factors` is one uniform index per factor (ground_truth/util.py,
    `SplitDiscreteStateSpace.sample_latent_factors`); the representation of a factor vector is the
    code of that grid point. Returns (index, codes1, codes2)."""
    index = random_state.randint(len(SIZES))
    factors1 = np.stack([random_state.randint(s, size=batch_size) for s in SIZES], axis=1)
    factors2 = np.stack([random_state.randint(s, size=batch_size) for s in SIZES], axis=1)
    factors2[:, index] = factors1[:, index]
    return index, codes[np.ravel_multi_index(factors1.T, SIZES)], codes[np.ravel_multi_index(factors2.T, SIZES)]


def dlib_beta_vae(codes, random_state, batch_size, num_train, num_eval):
    """beta_vae.py, `compute_beta_vae_sklearn` and `_generate_training_batch`; also returns the draws."""
    draws = {}
    for part, n in (("train", num_train), ("eval", num_eval)):
        samples = [dlib_beta_vae_sample(codes, random_state, batch_size) for _ in range(n)]
        labels = np.array([s[0] for s in samples])
        points = np.stack([np.mean(np.abs(s[1] - s[2]), axis=0) for s in samples])
        draws[part] = (labels, points, np.stack([s[1] for s in samples]), np.stack([s[2] for s in samples]))
    model = LogisticRegression(random_state=random_state)
    model.fit(draws["train"][1], draws["train"][0])
    train_accuracy = np.mean(model.predict(draws["train"][1]) == draws["train"][0])
    eval_accuracy = model.score(draws["eval"][1], draws["eval"][0])
    return {"train_accuracy": train_accuracy, "eval_accuracy": eval_accuracy}, draws


def dlib_modularity(mutual_information):
    """modularity_explicitness.py, `modularity`."""
    squared_mi = np.square(mutual_information)
    max_squared_mi = np.max(squared_mi, axis=1)
    numerator = np.sum(squared_mi, axis=1) - max_squared_mi
    denominator = max_squared_mi * (squared_mi.shape[1] - 1.0)
    delta = numerator / denominator
    modularity_score = 1.0 - delta
    index = max_squared_mi == 0.0
    modularity_score[index] = 0.0
    return np.mean(modularity_score)


def dlib_normalize_data(data, mean=None, stddev=None):
    """utils.py, `normalize_data` ((num_codes, num_points) arrays)."""
    if mean is None:
        mean = np.mean(data, axis=1)
    if stddev is None:
        stddev = np.std(data, axis=1)
    return (data - mean[:, np.newaxis]) / stddev[:, np.newaxis], mean, stddev


def dlib_explicitness_per_factor(mus_train, y_train, mus_test, y_test):
    """modularity_explicitness.py, `explicitness_per_factor`."""
    x_train = np.transpose(mus_train)
    x_test = np.transpose(mus_test)
    clf = LogisticRegression().fit(x_train, y_train)
    y_pred_train = clf.predict_proba(x_train)
    y_pred_test = clf.predict_proba(x_test)
    mlb = MultiLabelBinarizer()
    roc_train = roc_auc_score(mlb.fit_transform(np.expand_dims(y_train, 1)), y_pred_train)
    roc_test = roc_auc_score(mlb.fit_transform(np.expand_dims(y_test, 1)), y_pred_test)
    return roc_train, roc_test


def dlib_modularity_explicitness(mus_train, ys_train, mus_test, ys_test):
    """modularity_explicitness.py, `compute_modularity_explicitness` after its sampling; MI by disent's
    (= disentanglement_lib's utils.py) histogram discretizer and `discrete_mutual_info`."""
    discretized_mus = disent_utils.histogram_discretize(mus_train, num_bins=20)
    mi = disent_utils.discrete_mutual_info(discretized_mus, ys_train)
    train, test = [], []
    mus_train_norm, mean_mus, stddev_mus = dlib_normalize_data(mus_train)
    mus_test_norm, _, _ = dlib_normalize_data(mus_test, mean_mus, stddev_mus)
    for i in range(ys_train.shape[0]):
        a, b = dlib_explicitness_per_factor(mus_train_norm, ys_train[i, :], mus_test_norm, ys_test[i, :])
        train.append(a)
        test.append(b)
    return {"modularity_score": dlib_modularity(mi), "train": np.mean(train), "test": np.mean(test)}


# -------------------------------------------------------------------------------------------------


def test_betavae_score_equals_the_dlib_port_on_its_draws_and_agrees_on_vaebenchs_own(code):
    name, codes, factors = code
    batch, n_train, n_eval = 64, 600, 400
    theirs, draws = dlib_beta_vae(codes, np.random.RandomState(0), batch, n_train, n_eval)
    (y_tr, x_tr, a_tr, b_tr), (y_ev, _, a_ev, b_ev) = draws["train"], draws["eval"]
    assert F.betavae_features(a_tr, b_tr) == pytest.approx(x_tr, abs=1e-15)
    train_acc, eval_acc = F.betavae_accuracy(
        F.betavae_features(a_tr, b_tr), y_tr, F.betavae_features(a_ev, b_ev), y_ev, random_state=0
    )
    assert train_acc == pytest.approx(theirs["train_accuracy"], abs=1e-12)
    assert eval_acc == pytest.approx(theirs["eval_accuracy"], abs=1e-12)
    # vaebench's own sampler: the same score up to sampling error (400 eval points each side:
    # sd of the difference <= 0.035; 0.12 is 3.4 sd)
    own = F.betavae_score(codes, factors, batch, n_train, n_eval, seed=0)
    assert own["score"] == pytest.approx(theirs["eval_accuracy"], abs=0.12)
    if name == "perfect":
        assert own["score"] == theirs["eval_accuracy"] == 1.0


def test_modularity_and_explicitness_equal_the_dlib_port(code):
    _, codes, factors = code
    rng = np.random.default_rng(0)
    tr, te = rng.integers(len(codes), size=800), rng.integers(len(codes), size=400)  # with replacement, as dlib
    theirs = dlib_modularity_explicitness(codes[tr].T, factors[tr].T, codes[te].T, factors[te].T)
    assert F.modularity(mutual_information(codes[tr], factors[tr])) == pytest.approx(
        theirs["modularity_score"], abs=1e-12
    )
    train, test = F.explicitness(codes[tr], factors[tr], codes[te], factors[te])
    assert train == pytest.approx(theirs["train"], abs=1e-9)
    assert test == pytest.approx(theirs["test"], abs=1e-9)


def test_the_information_based_scores_rank_the_perfect_code_above_its_rotation():
    """MIG, SAP and DCI disentanglement put the perfect code far above its rotation (the comparisons
    above compare scores that tell codes apart). The FactorVAE and β-VAE scores do not: they ask only
    whether some latent identifies the fixed factor, and a rotation of 7 latents still has, for each
    factor, a latent whose variance drops most when it is fixed (0.997 vs 1.0 here); modularity even
    rises (0.94 vs 0.90), the noise latents of the perfect code carrying no MI: the metrics disagree."""
    factors = grid_factors()
    order = np.random.default_rng(0).permutation(len(factors))
    tr, te = order[:300], order[300:450]
    scores = {}
    for name, codes in (("perfect", perfect(factors)), ("rotated", rotated(factors))):
        scores[name] = [
            mig(codes, factors),
            sap(codes[tr], factors[tr], codes[te], factors[te], True, standardize=False),
            F.dci(codes[tr], factors[tr], codes[te], factors[te])["disentanglement"],
        ]
    assert all(p > r + 0.1 for p, r in zip(scores["perfect"], scores["rotated"])), scores
    assert F.factorvae_score(perfect(factors), factors, 64, 300, 300, len(factors))["score"] == 1.0
