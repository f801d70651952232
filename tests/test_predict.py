"""Prediction under many weight samples (workflow/evaluation/predict.py): the marginalized predictive averages
probabilities, chunking within a memory budget never changes a number, Gaussian draws are the same
under every chunking and shared between Gaussians of one seed, and per-sample outputs are exact."""

import math

import numpy as np
import pytest
import torch

from workflow.evaluation.predict import (Gaussian, Stacked, chunk_sizes, log_predictive, loss_error, marginal_loss_error,
                              sample_label_log_probs, sample_log_probs)

from .conftest import make_mlp

TINY_MB = 4 * 500 / 2 ** 20  # a memory budget of a few samples and points per chunk


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


def test_fast_mlp_path_chunks_samples_for_the_cpu_cache_only(monkeypatch):
    """Cache-sized sample chunks pay on a CPU; on a GPU they made MNIST's 2,000 points x 512 units one
    sample per chunk, S small sequential matmuls. Elsewhere every sample of the call (already fitted
    to the memory budget by the caller) goes at once; the meta device stands in for a GPU."""
    from workflow.architectures import build_model
    from workflow.architectures import mlp

    assert mlp.sample_chunk(100, 2000, 512, torch.device("cpu")) == 1
    assert mlp.sample_chunk(100, 20, 64, torch.device("cpu")) == 100
    assert mlp.sample_chunk(100, 2000, 512, torch.device("cuda:0")) == 100
    model, _ = build_model("mlp", (1, 28, 28), 10, hidden=[512])
    stack = {k: torch.empty(100, *v.shape, device="meta") for k, v in model.named_parameters()}
    first_layers, real_addmm = [], torch.addmm
    monkeypatch.setattr(mlp.torch, "addmm", lambda *a, **k: first_layers.append(1) or real_addmm(*a, **k))
    logits = mlp.sample_logits(model, stack, torch.empty(2000, 1, 28, 28, device="meta"))
    assert logits.shape == (100, 2000, 10) and len(first_layers) == 1


def test_chunked_predictive_equals_unchunked():
    model, _, params = make_mlp()
    stack = {k: torch.as_tensor(v)[None] + 0.3 * torch.randn(10, *v.shape) for k, v in params.items()}
    x = torch.randn(20, 1, 4, 4)
    tiny = TINY_MB
    s_chunk, n_chunk = chunk_sizes(model, Stacked(stack), x, tiny)
    assert s_chunk < 10 and n_chunk < 20
    torch.testing.assert_close(log_predictive(model, stack, x, memory_mb=tiny), log_predictive(model, stack, x),
                               rtol=1e-6, atol=1e-6)


def perturbed_stack(params, n, scale=0.3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.as_tensor(v)[None] + scale * torch.randn(n, *v.shape, generator=gen) for k, v in params.items()}


