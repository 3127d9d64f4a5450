"""The disentanglement study's report (reporting/disentanglement_study.py) on synthetic rows whose
answers are known by construction: the metrics per model and strength, their Spearman rank
correlations, the one-way ANOVA shares of their variance (checked against a hand computation and
against scipy.stats.f_oneway), and Locatello et al.'s two findings stated from the numbers; chosen
from the rows' measured metrics, not the study's name; written by `vaebench report`."""

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats
from typer.testing import CliRunner

from tests.reporting.test_report import make_rows, metrics, table
from vaebench.cli.commands import app
from vaebench.reporting.disentanglement_study import (
    is_disentanglement_study,
    metric_shares,
    rank_correlation_matrix,
    study_cells,
)
from vaebench.reporting.figures import study_figures
from vaebench.reporting.render import render_study
from vaebench.reporting.stats import rank_correlation, variance_shares
from vaebench.reporting.tables import study_tables, study_title

# Two models at two strengths each, three seeds: (variant, estimator, β, TC weight).
CELLS = [
    ("beta-VAE 1", "elbo", 1.0, None),
    ("beta-VAE 4", "elbo", 4.0, None),
    ("beta-TCVAE 2", "btcvae", 1.0, 2.0),
    ("beta-TCVAE 6", "btcvae", 1.0, 6.0),
]
MIG_MEANS = [0.1, 0.2, 0.3, 0.4]  # per cell
SEED_DEV = [-0.01, 0.0, 0.01]  # per seed (make_rows' seeds 0, 1, 2)


def study_rows(columns, study: str = "any_name") -> pd.DataFrame:
    """The 12 runs of CELLS, with `columns(mig, cell, seed) -> {metric: value}` setting the metrics
    from each run's MIG (MIG_MEANS[cell] + SEED_DEV[seed])."""
    params = {
        v: {"param.objective.estimator": e, "param.objective.beta": b, "param.objective.tc_weight": t}
        for v, e, b, t in CELLS
    }
    df = make_rows(study, "variant", {v: metrics() for v, *_ in CELLS}, params, dataset="shapes")
    df["param.dataset.image_size"] = 32
    settings = {"mig_samples": 1000, "mig_bins": 20, "sap_train_samples": 500, "sap_test_samples": 500}
    df = df.assign(**settings, disentanglement_seed=0, unsupervised_representation="sampled")
    df["disentanglement_factors"] = [["shape", "scale", "x"]] * len(df)
    epochs = [
        {"epoch": e, "test_loss": 110.0 - e, "test_recon": 90.0 - e, "test_kl": 20.0, "kl_weight": 1.0} for e in (1, 2)
    ]
    df["history"] = [epochs] * len(df)
    values = [
        {"mig": MIG_MEANS[c] + SEED_DEV[s], **columns(MIG_MEANS[c] + SEED_DEV[s], c, s)}
        for c in range(len(CELLS))
        for s in range(3)
    ]
    return df.assign(**pd.DataFrame(values, index=df.index))


def known(mig, cell, seed):
    """Metrics with known rank correlations to MIG: sap_dlib and Gaussian TC (lower is better) order
    the runs as MIG does (ρ = 1 once TC is negated), the FactorVAE score oppositely (ρ = −1), DCI
    disentanglement is seed noise alone (the same in every cell)."""
    return {
        "sap_dlib": mig**2,
        "gaussian_total_correlation": 5.0 - mig,
        "factorvae_score": 1.0 - mig,
        "dci_disentanglement": 0.5 + SEED_DEV[seed],
    }


def test_the_cells_models_and_strengths_come_from_the_parameters_that_differ():
    cells = study_cells(study_rows(known))
    assert [(c.model, c.strength, len(c.runs)) for c in cells] == [
        ("β-VAE", "β=1", 3),
        ("β-VAE", "β=4", 3),
        ("β-TCVAE", "TC weight=2", 3),
        ("β-TCVAE", "TC weight=6", 3),
    ]


