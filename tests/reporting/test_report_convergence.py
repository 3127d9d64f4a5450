"""Convergence and the evaluation protocol in the report (issue 24), on synthetic rows: the converged and
best-epoch columns of a study with early stopping, the flag of a cell that never converged, the fixed
budget of a study without early stopping, contradictions of the literature printed only when the
compared runs converged, the protocol sentence of a validation split and the ⚠ of the test-selection
opt-out, a search's best runs and Pareto front chosen on the validation values, and the learning
curves' split."""

import numpy as np
import pandas as pd
import pytest

from tests.reporting.test_report import BETA_CELLS, column, early_stopped, make_rows, metrics, table
from vaebench.reporting import figures
from vaebench.reporting.render import render_study
from vaebench.reporting.tables import pareto_front, study_tables

CONVERGED = ["converged"] * 3
# β 0.5: 2 of 3 converged; β 1: all; β 4: none (every run used the 100 epochs); β 10: all
MIXED = ["converged", "converged", "max_epochs"] + CONVERGED + ["max_epochs"] * 3 + CONVERGED
BEST = [10, 14, 100, 5, 6, 8, 97, 100, 100, 3, 4, 5]


def beta_rows(reasons=MIXED, best=BEST) -> pd.DataFrame:
    return early_stopped(make_rows("beta", "objective.beta", BETA_CELLS), reasons, best)


# --- the summary tables ---------------------------------------------------------------------------


def test_each_summary_table_counts_the_converged_runs_and_the_median_best_epoch():
    tables = study_tables(beta_rows())
    for key in ("beta_tradeoffs", "all_metrics"):
        t = table(tables, key)
        assert t.header[-3:] == ["n (runs)", "converged (runs)", "best epoch (median)"]
        assert [c.text for c in column(t, "converged (runs)")] == ["2/3", "3/3", "0/3", "3/3"]
        assert [c.text for c in column(t, "best epoch (median)")] == ["14", "6", "100", "4"]


def test_an_even_number_of_runs_has_a_median_between_two_epochs():
    df = beta_rows().query("seed != 2")  # two runs per cell
    t = table(study_tables(df), "beta_tradeoffs")
    assert [c.text for c in column(t, "best epoch (median)")] == ["12", "5.5", "98.5", "3.5"]


def test_a_study_without_early_stopping_has_no_convergence_columns():
    t = table(study_tables(make_rows("beta", "objective.beta", BETA_CELLS)), "beta_tradeoffs")
    assert t.header[-1] == "n (runs)" and "converged (runs)" not in t.header


def test_a_cell_whose_runs_all_used_the_maximum_epochs_is_flagged():
    notes = table(study_tables(beta_rows()), "beta_tradeoffs").notes
    flags = [n for n in notes if n.startswith("⚠")]
    assert flags == [
        "⚠ β=4: all 3 finished runs used the maximum of 100 epochs without early stopping ending them: its "
        "numbers are a budget's, not a converged model's."
    ]  # β 0.5 (2 of 3 converged) is not flagged
    assert any("patience 5, min_delta 0.1 nats" in n for n in notes)  # what the columns count
    converged = table(study_tables(beta_rows(["converged"] * 12)), "beta_tradeoffs").notes
    assert not any(n.startswith("⚠") for n in converged)


def test_a_failed_run_does_not_keep_its_cell_from_the_flag():
    df = beta_rows()
    df.loc[6, "status"], df.loc[6, "stop_reason"] = "failed", "diverged"  # β 4: 2 finished, both max_epochs
    notes = table(study_tables(df), "beta_tradeoffs").notes
    assert any(n.startswith("⚠ β=4: all 2 finished runs") for n in notes)


def test_a_fixed_budget_study_says_no_run_was_tested_for_convergence():
    notes = table(study_tables(make_rows("beta", "objective.beta", BETA_CELLS)), "beta_tradeoffs").notes
    assert (
        "Convergence: no run was tested for convergence (no early stopping); each trained for a fixed budget "
        "of 2 epochs, so these numbers are a budget's, not a converged model's."
    ) in notes
    budgets = {"a": {"param.train.epochs": 30}, "b": {"param.train.epochs": 6}}
    df = make_rows("plain", "variant", {"a": metrics(), "b": metrics()}, budgets)
    assert any(
        "a fixed budget of epochs per cell (a 30, b 6)" in n for n in table(study_tables(df), "all_metrics").notes
    )


# --- contradictions of the literature --------------------------------------------------------------


def kl_verdicts(df):
    t = table(study_tables(df), "published_vs_measured")
    return {r[5].text for r in t.rows if r[1].text == "KL (nats)"}, t.notes


ARCH = ["MLP (2-layer)", "MLP (4-layer)", "Conv (4-layer)", "ResNet VAE"]


def arch_rows(reasons=None) -> pd.DataFrame:
    """The architecture table's four variants, FID rising where the tutorial's falls."""
    cells = {n: metrics(fid=f) for n, f in zip(ARCH, [99.0, 150.0, 106.0, 119.0])}
    params = {
        n: {"param.model.latent_dim": d, "n_params": p, "param.model.name": "mlp"}
        for n, d, p in zip(ARCH, [20, 50, 128, 256], [973624, 2457460, 1180641, 798081])
    }
    df = make_rows("architecture", "variant", cells, params)
    return df if reasons is None else early_stopped(df, reasons, [10] * len(df))


