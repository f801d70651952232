import numpy as np
import pytest
import torch

from workflow.inference.hmc_sampler import HmcSettings, flatten, unflatten
from workflow.inference.hmc_bnn import bnn_potential, sample_bnn
from workflow.architectures import build_model


def test_bnn_potential_is_full_batch_nll_plus_gaussian_prior():
    model, _ = build_model("mlp", (1, 2, 2), 3, hidden=[5])
    x, y = torch.randn(40, 1, 2, 2), torch.randint(0, 3, (40,))
    like = {k: v.detach() for k, v in model.named_parameters()}
    theta = flatten(like)
    u = bnn_potential(model, x, y, 0.5, like)(theta)
    nll = torch.nn.functional.cross_entropy(model(x), y, reduction="sum")
    prior = sum((p ** 2).sum() for p in model.parameters()) / (2 * 0.25)
    assert u.item() == pytest.approx((nll + prior).item(), rel=1e-5)


def test_bnn_chain_is_deterministic_and_shaped_like_the_model():
    model, _ = build_model("mlp", (1, 2, 2), 3, hidden=[5])
    x, y = torch.randn(60, 1, 2, 2), torch.randint(0, 3, (60,))
    s = HmcSettings(step_size=0.01, n_leapfrog=5, n_warmup=10, n_samples=6, checkpoint_every=0)
    a, res = sample_bnn(model, x, y, s, prior_std=1.0, seed=3, device=torch.device("cpu"))
    b, _ = sample_bnn(model, x, y, s, prior_std=1.0, seed=3, device=torch.device("cpu"))
    assert a["hidden.0.weight"].shape == (6, 5, 4) and a["out.bias"].shape == (6, 3)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert res.acceptance_rate > 0 and np.isfinite(res.energy).all()


@pytest.mark.parametrize("name, shape, args", [("mlp", (1, 2, 2), {"hidden": [5]}), ("resnet20", (1, 6, 6), {})])
def test_chunked_potential_and_gradient_equal_the_full_batch_ones(name, shape, args):
    """Summing over data chunks is the same full-batch potential (exact HMC), with bounded memory."""
    from workflow.inference.hmc_sampler import value_and_grad
    from workflow.inference.hmc_bnn import chunked_value_and_grad

    model, _ = build_model(name, shape, 3, **args)
    model = model.double()
    x, y = torch.randn(23, *shape, dtype=torch.float64), torch.randint(0, 3, (23,))
    like = {k: v.detach() for k, v in model.named_parameters()}
    theta = flatten(like) + 0.1
    u_full, g_full = value_and_grad(bnn_potential(model, x, y, 0.7, like), theta)
    u_chunk, g_chunk = chunked_value_and_grad(model, x, y, 0.7, like, chunk=5)(theta)
    assert u_chunk.item() == pytest.approx(u_full.item(), rel=1e-12)
    torch.testing.assert_close(g_chunk, g_full, rtol=1e-10, atol=1e-12)


def test_a_chain_with_chunked_data_matches_the_unchunked_chain_closely():
    model, _ = build_model("mlp", (1, 2, 2), 3, hidden=[5])
    x, y = torch.randn(60, 1, 2, 2), torch.randint(0, 3, (60,))
    s = HmcSettings(step_size=0.01, n_leapfrog=5, n_warmup=0, adapt_step_size=False, n_samples=3, checkpoint_every=0)
    a, _ = sample_bnn(model, x, y, s, prior_std=1.0, seed=3, device=torch.device("cpu"))
    b, _ = sample_bnn(model, x, y, s, prior_std=1.0, seed=3, device=torch.device("cpu"), data_chunk=7)
    for k in a:  # another summation order: equal up to float32 rounding over a few iterations
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_mixed_precision_chain_takes_bf16_gradients_and_an_exact_metropolis_test(monkeypatch):
    from workflow import device
    from workflow.inference import hmc_bnn

    model, _ = build_model("mlp", (1, 2, 2), 3, hidden=[5])
    x, y = torch.randn(60, 1, 2, 2), torch.randint(0, 3, (60,))
    s = HmcSettings(step_size=0.01, n_leapfrog=5, n_warmup=5, n_samples=6, checkpoint_every=0)
    full, _ = sample_bnn(model, x, y, s, prior_std=1.0, seed=3, device=torch.device("cpu"))
    energies = []
    exact = hmc_bnn.chunked_potential

    def spy(*args):
        fn = exact(*args)
        return lambda theta: energies.append(fn(theta)) or energies[-1]

    monkeypatch.setattr(hmc_bnn, "chunked_potential", spy)
    try:
        device.set_job(mixed_precision="bf16")
        mixed, res = sample_bnn(model, x, y, s, prior_std=1.0, seed=3, device=torch.device("cpu"))
    finally:
        device.set_job()
    assert energies and all(e.dtype == torch.float32 for e in energies)  # the Metropolis energy: full precision
    assert res.acceptance_rate > 0 and np.isfinite(res.energy).all()
    assert any(not np.array_equal(full[k], mixed[k]) for k in full)  # the gradients were bf16


