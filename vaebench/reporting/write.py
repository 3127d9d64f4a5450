"""Writing the reports: read the results rows (Parquet) and per-run artifact arrays; write per study

    <out>/<study>.md                 Markdown (tables, notes, figure links)
    <out>/<study>/figures/<key>.png  the figures the Markdown links
    <out>/<study>.html               one self-contained page (the same content, figures embedded)
and, when every study is reported, <out>/index.md / index.html: the tutorial's tables, each linked
to the studies that measure it or naming the sweep to run.

`report(...)` is what `vaebench.report(...)` and `vaebench.api.report(...)` call; `write_reports` is
what `vaebench report` calls (the package's docstring lists the modules it draws on).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..results.row_plugins import import_row_plugins
from ..results.rows import list_studies, load_results, resolve_results_root
from ..runtime.files import atomic_path
from .figures import markdown_section, study_figures
from .formats import REPORT_FORMATS
from .html import render_html
from .layouts import TUTORIAL_TABLES
from .prose import prose
from .render import provenance, render_study
from .settings import finished, sweep_rows
from .tables import study_title
from .titles import DISENTANGLEMENT_TITLE, INDEX_RUNS_TITLE, INDEX_TITLE

FORMATS = REPORT_FORMATS


def report(study: str | None = None, results=None, out="reports", fmt: str = "both") -> list[Path]:
    """Write the Markdown and/or HTML report of `study` (default: every study with results, plus the
    index) to `out`; returns the paths written. Reads only the results rows (and their figure arrays).
    This is `vaebench.report(...)` and `vaebench.api.report(...)`."""
    root = resolve_results_root(results)
    df = load_results(root, study)
    if df.empty:
        return []
    return write_reports(root, Path(out), study, fmt)


def write_reports(results_root: Path, out_dir: Path, study: str | None = None, fmt: str = "both") -> list[Path]:
    """Write the reports of the named study, or of every study with results; return the paths. Each
    study's rows import the plugins they record first (their metrics declare the report's columns);
    one they need that cannot be imported is a PluginError, before anything is written."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    out_dir = Path(out_dir)
    studies = [study] if study else list_studies(results_root)
    frames = {name: load_results(results_root, name) for name in studies}
    frames = {name: df for name, df in frames.items() if not df.empty}
    for name, df in frames.items():
        import_row_plugins(df, f"study {name!r}")
    written, titles = [], {}
    for name, df in frames.items():
        sweep = sweep_rows(df)
        titles[name] = StudyEntry(
            study_title(df),
            str(df["dataset"].iloc[0]),
            len(finished(sweep)),
            provenance(sweep) if len(sweep) else None,
        )
        figures = study_figures(df, results_root)
        text = render_study(df) + markdown_section(figures, f"{name}/figures")
        out_dir.mkdir(parents=True, exist_ok=True)
        if fmt in ("md", "both"):
            written += _write_markdown(out_dir, name, text, figures)
        if fmt in ("html", "both"):
            path = out_dir / f"{name}.html"
            with atomic_path(path) as tmp:
                tmp.write_text(render_html(text, figures, f"{titles[name].title} — {name}"))
            written.append(path)
    if study is None and titles:
        written += _write_index(out_dir, titles, fmt)
    return written


@dataclass(frozen=True)
class StudyEntry:
    """What the index says of one study with results: its report's title, its dataset and how its
    rows were made (`render.provenance`: command, machine, date, wall time; None: not listed)."""

    title: str
    dataset: str = "mnist"
    runs: int = 0
    made: Optional[dict] = None


def _tutorial_dataset(title: str) -> str:
    """The data a tutorial table's numbers are measured on here: MNIST, the tutorial's; the
    Disentanglement column needs ground-truth factors, which the generated `shapes` dataset has."""
    return "shapes" if title == DISENTANGLEMENT_TITLE else "mnist"


def index_markdown(studies: dict[str, StudyEntry], ext: str = "md", earlier: frozenset[str] = frozenset()) -> str:
    """The tutorial's tables, each with links to the study reports (`<study>.<ext>`) that measure it
    on the tutorial's data, or the command that would; then the other studies, the studies on other
    data (listed apart: never compared with the tutorial's numbers), and the runs behind every report.
    `earlier`: studies without results here whose report (named after the shipped sweep) is already
    in the output folder."""
    lines = [
        f"# {INDEX_TITLE}",
        "",
        prose("index_intro"),
        "",
        "| tutorial table | measured by | sweep |",
        "|---|---|---|",
    ]
    apart = {n: e for n, e in studies.items() if e.title in TUTORIAL_TABLES and e.dataset != _tutorial_dataset(e.title)}
    for title, sweep in TUTORIAL_TABLES.items():
        found = [f"[{n}]({n}.{ext})" for n, e in sorted(studies.items()) if e.title == title and n not in apart]
        stem = Path(sweep).stem
        if not found and stem in earlier:
            found = [prose("index_earlier_report", stem=stem)]
        have = ", ".join(found) or prose("index_not_measured", sweep=sweep)
        lines.append(f"| {title} | {have} | `{sweep}` |")
    lines += ["", prose("index_disentanglement", title=DISENTANGLEMENT_TITLE)]
    others = [f"[{n}]({n}.{ext}) ({e.title})" for n, e in sorted(studies.items()) if e.title not in TUTORIAL_TABLES]
    if others:
        lines += ["", prose("index_other_studies", studies=", ".join(others))]
    if apart:
        listed = ", ".join(f"[{n}]({n}.{ext}) ({e.title}, dataset `{e.dataset}`)" for n, e in sorted(apart.items()))
        lines += ["", prose("index_other_data", studies=listed)]
    made = {n: e for n, e in sorted(studies.items()) if e.made}
    if made:
        lines += [
            "",
            f"## {INDEX_RUNS_TITLE}",
            "",
            prose("index_runs_intro"),
            "",
            "| study | dataset | finished runs | last run | wall time | command | machine | FID extractor |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| [{n}]({n}.{ext}) | `{e.dataset}` | {e.runs} | {e.made['date']} | {e.made['wall']} | "
            f"{e.made['command']} | {e.made['machine']} | {_code(e.made.get('fid', []))} |"
            for n, e in made.items()
        ]
        mixed = {}  # dataset -> the extractors its studies' FIDs used, when more than one
        for dataset in sorted({e.dataset for e in made.values()}):
            ids = {i for e in made.values() if e.dataset == dataset for i in e.made.get("fid", [])}
            if len(ids) > 1:
                mixed[dataset] = len(ids)
        if mixed:
            datasets = ", ".join(f"`{d}` come from {k} feature extractors" for d, k in mixed.items())
            lines += ["", prose("index_mixed_fid", datasets=datasets)]
    return "\n".join(lines) + "\n"


def _code(ids: list[str]) -> str:
    return ", ".join(f"`{i}`" for i in ids) or "—"


def _write_index(out_dir: Path, titles: dict[str, StudyEntry], fmt: str) -> list[Path]:
    paths = []
    for ext in [e for e, f in (("md", "md"), ("html", "html")) if fmt in (f, "both")]:
        path = out_dir / f"index.{ext}"
        earlier = frozenset(p.stem for p in out_dir.glob("*.md") if p.stem != "index" and p.stem not in titles)
        text = index_markdown(titles, ext, earlier)
        with atomic_path(path) as tmp:
            tmp.write_text(text if ext == "md" else render_html(text, [], INDEX_TITLE))
        paths.append(path)
    return paths


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
