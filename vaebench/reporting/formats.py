"""The report formats, named once where the command line can read them cheaply: `vaebench report
--format` offers them, and listing them must not load the report package (it imports matplotlib)."""

REPORT_FORMATS = ("md", "html", "both")  # Markdown + PNG figures, one self-contained HTML page, or both
