"""Other authors' orderings beside the measured one (reporting/published.py, ordering_table; the
`kind: ordering` entries of published.yaml), on synthetic rows of a model zoo: only the order of the
models is compared, a reversal counts only with disjoint 95% intervals, and it is a contradiction only
when every compared run converged."""

from itertools import combinations

from tests.reporting.test_report import early_stopped, make_rows, metrics, table
from vaebench.reporting.published import load_published
from vaebench.reporting.render import render_study
from vaebench.reporting.tables import study_tables

KEY = "ordering_nll_is"
MODELS = {"mlp VAE": None, "VAMP (K=50)": "VAMP", "IWAE (k=5)": "IWAE", "VAE": "VAE", "SVAE": "SVAE"}


def zoo(nll: dict[str, float], step: float = 0.1, dataset: str = "mnist"):
    """A zoo study's rows: cell name -> IS-NLL mean (seeds mean ± step); pythae's model per cell."""
    cells = {name: {**metrics(), "nll_is": (v, step)} for name, v in nll.items()}
    params = {name: {"param.model.model": MODELS[name]} for name in nll}
    return make_rows("pythae_zoo", "variant", cells, params, dataset=dataset)


def kendall_tau(a, b) -> float:
    """Kendall's τ without ties, counted by hand: (concordant − discordant) / pairs."""
    pairs = list(combinations(range(len(a)), 2))
    s = sum(1 if (a[i] - a[j]) * (b[i] - b[j]) > 0 else -1 for i, j in pairs)
    return s / len(pairs)


def test_the_published_ordering_entry_is_pythaes_reproduced_nll():
    entry = load_published()["pythae_reproduced_nll"]
    assert entry["kind"] == "ordering" and entry["match"] == "model.model" and entry["quantity"] == "nll_is"
    assert "examples/scripts/reproducibility/README.md" in entry["source"]["file"]
    assert [(r["model"], r["value"]) for r in entry["rows"]] == [
        ("VAMP", 85.79),
        ("IWAE", 86.82),
        ("VAE", 89.78),
        ("SVAE", 93.13),
    ]


def test_the_same_order_agrees_and_cells_without_a_published_model_are_left_out():
    t = table(
        study_tables(zoo({"mlp VAE": 97.5, "VAMP (K=50)": 95.0, "IWAE (k=5)": 96.0, "VAE": 97.0, "SVAE": 99.0})), KEY
    )
    assert t.title == "Published order versus measured: NLL"
    assert [r[0].text for r in t.rows] == ["VAMP (K=50)", "IWAE (k=5)", "VAE", "SVAE"]  # not the mlp cell
    assert t.header[:2] == ["Model", "pythae model"] and [r[1].text for r in t.rows] == ["VAMP", "IWAE", "VAE", "SVAE"]
    assert [r[2].text for r in t.rows] == ["85.79", "86.82", "89.78", "93.13"]
    assert [r[4].text for r in t.rows] == [r[6].text for r in t.rows] == ["1", "2", "3", "4"]
    assert t.rows[0][5].text.startswith("95.00 ± ")  # mean ± the 95% CI half-width over 3 seeds
    assert "Order: agrees, the 4 models rank the same way (Kendall's τ-b +1.00)." in t.notes
    assert any(n.startswith("pythae's benchmark paper (Chadebec et al.") for n in t.notes)  # the entry's note


def test_a_swap_inside_the_intervals_is_not_a_reversal():
    nll = {"VAMP (K=50)": 96.1, "IWAE (k=5)": 96.0, "VAE": 97.0, "SVAE": 99.0}
    t = table(study_tables(zoo(nll, step=0.5)), KEY)
    tau = kendall_tau([85.79, 86.82, 89.78, 93.13], list(nll.values()))
    verdict = next(n for n in t.notes if n.startswith("Order:"))
    assert f"Kendall's τ-b {tau:+.2f}" in verdict and tau == 4 / 6
    assert "within overlapping 95% intervals (not resolved by these seeds): IWAE (k=5) before VAMP (K=50)." in verdict
    assert "Reversed" not in verdict and "⚠" not in verdict


def test_a_reversal_with_disjoint_intervals_is_a_contradiction_only_when_every_run_converged():
    nll = {"VAMP (K=50)": 99.0, "IWAE (k=5)": 96.0, "VAE": 97.0, "SVAE": 95.0}
    fixed_budget = next(n for n in table(study_tables(zoo(nll)), KEY).notes if n.startswith("Order:"))
    tau = kendall_tau([85.79, 86.82, 89.78, 93.13], list(nll.values()))
    assert f"Kendall's τ-b {tau:+.2f}" in fixed_budget
    assert "SVAE before VAMP (K=50)" in fixed_budget and "IWAE (k=5) before VAMP (K=50)" in fixed_budget
    assert "inconclusive at this budget, not a contradiction" in fixed_budget and "⚠" not in fixed_budget
    assert "no run was tested for convergence" in fixed_budget
    converged = next(n for n in table(study_tables(early_stopped(zoo(nll))), KEY).notes if n.startswith("Order:"))
    assert "⚠ Reversed against the published order, with disjoint 95% intervals:" in converged
    assert "SVAE before VAMP (K=50)" in converged


def test_no_ordering_table_on_other_data_or_with_fewer_than_two_published_models():
    keys = [t.key for t in study_tables(zoo({"VAMP (K=50)": 95.0, "VAE": 97.0}, dataset="digits"))]
    assert KEY not in keys
    keys = [t.key for t in study_tables(zoo({"mlp VAE": 97.5, "VAE": 97.0}))]
    assert KEY not in keys
    text = render_study(zoo({"mlp VAE": 97.5, "VAMP (K=50)": 95.0, "VAE": 97.0}))
    assert "## Published order versus measured: NLL" in text and "pythae's repository" in text
