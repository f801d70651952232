"""Figures from the small aggregate tables only (never from posteriors), one seaborn style."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # headless: clusters and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .storage.atomic import atomic_path  # noqa: E402
from .config import table_cell  # noqa: E402

STYLE = {"style": "whitegrid", "context": "paper", "font_scale": 1.2}


def save_figure(fig, png: str | os.PathLike, pdf: str | os.PathLike) -> None:
    """PNG and PDF, atomically; the PDF carries no creation date so reruns give identical bytes."""
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=150, bbox_inches="tight", format="png", metadata={"Software": None})
    with atomic_path(pdf) as tmp:
        fig.savefig(tmp, bbox_inches="tight", format="pdf", metadata={"CreationDate": None, "Creator": None,
                                                                       "Producer": None})
    plt.close(fig)


ALIGNMENT_LABELS = {"naive": "naive", "weight": "weight matching", "w2": "W2 (means + stds)",
                    "joint_weight": "weight matching, all seeds jointly", "joint_w2": "W2, all seeds jointly",
                    "within-chain": "within one chain (control)",
                    "within-chain weight": "within one chain, weight matching (control)"}


def _is_gaussian(frame: pd.DataFrame) -> bool:
    """Gaussian posteriors are measured in W2 (the tables' distance_kind): their paths are geodesics and
    weight matching of their means is the means-only baseline."""
    if "posterior_kind" in frame:
        return (frame["posterior_kind"] == "gaussian").any()
    return "distance_kind" in frame and (frame["distance_kind"] == "w2").any()


def _hue_order(raw: pd.Series, gaussian: bool) -> list[str]:
    """naive, weight, w2, then anything else, as displayed labels."""
    present = set(raw)
    order = [a for a in ("naive", "weight", "w2") if a in present] + sorted(present - {"naive", "weight", "w2"})
    return list(_labelled(pd.DataFrame({"alignment": order}), gaussian)["alignment"])


def _labelled(frame: pd.DataFrame, gaussian: bool) -> pd.DataFrame:
    frame = frame.copy()
    labels = dict(ALIGNMENT_LABELS)
    if gaussian:
        labels["weight"] = "means only"
    frame["alignment"] = frame["alignment"].map(lambda a: labels.get(a, a))
    return frame


def barrier_curves_figure(curves: pd.DataFrame, method: str, png, pdf, variant: str | None = None) -> None:
    """Test loss and error along the path, one line per alignment: mean over pairs, band = sd."""
    sub = curves[curves["method"] == method]
    if variant is not None and "variant" in sub:
        sub = sub[sub["variant"] == variant]
    if sub.empty:
        raise ValueError(f"no barrier curves for method {method!r} (variant {variant!r}); found methods "
                         f"{sorted(curves['method'].unique())}")
    gaussian = _is_gaussian(sub)
    order = _hue_order(sub["alignment"], gaussian)
    sub = _labelled(sub, gaussian)
    sns.set_theme(**STYLE)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    split = sub["split"].iloc[0] if "split" in sub else "test"
    for ax, (metric, label) in zip(axes, [("loss", f"{split} loss (NLL)"), ("error", f"{split} error")]):
        sns.lineplot(data=sub, x="t", y=metric, hue="alignment", hue_order=order, errorbar="sd", marker="o",
                     markersize=4, ax=ax)
        ax.set_xlabel("interpolation t")
        ax.set_ylabel(label)
    n_pairs = sub["pair"].nunique()
    path = "W2 geodesic between Gaussians" if gaussian else "linear path between solutions"
    where = f" [{variant}]" if variant and variant != "base" else ""
    fig.suptitle(f"{method}{where}: {path}, mean ± sd over {n_pairs} pairs")
    save_figure(fig, png, pdf)


def barrier_sweep_figure(table: pd.DataFrame, method: str, png, pdf, base: dict | None = None) -> None:
    """Loss and error barrier against each swept value (one row of panels per swept key), per alignment.

    A panel for key k holds the variants whose other swept keys sit at their ``base`` values (the
    one-at-a-time slice); where a grid has no such variants it averages over the other keys.
    """
    sub = table[table["method"] == method]
    keys = [c for c in sub.columns if "." in c and sub[c].notna().any()]
    base = {k: table_cell(v) for k, v in (base or {}).items()}
    if sub.empty or not keys:
        raise ValueError(f"no swept values for method {method!r} in the barrier table (columns: {list(table.columns)})")
    sns.set_theme(**STYLE)
    fig, axes = plt.subplots(len(keys), 2, figsize=(10, 3.6 * len(keys)), squeeze=False, constrained_layout=True)
    gaussian = _is_gaussian(sub)
    order = _hue_order(sub["alignment"], gaussian)
    sub = _labelled(sub, gaussian)
    for row, key in zip(axes, keys):
        part = sub[sub[key].notna()].copy()
        at_base = part
        for other in keys:
            if other != key and other in base:
                at_base = at_base[at_base[other].astype(str) == str(base[other])]
        if at_base[key].nunique() > 1:
            part = at_base
        numeric = pd.to_numeric(part[key], errors="coerce")
        if numeric.notna().all():
            part[key] = numeric
        for ax, metric in zip(row, ("loss_barrier", "error_barrier")):
            sns.lineplot(data=part, x=key, y=metric, hue="alignment", hue_order=order, errorbar="sd", marker="o", ax=ax)
            if numeric.notna().all() and numeric.min() > 0 and numeric.max() / numeric.min() >= 10:
                ax.set_xscale("log")
            ax.set_ylabel(metric.replace("_", " "))
    fig.suptitle(f"{method}: barrier against swept settings (others at their base values), mean ± sd over pairs")
    save_figure(fig, png, pdf)


def _require(table: pd.DataFrame, columns, what: str) -> None:
    """A clear error when a figure is asked of a table that is not the study's."""
    missing = [c for c in columns if c not in table.columns]
    if missing or table.empty:
        raise ValueError(f"the {what} figure needs a non-empty table with columns {list(columns)}; "
                         f"missing {missing}" if missing else f"the {what} table is empty")


def sigma_histogram_figure(table: pd.DataFrame, png, pdf, variant: str | None = None) -> None:
    """Distribution of sigma per fit, one panel per sample method (q_d against q_r), every Gaussian
    method's q (fit 'q') drawn dotted in each."""
    _require(table, ["label", "method", "fit", "bin_left", "bin_right", "fraction", "median_sigma"], "sigma")
    rebased = list(dict.fromkeys(table.loc[table["fit"].isin(["q_d", "q_r"]), "method"]))
    panels = rebased or [None]
    sns.set_theme(**STYLE)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False, constrained_layout=True)
    for ax, method in zip(axes[0], panels):
        part = table[(table["method"] == method) | (table["fit"] == "q")]
        for label, g in part.groupby("label", sort=False):
            centres = np.sqrt(g["bin_left"] * g["bin_right"])  # geometric: the bins are log-spaced
            ax.plot(centres, g["fraction"], drawstyle="steps-mid", label=f"{label} (median {g['median_sigma'].iloc[0]:.3g})",
                    linestyle=":" if method is not None and g["fit"].iloc[0] == "q" else "-")
        ax.set_xscale("log")
        ax.set_xlabel("sigma of a weight")
        ax.set_ylabel("fraction of weights")
        ax.set_title(f"{method} samples" if method is not None else "Gaussian posteriors")
        ax.legend(fontsize=8)
    where = f" [{variant}]" if variant and variant != "base" else ""
    fig.suptitle(f"Per-weight sigma before (q_d) and after (q_r) rebasin{where}")
    save_figure(fig, png, pdf)


