"""Table rendering (workflow/tables.py): Markdown and LaTeX of a wide frame, Table 1 as printed from
its tidy CSV, and the barrier summary's mean ± sd over pairs."""

import numpy as np
import pandas as pd
import pytest

from workflow import tables


def test_markdown_and_latex_hand_example():
    wide = pd.DataFrame({"a_b": [1.23456, np.nan], "c": ["x", "50%"]}, index=pd.Index(["r1", "r&2"], name="row"))
    assert tables.markdown(wide, index_name="row") == ("| row | a_b | c |\n|---|---|---|\n| r1 | 1.235 | x |\n"
                                                       "| r&2 | - | 50% |\n")
    tex = tables.latex(wide, index_name="row")
    assert "row & a\\_b & c \\\\" in tex and "r\\&2 & -- & 50\\% \\\\" in tex
    assert tex.startswith("\\begin{tabular}{lrr}") and tex.rstrip().endswith("\\end{tabular}")


def test_table1_wide_keeps_the_metric_rows_and_the_column_order_of_the_csv():
    rows = [{"metric": m, "column": c, "value": i + 10 * j}
            for j, c in enumerate(["HMC samples", "Ens. samples", "VI q"]) for i, m in enumerate(tables.TABLE1_METRICS)]
    wide = tables.table1_wide(pd.DataFrame(rows[::-1]))  # row order of the CSV does not matter
    assert list(wide.index) == list(tables.TABLE1_METRICS)
    assert list(wide.columns) == ["VI q", "Ens. samples", "HMC samples"]  # first appearance in the CSV
    assert wide.loc["TV to HMC", "Ens. samples"] == 11


def test_barriers_wide_is_mean_and_sd_over_pairs_and_the_ratio_to_naive():
    rows = []
    for alignment, barriers in (("naive", [1.0, 3.0]), ("weight", [0.5, 0.5])):
        for pair, b in zip(("0-1", "0-2"), barriers):
            rows.append({"variant": "base", "method": "ensemble", "alignment": alignment, "pair": pair,
                         "loss_barrier": b, "error_barrier": b / 10, "distance_kind": "l2", "distance": 2.0,
                         "not_total": np.nan if alignment == "naive" else 4})
    wide = tables.barriers_wide(pd.DataFrame(rows))
    naive, weight = wide.iloc[0], wide.iloc[1]
    assert naive["loss barrier (mean ± sd)"] == f"2.0000 ± {np.std([1.0, 3.0], ddof=1):.4f}"
    assert weight["loss barrier / naive"] == "0.250" and naive["loss barrier / naive"] == "1.000"
    assert naive["NoT (mean)"] == "-" and weight["NoT (mean)"] == "4.0"
    one = tables.barriers_wide(pd.DataFrame(rows[:1]))
    assert one.iloc[0]["loss barrier (mean ± sd)"] == "1.0000 (one pair)"
    assert weight["pairs"] == 2 and wide.index.name == "variant"


@pytest.mark.parametrize("value, text", [(3, "3"), (0.000123456, "0.0001235"), (True, "True"), (None, "-")])
def test_cells(value, text):
    assert tables.markdown(pd.DataFrame({"v": [value]}, index=["r"]), index_name="i").splitlines()[2] == f"| r | {text} |"
