"""The files of results/<study>/ that a committed report needs: its spec, every row and the figure
arrays its figures draw (one run per grid cell, the lowest seed's; vaebench.report.figures
.figure_artifacts). The other runs' arrays stay on the machine that made them: `vaebench report`
regenerates the committed reports from these files alone, byte for byte
(tests/end_to_end/test_committed_reports.py).

    python tools/commit_results.py beta loss | xargs git add -f   (artifacts/ is git-ignored)
    python tools/commit_results.py --unneeded beta | xargs -r git rm --cached -q

Paths are printed relative to the current directory, one per line.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from vaebench.reporting.figures import figure_artifacts
from vaebench.results.rows import load_results


def needed(root: Path, study: str) -> list[Path]:
    folder = root / study
    df = load_results(root, study)
    if df.empty:
        raise SystemExit(f"{folder}: no results rows")
    files = [folder / "spec.json"] if (folder / "spec.json").is_file() else []
    files += sorted((folder / "runs").glob("*.parquet"))
    return files + [folder / rel for rel in figure_artifacts(df, root)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("studies", nargs="+")
    ap.add_argument("--results", default="results", help="results root (default: results)")
    ap.add_argument("--unneeded", action="store_true", help="list the artifact files the report does not read")
    args = ap.parse_args()
    root = Path(args.results)
    for study in args.studies:
        keep = needed(root, study)
        if args.unneeded:
            keep_set = set(keep)
            files = [p for p in sorted((root / study / "artifacts").glob("*.npz")) if p not in keep_set]
        else:
            files = keep
        for p in files:
            print(os.path.relpath(p))


if __name__ == "__main__":
    main()
