"""Rendering tidy tables as Markdown and LaTeX (one place for every table the workflow writes)."""

from __future__ import annotations

import pandas as pd


def _cell(value, fmt: str, missing: str) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return missing
    return format(value, fmt) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def markdown(wide: pd.DataFrame, *, index_name: str, fmt: str = ".4g") -> str:
    """A wide frame (index = row labels) as a Markdown table; missing cells are '-'."""
    lines = ["| " + " | ".join([index_name, *map(str, wide.columns)]) + " |", "|---" * (len(wide.columns) + 1) + "|"]
    for label, row in wide.iterrows():
        lines.append("| " + " | ".join([str(label), *(_cell(v, fmt, "-") for v in row)]) + " |")
    return "\n".join(lines) + "\n"


def _tex(text: str) -> str:
    return str(text).replace("\\", "\\textbackslash{}").replace("_", "\\_").replace("%", "\\%").replace("&", "\\&")


def latex(wide: pd.DataFrame, *, index_name: str, fmt: str = ".4g") -> str:
    """A wide frame as a booktabs tabular; missing cells are '--'."""
    lines = ["\\begin{tabular}{l" + "r" * len(wide.columns) + "}", "\\toprule",
             " & ".join([_tex(index_name), *map(_tex, wide.columns)]) + " \\\\", "\\midrule"]
    for label, row in wide.iterrows():
        lines.append(" & ".join([_tex(label), *(_tex(_cell(v, fmt, "--")) for v in row)]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"