def test_the_metropolis_test_rejects_large_steps_and_accepts_small_ones():
    """Acceptance tracks the leapfrog energy error: near 1 for tiny steps, near 0 for steps far too
    big (a chain without its Metropolis test would accept them all and drift off)."""
    torch.manual_seed(0)
    model, _ = build_model("mlp", (1, 2, 2), 3, hidden=[5])
    x, y = torch.randn(200, 1, 2, 2), torch.randint(0, 3, (200,))

    def run(step):
        s = HmcSettings(step_size=step, n_leapfrog=10, n_warmup=0, adapt_step_size=False, n_samples=30,
                        checkpoint_every=0)
        return sample_bnn(model, x, y, s, prior_std=1.0, seed=1, device=torch.device("cpu"))

    small, res_small = run(1e-4)
    big, res_big = run(0.1)
    assert res_small.acceptance_rate > 0.9
    assert res_big.acceptance_rate < 0.5
    # rejected proposals leave the chain where it was: repeated draws; accepted ones move it
    moves = [np.any(big["out.bias"][i] != big["out.bias"][i - 1]) for i in range(1, 30)]
    assert sum(moves) <= res_big.accepted.sum()
    assert np.isfinite(res_big.energy).all() and res_big.energy.max() < 1e4


@pytest.mark.parametrize("data_chunk, mass_matrix", [(None, "diagonal"), (16, "diagonal"), (16, "ggn")])
def test_bnn_chains_advanced_together_equal_the_chains_sampled_one_by_one(data_chunk, mass_matrix):
    """The batch of a job's chains changes nothing in any chain, bit for bit (on one machine)."""
    from workflow.inference.hmc_bnn import sample_bnn_chains

    model, _ = build_model("mlp", (1, 4, 4), 3, hidden=[64])
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(50, 1, 4, 4, generator=g), torch.randint(0, 3, (50,), generator=g)
    # 40 warm-up iterations: with 25, dual averaging can leave a chain's step size where every proposal
    # diverges on some CPUs (seed 1 with the GGN metric), and the test is about batching, not adaptation
    s = HmcSettings(step_size=0.01, n_leapfrog=5, n_warmup=40, n_samples=6, mass_matrix=mass_matrix,
                    checkpoint_every=0)
    together = sample_bnn_chains(model, x, y, s, prior_std=1.0, seeds=[5, 1, 3], device=torch.device("cpu"),
                                 data_chunk=data_chunk)
    for (draws, res), seed in zip(together, [5, 1, 3]):
        alone, res1 = sample_bnn(model, x, y, s, prior_std=1.0, seed=seed, device=torch.device("cpu"),
                                 data_chunk=data_chunk)
        for k in draws:
            np.testing.assert_array_equal(draws[k], alone[k])
        np.testing.assert_array_equal(res.energy, res1.energy)
        np.testing.assert_array_equal(res.inv_mass, res1.inv_mass)
        assert res.step_size == res1.step_size
    assert not np.array_equal(together[0][0]["out.bias"], together[1][0]["out.bias"])


def test_ggn_metric_is_the_diagonal_laplace_variance_at_each_chains_position():
    """1 / (diag GGN of the summed NLL + 1 / sigma_p^2) per row, from that row's weights alone; where the
    data do not reach a weight (an input that is always 0) it is the prior's variance."""
    from workflow.inference.hmc_bnn import ggn_metric
    from workflow.inference.laplace_ggn import diagonal_ggn

    model, _ = build_model("mlp", (1, 2, 2), 3, hidden=[5])
    model = model.double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(30, 1, 2, 2, generator=g, dtype=torch.float64)
    x[:, 0, 0, 0] = 0.0  # pixel 0 is always off
    like = {k: v.detach() for k, v in model.named_parameters()}
    rows = torch.randn(2, sum(v.numel() for v in like.values()), generator=g, dtype=torch.float64)
    metric = ggn_metric(model, x, 0.5, like)(rows)
    assert metric.shape == rows.shape and metric.dtype == rows.dtype
    for row, got in zip(rows, metric):
        ggn = diagonal_ggn(model, unflatten(row, like), x)
        want = torch.cat([1.0 / (ggn[k].reshape(-1) + 4.0) for k in like])
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    weights = metric[:, :model.hidden[0].weight.numel()].reshape(2, 5, 4)
    torch.testing.assert_close(weights[:, :, 0], torch.full((2, 5), 0.25, dtype=torch.float64))  # the prior's
    assert (weights[:, :, 1:] < 0.25).all()  # the data sharpen every weight they reach
    assert not torch.equal(metric[0], metric[1])
