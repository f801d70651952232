"""Figures from the small aggregate tables only (never from posteriors), one seaborn style."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # headless: clusters and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .atomic import atomic_path  # noqa: E402

STYLE = {"style": "whitegrid", "context": "paper", "font_scale": 1.2}


def save_figure(fig, png: str | os.PathLike, pdf: str | os.PathLike) -> None:
    """PNG and PDF, atomically; the PDF carries no creation date so reruns give identical bytes."""
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=150, bbox_inches="tight", format="png", metadata={"Software": None})
    with atomic_path(pdf) as tmp:
        fig.savefig(tmp, bbox_inches="tight", format="pdf", metadata={"CreationDate": None, "Creator": None,
                                                                       "Producer": None})
    plt.close(fig)


def barrier_curves_figure(curves: pd.DataFrame, method: str, png, pdf) -> None:
    """Test loss and error along the path, one line per alignment: mean over pairs, band = sd."""
    sub = curves[curves["method"] == method]
    if sub.empty:
        raise ValueError(f"no barrier curves for method {method!r}; found {sorted(curves['method'].unique())}")
    sns.set_theme(**STYLE)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    order = ["naive"] + sorted(a for a in sub["alignment"].unique() if a != "naive")
    for ax, (metric, label) in zip(axes, [("loss", "test loss (NLL)"), ("error", "test error")]):
        sns.lineplot(data=sub, x="t", y=metric, hue="alignment", hue_order=[a for a in order if a in set(sub.alignment)],
                     errorbar="sd", marker="o", markersize=4, ax=ax)
        ax.set_xlabel("interpolation t")
        ax.set_ylabel(label)
    n_pairs = sub["pair"].nunique()
    fig.suptitle(f"{method}: linear path between solutions, mean ± sd over {n_pairs} pairs")
    save_figure(fig, png, pdf)
