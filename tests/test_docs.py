"""The documentation stays true to the tree: docs/spec.md is what tools/spec_docs.py generates from
the code, the README stays short, and every relative link in README.md and docs/*.md points to a
file that exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_MAX_BYTES = 12_500
REGENERATE = "python tools/spec_docs.py"

# [text](target) and [text]: target, outside code spans and fenced blocks
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.M)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def test_spec_reference_is_up_to_date():
    p = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "spec_docs.py"), "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert p.returncode == 0, (
        f"docs/spec.md is stale or the generator failed: run `{REGENERATE}` and commit "
        f"docs/spec.md.\n{p.stdout}\n{p.stderr}"
    )


def test_readme_is_short():
    size = len((ROOT / "README.md").read_bytes())
    assert size <= README_MAX_BYTES, (
        f"README.md is {size} bytes (at most {README_MAX_BYTES}): move detail to docs/ and link it"
    )


def _documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def relative_links(text: str) -> list[str]:
    """The link targets of a Markdown text that are paths in this repository (no URL scheme, no
    pure #anchor, no mailto), without their #anchor."""
    text = CODE_SPAN.sub("", FENCE.sub("", text))
    targets = INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text)
    out = []
    for target in targets:
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("#"):
            continue
        path = unquote(target.split("#", 1)[0])
        if path:
            out.append(path)
    return out


def test_link_parser_finds_links():
    text = '[a](docs/x.md) [b](https://e.org) [c](#top) ![i](y.png "t") `[d](no.md)`\n[r]: z.md#s\n'
    assert relative_links(text) == ["docs/x.md", "y.png", "z.md"]


@pytest.mark.parametrize("doc", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files(doc):
    missing = [t for t in relative_links(doc.read_text()) if not (doc.parent / t).exists()]
    assert not missing, f"{doc.relative_to(ROOT)} links to files that do not exist: {missing}"
