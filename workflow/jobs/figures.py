"""Stage figures: figures from the small aggregate tables (never from posteriors)."""

from __future__ import annotations

import pandas as pd

from ..study_registry import STUDIES

# study table kind -> figure function in workflow.plots (workflow/study_registry.py)
STUDY_FIGURES = {s.key: s.figure for s in STUDIES}


def read_table(path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"{path}: not a readable table ({err})") from err


def study_figure(kind: str, table_path, png, pdf, *, variant: str | None = None) -> None:
    from .. import plots

    if kind not in STUDY_FIGURES:
        raise ValueError(f"unknown study figure {kind!r}; allowed: {', '.join(STUDY_FIGURES)}")
    getattr(plots, STUDY_FIGURES[kind])(read_table(table_path), png, pdf, variant=variant)


def barrier_figure(curves_path, method: str, png, pdf, *, variant: str | None = None) -> None:
    from ..plots import barrier_curves_figure

    barrier_curves_figure(read_table(curves_path), method, png, pdf, variant=variant)


def sweep_figure(table_path, method: str, png, pdf, *, base: dict | None = None) -> None:
    from ..plots import barrier_sweep_figure

    barrier_sweep_figure(read_table(table_path), method, png, pdf, base=base)