def test_per_sample_outputs_are_each_networks_log_softmax_under_any_chunking():
    model, _, params = make_mlp()
    stack = perturbed_stack(params, 7)
    x, y = torch.randn(11, 1, 4, 4), torch.randint(0, 5, (11,))
    for budget in (TINY_MB, 1024):
        out = sample_log_probs(model, stack, x, memory_mb=budget)
        labels = sample_label_log_probs(model, stack, x, y, memory_mb=budget)
        for s in range(7):
            ref = torch.log_softmax(torch.func.functional_call(model, {k: v[s] for k, v in stack.items()}, (x,)), -1)
            torch.testing.assert_close(out[s], ref, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(labels[s], ref[torch.arange(11), y], rtol=1e-5, atol=1e-5)


def test_gaussian_draws_do_not_depend_on_chunking_and_share_noise_by_seed():
    _, _, params = make_mlp()
    std = {k: np.full_like(v, 0.5) for k, v in params.items()}
    g = Gaussian(params, std, n=9, seed=3)
    whole = g.chunk(0, 9, "cpu")
    parts = [g.chunk(a, b, "cpu") for a, b in ((0, 2), (2, 7), (7, 9))]
    for k in whole:
        torch.testing.assert_close(torch.cat([p[k] for p in parts]), whole[k], rtol=0, atol=0)
        # draw = mean + std * eps with eps ~ N(0, 1): standardised draws have mean 0 and sd 1
        eps = (whole[k] - torch.as_tensor(params[k])) / 0.5
        assert eps.shape == (9, *params[k].shape)
        assert not torch.equal(eps[0], eps[1])  # every draw its own noise
    # same seed: the same noise around another mean (common random numbers along a path)
    shifted = Gaussian({k: v + 1.0 for k, v in params.items()}, std, n=9, seed=3).chunk(0, 9, "cpu")
    other = Gaussian(params, std, n=9, seed=4).chunk(0, 9, "cpu")
    for k in whole:
        torch.testing.assert_close(shifted[k] - 1.0, whole[k], rtol=0, atol=1e-6)
        assert not torch.equal(other[k], whole[k])
    flat = torch.cat([((whole[k] - torch.as_tensor(params[k])) / 0.5).flatten() for k in whole])
    assert abs(flat.mean().item()) < 0.1 and abs(flat.std().item() - 1) < 0.1


def test_gaussian_predictive_equals_the_predictive_of_its_drawn_stack():
    model, _, params = make_mlp()
    std = {k: np.full_like(v, 0.2) for k, v in params.items()}
    g = Gaussian(params, std, n=6, seed=1)
    x = torch.randn(10, 1, 4, 4)
    drawn = g.chunk(0, 6, "cpu")
    torch.testing.assert_close(log_predictive(model, g, x, memory_mb=TINY_MB), log_predictive(model, drawn, x),
                               rtol=1e-6, atol=1e-6)


def test_chunk_sizes_fit_the_budget_and_never_drop_to_zero():
    model, _, params = make_mlp()
    source = Stacked(perturbed_stack(params, 50))
    x = torch.randn(40, 1, 4, 4)
    for budget in (TINY_MB, 0.05, 1.0, 1024):
        s, n = chunk_sizes(model, source, x, budget)
        assert 1 <= s <= 50 and 1 <= n <= 40
    assert chunk_sizes(model, source, x, 1024) == (50, 40)  # everything at once when it fits
    assert chunk_sizes(model, source, x, 1e-9) == (1, 1)  # smaller than one sample: one at a time


def test_loss_error_hand_example():
    logp = torch.log(torch.tensor([[0.7, 0.3], [0.4, 0.6], [0.9, 0.1]]))
    nll, err = loss_error(logp, torch.tensor([0, 0, 1]))
    assert nll == pytest.approx(-(math.log(0.7) + math.log(0.4) + math.log(0.1)) / 3, rel=1e-6)
    assert err == pytest.approx(2 / 3)


# --- the linearised (GLM) predictive of a Gaussian ------------------------------------------


def glm_case(std_value=0.1, n=6, seed=3):
    model, _, params = make_mlp((7, 6))
    std = {k: np.full_like(v, std_value) for k, v in params.items()}
    x = torch.randn(9, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    return model, params, std, x, Gaussian(params, std, n, seed, linearized=True)


def test_linearized_logits_are_the_first_order_expansion_at_the_mean():
    """f(x; mu) + J_mu(x) delta, against the Jacobian built explicitly (reverse mode, per parameter)."""
    from workflow.evaluation.predict import linearized_logits

    model, params, _, x, source = glm_case()
    mean = source.mean_tensors("cpu")
    deltas = source.deltas(0, source.n, "cpu")
    with torch.no_grad():
        lin = linearized_logits(model, mean, deltas, x)
    jac = torch.func.jacrev(lambda p: torch.func.functional_call(model, p, (x,)))(mean)
    f0 = torch.func.functional_call(model, mean, (x,))
    expected = torch.stack([f0 + sum(jac[k].reshape(*f0.shape, -1) @ deltas[k][s].reshape(-1) for k in mean)
                            for s in range(source.n)])
    torch.testing.assert_close(lin, expected, rtol=1e-5, atol=1e-5)
    # the draws are the sampled Gaussian's: mean + delta
    sampled = Gaussian(params, source.std, source.n, source.seed).chunk(0, source.n, "cpu")
    for k in mean:
        torch.testing.assert_close(sampled[k], mean[k] + deltas[k])


def test_glm_predictive_is_the_mean_network_at_zero_width_and_differs_from_sampling_when_wide():
    model, params, _, x, _ = glm_case()
    mean_net = log_predictive(model, Stacked({k: v[None] for k, v in params.items()}), x)
    _, _, _, _, narrow = glm_case(std_value=0.0)
    torch.testing.assert_close(log_predictive(model, narrow, x), mean_net, rtol=1e-6, atol=1e-6)
    _, _, std, _, wide = glm_case(std_value=0.5, n=50)
    glm = log_predictive(model, wide, x)
    sampled = log_predictive(model, Gaussian(params, std, 50, wide.seed), x)
    assert (glm - sampled).abs().max() > 0.05  # a wide Gaussian: the expansion and the network part ways


def test_glm_predictive_does_not_depend_on_chunking():
    model, _, _, x, source = glm_case(n=7)
    whole = log_predictive(model, source, x)
    torch.testing.assert_close(log_predictive(model, source, x, memory_mb=TINY_MB), whole, rtol=1e-5, atol=1e-6)
