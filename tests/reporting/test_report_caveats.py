"""What a report warns of, read from the rows (reporting/caveats.py): posterior collapse, what limits
comparison with papers, differences the confidence intervals cannot resolve; the p column only
beside the metric it tests, and the fixed settings as resolved. Synthetic rows, no training."""

import pandas as pd

from tests.reporting.test_report import BETA_CELLS, column, make_rows, metrics, table
from vaebench.reporting.caveats import COLLAPSE_ACTIVE_UNITS, COLLAPSE_KL_NATS, collapsed, paper_limits
from vaebench.reporting.render import render_study
from vaebench.reporting.tables import study_tables

COLLAPSED = {**metrics(elbo=140.0), "kl": (0.02, 0.001), "active_units": (0, 0)}  # KL ≈ 0 nats and no active unit


def test_posterior_collapse_is_flagged_per_cell_with_its_thresholds():
    df = make_rows("beta", "objective.beta", {**BETA_CELLS, 10.0: COLLAPSED})
    assert collapsed(df).sum() == 3  # the three seeds of β = 10
    notes = table(study_tables(df), "beta_tradeoffs").notes
    [note] = [n for n in notes if "Posterior collapse" in n]
    assert note.startswith("⚠ Posterior collapse (the decoder ignores z): β=10: 3 of 3 runs")
    assert f"KL is below {COLLAPSE_KL_NATS:g} nats per example and it has {COLLAPSE_ACTIVE_UNITS} active units" in note
    assert note in render_study(df)


def test_no_collapse_says_so_and_both_conditions_are_needed():
    healthy = study_tables(make_rows("beta", "objective.beta", BETA_CELLS))
    assert any(
        n.startswith("Posterior collapse: none of the 12 finished runs") for n in table(healthy, "beta_tradeoffs").notes
    )
    # a KL near 0 with active units left is not a collapse (nor are active units without the KL)
    low_kl = {**metrics(), "kl": (0.02, 0.001), "active_units": (3, 0)}
    df = make_rows("beta", "objective.beta", {**BETA_CELLS, 10.0: low_kl})
    assert not collapsed(df).any()
    assert not any("⚠ Posterior collapse" in n for t in study_tables(df) for n in t.notes)
    # rows without active units (a VQ-VAE): no statement either way
    no_units = make_rows("beta", "objective.beta", BETA_CELLS).drop(columns="active_units")
    assert not any("Posterior collapse" in n for t in study_tables(no_units) for n in t.notes)


def _classifier(df: pd.DataFrame, binarize=False) -> pd.DataFrame:
    return df.assign(
        fid_extractor="vaebench-classifier-83320e7b5ad30085-82dd0e6cd00aad4a", **{"param.dataset.binarize": binarize}
    )


def test_paper_limits_come_from_the_rows_dataset_likelihood_and_fid_extractor():
    df = _classifier(make_rows("beta", "objective.beta", BETA_CELLS))
    grey, fid = paper_limits(df)
    assert "grey-level MNIST" in grey and "binary cross-entropy" in grey and "binarized MNIST" in grey
    assert "`vaebench-classifier-83320e7b5ad30085-82dd0e6cd00aad4a`" in fid and "not Inception-v3" in fid
    text = render_study(df)
    assert "What limits comparing these numbers with papers' (read from the rows):" in text
    assert "- The data are grey-level MNIST" in text and "- FID is computed on the features of vaebench's own" in text
    # binarized MNIST, Inception features: nothing to say
    inception = _classifier(make_rows("beta", "objective.beta", BETA_CELLS), binarize=True).assign(
        fid_extractor="inception-v3-compat"
    )
    assert paper_limits(inception) == []
    assert "What limits comparing" not in render_study(inception)
    # another dataset, no FID: nothing; a likelihood grid: only the Bernoulli runs are named
    assert paper_limits(make_rows("b", "objective.beta", BETA_CELLS, dataset="shapes").assign(fid=None)) == []
    loss = make_rows("loss", "objective.likelihood", {"bernoulli": metrics(), "gaussian": metrics()})
    [grey] = paper_limits(loss.assign(**{"param.dataset.binarize": False}))
    assert grey.startswith("3 of the 6 runs: the data are grey-level MNIST")