def test_variance_shares_match_a_hand_computation_and_scipy_f_oneway():
    # grand mean 0.25; SS_between = 3 x (0.15² + 0.05² + 0.05² + 0.15²) = 0.15; SS_within = 4 x 2 x 0.01² =
    # 0.0008; the models' means 0.15 and 0.35: SS_model = 6 x 0.1² x 2 = 0.12; F = (0.15/3) / (0.0008/8) = 500
    s = metric_shares(study_rows(known))["mig"]
    assert (s.runs, s.cells) == (12, 4)
    assert s.between == pytest.approx(0.15 / 0.1508)
    assert s.within == pytest.approx(0.0008 / 0.1508)
    assert s.model == pytest.approx(0.12 / 0.1508)
    assert s.strength == pytest.approx(0.03 / 0.1508)
    assert s.chance == pytest.approx(3 / 11)
    assert s.f == pytest.approx(500.0)
    groups = [[m + d for d in SEED_DEV] for m in MIG_MEANS]
    f, p = stats.f_oneway(*groups)
    assert s.f == pytest.approx(f) and s.p == pytest.approx(p)
    assert s.between == pytest.approx(f * 3 / (f * 3 + 8))  # η² from F: F(k−1) / (F(k−1) + N − k)
    noise = metric_shares(study_rows(known))["dci_disentanglement"]
    assert noise.between == pytest.approx(0.0, abs=1e-12) and noise.within == pytest.approx(1.0)


def test_variance_shares_on_unbalanced_cells_agree_with_f_oneway_and_leave_out_missing_values():
    rng = np.random.default_rng(0)
    groups = [rng.normal(m, 1.0, n) for m, n in ((0.0, 2), (1.0, 5), (3.0, 4))]
    values = np.concatenate([*groups, [np.nan]])
    cells = [0] * 2 + [1] * 5 + [2] * 4 + [2]
    s = variance_shares(values, cells, models=["a", "a", *["a"] * 5, *["b"] * 5])
    f, p = stats.f_oneway(*groups)
    assert s.runs == 11 and s.f == pytest.approx(f) and s.p == pytest.approx(p)
    y = np.concatenate(groups)
    b = y[7:]
    ss_model = 7 * (y[:7].mean() - y.mean()) ** 2 + 4 * (b.mean() - y.mean()) ** 2
    assert s.model == pytest.approx(ss_model / ((y - y.mean()) ** 2).sum())
    assert s.model + s.strength + s.within == pytest.approx(1.0)


def test_rank_correlations_are_the_constructed_ones():
    metrics_, rho, n = rank_correlation_matrix(study_rows(known))
    at = {m: i for i, m in enumerate(metrics_)}
    assert metrics_ == ["mig", "sap_dlib", "dci_disentanglement", "factorvae_score", "gaussian_total_correlation"]
    assert rho[at["mig"], at["sap_dlib"]] == pytest.approx(1.0)
    assert rho[at["mig"], at["gaussian_total_correlation"]] == pytest.approx(1.0)  # negated: lower is better
    assert rho[at["mig"], at["factorvae_score"]] == pytest.approx(-1.0)
    assert n[at["mig"], at["sap_dlib"]] == 12 and np.allclose(np.diag(rho), 1.0)
    # two runs adjacent in rank swapped: ρ = 1 − 6 Σd² / (n(n² − 1)) = 1 − 12 / (12 x 143)
    x = np.arange(12.0)
    y = x.copy()
    y[[4, 5]] = y[[5, 4]]
    assert rank_correlation(x, y) == (pytest.approx(1 - 1 / 143), 12)
    assert math.isnan(rank_correlation([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0])[0])  # a constant metric


