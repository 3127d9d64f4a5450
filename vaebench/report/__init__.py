"""Reports: read results rows (Parquet) and per-run artifact arrays; write per study

    <out>/<study>.md                 Markdown (tables, notes, figure links)
    <out>/<study>/figures/<key>.png  the figures the Markdown links
    <out>/<study>.html               one self-contained page (the same content, figures embedded)
"""

from __future__ import annotations

from pathlib import Path

from ..results import list_studies, load_results
from ..runtime import atomic_path
from .figures import markdown_section, study_figures
from .html import render_html
from .render import render_study
from .tables import table_title

FORMATS = ("md", "html", "both")


def write_reports(results_root: Path, out_dir: Path, study: str | None = None, fmt: str = "both") -> list[Path]:
    """Write the reports of the named study, or of every study with results; return the paths."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    out_dir = Path(out_dir)
    studies = [study] if study else list_studies(results_root)
    written = []
    for name in studies:
        df = load_results(results_root, name)
        if df.empty:
            continue
        figures = study_figures(df, results_root)
        text = render_study(df) + markdown_section(figures, f"{name}/figures")
        out_dir.mkdir(parents=True, exist_ok=True)
        if fmt in ("md", "both"):
            written += _write_markdown(out_dir, name, text, figures)
        if fmt in ("html", "both"):
            path = out_dir / f"{name}.html"
            title = f"{table_title(list(df['grid_keys'].iloc[0]), name)} — {name}"
            with atomic_path(path) as tmp:
                tmp.write_text(render_html(text, figures, title))
            written.append(path)
    return written


def _write_markdown(out_dir: Path, name: str, text: str, figures) -> list[Path]:
    folder = out_dir / name / "figures"
    keep = {f"{f.key}.png" for f in figures}
    for old in folder.glob("*.png") if folder.is_dir() else []:
        if old.name not in keep:  # a figure this report no longer has
            old.unlink()
    for f in figures:
        with atomic_path(folder / f"{f.key}.png") as tmp:
            tmp.write_bytes(f.png)
    path = out_dir / f"{name}.md"
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return [path]
