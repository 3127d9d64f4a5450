"""The reports' fixed prose lives in vaebench/reporting/prose.yaml, one template per paragraph: every
template is one the code fills and every one the code fills exists, each is one line of valid
str.format text, the file ships with the package, and editing its wording changes the report with no
code change. The table titles are named once (titles.py)."""

import re
import string
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import pytest

from tests.reporting.test_report import BETA_CELLS, make_rows
from vaebench.reporting import prose as prose_module
from vaebench.reporting.layouts import LAYOUTS, TABLE_TITLES, TUTORIAL_TABLES
from vaebench.reporting.render import render_study
from vaebench.reporting.titles import DISENTANGLEMENT_TITLE

ROOT = Path(__file__).resolve().parents[2]
REPORTING = ROOT / "vaebench" / "reporting"


def keys_the_code_fills() -> set[str]:
    """The template keys named in the reporting modules: prose("key", ...) and each figure's caption
    (figures._figure("key", ...) fills caption_<key>)."""
    code = "\n".join(p.read_text() for p in REPORTING.glob("*.py"))
    return set(re.findall(r'\bprose\(\s*"(\w+)"', code)) | {
        f"caption_{k}" for k in re.findall(r'\b_figure\(\s*"(\w+)"', code)
    }


def test_every_template_is_filled_by_the_code_and_every_filled_one_exists():
    templates, used = set(prose_module.templates()), keys_the_code_fills()
    assert used - templates == set(), "prose keys the code uses but prose.yaml lacks"
    assert templates - used == set(), "prose.yaml templates no code fills"


def test_each_template_is_one_line_of_str_format_text():
    for key, text in prose_module.templates().items():
        assert isinstance(text, str) and text.strip(), key
        assert "\n" not in text and text == text.rstrip(), f"{key}: a stray line break or trailing space"
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
        assert all(re.fullmatch(r"\w+", f) for f in fields), f"{key}: fields must be plain names, got {fields}"


def test_a_missing_field_is_an_error_not_a_silent_gap():
    with pytest.raises(KeyError, match="features"):
        prose_module.prose("fid_measured")
    assert prose_module.prose("fid_measured", features="x").startswith("FID of samples:")


def test_prose_yaml_ships_as_package_data():
    section = (ROOT / "pyproject.toml").read_text().split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
    patterns = re.findall(r'"([^"]+)"', re.search(r"^vaebench\s*=\s*\[(.*?)\]", section, re.M | re.S).group(1))
    shipped = prose_module.PROSE_PATH.relative_to(ROOT / "vaebench").as_posix()
    assert any(fnmatch(shipped, p) for p in patterns), f"{shipped} is not matched by {patterns}"


@pytest.fixture
def edited_prose(tmp_path, monkeypatch):
    """prose.yaml with the summary-cell note reworded (the report reads the copy)."""
    text = prose_module.PROSE_PATH.read_text(encoding="utf-8")
    assert "Each summary cell: mean ± half-width" in text
    copy = tmp_path / "prose.yaml"
    copy.write_text(text.replace("Each summary cell: mean ± half-width", "Every summary cell: mean ± half width"))
    monkeypatch.setattr(prose_module, "PROSE_PATH", copy)
    prose_module.templates.cache_clear()
    yield
    prose_module.templates.cache_clear()  # the next test reads the shipped file again


def test_a_wording_fix_in_prose_yaml_changes_the_report(edited_prose):
    text = render_study(make_rows("beta", "objective.beta", BETA_CELLS))
    assert "Every summary cell: mean ± half width" in text and "Each summary cell" not in text


def test_the_tutorial_titles_are_named_once_and_agree():
    """The index's tutorial tables are the layouts' titles plus the disentanglement study's, and
    each one-key grid maps to one of them."""
    assert set(TUTORIAL_TABLES) == set(LAYOUTS) | {DISENTANGLEMENT_TITLE}
    assert set(TABLE_TITLES.values()) <= set(LAYOUTS)
    for path in REPORTING.glob("*.py"):
        if path.name != "titles.py":
            for title in TUTORIAL_TABLES:
                assert f'"{title}"' not in path.read_text(), f"{path.name} spells out {title!r}: use titles.py"


def test_the_package_itself_imports_nothing():
    """`import vaebench.reporting` (and the formats the command line lists) loads no pandas,
    matplotlib or yaml."""
    p = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, vaebench.reporting, vaebench.reporting.formats\n"
            "print(sorted(m for m in ('pandas', 'matplotlib', 'yaml', 'torch') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"
