"""Report tables of families with metrics of their own (report/family_tables.py), on synthetic rows:
the VQ-VAE codebook table and the hierarchical per-layer tables with Sønderby et al.'s depth check,
chosen from the rows' measured columns, not from the study's name."""

import pandas as pd

from tests.reporting.test_report import early_stopped, make_rows, metrics, table
from vaebench.reporting.render import render_study
from vaebench.reporting.tables import study_tables, study_title


def _hierarchical(nll_by_depth: dict[int, float], study: str = "whatever_name") -> pd.DataFrame:
    cells = {f"{d} layers": {**metrics(), "nll_is": (nll, 0.1)} for d, nll in nll_by_depth.items()}
    df = make_rows(study, "variant", cells)
    kl = {1: [20.0], 2: [15.0, 5.0], 3: [14.0, 5.5, 0.5]}
    au = {1: [10], 2: [8, 2], 3: [8, 2, 0]}
    depth = df["variant"].str[0].astype(int)
    df["kl_per_layer"] = [kl[d] for d in depth]
    df["active_units_per_layer"] = [au[d] for d in depth]
    df["param.model.name"] = "ladder"
    return df


def test_a_hierarchical_study_gets_per_layer_tables_and_the_depth_check():
    df = _hierarchical({1: 99.0, 2: 97.5, 3: 96.8})
    tables = study_tables(df)
    assert study_title(df) == "Hierarchical (ladder) VAE: likelihood by depth"  # from the columns, not the name
    kl = table(tables, "kl_per_layer_table")
    assert kl.header[:4] == ["Variant", "KL layer 1 (nats)", "KL layer 2 (nats)", "KL layer 3 (nats)"]
    assert [c.text for c in kl.rows[0][1:4]] == ["20.00", "—", "—"]  # one layer: the others are absent
    assert [c.text for c in kl.rows[2][1:4]] == ["14.00", "5.50", "0.50"]
    check = table(tables, "depth_check")
    assert [[c.text for c in r] for r in check.rows] == [["1", "99.00", "3"], ["2", "97.50", "3"], ["3", "96.80", "3"]]
    assert "agrees: the NLL falls with every added layer" in check.notes[0]
    text = render_study(df)
    assert text.startswith("# Hierarchical (ladder) VAE: likelihood by depth")


def test_the_depth_check_flags_a_contradiction():
    check = table(study_tables(early_stopped(_hierarchical({1: 97.0, 2: 97.5, 3: 98.0}))), "depth_check")
    assert "⚠ contradicts: more stochastic layers do not lower the NLL here" in check.notes[0]
    partly = table(study_tables(early_stopped(_hierarchical({1: 99.0, 2: 96.0, 3: 96.5}))), "depth_check")
    assert "⚠ partly contradicts" in partly.notes[0]


def test_the_depth_check_is_inconclusive_unless_every_run_converged():
    worse = {1: 97.0, 2: 97.5, 3: 98.0}
    fixed = table(study_tables(_hierarchical(worse)), "depth_check").notes[0]  # no early stopping
    assert "contradicts" not in fixed
    assert (
        "Measured here: inconclusive at this budget: more stochastic layers do not lower the NLL here, but no "
        "run was tested for convergence (a fixed budget of epochs), so this is not a contradiction" in fixed
    )
    reasons = ["converged"] * 8 + ["max_epochs"]  # one 3-layer run used every epoch
    one_short = table(study_tables(early_stopped(_hierarchical(worse), reasons)), "depth_check").notes[0]
    assert "contradicts" not in one_short and "only 8 of the 9 runs of the compared cells converged" in one_short
    agrees = table(study_tables(_hierarchical({1: 99.0, 2: 97.5, 3: 96.8})), "depth_check").notes[0]
    assert "agrees: the NLL falls with every added layer" in agrees  # agreeing needs no convergence


def test_a_vq_study_gets_the_codebook_table_and_single_layer_studies_do_not():
    cells = {
        k: {**metrics(), "codebook_perplexity": (p, 1.0), "codes_used_fraction": (u, 0.01), "fid_recon": (20.0, 1.0)}
        for k, p, u in ((64, 40.0, 0.9), (512, 120.0, 0.4))
    }
    df = make_rows("vq_any_name", "model.num_embeddings", cells)
    tables = study_tables(df)
    vq = tables[0]
    assert vq.key == "vqvae" and study_title(df) == "VQ-VAE: reconstruction and codebook use"
    assert vq.header[1:7] == [
        "Recon MSE (per pixel) ↓",
        "SSIM ↑",
        "Codebook perplexity (codes) ↑",
        "Codes used (fraction) ↑",
        "FID of reconstructions ↓",
        "Rate (nats)",
    ]
    assert vq.rows[1][3].text.startswith("120.0") and vq.rows[1][3].best
    plain = make_rows("plain", "variant", {"a": metrics(), "b": metrics()})
    assert not any(t.key in ("vqvae", "hierarchical", "depth_check") for t in study_tables(plain))


