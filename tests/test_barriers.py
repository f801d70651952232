import math

import numpy as np
import pytest
import torch

from workflow.barriers import barrier_height, t_grid
from workflow.predict import marginal_loss_error, predictive_log_probs, resolve_device

from .conftest import make_mlp


def test_barrier_height_hand_examples():
    ts = np.array([0.0, 0.5, 1.0])
    assert barrier_height(ts, [1.0, 3.0, 1.0]) == pytest.approx(2.0)
    assert barrier_height(ts, [1.0, 2.0, 3.0]) == pytest.approx(0.0)   # on the line
    assert barrier_height(ts, [1.0, 1.0, 3.0]) == pytest.approx(0.0)   # below the line: max is at endpoints, 0
    assert barrier_height([1.0, 0.0, 0.5], [2.0, 0.0, 4.0]) == pytest.approx(3.0)  # unsorted grid
    with pytest.raises(ValueError):
        barrier_height([0.1, 1.0], [0, 0])
    with pytest.raises(ValueError):
        t_grid(1)


def test_marginal_loss_averages_probabilities_not_log_probabilities():
    # two samples predicting class 0 with prob 0.9 and 0.1: the predictive gives 0.5
    logits = torch.log(torch.tensor([[[0.9, 0.1]], [[0.1, 0.9]]]))
    logp = predictive_log_probs(torch.log_softmax(logits, -1))
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


def test_device_names():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="allowed"):
        resolve_device("quantum")
