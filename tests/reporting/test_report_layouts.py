"""Which tutorial table a study's report mirrors is chosen from its rows — the grid's keys, for named
variants what the variants change, a grid or a sampled search — never from the study's name: every
shipped sweep's rows get the table that sweep's report has, under any study name."""

from pathlib import Path

import pandas as pd
import pytest

from tests.reporting.test_report import make_rows, metrics, table
from vaebench.reporting.render import render_study
from vaebench.reporting.settings import EXTERNAL_COMMAND
from vaebench.reporting.tables import study_layout, study_tables
from vaebench.reporting.titles import DISENTANGLEMENT_TITLE
from vaebench.results.rows import param_columns
from vaebench.spec.sweep_spec import Run, load_spec

SWEEPS = Path(__file__).resolve().parents[2] / "sweeps"

# Every shipped sweep: the (title, layout key) of its report when it was chosen by the study's name.
# The hierarchical and VQ-VAE studies get their family's layout from measured columns these rows
# lack (test_report_families.py); without them they mirror no tutorial table.
SHIPPED = {
    "beta": ("β-VAE trade-offs", "beta_tradeoffs"),
    "cifar10_beta": ("β-VAE trade-offs", "beta_tradeoffs"),
    "fashion_mnist_beta": ("β-VAE trade-offs", "beta_tradeoffs"),
    "smoke": ("β-VAE trade-offs", "beta_tradeoffs"),
    "latent_dim": ("Latent dimension impact", "latent_dim"),
    "loss": ("Loss comparison", "loss"),
    "architecture": ("Architecture comparison", "architecture"),
    "schedule": ("Annealing schedules", "schedules"),
    "disentanglement": (DISENTANGLEMENT_TITLE, "sweep"),
    # its own report needs the measured disentanglement metrics these rows lack (test_report_disentanglement_study.py)
    "disentanglement_study": ("Sweep results", "sweep"),
    "vampprior": ("Sweep results", "sweep"),
    "pythae_zoo": ("Model comparison under one protocol", "model_comparison"),  # eight models
    "hierarchical": ("Sweep results", "sweep"),
    "vqvae": ("Sweep results", "sweep"),
    "lr_hyperband": ("Sweep results", "sweep"),
    "pareto_tpe": ("Sweep results", "sweep"),
}


def spec_runs(sweep: str) -> tuple[list[str], str, list[Run]]:
    """(grid keys, sampler, runs) of a shipped sweep as its rows record them; a sampled search's two
    first trials stand in as its spec's base config."""
    spec = load_spec(SWEEPS / f"{sweep}.yaml")
    grid_keys = list(spec.search.space) if spec.search.sampled else list(spec.grid)
    runs = spec.runs() or [Run(spec.base(), 0, {}, i) for i in range(2)]
    return grid_keys, spec.search.sampler, runs


def spec_rows(sweep: str, study: str) -> pd.DataFrame:
    """A finished run's identifying columns and parameters for every run of a shipped sweep, as `study`."""
    grid_keys, sampler, runs = spec_runs(sweep)
    return pd.DataFrame(
        [
            {
                "run_id": f"{study}-{i}",
                "study": study,
                "seed": r.seed,
                "status": "ok",
                "cell_index": r.cell_index,
                "variant": r.variant,
                "grid_keys": grid_keys,
                "sampler": sampler,
                "command": f"vaebench run sweeps/{sweep}.yaml",
                **param_columns(r.config),
            }
            for i, r in enumerate(runs)
        ]
    )


def variant_params(sweep: str) -> dict[str, dict]:
    """Each variant's parameter columns in a shipped sweep with grid.variant."""
    return {r.variant: param_columns(r.config) for r in spec_runs(sweep)[2]}


def test_every_shipped_sweep_is_listed():
    assert set(SHIPPED) == {p.stem for p in SWEEPS.glob("*.yaml")}


@pytest.mark.parametrize("sweep", sorted(SHIPPED))
def test_each_shipped_sweep_gets_its_table_under_any_study_name(sweep):
    for study in (sweep, f"{sweep}2", "renamed"):
        title, layout = study_layout(spec_rows(sweep, study))
        assert (title, layout.key) == SHIPPED[sweep], study


def test_a_copy_of_the_schedule_sweep_under_another_name_keeps_its_table():
    params = variant_params("schedule")
    df = make_rows("schedule2", "variant", {name: metrics() for name in params}, params)
    tables = study_tables(df)
    assert [t.key for t in tables] == ["schedules", "all_metrics"]
    assert table(tables, "schedules").header[:2] == ["Schedule", "Final −ELBO (nats) ↓"]
    text = render_study(df)
    assert "# Annealing schedules — study `schedule2`" in text and "## Annealing schedules" in text


def test_the_name_alone_picks_no_table():
    # the architecture layout needs the tutorial's architectures (MLP, conv, ResNet): not a VampPrior
    params = variant_params("vampprior")
    df = make_rows("architecture", "variant", {name: metrics() for name in params}, params)
    assert study_layout(df)[1].key == "sweep"
    # variants that change the training as well as the KL weighting are not a schedule comparison
    mixed = {"none": {"param.train.lr": 1e-3}, "linear": {"param.schedule.name": "linear", "param.train.lr": 1e-4}}
    assert (
        study_layout(make_rows("schedule", "variant", {"none": metrics(), "linear": metrics()}, mixed))[0]
        == "Sweep results"
    )
    # named variants that set nothing different
    assert (
        study_layout(make_rows("schedule", "variant", {"none": metrics(), "linear": metrics()}))[0] == "Sweep results"
    )


def test_a_row_added_from_outside_the_sweep_does_not_change_the_table():
    params = variant_params("architecture")
    df = make_rows("arch", "variant", {name: metrics() for name in params}, params)
    outside = df.iloc[:1].assign(
        run_id="ext-1",
        variant="Mine (external)",
        command=EXTERNAL_COMMAND,
        **{"param.model.name": "vampprior", "param.train.lr": 0.1},
    )
    both = pd.concat([df, outside], ignore_index=True)
    assert study_layout(both)[1].key == "architecture"
    assert "Mine (external)" in [r[0].text for r in table(study_tables(both), "architecture").rows]