def _zoo(models: dict[str, dict]) -> pd.DataFrame:
    """A comparison of models: variant -> its model parameters (e.g. {"param.model.name": "pythae",
    "param.model.model": "IWAE"}); NLL rising down the grid."""
    cells = {name: {**metrics(), "nll_is": (95.0 + i, 0.2)} for i, name in enumerate(models)}
    return make_rows("any_name", "variant", cells, models)


def test_three_or_more_models_get_the_model_comparison_table_led_by_the_nll():
    df = _zoo(
        {
            "mlp": {"param.model.name": "mlp"},
            "VAE": {"param.model.name": "pythae", "param.model.model": "VAE"},
            "IWAE": {"param.model.name": "pythae", "param.model.model": "IWAE"},
        }
    )
    assert study_title(df) == "Model comparison under one protocol"
    lead = study_tables(df)[0]
    assert lead.key == "model_comparison"
    assert lead.header[:3] == ["Model", "NLL (IS, nats) ↓", "−ELBO (nats) ↓"]
    assert "Rate: KL (nats)" in lead.header  # not ranked: no arrow
    assert lead.header[-2:] == ["p (NLL) vs mlp", "n (runs)"]
    assert lead.rows[0][1].best and not lead.rows[1][1].best  # the best (lowest) NLL is marked
    assert any(n.startswith("Each model trains on its own loss") for n in lead.notes)


def test_two_models_or_numeric_model_changes_are_not_a_model_comparison():
    two = _zoo({"mlp": {"param.model.name": "mlp"}, "vamp": {"param.model.name": "vampprior"}})
    assert study_title(two) != "Model comparison under one protocol"
    sizes = _zoo({f"h{h}": {"param.model.hidden_dim": h} for h in (64, 128, 256)})  # one model, three sizes
    assert study_title(sizes) != "Model comparison under one protocol"


def test_a_model_comparison_names_the_best_model_per_metric_and_those_its_interval_cannot_separate():
    models = {
        "mlp": {"param.model.name": "mlp"},
        "VAE": {"param.model.name": "pythae", "param.model.model": "VAE"},
        "IWAE": {"param.model.name": "pythae", "param.model.model": "IWAE"},
    }
    df = _zoo(models)  # NLL 95, 96, 97 with sample std 0.2: half-width t(0.975, 2)·0.2/√3 = 0.50, no overlap
    text = render_study(df)
    assert "## Which model is best, and by how much" in text
    assert "- NLL (IS, nats): mlp, 95.00 ± 0.50; not told apart from it: none (3 models measured)." in text
    df.loc[df["variant"] == "IWAE", "nll_is"] -= 1.6  # IWAE 95.4: its interval overlaps mlp's
    df.loc[df["variant"] == "VAE", "nll_is"] += 5.0
    assert "- NLL (IS, nats): mlp, 95.00 ± 0.50; not told apart from it: IWAE (3 models measured)." in render_study(df)
    two = _zoo({k: models[k] for k in ("mlp", "VAE")})
    assert "Which model is best" not in render_study(two)


def test_the_model_comparison_all_metrics_table_has_no_loss_study_note():
    models = {n: {"param.model.name": n} for n in ("mlp", "conv", "vampprior")}
    notes = table(study_tables(_zoo(models)), "all_metrics").notes
    assert not any("different likelihoods" in n for n in notes)  # that note is the loss study's


def test_crowded_rate_distortion_points_get_a_legend_instead_of_labels(monkeypatch):
    from vaebench.reporting import figures
    from vaebench.reporting.figures import _crowded, rate_distortion

    monkeypatch.setattr(figures, "_figure", lambda key, title, fig: fig)  # the drawing, not its PNG

    assert not _crowded([(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)])
    assert _crowded([(0.0, 0.0), (10.0, 100.0), (9.5, 99.0)])  # 5% and 1% of the spans apart
    assert not _crowded([(0.0, 0.0), (10.0, 100.0), (9.5, 50.0)])  # close in x only
    models = {n: {"param.model.name": n} for n in ("mlp", "conv", "vampprior")}
    apart = _zoo(models)
    apart["kl"] = apart["kl"] + 10.0 * apart["cell_index"]
    crowded = _zoo(models)
    crowded.loc[crowded["variant"] == "vampprior", "kl"] += 20.0  # mlp and conv share a point

    def drawn(df):
        ax = rate_distortion(df, None).axes[0]
        return ax.get_legend() is not None, len(ax.texts)

    assert drawn(apart) == (False, 3) and drawn(crowded) == (True, 0)
