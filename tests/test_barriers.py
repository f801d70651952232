import numpy as np
import pytest

from workflow.evaluation.barriers import barrier_height, t_grid


def test_barrier_height_hand_examples():
    ts = np.array([0.0, 0.5, 1.0])
    assert barrier_height(ts, [1.0, 3.0, 1.0]) == pytest.approx(2.0)
    assert barrier_height(ts, [1.0, 2.0, 3.0]) == pytest.approx(0.0)   # on the line
    assert barrier_height(ts, [1.0, 1.0, 3.0]) == pytest.approx(0.0)   # below the line: max is at endpoints, 0
    assert barrier_height([1.0, 0.0, 0.5], [2.0, 0.0, 4.0]) == pytest.approx(3.0)  # unsorted grid
    with pytest.raises(ValueError):
        barrier_height([0.1, 1.0], [0, 0])
    with pytest.raises(ValueError, match="n_points must be >= 3"):
        t_grid(2)
    np.testing.assert_array_equal(t_grid(3), [0.0, 0.5, 1.0])  # one point between the endpoints is enough


def test_summary_table_and_markdown(tmp_path):
    import pandas as pd

    from workflow.jobs.metrics import summarize_barriers

    paths = []
    for alignment, bump, nt in (("naive", 0.5, None), ("weight", 0.1, 7)):
        for pair in ("0-1", "0-2"):
            t = np.linspace(0, 1, 5)
            frame = pd.DataFrame({"variant": "base", "method": "ensemble", "alignment": alignment,
                                  "aligned": alignment != "naive", "pair": pair, "seed_a": 0,
                                  "seed_b": int(pair[-1]), "t": t, "loss": 1 + bump * np.sin(np.pi * t),
                                  "error": 0.1, "split": "test", "distance_kind": "l2", "distance": 3.0,
                                  "not_total": nt if nt is not None else np.nan, "units_total": 10 if nt else np.nan})
            paths.append(tmp_path / f"{alignment}-{pair}.csv")
            frame.to_csv(paths[-1], index=False)
    summarize_barriers(paths, {"base": {}}, tmp_path / "curves.csv", tmp_path / "b.csv", tmp_path / "b.md")
    table = pd.read_csv(tmp_path / "b.csv").set_index(["alignment", "pair"])
    assert table.loc[("naive", "0-1"), "loss_barrier"] == pytest.approx(0.5)
    assert table.loc[("weight", "0-2"), "loss_barrier"] == pytest.approx(0.1)
    assert table.loc[("weight", "0-2"), "not_total"] == 7 and pd.isna(table.loc[("naive", "0-2"), "not_total"])
    # the endpoints' mean loss: the mean of t = 0 and t = 1 alone
    from workflow.evaluation.barriers import summarize

    one = pd.DataFrame({"method": "vi", "alignment": "naive", "pair": "0-1", "t": [0.0, 0.5, 1.0],
                        "loss": [1.0, 9.0, 3.0], "error": 0.0})
    assert summarize(one).loc[0, "loss_endpoints_mean"] == pytest.approx(2.0)
    md = (tmp_path / "b.md").read_text()
    assert "| base | ensemble | naive | 2 | 0.5000 ± 0.0000 | 1.000 |" in md and "| 7.0 |" in md
    assert "| base | ensemble | weight | 2 | 0.1000 ± 0.0000 | 0.200 |" in md
    # two curves claiming the same pair are refused, not silently merged
    with pytest.raises(ValueError, match="repeated"):
        summarize_barriers(paths + paths[:1], {"base": {}}, tmp_path / "c.csv", tmp_path / "d.csv", tmp_path / "d.md")


def test_a_glm_path_predicts_every_gaussian_through_the_linearised_network():
    """gaussian_path(linearized=True): at each t the loss of N(mean_t, std_t^2) under the GLM
    predictive, not under sampled networks (Laplace pairs, whose predictive is 'glm')."""
    import torch

    from workflow.evaluation.barriers import gaussian_path
    from workflow.evaluation.predict import Gaussian, marginal_loss_error

    from .conftest import make_mlp

    model, _, a = make_mlp(seed=0)
    _, _, b = make_mlp(seed=1)
    std = {k: np.full_like(v, 0.3) for k, v in a.items()}
    x = torch.randn(20, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.arange(20) % 5
    ts = np.array([0.0, 0.5, 1.0])
    glm = gaussian_path(model, a, std, b, std, 8, 3, x, y, ts, linearized=True)
    sampled = gaussian_path(model, a, std, b, std, 8, 3, x, y, ts)
    mid = {k: 0.5 * (a[k] + b[k]) for k in a}
    for t, mean, row in zip(ts, (a, mid, b), glm.itertuples()):
        assert row.loss == pytest.approx(marginal_loss_error(model, Gaussian(mean, std, 8, 3, linearized=True), x, y)[0],
                                         rel=1e-5)
    assert not np.allclose(glm["loss"], sampled["loss"])


def test_paths_carry_the_calibration_error_and_its_barrier():
    """Every point of a path records the ECE of its predictive; the summary gives its barrier, and
    curves written before the column existed still summarize."""
    import torch

    from workflow.evaluation.barriers import linear_path, summarize
    from workflow.evaluation.compare import expected_calibration_error

    from .conftest import make_mlp

    model, _, a = make_mlp(seed=0)
    _, _, b = make_mlp(seed=1)
    x = torch.randn(30, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.arange(30) % 5
    ts = np.linspace(0, 1, 5)
    curve = linear_path(model, {k: v[None] for k, v in a.items()}, {k: v[None] for k, v in b.items()}, x, y, ts)
    with torch.no_grad():
        p_a = torch.softmax(torch.func.functional_call(model, {k: torch.as_tensor(v) for k, v in a.items()}, (x,)), 1)
    assert curve["ece"].iloc[0] == pytest.approx(expected_calibration_error(p_a.numpy(), y.numpy()), rel=1e-5)
    curve["pair"] = "0-1"
    summary = summarize(curve)
    assert summary["ece_barrier"].iloc[0] == pytest.approx(barrier_height(curve["t"], curve["ece"]))
    assert "ece_barrier" not in summarize(curve.drop(columns="ece"))


def test_the_mixture_path_is_the_mixture_of_the_endpoints_predictives():
    """mixture_path at t is -log((1 - t) p_a + t p_b) of the true class, averaged; its endpoints are
    the endpoints' own predictives, and by convexity it never rises above the straight line."""
    import torch

    from workflow.evaluation.barriers import mixture_path

    gen = torch.Generator().manual_seed(0)
    logp_a = torch.log_softmax(torch.randn(50, 4, generator=gen, dtype=torch.float64) * 2, -1)
    logp_b = torch.log_softmax(torch.randn(50, 4, generator=gen, dtype=torch.float64) * 2, -1)
    y = torch.randint(0, 4, (50,), generator=gen)
    ts = np.array([0.0, 0.25, 0.5, 1.0])
    path = mixture_path(logp_a, logp_b, y, ts)
    rows = torch.arange(50)
    for t, loss in zip(ts, path["loss"]):
        mixed = (1 - t) * logp_a.exp()[rows, y] + t * logp_b.exp()[rows, y]
        assert loss == pytest.approx(float(-mixed.log().mean()), rel=1e-9)
    line = path["loss"].iloc[0] + ts * (path["loss"].iloc[-1] - path["loss"].iloc[0])
    assert (path["loss"].to_numpy() <= line + 1e-12).all()
