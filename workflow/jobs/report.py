"""Stage report: each CSV table as a self-contained HTML page, so `snakemake --report` shows it as a
table (the report shows HTML inline; a CSV would only be offered for download)."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from .. import tables
from ..storage.atomic import write_text
from .figures import read_table

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 1em; color: #222; }
h1 { font-size: 1.15em; margin: 0 0 .3em 0; }
p.caption { font-size: .85em; color: #444; max-width: 70em; margin: 0 0 .8em 0; }
table { border-collapse: collapse; font-size: .82em; }
th, td { border-bottom: 1px solid #ddd; padding: .25em .6em; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; position: sticky; top: 0; }
td.text, th.text { text-align: left; }
tr:hover td { background: #f7f9fc; }
"""


def _cell(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "" if np.isnan(value) else f"{value:.4g}"
    return html.escape(str(value))


def table_html(frame: pd.DataFrame, title: str, caption: str = "") -> str:
    """The whole table (every row and column) as an HTML page: numbers to 4 significant digits,
    missing cells empty, text columns left-aligned."""
    text_cols = {c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])}
    head = "".join(f'<th class="{"text" if c in text_cols else ""}">{html.escape(str(c))}</th>' for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        cells = "".join(f'<td class="{"text" if c in text_cols else ""}">{_cell(v)}</td>'
                        for c, v in zip(frame.columns, record))
        rows.append(f"<tr>{cells}</tr>")
    note = f"{len(frame)} rows, {len(frame.columns)} columns."
    return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
            f"<p class=\"caption\">{html.escape(caption)} {note}</p>\n"
            f"<table><thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>\n</body></html>\n")


def table_html_job(table_path, out, *, title: str, caption: str = "") -> None:
    frame = read_table(table_path)
    if {"metric", "column", "value"} <= set(frame.columns):  # Table 1's tidy form: shown as printed
        frame = tables.table1_wide(frame).reset_index()
    write_text(out, table_html(frame, title, caption))
