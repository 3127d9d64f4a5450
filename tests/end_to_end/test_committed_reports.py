"""The committed reports are reproducible: `vaebench report --results results --out DIR` on this
checkout writes every `reports/<study>.md` whose rows are committed under `results/<study>/`
byte-identical, so a report can never drift from its data. Once every study the index lists has its
rows committed, `reports/index.md` is compared too."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

# the setup regenerates every committed report in a subprocess (~12-20 s here): slow
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
RESULTS, REPORTS = REPO / "results", REPO / "reports"


def committed_studies() -> list[str]:
    return sorted(p.parent.name for p in RESULTS.glob("*/runs") if any(p.glob("*.parquet")))


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reports")
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "vaebench",
            "report",
            "--results",
            str(RESULTS),
            "--out",
            str(out),
            "--format",
            "md",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    return out


def test_results_hold_rows_for_committed_reports():
    assert committed_studies(), "no committed rows under results/"
    for study in committed_studies():
        assert (REPORTS / f"{study}.md").is_file(), f"results/{study} has rows but reports/{study}.md is not committed"


@pytest.mark.parametrize("study", committed_studies())
def test_committed_report_regenerates_byte_identical(regenerated, study):
    made, committed = (regenerated / f"{study}.md").read_text(), (REPORTS / f"{study}.md").read_text()
    assert made == committed, (
        f"reports/{study}.md differs from what its rows give: regenerate it with "
        f"`vaebench report --results results --study {study}` and commit both"
    )


def test_index_regenerates_byte_identical_once_every_study_has_rows(regenerated):
    linked = set(re.findall(r"\]\(([\w.-]+)\.md\)", (REPORTS / "index.md").read_text()))
    missing = sorted(linked - set(committed_studies()))
    if missing:
        pytest.skip(f"reports without committed rows yet: {', '.join(missing)}")
    assert (regenerated / "index.md").read_text() == (REPORTS / "index.md").read_text()


@pytest.mark.parametrize("study", committed_studies())
def test_the_figures_arrays_of_each_cells_lowest_seed_are_committed(study):
    """tools/commit_results.py commits one run's arrays per cell, the lowest seed's, which is the run
    the figures draw: it must be here, or the report's figures would silently change."""
    from vaebench.reporting.figures import _cells, figure_artifacts
    from vaebench.results.rows import load_results

    df = load_results(RESULTS, study)
    if "artifacts_path" not in df:
        pytest.skip(f"results/{study}: rows from before figure arrays")
    drawn = figure_artifacts(df, RESULTS)
    lowest = [g.sort_values("seed")["artifacts_path"].iloc[0] for _, g in _cells(df)]
    assert drawn == lowest