def test_the_study_report_tables_and_findings():
    df = study_rows(known)
    assert is_disentanglement_study(df)
    assert study_title(df) == "Disentanglement study: metrics by model and strength"
    tables = study_tables(df)
    lead = tables[0]
    assert lead.key == "disentanglement_study"
    assert lead.header[:3] == ["Model", "Strength", "MIG ↑"]
    assert [c.text for c in lead.rows[3][:3]] == ["β-TCVAE", "TC weight=6", "0.400 ± 0.025"]
    assert lead.rows[3][2].best and "Gaussian TC (nats) ↓" in lead.header
    corr = table(tables, "rank_correlations")
    assert corr.header[1:3] == ["MIG", "SAP (dlib)"] and corr.header[-1] == "−Gaussian TC"
    # DCI disentanglement (seed noise) against MIG: Pearson's r of the mean ranks, by numpy
    r = np.corrcoef(stats.rankdata(df["mig"]), stats.rankdata(df["dci_disentanglement"]))[0, 1]
    assert [c.text for c in corr.rows[0][1:]] == ["1", "1.00", f"{r:.2f}", "-1.00", "1.00"]
    variance = table(tables, "variance_sources")
    assert [c.text for c in variance.rows[0]] == ["MIG", "0.80", "0.20", "0.99", "0.01", "0.27", "< 0.001", "12", "4"]
    text = render_study(df)
    # (a): btcvae's best cell is clear of elbo's on MIG, SAP (dlib), Gaussian TC; elbo's on the FactorVAE
    # score; DCI disentanglement ranks no cell (every mean is equal): btcvae on 3 of 4, a majority
    assert "## Locatello et al. 2019 at this scale" in text
    assert (
        "(a) “No model is consistently better once seeds are accounted for” is contradicted here. On 4 of the 4 metrics that rank"
        in text
    )
    assert "MIG: β-TCVAE; SAP (dlib): β-TCVAE; FactorVAE score: β-VAE; Gaussian TC: β-TCVAE" in text
    # (b): pairs of the paper's metrics measured (MIG, SAP (dlib), DCI disentanglement, FactorVAE score)
    assert "(b) “The metrics disagree” holds here. Over the 6 pairs" in text
    assert "5 of the 6 pairs are below 0.5 (lowest first: FactorVAE score–MIG -1.00; FactorVAE score–SAP (dlib)" in text
    assert (
        "Scale: 12 runs on `shapes` (32×32 px), 2 epochs each (median), 3 seeds per cell, 4 cells of 2 model(s)" in text
    )


def test_seed_noise_alone_makes_finding_a_hold_and_agreeing_metrics_contradict_b():
    def noise(mig, cell, seed):  # every metric the same: seed noise plus a cell offset smaller than its CI
        v = 0.5 + 0.3 * SEED_DEV[seed] * (1 + cell % 2)
        return {m: v + 0.001 * cell for m in ("sap_dlib", "betavae_score", "modularity", "dci_disentanglement")}

    df = study_rows(noise)
    df["mig"] = 0.5 + 0.3 * np.array([SEED_DEV[s] * (1 + c % 2) + 0.001 * c / 0.3 for c in range(4) for s in range(3)])
    text = render_study(df)
    assert (
        "(a) “No model is consistently better once seeds are accounted for” holds here. On 0 of the 5 metrics" in text
    )
    assert (
        "(b) “The metrics disagree” is contradicted here." in text
        and "0 of the 10 pairs are below 0.5 (lowest first: none)" in text
    )


def test_a_study_of_mig_and_sap_alone_keeps_its_report():
    """The tutorial's Disentanglement column (MIG and SAP) is not a study of the metrics: no extra
    tables, findings or figure (the committed disentanglement report stays as it is)."""
    df = study_rows(lambda mig, cell, seed: {"sap": mig / 2})
    assert not is_disentanglement_study(df)
    keys = {t.key for t in study_tables(df)}
    assert not keys & {"disentanglement_study", "rank_correlations", "variance_sources"}
    assert "Locatello" not in render_study(df)


def test_vaebench_report_writes_the_study_report_and_its_heatmap(tmp_path):
    df = study_rows(known, study="dstudy")
    runs = tmp_path / "results" / "dstudy" / "runs"
    runs.mkdir(parents=True)
    for _, row in df.iterrows():
        pq.write_table(pa.Table.from_pylist([row.to_dict()]), runs / f"{row['run_id']}.parquet")
    out = tmp_path / "reports"
    r = CliRunner().invoke(app, ["report", "--results", str(tmp_path / "results"), "--out", str(out), "--format", "md"])
    assert r.exit_code == 0, r.output
    text = (out / "dstudy.md").read_text()
    assert text.startswith("# Disentanglement study: metrics by model and strength — study `dstudy`")
    assert "## Rank correlation between the metrics (Spearman over runs)" in text
    assert "| β-TCVAE | TC weight=6 | **0.400 ± 0.025** |" in text  # the cells read back from Parquet
    assert (out / "dstudy" / "figures" / "rank_correlations.png").read_bytes().startswith(b"\x89PNG")
    assert [f.key for f in study_figures(df, tmp_path / "results")][-1] == "rank_correlations"
