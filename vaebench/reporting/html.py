"""One self-contained HTML page per study: the Markdown report converted with python-markdown
(tables extension), figures embedded as base64 PNG data URIs, styles inline. It opens from disk
with no network and no files beside it."""

from __future__ import annotations

import base64
import html
import re

import markdown

from .figures import Figure

CSS = """
body { font-family: -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif; margin: 2rem auto;
       max-width: 1400px; padding: 0 1.5rem; color: #1f2328; line-height: 1.5; }
h1 { border-bottom: 2px solid #d0d7de; padding-bottom: .3rem; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 1rem 0; font-size: .88rem; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: right; white-space: nowrap; }
th { background: #f6f8fa; }
td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #fbfcfd; }
td strong { color: #0a5d1a; }
code { background: #f0f2f4; padding: .1rem .3rem; border-radius: 4px; font-size: .85em; }
img { max-width: 100%; border: 1px solid #eaeef2; }
figure { margin: 1.5rem 0; }
figcaption { font-size: .85rem; color: #57606a; }
"""


def render_html(markdown_text: str, figures: list[Figure], title: str) -> str:
    """The page: `markdown_text` (the study's Markdown report, whose image links point at
    `.../<figure key>.png`) with every such image replaced by its embedded PNG."""
    body = markdown.markdown(markdown_text, extensions=["tables"], output_format="html")
    by_key = {f.key: f for f in figures}

    def embed(match: re.Match) -> str:
        key = match.group(2)
        if key not in by_key:
            return match.group(0)
        data = base64.b64encode(by_key[key].png).decode("ascii")
        return f"{match.group(1)}data:image/png;base64,{data}{match.group(3)}"

    body = re.sub(r'(<img[^>]*?src=")[^"]*?([A-Za-z0-9_]+)\.png(")', embed, body)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{html.escape(title)}</title>\n'
        f"<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
