"""docs/python.md cannot rot: its ```python blocks run in order, in one namespace, in a fresh folder
holding the smoke spec, as a notebook's cells would."""

import re
import shutil

from tests.conftest import REPO

DOC = REPO / "docs" / "python.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_every_python_block_of_the_notebook_page_runs(tmp_path, monkeypatch, capsys):
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) >= 10, "the page's code blocks were not found"
    (tmp_path / "sweeps").mkdir()
    shutil.copy(REPO / "sweeps" / "smoke.yaml", tmp_path / "sweeps")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VAEBENCH_RESULTS", raising=False)
    namespace: dict = {"__name__": "__notebook__"}
    for i, block in enumerate(blocks, 1):
        try:
            exec(compile(block, f"{DOC.name} block {i}", "exec"), namespace)
        except Exception as e:  # name the block that broke
            raise AssertionError(f"docs/python.md block {i} failed: {type(e).__name__}: {e}\n{block}") from e
    out = capsys.readouterr().out
    # what the page promises a reader sees
    assert "4 of 4 runs done" in out
    assert "no study 'smoke-nb' under results. Did you mean 'smoke_nb'? Studies there: smoke_nb" in out
    assert "weights file results/smoke_nb/models/" in out and "vaebench train SPEC.yaml --cell" in out
    assert "vaebench.run() got an unexpected keyword argument 'sepc'. Did you mean 'spec'?" in out
    for name in ("curves.png", "samples.png", "reports/smoke_nb.md", "reports/smoke_nb/figures"):
        assert (tmp_path / name).exists(), name
