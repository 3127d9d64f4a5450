"""Reports of finished studies: Markdown and HTML pages of tables, notes and figures.

The package reads only the results rows (and the per-run arrays its figures draw) and the metrics'
column declarations: it never trains, evaluates or imports the sweep, so every report can be
regenerated from committed rows. Its entry points are `write.report` (what `vaebench.report(...)`
calls) and `write.write_reports` (what `vaebench report` calls). This file imports nothing: listing
the report formats (formats.py) must not load matplotlib.

    write.py          writes each study's Markdown, figures and HTML page, and the index page
    render.py         a study's Markdown: header, tables, notes, settings, provenance
    html.py           the Markdown as one self-contained HTML page, figures embedded
    figures.py        the PNG figures (matplotlib)
    tables.py         every table of a study (`study_tables`) and its title (`study_title`)
    layouts.py        the tutorial's table layouts and which study mirrors which (from its rows)
    family_tables.py  the tables of model families with metrics of their own (VQ-VAE, hierarchical)
    published.py      the tutorial's printed numbers (published.yaml) beside the measured ones
    summary.py        summaries over seeds, best marks and p-values: the summary table
    columns.py        the table model (ReportTable, Cell, TableColumn, Layout) and every column
    settings.py       the runs' settings; which rows finished and which the sweep made
    stats.py          confidence intervals, Welch's test, trends, the Pareto mask
    titles.py         every table title
    prose.py          the reports' fixed paragraphs, kept as templates in prose.yaml
    formats.py        the report formats (md, html, both)
"""