def pruning_figure(table: pd.DataFrame, png, pdf, variant: str | None = None) -> None:
    """Test accuracy of the pruned mean network against the fraction of parameters kept."""
    _require(table, ["label", "criterion", "fraction_retained", "test_accuracy"], "pruning")
    sns.set_theme(**STYLE)
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    sns.lineplot(data=table, x="fraction_retained", y="test_accuracy", hue="label", style="criterion", marker="o",
                 markersize=4, ax=ax)
    ax.invert_xaxis()  # pruning more to the right
    ax.set_xlabel("fraction of parameters kept (lowest sigma first; magnitude: largest |mu| first)")
    ax.set_ylabel("test accuracy of the mean network")
    ax.legend(fontsize=8)
    where = f" [{variant}]" if variant and variant != "base" else ""
    fig.suptitle(f"Pruning by sigma{where}")
    save_figure(fig, png, pdf)


def not_k_figure(table: pd.DataFrame, png, pdf, variant: str | None = None) -> None:
    """NoT, distance and barrier after training from initial weights permuted by k transpositions."""
    _require(table, ["k", "seed", "data_order", "not_planted", "not_found", "not_residual", "l2_naive", "l2_aligned",
                     "loss_barrier_naive", "loss_barrier_aligned"], "not_k")
    sns.set_theme(**STYLE)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
    long = table.melt(id_vars=["k", "seed"], value_vars=["not_planted", "not_found", "not_residual"],
                      var_name="NoT", value_name="value")
    long["NoT"] = long["NoT"].map({"not_planted": "planted at init", "not_found": "found after training",
                                   "not_residual": "found vs planted"})
    sns.lineplot(data=long, x="k", y="value", hue="NoT", errorbar="sd", marker="o", ax=axes[0])
    axes[0].set_ylabel("number of transpositions")
    for ax, stem, label in ((axes[1], "l2", "L2 distance to the unpermuted member"),
                            (axes[2], "loss_barrier", "test loss barrier")):
        long = table.melt(id_vars=["k", "seed"], value_vars=[f"{stem}_naive", f"{stem}_aligned"],
                          var_name="path", value_name="value")
        long["path"] = long["path"].str.rsplit("_", n=1).str[-1]
        sns.lineplot(data=long, x="k", y="value", hue="path", errorbar="sd", marker="o", ax=ax)
        ax.set_ylabel(label)
    for ax in axes:
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(left=-0.3, right=table["k"].max() * 1.3 + 1)  # k >= 0: no negative decades
        ax.set_xlabel("k transpositions applied to the initial weights")
    where = f" [{variant}]" if variant and variant != "base" else ""
    order = table["data_order"].iloc[0]
    n = table["seed"].nunique()
    fig.suptitle(f"NoT study{where}: permuted initialisation, then trained ({order} minibatch order); "
                 + (f"mean ± sd over {n} seeds" if n > 1 else "one seed"))
    save_figure(fig, png, pdf)


