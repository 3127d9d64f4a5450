"""The reports' fixed prose (prose.yaml): the paragraphs under tables and figures, a study page's
header and footer sentences and the index page's, as str.format templates keyed by name. The file
is read once; `prose(key, **fields)` fills one template. Short fragments that are mostly values (a
cell's text, a list item) stay in the code that makes them."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

PROSE_PATH = Path(__file__).with_name("prose.yaml")


@cache
def templates() -> dict[str, str]:
    """Every template by key, as prose.yaml holds it (read on first use)."""
    return yaml.safe_load(PROSE_PATH.read_text(encoding="utf-8"))


def prose(key: str, **fields) -> str:
    """The template `key` filled with `fields` (str.format: `{name}`, `{name:.2f}`)."""
    return templates()[key].format(**fields)
