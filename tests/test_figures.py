"""Figures (workflow/plots.py, workflow/jobs/figures.py): what each draws from its table, files
that are byte-identical on a rerun, and a clear error for a table that is not the figure's."""

import numpy as np
import pandas as pd
import pytest

import workflow.plots as figures
from workflow.jobs.figures import STUDY_FIGURES, study_figure

T = np.linspace(0, 1, 5)


def curves(method="ensemble", gaussian=False, pairs=("0-1", "0-2")):
    rows = []
    for alignment in ["naive", "weight", *(["w2"] if gaussian else [])]:
        bump = {"naive": 1.0, "weight": 0.3, "w2": 0.1}[alignment]
        for i, pair in enumerate(pairs):
            for t in T:
                rows.append({"variant": "base", "method": method, "alignment": alignment, "pair": pair, "t": t,
                             "loss": 0.2 + bump * 4 * t * (1 - t) + 0.01 * i, "error": 0.05 + bump * t * (1 - t),
                             "split": "test", "distance_kind": "w2" if gaussian else "l2"})
    return pd.DataFrame(rows)


def study_tables():
    bins = np.geomspace(1e-3, 1, 6)
    sigma = pd.DataFrame([{"label": f"{m} {fit}", "method": m, "fit": fit, "bin_left": a, "bin_right": b,
                           "fraction": 0.2, "median_sigma": 0.05}
                          for m, fit in [("ensemble", "q_d"), ("ensemble", "q_r"), ("vi", "q")]
                          for a, b in zip(bins[:-1], bins[1:])])
    pruning = pd.DataFrame([{"label": lab, "criterion": c, "fraction_retained": f, "test_accuracy": 0.9 * f}
                            for lab in ("Ens. q_d", "Ens. q_r") for c in ("sigma", "magnitude")
                            for f in (1.0, 0.5, 0.2)])
    not_k = pd.DataFrame([{"k": k, "seed": 0, "data_order": "reshuffled", "not_planted": k, "not_found": k + 1,
                           "not_residual": 1, "l2_naive": 1 + k, "l2_aligned": 1.0, "loss_barrier_naive": 0.1 * k,
                           "loss_barrier_aligned": 0.0, "error_barrier_naive": 0.01 * k,
                           "error_barrier_aligned": 0.0}
                          for k in (0, 4, 16)])
    not_path = pd.DataFrame([{"method": "ensemble", "posterior_kind": "samples", "pair": "0-1", "alignment": a,
                              "aligned": a != "naive", "t": t, "not_to_a": int(40 * t), "not_to_b": int(40 * (1 - t))}
                             for a in ("naive", "weight") for t in T])
    return {"sigma": sigma, "pruning": pruning, "not_k": not_k, "not_path": not_path}


@pytest.fixture
def captured(monkeypatch):
    """The figures drawn (instead of written): a list of matplotlib figures."""
    figs = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, png, pdf: figs.append(fig))
    return figs


def legend_labels(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


@pytest.mark.parametrize("gaussian", [False, True])
def test_barrier_figure_draws_one_line_per_alignment_with_the_kind_labels(captured, gaussian):
    figures.barrier_curves_figure(curves("vi" if gaussian else "ensemble", gaussian), "vi" if gaussian else "ensemble",
                                  "x.png", "x.pdf")
    (fig,) = captured
    loss_ax, error_ax = fig.axes[:2]
    want = ["naive", "means only", "W2 (means + stds)"] if gaussian else ["naive", "weight matching"]
    assert legend_labels(loss_ax) == want
    assert "2 pairs" in fig._suptitle.get_text()
    assert ("W2 geodesic" in fig._suptitle.get_text()) == gaussian
    # the naive line is the mean over pairs: its peak at t = 0.5 is 0.2 + 1.0 + 0.005
    naive = loss_ax.get_lines()[0]
    assert np.interp(0.5, naive.get_xdata(), naive.get_ydata()) == pytest.approx(1.205)
    assert loss_ax.get_ylabel() == "test loss (NLL)" and error_ax.get_ylabel() == "test error"


def test_barrier_figure_of_a_method_not_in_the_table_names_those_that_are(captured):
    with pytest.raises(ValueError, match=r"no barrier curves for method 'hmc'.*\['ensemble'\]"):
        figures.barrier_curves_figure(curves(), "hmc", "x.png", "x.pdf")


def test_sweep_figure_draws_a_row_per_swept_key(captured):
    rows = []
    for hidden in (16, 32, 64):
        for prior in (0.1, 1.0):
            for alignment in ("naive", "weight"):
                rows.append({"method": "ensemble", "alignment": alignment, "pair": "0-1", "model.hidden": hidden,
                             "prior.std": prior, "loss_barrier": hidden / 100 * (alignment == "naive"),
                             "error_barrier": 0.0, "distance_kind": "l2"})
    figures.barrier_sweep_figure(pd.DataFrame(rows), "ensemble", "x.png", "x.pdf",
                                 base={"model.hidden": 32, "prior.std": 1.0})
    (fig,) = captured
    assert len(fig.axes) == 4  # two swept keys x (loss, error)
    assert [ax.get_xlabel() for ax in fig.axes[::2]] == ["model.hidden", "prior.std"]


@pytest.mark.parametrize("kind", sorted(STUDY_FIGURES))
def test_every_study_figure_is_drawn_and_reruns_to_identical_bytes(tmp_path, kind):
    path = tmp_path / f"{kind}.csv"
    study_tables()[kind].to_csv(path, index=False)
    study_figure(kind, path, tmp_path / "a.png", tmp_path / "a.pdf")
    study_figure(kind, path, tmp_path / "b.png", tmp_path / "b.pdf")
    png, pdf = (tmp_path / "a.png").read_bytes(), (tmp_path / "a.pdf").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert pdf.startswith(b"%PDF") and b"CreationDate" not in pdf
    assert png == (tmp_path / "b.png").read_bytes() and pdf == (tmp_path / "b.pdf").read_bytes()


@pytest.mark.parametrize("kind", sorted(STUDY_FIGURES))
def test_a_table_without_a_needed_column_is_refused_by_name(tmp_path, kind):
    table = study_tables()[kind]
    dropped = {"sigma": "fraction", "pruning": "test_accuracy", "not_k": "not_found", "not_path": "not_to_b"}[kind]
    (tmp_path / "t.csv").write_text(table.drop(columns=[dropped]).to_csv(index=False))
    with pytest.raises(ValueError, match=rf"the {kind} figure needs .*{dropped}"):
        study_figure(kind, tmp_path / "t.csv", tmp_path / "a.png", tmp_path / "a.pdf")
    assert not (tmp_path / "a.png").exists()


def test_unknown_study_and_unreadable_table(tmp_path):
    with pytest.raises(ValueError, match="unknown study figure 'nope'; allowed: "):
        study_figure("nope", tmp_path / "t.csv", tmp_path / "a.png", tmp_path / "a.pdf")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="not a readable table"):
        study_figure("sigma", tmp_path / "empty.csv", tmp_path / "a.png", tmp_path / "a.pdf")


def test_pruning_figure_plots_accuracy_against_fraction_kept(captured):
    figures.pruning_figure(study_tables()["pruning"], "x.png", "x.pdf")
    (fig,) = captured
    (ax,) = fig.axes
    assert ax.xaxis_inverted()  # pruning more to the right
    points = {(round(x, 6), round(y, 6)) for line in ax.get_lines() for x, y in zip(line.get_xdata(), line.get_ydata())
              if np.isfinite(y)}
    assert {(1.0, 0.9), (0.5, 0.45), (0.2, 0.18)} <= points
