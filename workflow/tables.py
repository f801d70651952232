"""Rendering tidy tables as Markdown and LaTeX (one place for every table the workflow writes)."""

from __future__ import annotations

import numpy as np
import pandas as pd

# Xiao et al.'s Table 1: its rows, in order
TABLE1_METRICS = ("agreement with HMC", "TV to HMC", "test accuracy %", "test accuracy % of mean network", "test NLL",
                  "test ECE")


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


def table1_wide(table: pd.DataFrame) -> pd.DataFrame:
    """Table 1 as printed (metrics x columns, columns in the table's order) from its tidy CSV."""
    return table.pivot(index="metric", columns="column", values="value").reindex(
        index=list(TABLE1_METRICS), columns=list(pd.unique(table["column"])))


def barriers_wide(summary: pd.DataFrame) -> pd.DataFrame:
    """The barrier summary as printed: one row per (variant, method, alignment), mean ± sd over pairs,
    the ratio to the naive path, distance and NoT; from the per-pair table (barriers.csv)."""
    agg = summary.groupby(["variant", "method", "alignment"], sort=False).agg(
        pairs=("pair", "count"), loss_barrier_mean=("loss_barrier", "mean"), loss_barrier_sd=("loss_barrier", "std"),
        error_barrier_mean=("error_barrier", "mean"), error_barrier_sd=("error_barrier", "std"),
        distance_kind=("distance_kind", "first"), distance=("distance", "mean"),
        not_total=("not_total", "mean")).reset_index()
    naive = agg[agg["alignment"] == "naive"].set_index(["variant", "method"])["loss_barrier_mean"]
    agg["ratio"] = [r.loss_barrier_mean / naive.get((r.variant, r.method), np.nan) for r in agg.itertuples()]

    def mean_sd(mean, sd, pairs):
        return f"{mean:.4f} ± {sd:.4f}" if pairs > 1 else f"{mean:.4f} (one pair)"

    return pd.DataFrame({
        "method": agg["method"].tolist(), "alignment": agg["alignment"].tolist(), "pairs": agg["pairs"].tolist(),
        "loss barrier (mean ± sd)": [mean_sd(*r) for r in zip(agg.loss_barrier_mean, agg.loss_barrier_sd, agg.pairs)],
        "loss barrier / naive": [f"{r:.3f}" for r in agg["ratio"]],
        "error barrier (mean ± sd)": [mean_sd(*r) for r in zip(agg.error_barrier_mean, agg.error_barrier_sd,
                                                                agg.pairs)],
        "distance (mean)": [f"{k} {d:.3f}" for k, d in zip(agg["distance_kind"], agg["distance"])],
        "NoT (mean)": ["-" if pd.isna(n) else f"{n:.1f}" for n in agg["not_total"]],
    }, index=pd.Index(agg["variant"], name="variant"))
