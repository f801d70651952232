import math

import numpy as np
import pytest
import torch

from workflow.barriers import barrier_height, t_grid
from workflow.predict import Stacked, log_predictive, marginal_loss_error

from .conftest import make_mlp


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


def test_marginal_loss_averages_probabilities_not_log_probabilities():
    # two samples predicting class 0 with prob 0.9 and 0.1: the predictive gives 0.5
    lin = torch.nn.Linear(1, 2)
    stack = {"weight": torch.zeros(2, 2, 1), "bias": torch.log(torch.tensor([[0.9, 0.1], [0.1, 0.9]]))}
    logp = log_predictive(lin, stack, torch.zeros(1, 1))
    assert torch.allclose(logp.exp(), torch.tensor([[0.5, 0.5]]))


def test_marginal_loss_of_a_single_network_is_its_nll():
    model, _, params = make_mlp()
    x, y = torch.randn(30, 1, 4, 4), torch.randint(0, 5, (30,))
    stack = {k: torch.as_tensor(v)[None] for k, v in params.items()}
    nll, err = marginal_loss_error(model, stack, x, y)
    out = model(x)
    assert nll == pytest.approx(torch.nn.functional.cross_entropy(out, y).item(), rel=1e-5)
    assert err == pytest.approx((out.argmax(1) != y).float().mean().item())
    # a stack of two identical samples gives the same numbers
    nll2, _ = marginal_loss_error(model, {k: v.repeat(2, *[1] * (v.ndim - 1)) for k, v in stack.items()}, x, y)
    assert nll2 == pytest.approx(nll, rel=1e-5)
    assert math.isfinite(nll)


@pytest.mark.parametrize("hidden", [(7,), (9, 5, 11)])
def test_fast_mlp_path_equals_functional_call_per_sample(hidden):
    from workflow.architectures.mlp import sample_logits as mlp_sample_logits

    model, _, params = make_mlp(hidden, activation="tanh")
    stack = {k: torch.as_tensor(v)[None] + 0.1 * torch.randn(6, *v.shape) for k, v in params.items()}
    x = torch.randn(13, 1, 4, 4)
    fast = mlp_sample_logits(model, stack, x)
    for s in range(6):
        ref = torch.func.functional_call(model, {k: v[s] for k, v in stack.items()}, (x,))
        torch.testing.assert_close(fast[s], ref, rtol=1e-5, atol=1e-5)


def test_chunked_predictive_equals_unchunked():
    from workflow.predict import chunk_sizes

    model, _, params = make_mlp()
    stack = {k: torch.as_tensor(v)[None] + 0.3 * torch.randn(10, *v.shape) for k, v in params.items()}
    x = torch.randn(20, 1, 4, 4)
    tiny = 4 * 500 / 2 ** 20  # MiB: a few samples and points per chunk
    s_chunk, n_chunk = chunk_sizes(model, Stacked(stack), x, tiny)
    assert s_chunk < 10 and n_chunk < 20
    torch.testing.assert_close(log_predictive(model, stack, x, memory_mb=tiny), log_predictive(model, stack, x),
                               rtol=1e-6, atol=1e-6)


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
    md = (tmp_path / "b.md").read_text()
    assert "| base | ensemble | naive | 2 | 0.5000 ± 0.0000 | 1.000 |" in md and "| 7.0 |" in md
    assert "| base | ensemble | weight | 2 | 0.1000 ± 0.0000 | 0.200 |" in md
    # two curves claiming the same pair are refused, not silently merged
    with pytest.raises(ValueError, match="repeated"):
        summarize_barriers(paths + paths[:1], {"base": {}}, tmp_path / "c.csv", tmp_path / "d.csv", tmp_path / "d.md")