def test_a_confidence_interval_wider_than_the_difference_is_warned_of_with_n_2():
    # two seeds per cell (n = 2: t = 12.7): -ELBO 100.0 vs 100.5, each cell's runs 0.4 apart
    df = make_rows("beta", "objective.beta", {1.0: metrics(elbo=100.0), 4.0: metrics(elbo=100.5)}).query("seed < 2")
    tables = study_tables(df)
    [warning] = [n for t in tables for n in t.notes if n.startswith("⚠ −ELBO")]
    assert "wider than the difference from β=1 for β=4 (difference +0.50, CI half-width" in warning
    assert "with n = 2 runs the interval is 12.7 standard errors wide" in warning
    assert warning in table(tables, "all_metrics").notes  # beside the p column that tests −ELBO
    # well separated cells: no warning
    apart = make_rows("beta", "objective.beta", {1.0: metrics(elbo=100.0), 4.0: metrics(elbo=120.0)})
    assert not any(n.startswith("⚠ −ELBO") for t in study_tables(apart) for n in t.notes)


def test_p_column_only_beside_the_metric_it_tests():
    tables = study_tables(make_rows("beta", "objective.beta", BETA_CELLS))
    lead, every = table(tables, "beta_tradeoffs"), table(tables, "all_metrics")
    assert "−ELBO (nats) ↓" not in lead.header and not any(h.startswith("p (") for h in lead.header)
    assert "−ELBO (nats) ↓" in every.header and column(every, "p (−ELBO) vs β=1")[1].text == "baseline"


def test_fixed_settings_list_the_resolved_values_the_spec_set_in_bold():
    df = make_rows("beta", "objective.beta", BETA_CELLS).assign(**{"param.train.lr": 0.001, "param.train.tf32": True})
    text = render_study(df)
    line = next(x for x in text.splitlines() if x.startswith("Fixed settings"))
    assert "everything else at vaebench's defaults" not in line
    assert "**`train.epochs=2`**" in line  # not the default: set by the spec
    assert (
        "`train.lr=0.001`" in line and "**`train.lr" not in line and "`train.tf32=true`" in line
    )  # defaults, resolved
    assert "objective.beta" not in line  # the grid key is not fixed


def test_blank_cells_say_why_from_the_runs_metrics_skipped():
    cells = {"VAE": metrics(), "SVAE": metrics(), "IAF": metrics(), "VQ": metrics()}
    df = make_rows("zoo", "variant", cells)
    vmf = "latent: SVAE's posterior is a von Mises-Fisher, not a diagonal Gaussian"
    flow = "latent: the IAF posterior is not a diagonal Gaussian"
    skipped = {"VAE": [], "SVAE": [vmf, "fid (samples): no"], "IAF": [flow], "VQ": []}
    df["metrics_skipped"] = [skipped[v] for v in df["variant"]]
    df.loc[df["variant"] != "VAE", "active_units"] = float("nan")
    t = table(study_tables(df), "all_metrics")
    [note] = [n for n in t.notes if n.startswith("Blank cells")]
    assert column(t, "Active units (count)")[1].text == "—"
    assert (
        "Active units: SVAE (SVAE's posterior is a von Mises-Fisher, not a diagonal Gaussian); IAF (the IAF "
        "posterior is not a diagonal Gaussian); VQ (no reason recorded)." in note
    )
    assert "FID" not in note  # every cell measured FID: the part skipped elsewhere blanks no cell
    # a column every cell measured, or none did, gets no note
    assert not any(
        n.startswith("Blank cells")
        for n in table(study_tables(make_rows("zoo", "variant", cells)), "all_metrics").notes
    )