def not_path_figure(table: pd.DataFrame, png, pdf, variant: str | None = None) -> None:
    """NoT from each point of the path to either endpoint, naive against aligned, one row per method."""
    _require(table, ["method", "pair", "alignment", "t", "not_to_a", "not_to_b"], "not_path")
    methods = list(dict.fromkeys(table["method"]))
    sns.set_theme(**STYLE)
    fig, axes = plt.subplots(len(methods), 2, figsize=(10, 3.8 * len(methods)), squeeze=False,
                             constrained_layout=True)
    for row, method in zip(axes, methods):
        part = table[table["method"] == method]
        gaussian = _is_gaussian(part)
        order = _hue_order(part["alignment"], gaussian)
        part = _labelled(part, gaussian)
        for ax, col, end in ((row[0], "not_to_a", "A"), (row[1], "not_to_b", "B")):
            sns.lineplot(data=part, x="t", y=col, hue="alignment", hue_order=order, errorbar="sd", marker="o",
                         markersize=4, ax=ax)
            ax.set_xlabel("interpolation t (A at 0, B at 1)")
            ax.set_ylabel(f"NoT to {end}")
            ax.set_title(f"{method}, {part['pair'].nunique()} pairs")
    where = f" [{variant}]" if variant and variant != "base" else ""
    fig.suptitle(f"Number of transpositions along the path{where}, mean ± sd over pairs")
    save_figure(fig, png, pdf)
