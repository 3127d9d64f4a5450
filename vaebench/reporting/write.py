"""Reports: read results rows (Parquet) and per-run artifact arrays; write per study

    <out>/<study>.md                 Markdown (tables, notes, figure links)
    <out>/<study>/figures/<key>.png  the figures the Markdown links
    <out>/<study>.html               one self-contained page (the same content, figures embedded)
and, when every study is reported, <out>/index.md / index.html: the tutorial's tables, each linked
to the studies that measure it or naming the sweep to run.

`vaebench.report` is both this package and the API function `report(...)`: the package is callable
(calling it calls `report` below, which `vaebench.api.report` calls too), so importing a submodule
such as `vaebench.report.figures`, which makes `vaebench.report` the package, never hides the function.

    tables.py    every table of a study (tables.py's docstring lists the modules it draws on)
    render.py    the Markdown report;  html.py  the same as one page;  figures.py  the PNG figures
    stats.py     confidence intervals, Welch's test, trends, the Pareto mask
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..plugins import load_row_plugins
from ..results.rows import list_studies, load_results, resolve_results_root
from ..runtime.files import atomic_path
from .figures import markdown_section, study_figures
from .formats import REPORT_FORMATS
from .html import render_html
from .layouts import DISENTANGLEMENT_TITLE, TUTORIAL_TABLES
from .render import provenance, render_study
from .settings import sweep_rows
from .tables import study_title

FORMATS = REPORT_FORMATS


def report(study: str | None = None, results=None, out="reports", fmt: str = "both") -> list[Path]:
    """Write the Markdown and/or HTML report of `study` (default: every study with results, plus the
    index) to `out`; returns the paths written. Reads only the results rows (and their figure arrays).
    This is `vaebench.report(...)` and `vaebench.api.report(...)`."""
    root = resolve_results_root(results)
    df = load_results(root, study)
    if df.empty:
        return []
    load_row_plugins(df)  # the rows' plugins declare their metrics' columns
    return write_reports(root, Path(out), study, fmt)


def write_reports(results_root: Path, out_dir: Path, study: str | None = None, fmt: str = "both") -> list[Path]:
    """Write the reports of the named study, or of every study with results; return the paths."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    out_dir = Path(out_dir)
    studies = [study] if study else list_studies(results_root)
    written, titles = [], {}
    for name in studies:
        df = load_results(results_root, name)
        if df.empty:
            continue
        sweep = sweep_rows(df)
        titles[name] = StudyEntry(
            study_title(df),
            str(df["dataset"].iloc[0]),
            int((sweep["status"] == "ok").sum()),
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
        "# vaebench reports",
        "",
        "The tutorial's tables (its overview, `vae_overview.md`, and its exercises: the "
        "reference material vaebench was created from) and the studies that measure them.",
        "",
        "| tutorial table | measured by | sweep |",
        "|---|---|---|",
    ]
    apart = {n: e for n, e in studies.items() if e.title in TUTORIAL_TABLES and e.dataset != _tutorial_dataset(e.title)}
    for title, sweep in TUTORIAL_TABLES.items():
        found = [f"[{n}]({n}.{ext})" for n, e in sorted(studies.items()) if e.title == title and n not in apart]
        stem = Path(sweep).stem
        if not found and stem in earlier:
            found = [f"[{stem}]({stem}.md) (an earlier report; its results are not in this results folder)"]
        have = ", ".join(found) or f"not measured yet: run `vaebench run {sweep} && vaebench report`"
        lines.append(f"| {title} | {have} | `{sweep}` |")
    lines += [
        "",
        f"The Disentanglement column of the β-VAE and latent-dimension tables needs ground-truth factors of "
        f"variation, which MNIST lacks: it is measured (MIG, SAP) on the generated `shapes` dataset by the "
        f"studies in the row “{DISENTANGLEMENT_TITLE}”.",
    ]
    others = [f"[{n}]({n}.{ext}) ({e.title})" for n, e in sorted(studies.items()) if e.title not in TUTORIAL_TABLES]
    if others:
        lines += ["", "Other studies: " + ", ".join(others) + "."]
    if apart:
        lines += [
            "",
            "Studies on other data, listed apart: their tables have the tutorial's layout but are not "
            "compared with its MNIST numbers: "
            + ", ".join(f"[{n}]({n}.{ext}) ({e.title}, dataset `{e.dataset}`)" for n, e in sorted(apart.items()))
            + ".",
        ]
    made = {n: e for n, e in sorted(studies.items()) if e.made}
    if made:
        lines += [
            "",
            "## Runs",
            "",
            "How the rows behind each report were made (from the rows; `vaebench report` "
            "regenerates every report from them).",
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
            lines += [
                "",
                "⚠ The FIDs of the studies on "
                + ", ".join(f"`{d}` come from {k} feature extractors" for d, k in mixed.items())
                + ": compare FIDs across studies only where the FID extractor (its classifier's weights hash "
                "is the id's last part) is the same.",
            ]
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
            tmp.write_text(text if ext == "md" else render_html(text, [], "vaebench reports"))
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
