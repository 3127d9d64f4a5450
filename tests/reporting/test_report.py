"""Report tables: confidence intervals, Welch's test, best marks, baselines, the tutorial's layouts and
its published numbers set beside measured ones, on synthetic results rows (no training)."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from vaebench.reporting.published import PUBLISHED_PATH, load_published
from vaebench.reporting.render import render_study
from vaebench.reporting.stats import ci95, pareto_mask, trend_sign, welch_p
from vaebench.reporting.summary import baseline_index, best_rows, summarize
from vaebench.reporting.tables import study_tables
from vaebench.results.rows import grid_column

SEEDS = 3


def make_rows(
    study: str, grid_key: str, cells: dict, params: dict | None = None, dataset: str = "mnist"
) -> pd.DataFrame:
    """Results rows of a finished study: `cells` maps each grid value to {metric: (mean, step)};
    seed s of a cell gets mean + (s - 1) * step (so the sample std is `step`)."""
    rows = []
    for i, (value, metrics) in enumerate(cells.items()):
        for s in range(SEEDS):
            row = {
                "run_id": f"{study}-{i}-{s}",
                "study": study,
                "seed": s,
                "status": "ok",
                "reason": None,
                "cell_index": i,
                "grid_keys": [grid_key],
                "variant": value if grid_key == "variant" else None,
                "dataset": dataset,
                "dataset_checksum": "abc",
                "vaebench_version": "0.1.0",
                "torch_version": "2.x",
                "device": "cpu",
                "command": f"vaebench run sweeps/{study}.yaml",
                "created_at": f"2025-01-01T00:{i:02d}:{s:02d}+00:00",
                "train_seconds": 10.0 + s,
                "eval_seconds": 1.0,
                "epochs_completed": 2,
                "param.dataset.name": dataset,
                "param.model.name": "mlp",
                "param.train.epochs": 2,
                "param.objective.likelihood": "bernoulli",
                "param.model.latent_dim": 8,
                "fid_extractor": "test-classifier",
                "fid_feature_layer": "penultimate",
                "fid_samples": 100,
                "fid_reference": "test[:100]",
                "n_params": 1000,
            }
            if grid_key != "variant":
                row[grid_column(grid_key)] = value
            row.update((params or {}).get(value, {}))
            row.update({m: mean + (s - 1) * step for m, (mean, step) in metrics.items()})
            rows.append(row)
    return pd.DataFrame(rows)


STOPPING = {"patience": 5, "min_delta": 0.1}


def early_stopped(df: pd.DataFrame, reasons="converged", best_epoch=7, epochs: int = 100) -> pd.DataFrame:
    """The rows as trained under early stopping (patience 5, 0.1 nats) on a 10,000-example validation
    split within `epochs` epochs: `reasons` and `best_epoch` are one value for every row or one per row."""
    return df.assign(
        **{
            "param.train.early_stopping": [dict(STOPPING)] * len(df),
            "param.dataset.validation": 10000.0,
            "param.train.epochs": epochs,
            "validation_size": 10000,
            "validation_checksum": "val123",
            "stop_reason": reasons,
            "best_epoch": best_epoch,
            "allow_test_selection": False,
        }
    )


def metrics(mse=0.01, kl=20.0, elbo=100.0, ssim=0.8, fid=150.0):
    return {
        "recon_mse": (mse, 0.0002),
        "kl": (kl, 0.3),
        "neg_elbo": (elbo, 0.2),
        "recon_nll": (elbo - kl, 0.4),
        "ssim": (ssim, 0.003),
        "fid": (fid, 3.0),
        "active_units": (10, 1),
    }


# A β sweep shaped like reports/beta.md: MSE rises and KL falls with β.
BETA_CELLS = {
    0.5: metrics(0.0095, 28.8, 103.4, 0.887, 148.1),
    1.0: metrics(0.0117, 20.2, 102.3, 0.854, 127.7),
    4.0: metrics(0.0225, 8.2, 120.6, 0.698, 183.2),
    10.0: metrics(0.0377, 3.3, 153.6, 0.494, 430.7),
}

# What a schedule study's variants set (sweeps/schedule.yaml): its layout is chosen from that.
SCHEDULES = {
    "none": {"param.schedule.name": "constant"},
    "linear": {"param.schedule.name": "linear"},
    "cyclical": {"param.schedule.name": "cyclical"},
}


def table(tables, key):
    return next(t for t in tables if t.key == key)


def column(t, name):
    i = t.header.index(name)
    return [row[i] for row in t.rows]


# --- stats -------------------------------------------------------------------------------------


def test_ci95_is_the_student_t_interval_of_the_mean():
    x = np.array([1.3, 2.1, 0.7, 1.9, 1.2])
    mean, half, n = ci95(x)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert n == 5 and mean == pytest.approx(x.mean())
    assert half == pytest.approx((hi - lo) / 2) and mean - half == pytest.approx(lo)
    # three seeds: t_{0.975, 2} = 4.303, much wider than the standard deviation
    assert ci95([1.0, 2.0, 3.0])[1] == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-6)


def test_ci95_of_one_run_has_no_width_and_ignores_missing_values():
    mean, half, n = ci95([2.5])
    assert (mean, n) == (2.5, 1) and math.isnan(half)
    assert ci95([1.0, np.nan, 3.0])[::2] == (2.0, 2)
    assert math.isnan(ci95([])[0])


def test_welch_p_is_the_welch_satterthwaite_t_test():
    a, b = np.array([10.1, 10.5, 9.8, 10.2]), np.array([11.0, 12.5, 10.2])
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    assert welch_p(a, b) == pytest.approx(2 * stats.t.sf(abs(t), df))
    assert welch_p(a, b) == pytest.approx(welch_p(b, a))
    assert 0.05 < welch_p(a, b) < 0.5  # the two groups overlap: not significant at 3 and 4 seeds


def test_welch_p_is_undefined_for_single_runs_and_constant_groups():
    assert math.isnan(welch_p([1.0], [2.0, 3.0]))
    assert math.isnan(welch_p([1.0, 1.0], [2.0, 2.0]))
    assert welch_p([1.0, 1.0, 1.0], [2.0, 2.1, 1.9]) < 0.05  # one constant group is fine


def test_trend_sign():
    assert trend_sign([8.3, 15.2, 42.7, 68.1]) == 1
    assert trend_sign([28.8, 20.2, 8.2, 3.3]) == -1
    assert trend_sign([1.0, 1.0]) == 0 and trend_sign([5.0]) == 0


def test_pareto_mask_keeps_the_non_dominated_points_in_each_direction():
    pts = [[1.0, 5.0], [2.0, 2.0], [3.0, 3.0], [5.0, 1.0], [1.0, 5.0]]
    assert pareto_mask(pts, ["minimize", "minimize"]) == [True, True, False, True, True]  # ties do not dominate
    assert pareto_mask(pts, ["maximize", "minimize"]) == [False, False, False, True, False]
    assert pareto_mask([], ["minimize"]) == []


# --- best marks and baselines ---------------------------------------------------------------------


def test_best_mark_follows_each_columns_direction():
    t = table(study_tables(make_rows("beta", "objective.beta", BETA_CELLS)), "all_metrics")
    best = {
        name: [i for i, c in enumerate(column(t, name)) if c.best]
        for name in ["Recon MSE (per pixel) ↓", "SSIM ↑", "−ELBO (nats) ↓", "KL (nats)", "Parameter count"]
    }
    assert best == {
        "Recon MSE (per pixel) ↓": [0],
        "SSIM ↑": [0],
        "−ELBO (nats) ↓": [1],
        "KL (nats)": [],
        "Parameter count": [],
    }
    assert best_rows([3.0, 1.0, float("nan"), 1.0], "↓") == {1, 3}
    assert best_rows([3.0, 1.0], "↑") == {0} and best_rows([3.0, 1.0], "") == set()
    assert best_rows([3.0, float("nan")], "↓") == set()  # nothing to beat
    assert best_rows([2.0, 2.0, 2.0], "↓") == set()  # all tied: no winner


def test_baseline_is_the_tutorials_reference_row_when_present():
    beta = summarize(make_rows("beta", "objective.beta", BETA_CELLS), ["objective.beta"])
    assert baseline_index(beta, ["objective.beta"]) == 1  # β = 1
    no_one = summarize(make_rows("b", "objective.beta", {0.5: metrics(), 4.0: metrics()}), ["objective.beta"])
    assert baseline_index(no_one, ["objective.beta"]) == 0  # first cell
    loss = summarize(
        make_rows("loss", "objective.likelihood", {"gaussian": metrics(), "bernoulli": metrics()}),
        ["objective.likelihood"],
    )
    assert baseline_index(loss, ["objective.likelihood"]) == 1
    sched = summarize(make_rows("schedule", "variant", {"linear": metrics(), "none": metrics()}), ["variant"])
    assert baseline_index(sched, ["variant"]) == 1


def test_p_column_tests_each_row_against_the_baseline():
    df = make_rows("beta", "objective.beta", BETA_CELLS)
    t = table(study_tables(df), "all_metrics")
    p = column(t, "p (−ELBO) vs β=1")
    assert p[1].text == "baseline"
    elbo = {b: df[df["param.objective.beta"] == b]["neg_elbo"] for b in BETA_CELLS}
    expected = stats.ttest_ind(elbo[0.5], elbo[1.0], equal_var=False).pvalue
    assert p[0].text == f"{expected:.3f}" and p[3].text == "< 0.001"
    assert column(t, "n (runs)")[0].text == str(SEEDS)


def test_loss_table_ranks_no_cross_likelihood_density_and_tests_recon_mse():
    cells = {
        "bernoulli": metrics(0.0137, 19.4, 106.0),
        "gaussian": metrics(0.0272, 8.0, 480.8),
        "gaussian_learned": metrics(0.0409, 22.5, -1229.0),
    }
    tables = study_tables(make_rows("loss", "objective.likelihood", cells))
    t = table(tables, "loss")
    assert t.header == [
        "Likelihood",
        "Final −ELBO (nats)",
        "Reconstruction NLL (nats)",
        "Reconstruction MSE (per pixel) ↓",
        "KL (nats)",
        "Active units (count)",
        "p (Recon MSE) vs Likelihood=bernoulli",
        "n (runs)",
    ]
    assert not any(c.best for c in column(t, "Final −ELBO (nats)"))  # -1229 is not "best"
    assert [c.best for c in column(t, "Reconstruction MSE (per pixel) ↓")] == [True, False, False]
    assert "−ELBO (nats)" in table(tables, "all_metrics").header  # no arrow there either


# --- published versus measured ----------------------------------------------------------------------


def test_published_numbers_are_compared_only_on_the_tutorials_dataset():
    keys = [t.key for t in study_tables(make_rows("smoke", "objective.beta", BETA_CELLS, dataset="digits"))]
    assert "published_vs_measured" not in keys and keys[0] == "beta_tradeoffs"  # the layout, not the comparison
    assert "published_vs_measured" in [t.key for t in study_tables(make_rows("beta", "objective.beta", BETA_CELLS))]


def test_published_numbers_load_with_their_source():
    pub = load_published()
    beta, arch = pub["beta_tradeoffs"], pub["architecture"]
    assert beta["source"] == {"file": "vae_overview.md", "section": "Experiments & Results › Beta-VAE Trade-offs"}
    assert [(r["objective.beta"], r["recon_mse"], r["kl"]) for r in beta["rows"]] == [
        (0.5, 0.012, 8.3),
        (1.0, 0.018, 15.2),
        (4.0, 0.045, 42.7),
        (10.0, 0.102, 68.1),
    ]
    assert arch["source"]["file"] == "vae_overview.md" and "Architecture Comparison" in arch["source"]["section"]
    assert [(r["param.model.latent_dim"], r["n_params"], r["fid"]) for r in arch["rows"]] == [
        (20, 500000, 45.3),
        (50, 2100000, 38.7),
        (128, 5300000, 28.2),
        (256, 12100000, 22.4),
    ]
    assert PUBLISHED_PATH.name == "published.yaml"


def test_kl_falling_with_beta_is_flagged_against_the_tutorial():
    # a contradiction only when every compared run converged (tests/reporting/test_report_convergence.py)
    rows = early_stopped(make_rows("beta", "objective.beta", BETA_CELLS))
    t = table(study_tables(rows), "published_vs_measured")
    assert t.header[:5] == ["β", "Quantity (units)", "Published", "Measured (mean ± 95% CI)", "Measured − published"]
    assert "⚠ trend contradicts the tutorial: KL falls as β rises (measured), the tutorial shows it rising." in t.notes
    kl_rows = [r for r in t.rows if r[1].text == "KL (nats)"]
    mse_rows = [r for r in t.rows if r[1].text == "Recon MSE (per pixel)"]
    assert len(kl_rows) == len(mse_rows) == 4  # β 0.5, 1, 4, 10 in both
    assert all(r[5].text.startswith("⚠ contradicts") for r in kl_rows)
    assert all(r[5].text == "agrees: both rise" for r in mse_rows)
    # β = 0.5: measured 28.8, printed 8.3
    assert kl_rows[0][0].text == "0.5" and kl_rows[0][2].text == "8.30" and kl_rows[0][4].text == "+20.50"
    assert any(
        "Expected from the objective: KL falls as β rises" in n
        and "Measured values: follow it" in n
        and "the tutorial's: ⚠ do not" in n
        for n in t.notes
    )


def test_kl_rising_like_the_tutorial_is_not_flagged_and_only_shared_betas_compared():
    cells = {0.1: metrics(kl=5.0), 1.0: metrics(kl=10.0), 4.0: metrics(kl=30.0)}
    t = table(study_tables(make_rows("beta", "objective.beta", cells)), "published_vs_measured")
    assert not any("trend contradicts" in n for n in t.notes)
    assert sorted({r[0].text for r in t.rows}) == ["1", "4"]  # 0.1 is not in the tutorial, 0.5 and 10 not measured
    assert all(r[5].text == "agrees: both rise" for r in t.rows if r[1].text == "KL (nats)")


def test_architecture_is_compared_by_variant_name():
    cells = {
        "MLP (2-layer)": metrics(fid=260.0),
        "MLP (4-layer)": metrics(fid=450.0),
        "Conv (4-layer)": metrics(fid=134.0),
        "ResNet VAE": metrics(fid=147.0),
    }
    params = {
        name: {"param.model.latent_dim": d, "n_params": p}
        for name, d, p in zip(cells, [20, 50, 128, 256], [973624, 2457460, 1180641, 798081])
    }
    df = make_rows("architecture", "variant", cells, params)
    tables = study_tables(df)
    assert table(tables, "architecture").header == [
        "Architecture",
        "Latent dim",
        "Parameters",
        "FID of samples ↓",
        "Time/epoch (s)",
        "n (runs)",  # no p column: the p-values test −ELBO, which this table does not show
    ]
    assert "p (−ELBO) vs MLP (2-layer)" in table(tables, "all_metrics").header
    t = table(tables, "published_vs_measured")
    verdicts = {r[1].text: r[5].text for r in t.rows}
    assert verdicts["Latent dim"] == "agrees: both rise" and verdicts["FID samples"] == "agrees: both fall"
    assert verdicts["Parameter count"].startswith("⚠ contradicts")  # measured counts do not grow down the table
    assert any("Parameter count falls from MLP (2-layer) to ResNet VAE (measured)" in n for n in t.notes)
    # schedules are a variant grid too, but share no name with the tutorial's architectures
    sched = study_tables(make_rows("schedule", "variant", {"none": metrics(), "linear": metrics()}, SCHEDULES))
    assert [t.key for t in sched] == ["schedules", "all_metrics"]


# --- the Markdown report ------------------------------------------------------------------------------


def test_render_study_mirrors_the_tutorial_beta_table_with_intervals():
    df = make_rows("beta", "objective.beta", BETA_CELLS)
    text = render_study(df)
    assert "# β-VAE trade-offs — study `beta`" in text
    assert (
        "| β | Reconstruction MSE (per pixel) ↓ | KL divergence (nats) | Disentanglement | "
        "Sample quality: FID of samples ↓ | n (runs) |"  # no p (−ELBO): the table does not show −ELBO
    ) in text
    assert "| p (−ELBO) vs β=1 | n (runs) |" in text.split("## All metrics")[1]
    assert "| β | Recon MSE (per pixel) ↓ | KL (nats) | −ELBO (nats) ↓ |" in text
    assert "## Published versus measured" in text and "## All metrics" in text
    beta1 = df[df["param.objective.beta"] == 1.0]
    half = {
        m: np.diff(stats.t.interval(0.95, SEEDS - 1, loc=beta1[m].mean(), scale=stats.sem(beta1[m])))[0] / 2
        for m in ["recon_mse", "kl"]
    }
    assert f"| 1 | 0.0117 ± {half['recon_mse']:.4f} | 20.20 ± {half['kl']:.2f} | not measured |" in text
    assert "| **0.0095 ± " in text  # β = 0.5 has the best recon MSE
    assert (
        "Disentanglement: not measured — this dataset has no ground-truth factors of variation" in text
        and "`vaebench run sweeps/disentanglement.yaml`" in text
        and "test-classifier features" in text
    )
    assert "| MIG" not in text and "## MIG per factor" not in text  # no disentanglement columns without values
    assert "95% confidence interval of the mean over seeds (Student t, n − 1 degrees of freedom" in text
    assert "Welch's t-test" in text and "sample standard deviation" not in text


@pytest.mark.parametrize(
    "study,grid_key,cells,header",
    [
        (
            "latent_dim",
            "model.latent_dim",
            {2: metrics(), 20: metrics()},
            "| Latent dim | Reconstruction: recon MSE (per pixel) ↓ | Generation: FID of samples ↓ | Disentanglement | "
            "n (runs) |",
        ),
        (
            "schedule",
            "variant",
            {"none": metrics(), "cyclical": metrics()},
            "| Schedule | Final −ELBO (nats) ↓ | Reconstruction NLL (nats) ↓ | Reconstruction MSE (per pixel) ↓ | "
            "KL (nats) | Active units (count) | p (−ELBO) vs none | n (runs) |",
        ),
        (
            "loss",
            "objective.likelihood",
            {"bernoulli": metrics(), "laplace": metrics()},
            "| Likelihood | Final −ELBO (nats) | Reconstruction NLL (nats) | Reconstruction MSE (per pixel) ↓ |",
        ),
    ],
)
def test_render_study_uses_each_tutorial_layout(study, grid_key, cells, header):
    text = render_study(make_rows(study, grid_key, cells, SCHEDULES))
    assert header in text
    assert "| Variant |" not in text.split("## All metrics")[0]  # the layout names its variants


def test_a_grid_without_a_tutorial_table_gets_all_metrics_only():
    df = make_rows("lr", "train.lr", {0.003: metrics(elbo=100.0), 1e-6: metrics(elbo=500.0)})
    assert [t.key for t in study_tables(df)] == ["all_metrics"]
    row = next(line for line in render_study(df).splitlines() if line.startswith("| 1e-06 |"))
    assert row.rsplit("|", 2)[1].strip() == "3" and "| < 0.001 |" in row


def test_unmeasured_fid_says_so_instead_of_a_number():
    df = make_rows("beta", "objective.beta", BETA_CELLS).assign(fid=np.nan, fid_extractor=None)
    tables = study_tables(df)
    fid = column(table(tables, "beta_tradeoffs"), "Sample quality: FID of samples ↓")
    assert {c.text for c in fid} == {"not measured"}
    assert "FID: not measured (eval.fid_extractor: null)." in table(tables, "beta_tradeoffs").notes
    one_seed = make_rows("beta", "objective.beta", BETA_CELLS).query("seed == 0")
    t = table(study_tables(one_seed), "all_metrics")
    assert column(t, "KL (nats)")[0].text == "28.50"  # one run: the value, no interval
    assert [c.text for c in column(t, "p (−ELBO) vs β=1")] == ["—", "baseline", "—", "—"]


# --- disentanglement ------------------------------------------------------------------------------------

FACTORS = ["shape", "scale", "orientation", "x", "y"]
D_SETTINGS = {
    "mig_samples": 10000,
    "mig_bins": 20,
    "sap_train_samples": 5000,
    "sap_test_samples": 5000,
    "disentanglement_seed": 0,
}


def disentanglement_rows(cells: dict, grid_keys=("objective.beta", "model.latent_dim"), sampler="grid") -> pd.DataFrame:
    """Rows of a β x latent-dim study on shapes: `cells` maps (β, D) to (MIG, SAP) means; seed s adds
    (s - 1) * 0.01 to both, and the per-factor lists spread the MIG over the factors."""
    rows = []
    for i, ((beta, d), (mig, sap)) in enumerate(cells.items()):
        for s in range(SEEDS):
            row = make_rows("disentanglement", "objective.beta", {beta: metrics()}).iloc[s].to_dict()
            m, p = mig + (s - 1) * 0.01, sap + (s - 1) * 0.01
            row.update(
                {
                    "run_id": f"d-{i}-{s}",
                    "cell_index": i,
                    "grid_keys": list(grid_keys),
                    "sampler": sampler,
                    "dataset": "shapes",
                    "param.dataset.name": "shapes",
                    "param.dataset.image_size": 32,
                    "param.model.latent_dim": d,
                    "mig": m,
                    "sap": p,
                    "mig_per_factor": [0.0, m, 0.0, 2 * m, 2 * m],
                    "sap_per_factor": [p, p, 0.0, 2 * p, p],
                    "disentanglement_factors": FACTORS,
                    **D_SETTINGS,
                }
            )
            rows.append(row)
    return pd.DataFrame(rows)


D_CELLS = {
    (1.0, 5): (0.05, 0.10),
    (1.0, 10): (0.04, 0.08),
    (4.0, 5): (0.20, 0.15),
    (4.0, 10): (0.12, 0.14),
    (10.0, 5): (0.30, 0.25),
    (10.0, 10): (0.25, 0.20),
}


def test_disentanglement_study_gets_a_beta_table_per_latent_size_and_a_latent_table_per_beta():
    df = disentanglement_rows(D_CELLS)
    tables = study_tables(df)
    assert [t.key for t in tables] == [
        "beta_tradeoffs.latent_dim=5",
        "beta_tradeoffs.latent_dim=10",
        "latent_dim.beta=1",
        "latent_dim.beta=4",
        "latent_dim.beta=10",
        "mig_per_factor",
        "sap_per_factor",
        "all_metrics",
    ]
    beta5 = table(tables, "beta_tradeoffs.latent_dim=5")
    assert beta5.title == "β-VAE trade-offs (Latent dim = 5)"
    assert beta5.header == [
        "β",
        "Reconstruction MSE (per pixel) ↓",
        "KL divergence (nats)",
        "Disentanglement: MIG ↑",
        "SAP (by kind) ↑",
        "Sample quality: FID of samples ↓",
        "n (runs)",
    ]
    assert [r[0].text for r in beta5.rows] == ["1", "4", "10"]  # only the D = 5 cells, in grid order
    half = stats.t.ppf(0.975, SEEDS - 1) * 0.01 / math.sqrt(SEEDS)  # the seeds' values are mean ± 0.01
    assert [c.text for c in column(beta5, "Disentanglement: MIG ↑")] == [
        f"{m:.3f} ± {half:.3f}" for m in (0.05, 0.20, 0.30)
    ]
    assert [c.best for c in column(beta5, "Disentanglement: MIG ↑")] == [False, False, True]
    assert [c.text for c in column(beta5, "SAP (by kind) ↑")][1] == f"0.150 ± {half:.3f}"
    assert any(
        "MIG on 10,000 test images with 20 bins per latent, SAP fit on 5,000 and scored on 5,000" in n
        and "(shape, scale, orientation, x, y)" in n
        for n in beta5.notes
    )
    assert not table(tables, "beta_tradeoffs.latent_dim=10").notes  # the notes come once per layout
    latent4 = table(tables, "latent_dim.beta=4")
    assert latent4.title == "Latent dimension impact (β = 4)"
    assert [(r[0].text, r[3].text.split(" ")[0]) for r in latent4.rows] == [("5", "0.200"), ("10", "0.120")]
    assert not any(h.startswith("p (") for h in latent4.header)  # it shows no −ELBO: no p-values of it
    mig = table(tables, "mig_per_factor")
    assert mig.header[:8] == [
        "β",
        "Latent dim",
        "MIG ↑",
        "MIG shape ↑",
        "MIG scale ↑",
        "MIG orientation ↑",
        "MIG x ↑",
        "MIG y ↑",
    ]
    assert column(mig, "MIG x ↑")[0].text == f"0.100 ± {2 * half:.3f}"
    assert {c.text for c in column(mig, "MIG orientation ↑")} == {"0.000"}
    assert "MIG ↑" in table(tables, "all_metrics").header and "SAP (by kind) ↑" in table(tables, "all_metrics").header
    text = render_study(df)
    assert "# Disentanglement (β-VAE and latent-dimension tables) — study `disentanglement`" in text
    assert "## β-VAE trade-offs (Latent dim = 10)" in text and "## Latent dimension impact (β = 10)" in text
    assert "`dataset.image_size=32`" in text  # the shapes grid is part of the fixed settings shown


def test_rows_from_before_sap_dlib_say_their_sap_is_not_the_published_convention():
    tables = study_tables(disentanglement_rows(D_CELLS))
    notes = " ".join(table(tables, "beta_tradeoffs.latent_dim=5").notes)
    assert "vaebench's convention by factor kind" in notes and "not comparable with published SAP" in notes
    assert "SAP (dlib)" not in " ".join(h for t in tables for h in t.header)


def test_rows_with_sap_dlib_show_both_conventions_each_named():
    df = disentanglement_rows(D_CELLS)
    df["sap_dlib"] = df["sap"] / 20
    df["sap_dlib_per_factor"] = [[v / 20 for v in lst] for lst in df["sap_per_factor"]]
    tables = study_tables(df)
    assert [t.key for t in tables][-4:] == ["mig_per_factor", "sap_dlib_per_factor", "sap_per_factor", "all_metrics"]
    beta5 = table(tables, "beta_tradeoffs.latent_dim=5")
    assert beta5.header[3:6] == ["Disentanglement: MIG ↑", "SAP (dlib) ↑", "SAP (by kind) ↑"]
    half = stats.t.ppf(0.975, SEEDS - 1) * 0.0005 / math.sqrt(SEEDS)
    assert [c.text for c in column(beta5, "SAP (dlib) ↑")][1] == f"0.007 ± {half:.3f}"  # 0.15 / 20
    notes = " ".join(beta5.notes)
    assert "\"SAP (dlib)\", disentanglement_lib's and published numbers'" in notes and '"SAP (by kind)"' in notes
    assert table(tables, "sap_dlib_per_factor").header[3] == "SAP (dlib) shape ↑"
    assert table(tables, "sap_per_factor").header[3] == "SAP (by kind) shape ↑"
    header = table(tables, "all_metrics").header
    assert header.index("SAP (dlib) ↑") + 1 == header.index("SAP (by kind) ↑")


def test_a_beta_study_on_shapes_fills_the_disentanglement_column():
    df = disentanglement_rows({(1.0, 10): (0.05, 0.1), (4.0, 10): (0.2, 0.15)}, grid_keys=("objective.beta",))
    t = table(study_tables(df), "beta_tradeoffs")
    assert "Disentanglement" not in t.header and "Disentanglement: MIG ↑" in t.header
    assert not any(c.text == "not measured" for r in t.rows for c in r)


def test_sampled_searches_over_beta_and_latent_dim_get_no_per_value_tables():
    df = disentanglement_rows(D_CELLS, sampler="tpe")
    assert [t.key for t in study_tables(df)] == ["mig_per_factor", "sap_per_factor", "all_metrics", "best_runs"]


def test_index_points_the_disentanglement_column_to_its_study():
    from vaebench.reporting.tables import study_title
    from vaebench.reporting.titles import DISENTANGLEMENT_TITLE
    from vaebench.reporting.write import StudyEntry, index_markdown

    assert study_title(disentanglement_rows(D_CELLS).assign(study="pareto_grid")) == DISENTANGLEMENT_TITLE
    assert study_title(disentanglement_rows(D_CELLS, sampler="tpe")) == "Sweep results"  # a search
    text = index_markdown(
        {"disentanglement": StudyEntry(DISENTANGLEMENT_TITLE, "shapes"), "beta": StudyEntry("β-VAE trade-offs")}
    )
    assert (
        f"| {DISENTANGLEMENT_TITLE} | [disentanglement](disentanglement.md) | `sweeps/disentanglement.yaml` |" in text
    )
    assert "The Disentanglement column of the β-VAE and latent-dimension tables" in text
    missing = index_markdown({"beta": StudyEntry("β-VAE trade-offs")})
    assert (
        f"| {DISENTANGLEMENT_TITLE} | not measured yet: run `vaebench run sweeps/disentanglement.yaml && "
        "vaebench report` |"
    ) in missing


def test_index_lists_studies_on_other_data_apart_and_the_runs_behind_each_report():
    from vaebench.reporting.write import StudyEntry, index_markdown

    made = {
        "command": "`vaebench run sweeps/smoke.yaml`",
        "machine": "some CPU, 2 cores",
        "date": "2026-12-01",
        "wall": "0.1 min",
        "fid": ["vaebench-classifier-k-1234"],
    }
    text = index_markdown(
        {
            "smoke": StudyEntry("β-VAE trade-offs", "digits", 4, made),
            "beta": StudyEntry("β-VAE trade-offs", "mnist", 15, made),
        }
    )
    assert "| β-VAE trade-offs | [beta](beta.md) | `sweeps/beta.yaml` |" in text  # not smoke: digits
    assert "listed apart" in text and "[smoke](smoke.md) (β-VAE trade-offs, dataset `digits`)" in text
    assert "| [smoke](smoke.md) | `digits` | 4 | 2026-12-01 | 0.1 min | `vaebench run sweeps/smoke.yaml` |" in text
    assert text.count("| `vaebench-classifier-k-1234` |") == 2 and "feature extractors" not in text
    other = index_markdown(
        {
            "a": StudyEntry("β-VAE trade-offs", "mnist", 15, made),
            "b": StudyEntry("Loss comparison", "mnist", 12, {**made, "fid": ["vaebench-classifier-k-abcd"]}),
            "c": StudyEntry("Loss comparison", "mnist", 12, {**made, "fid": []}),
        }
    )
    assert "| `vaebench-classifier-k-abcd` |" in other and other.rstrip().endswith("is the same.")
    assert "`mnist` come from 2 feature extractors" in other and "| some CPU, 2 cores | — |" in other  # c: no FID
    assert "feature extractors" not in index_markdown(  # another dataset's classifier is no mix
        {
            "a": StudyEntry("β-VAE trade-offs", "mnist", 15, made),
            "s": StudyEntry("x", "shapes", 4, {**made, "fid": ["f"]}),
        }
    )
    assert "../shared" not in text and "`vae_overview.md`" in text  # the tutorial by its file name
