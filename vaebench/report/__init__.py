"""Reports: read results rows (Parquet only), write one Markdown file per study."""

from __future__ import annotations

from pathlib import Path

from ..results import list_studies, load_results
from ..runtime import atomic_path
from .render import render_study


def write_reports(results_root: Path, out_dir: Path, study: str | None = None) -> list[Path]:
    """Write `<out_dir>/<study>.md` for the named study, or for every study with results."""
    out_dir = Path(out_dir)
    studies = [study] if study else list_studies(results_root)
    written = []
    for name in studies:
        df = load_results(results_root, name)
        if df.empty:
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{name}.md"
        with atomic_path(path) as tmp:
            tmp.write_text(render_study(df))
        written.append(path)
    return written