def arch_verdicts(df):
    t = table(study_tables(df), "published_vs_measured")
    return {r[1].text: r[5].text for r in t.rows}, t.notes


def test_a_trend_against_the_tutorial_is_a_contradiction_only_when_every_compared_run_converged():
    verdicts, notes = arch_verdicts(arch_rows(["converged"] * 12))
    assert verdicts["FID samples"] == "⚠ contradicts: measured rises, tutorial falls"
    assert any(n.startswith("⚠ trend contradicts the tutorial: FID samples rises") for n in notes)

    verdicts, notes = arch_verdicts(arch_rows(["converged"] * 8 + ["max_epochs"] * 4))
    assert verdicts["FID samples"] == "inconclusive at this budget: measured rises, tutorial falls"
    assert not any(n.startswith("⚠ trend contradicts the tutorial: FID") for n in notes)
    assert any(
        n.startswith("Inconclusive at this budget: FID samples rises")
        and "only 8 of the 12 runs of the compared cells converged" in n
        for n in notes
    )

    verdicts, notes = arch_verdicts(arch_rows())  # a fixed budget
    assert verdicts["FID samples"].startswith("inconclusive at this budget")
    assert any("no run was tested for convergence (a fixed budget of epochs)" in n for n in notes)


def test_a_trend_the_objective_or_the_configuration_fixes_is_a_contradiction_at_any_budget():
    # KL falls as β rises because β weights it in the loss (published.yaml's `expected` trend): the
    # tutorial's rising KL is contradicted however long the runs trained
    for df in (beta_rows(), make_rows("beta", "objective.beta", BETA_CELLS)):
        verdicts, notes = kl_verdicts(df)
        assert verdicts == {"⚠ contradicts: measured falls, tutorial rises"}
        assert (
            "⚠ trend contradicts the tutorial: KL falls as β rises (measured), the tutorial shows it rising." in notes
        )
    # no training changes a parameter count
    verdicts, _ = arch_verdicts(arch_rows())
    assert verdicts["Parameter count"].startswith("⚠ contradicts")


# --- the protocol ------------------------------------------------------------------------------------


def test_a_validation_split_is_named_with_its_size_checksum_and_what_was_measured_on_it():
    text = render_study(beta_rows())
    assert (
        "Protocol: 10,000 examples of the training split (checksum `val123`) are held out as the validation "
        "split, never trained on; the per-epoch curves and early stopping are measured on it, not on the test "
        "split. The test metrics come from one evaluation of each run after training, of the weights of its best "
        "epoch"
    ) in text
    assert "Protocol:" not in render_study(make_rows("beta", "objective.beta", BETA_CELLS))
    assert "`train.early_stopping={min_delta: 0.1, patience: 5}`" in text


def test_the_test_selection_opt_out_is_printed_with_a_warning():
    df = make_rows("beta", "objective.beta", BETA_CELLS).assign(validation_size=0, allow_test_selection=True)
    text = render_study(df)
    assert "⚠ Selection on the test split, deliberately: `search.allow_test_selection: true` in 12 of 12 runs" in text
    unused = render_study(beta_rows().assign(allow_test_selection=True))
    assert "⚠ Selection on the test split" not in unused
    assert "`search.allow_test_selection: true` was set in 12 run(s) but not used" in unused
    assert "allow_test_selection" not in render_study(beta_rows())


# --- a search's best runs and Pareto front ------------------------------------------------------------


def search_rows(test_elbo, validation_elbo, split="validation", targets=("neg_elbo",)) -> pd.DataFrame:
    """A TPE search over the learning rate, one trial per learning rate."""
    lrs = [1e-4, 3e-4, 1e-3, 3e-3][: len(test_elbo)]
    cells = {lr: metrics(elbo=e) for lr, e in zip(lrs, test_elbo)}
    df = make_rows("lr_search", "train.lr", cells).query("seed == 0").reset_index(drop=True)
    return df.assign(
        sampler="tpe",
        objective_metrics=[list(targets)] * len(df),
        objective_directions=[["minimize"] * len(targets)] * len(df),
        objective_values=[[v] if np.isscalar(v) else list(v) for v in validation_elbo],
        objective_split=split,
        validation_size=10000 if split == "validation" else 0,
        validation_checksum="val123" if split == "validation" else None,
        allow_test_selection=split == "test",
    )


def test_the_best_run_of_a_search_is_chosen_on_the_validation_values_with_the_test_values_beside():
    # the test -ELBO ranks lr 1e-4 first; the validation values the trials told Optuna rank 1e-3 first
    df = search_rows(test_elbo=[95.0, 99.0, 101.0, 110.0], validation_elbo=[104.0, 100.0, 97.0, 120.0])
    t = table(study_tables(df), "best_runs")
    assert t.title == "Best runs (neg_elbo ↓, chosen on the validation split)"
    assert t.header == ["Run", "Learning rate", "Seed", "−ELBO (nats, validation) ↓", "−ELBO (nats, test)"]
    assert [[c.text for c in r[1:]] for r in t.rows] == [
        ["0.001", "0", "97", "100.8"],
        ["0.0003", "0", "100", "98.8"],
        ["0.0001", "0", "104", "94.8"],
        ["0.003", "0", "120", "109.8"],
    ]
    assert t.notes[1].startswith("Chosen on the validation split")
    text = render_study(df)
    assert text.index("## Best runs") > text.index("Fixed settings")  # single runs: after the settings


def test_rows_without_validation_values_are_ranked_on_the_test_column_and_say_so():
    df = search_rows([95.0, 99.0, 101.0], [104.0, 100.0, 97.0]).drop(columns=["objective_values", "objective_split"])
    df = df.drop(columns=["allow_test_selection", "validation_size"])
    t = table(study_tables(df), "best_runs")
    assert t.header[-1] == "−ELBO (nats) ↓" and [r[1].text for r in t.rows] == ["0.0001", "0.0003", "0.001"]
    assert t.notes[1].startswith("Chosen on the test metrics (neg_elbo)")
    opted = table(study_tables(search_rows([95.0, 99.0], [95.0, 99.0], split="test")), "best_runs")
    assert opted.notes[1].startswith("⚠ Chosen on the test split, deliberately")


def test_the_pareto_front_is_chosen_on_the_validation_values():
    # (recon MSE, KL): on the test columns trial 0 is dominated by trial 1 (0.0095 < 0.01, 19.5 < 20);
    # on the validation values trial 1 is dominated by trial 0
    df = search_rows([100.0, 100.0], [(0.011, 20.5), (0.012, 21.0)], targets=("recon_mse", "kl"))
    df["recon_mse"], df["kl"] = [0.010, 0.0095], [20.0, 19.5]
    front = pareto_front(df)
    assert list(front["param.train.lr"]) == [1e-4]
    t = table(study_tables(df), "pareto_front")
    assert t.header[3:] == [
        "Recon MSE (per pixel, validation) ↓",
        "Recon MSE (per pixel, test)",
        "KL (nats, validation) ↓",
        "KL (nats, test)",
    ]
    assert [c.text for c in t.rows[0][3:]] == ["0.011", "0.01", "20.5", "20"]
    assert any(n.startswith("Chosen on the validation split: each run's recon_mse, kl") for n in t.notes)


# --- the learning curves -----------------------------------------------------------------------------


def with_histories(df: pd.DataFrame, split: str) -> pd.DataFrame:
    """Three epochs per run; with a validation split the val_* fields hold the losses and test_* are null."""

    def history(i):
        out = []
        for e in (1, 2, 3):
            loss = 200.0 - 10 * e + i
            held = {"val_loss": loss, "val_recon": loss - 20, "val_kl": 20.0} if split == "validation" else {}
            test = {"test_loss": None, "test_recon": None, "test_kl": None} if held else {}
            test = test or {"test_loss": loss + 1000, "test_recon": loss + 980, "test_kl": 20.0}
            out.append({"epoch": e, "kl_weight": 1.0, "seconds": 2.0 * e, **test, **held})
        return out

    return df.assign(history=[history(i) for i in range(len(df))])


@pytest.fixture
def drawn(monkeypatch):
    """The matplotlib figures the report draws, kept instead of turned into PNGs."""
    kept = []
    monkeypatch.setattr(figures, "_png", lambda fig: kept.append(fig) or b"")
    return kept


@pytest.mark.parametrize("split", ["validation", "test"])
def test_learning_curves_plot_the_held_out_split_and_say_which(drawn, split):
    df = with_histories(
        beta_rows() if split == "validation" else make_rows("beta", "objective.beta", BETA_CELLS), split
    )
    fig = figures.training_curves(df, None)
    assert fig.caption.startswith(f"Per epoch, mean over seeds: {split} −ELBO")
    (plot,) = drawn
    assert plot._suptitle.get_text() == f"Training curves ({split} split, mean over seeds)"
    first = plot.axes[0].lines[0].get_ydata()  # β 0.5's runs 0-2: mean of 200 - 10e + i
    offset = 0 if split == "validation" else 1000
    assert list(first) == [191.0 + offset, 181.0 + offset, 171.0 + offset]


def test_an_architecture_comparison_with_a_validation_split_draws_its_curves_and_budget_from_it(drawn):
    names = ["MLP (2-layer)", "Conv (4-layer)"]
    params = {n: {"param.model.name": m} for n, m in zip(names, ["mlp", "conv"])}
    df = with_histories(
        early_stopped(make_rows("architecture", "variant", dict.fromkeys(names, metrics()), params)), "validation"
    )
    fig = figures.compute_curves(df, None)
    assert fig.caption.startswith("Validation −ELBO (β = 1, nats per example)")
    assert drawn[0].axes[0].get_ylabel() == "validation −ELBO (nats)"
    notes = table(study_tables(df), "architecture").notes
    assert any("Still improving at the end: MLP (2-layer) (10.0 nats in its last epoch)" in n for n in notes)
