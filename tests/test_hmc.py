"""HMC: exactness on analytic targets (tolerances from Monte Carlo error via ESS), adaptation,
divergence handling, bit-identical resumption, thinning, and the convergence diagnostics."""

import logging
import math

import numpy as np
import pytest
import torch

import workflow.inference.hmc_sampler as hmc
import workflow.inference.resume as resume
from workflow.inference.hmc_sampler import (HmcSettings, flatten, hmc_step, leapfrog, run_hmc, run_hmc_chains, unflatten,
                          value_and_grad)
from workflow.evaluation.mcmc_diagnostics import effective_sample_size, split_rhat


def gaussian_potential(precision: torch.Tensor, mean: torch.Tensor | None = None):
    """U(x) = (x - m)^T P (x - m) / 2, for a single x [dim] or a batch [chains, dim]."""
    mean = torch.zeros(len(precision), dtype=precision.dtype) if mean is None else mean

    def potential(x):
        d = x - mean
        return 0.5 * ((d @ precision) * d).sum(-1)
    return potential


def standard_potential(x):
    return 0.5 * (x ** 2).sum(-1)


# --- 1. a posterior with a closed form ------------------------------------------------------


def test_bayesian_linear_regression_matches_the_exact_posterior():
    """y = X w + N(0, s^2), w ~ N(0, I / alpha): posterior N(A^-1 X^T y / s^2, A^-1), A = alpha I + X^T X / s^2."""
    g = torch.Generator().manual_seed(0)
    n, d, noise, alpha = 50, 3, 0.5, 1.0
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)
    x[:, 1] += 0.6 * x[:, 0]  # correlated posterior, unequal scales
    y = x @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + noise * torch.randn(n, generator=g,
                                                                                        dtype=torch.float64)
    precision = alpha * torch.eye(d, dtype=torch.float64) + x.T @ x / noise ** 2
    cov = torch.linalg.inv(precision).numpy()
    mean = cov @ (x.T @ y).numpy() / noise ** 2

    def potential(w):  # -log p(D|w) - log p(w), full batch
        return ((y - x @ w) ** 2).sum() / (2 * noise ** 2) + 0.5 * alpha * (w ** 2).sum()

    s = HmcSettings(step_size=0.01, n_leapfrog=12, n_warmup=150, n_samples=300, checkpoint_every=0)
    runs = [run_hmc(potential, torch.randn(d, generator=g, dtype=torch.float64), s, seed=c) for c in range(4)]
    draws = np.stack([r.samples for r in runs])  # [chains, draws, d]
    assert draws.dtype == np.float64
    assert all(0.6 < r.acceptance_rate < 0.99 and r.divergences == 0 for r in runs)
    assert np.all(split_rhat(draws) < 1.05)

    sd = np.sqrt(np.diag(cov))
    # never credit more than one effective draw per draw: a fixed L can make the chain antithetic
    # (ESS > draws), and that estimate is the noisiest
    ess = np.minimum(effective_sample_size(draws), draws.shape[0] * draws.shape[1])
    assert np.all(ess > 100)  # else the tolerances below mean little
    pooled = draws.reshape(-1, d)
    # mean: Monte Carlo standard error sd / sqrt(ESS); 4.5 of them (per coordinate, 3 coordinates)
    np.testing.assert_array_less(np.abs(pooled.mean(0) - mean), 4.5 * sd / np.sqrt(ess))
    # variance: for a Gaussian, Var((w - m)^2) = 2 sd^4, so the relative MC error of the variance is
    # sqrt(2 / ESS) with the ESS of the squared deviations
    ess_sq = np.minimum(effective_sample_size((draws - mean) ** 2), draws.shape[0] * draws.shape[1])
    rel = np.abs(pooled.var(0) / sd ** 2 - 1)
    np.testing.assert_array_less(rel, 5 * np.sqrt(2 / ess_sq))
    # potential recorded at each kept sample
    np.testing.assert_allclose(runs[0].energy, [potential(torch.from_numpy(w)).item() for w in runs[0].samples])


# --- 2. invariance of the kernel -----------------------------------------------------------


def test_kernel_leaves_a_correlated_gaussian_invariant():
    """Independent chains started from exact draws stay exact draws after k transitions."""
    cov = torch.tensor([[1.0, 0.8], [0.8, 1.0]], dtype=torch.float64)  # sds 1.34 and 0.45 along the axes
    potential = gaussian_potential(torch.linalg.inv(cov))
    # step 0.75 = 1.7 sds along the narrow axis: still stable, but far enough from exact that
    # leapfrog alone inflates the covariance by ~25% (see the end)
    chains, k, step_size, n_leapfrog = 4000, 4, 0.75, 4
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(chains, 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T

    def grad_fn(v):
        return value_and_grad(potential, v)

    x, n_accepted = x0, 0
    u, grad = grad_fn(x)
    for _ in range(k):
        step = hmc_step(grad_fn, x, u, grad, step_size, n_leapfrog, g)
        x, u, grad = step.x, step.u, step.grad
        n_accepted += int(step.accepted.sum())
    assert 0.3 < n_accepted / (k * chains) < 0.95  # the test has bite: most chains did move
    assert (x != x0).any(-1).double().mean() > 0.5

    def check_exact(v):
        # final states of independent chains: ESS = number of chains
        sigma = cov.numpy()
        v = v.numpy()
        se_mean = np.sqrt(np.diag(sigma) / chains)
        emp = v.T @ v / chains  # second moments about the known mean 0
        se_cov = np.sqrt((np.outer(np.diag(sigma), np.diag(sigma)) + sigma ** 2) / chains)
        return np.all(np.abs(v.mean(0)) < 4.5 * se_mean) and np.all(np.abs(emp - sigma) < 5 * se_cov)

    assert check_exact(x0)
    assert check_exact(x)

    # the same check catches a kernel without the Metropolis correction at this step size
    x = x0
    for _ in range(k):
        p = torch.randn(x.shape, generator=g, dtype=x.dtype)
        x, *_ = leapfrog(grad_fn, x, p, grad_fn(x)[1], step_size, n_leapfrog)
    assert not check_exact(x)


# --- 3. step-size adaptation ---------------------------------------------------------------


@pytest.mark.parametrize("initial", [5.0, 1e-4])
def test_dual_averaging_reaches_the_target_acceptance_and_then_stops(initial, monkeypatch):
    sds = torch.tensor([0.5, 1.0, 1.0, 1.5, 2.0], dtype=torch.float64)
    potential = gaussian_potential(torch.diag(sds ** -2))
    used = []
    real_step = hmc.hmc_step

    def spy(grad_fn, x, u, grad, step_size, *args):
        used.append(float(step_size))  # one chain: a [1, 1] tensor of step sizes
        return real_step(grad_fn, x, u, grad, step_size, *args)

    monkeypatch.setattr(hmc, "hmc_step", spy)
    # the averaged step size lags behind the iterates, biased small by the first, wild ones: with
    # 150 warm-up iterations acceptance comes out ~0.95 for a target of 0.8, with 400 ~0.85
    s = HmcSettings(step_size=initial, n_leapfrog=6, n_warmup=400, n_samples=200, target_accept=0.8,
                    checkpoint_every=0)
    r = run_hmc(potential, torch.zeros(5, dtype=torch.float64), s, seed=3)
    # sampling noise of the rate: ~sqrt(0.8 * 0.2 / 200 * tau) = 0.03-0.06 for tau 1-4, well inside 0.15
    assert abs(r.acceptance_rate - 0.8) < 0.15
    assert 0.2 < r.step_size < 2.0  # stable leapfrog needs step < 2 * smallest sd = 1
    assert len(used) == s.n_warmup + s.n_samples
    assert len(set(used[:s.n_warmup])) > 10  # adapted during warm-up ...
    assert set(used[s.n_warmup:]) == {r.step_size}  # ... and fixed after it

    used.clear()
    fixed = run_hmc(potential, torch.zeros(5, dtype=torch.float64),
                    HmcSettings(step_size=0.3, n_leapfrog=8, n_warmup=5, n_samples=5, adapt_step_size=False,
                                checkpoint_every=0), seed=3)
    assert set(used) == {0.3} and fixed.step_size == 0.3


# --- 4. non-finite energies ----------------------------------------------------------------


def wall_potential(x):  # +inf outside x0 < 1
    return torch.where(x[..., 0] < 1, 0.5 * (x ** 2).sum(-1), torch.full_like(x[..., 0], math.inf))


def nan_potential(x):  # log of a negative number outside x0 < 1: NaN value and gradient
    return 0.5 * (x ** 2).sum(-1) - torch.log(1 - x[..., 0])


@pytest.mark.parametrize("potential", [wall_potential, nan_potential])
@pytest.mark.parametrize("adapt", [False, True])
def test_non_finite_energy_is_a_rejected_divergence(potential, adapt):
    s = HmcSettings(step_size=0.8, n_leapfrog=5, n_warmup=30 if adapt else 0, n_samples=200,
                    adapt_step_size=adapt, target_accept=0.6, checkpoint_every=0)
    r = run_hmc(potential, torch.zeros(2), s, seed=0)
    assert r.divergences > 0
    assert r.acceptance_rate < 1
    assert np.isfinite(r.samples).all() and np.isfinite(r.energy).all()
    assert (r.samples[:, 0] < 1).all()
    assert r.samples.dtype == np.float32


def test_non_finite_potential_at_the_start_is_refused():
    with pytest.raises(ValueError, match="not finite"):
        run_hmc(wall_potential, torch.tensor([2.0, 0.0]), HmcSettings(n_warmup=1, n_samples=1), seed=0)


# --- 5. checkpoints ------------------------------------------------------------------------

CKPT_SETTINGS = HmcSettings(step_size=0.3, n_leapfrog=5, n_warmup=20, n_samples=15, thinning=2,
                            checkpoint_every=10)  # 50 iterations, checkpoints after 10, 20, 30, 40


def sample(checkpoint=None, settings=CKPT_SETTINGS, identity=None, seed=0):
    return run_hmc(standard_potential, torch.full((3,), 2.0), settings, seed=seed, checkpoint=checkpoint,
                   identity=identity or {"target": "standard"})


def assert_same(a, b):
    np.testing.assert_array_equal(a.samples, b.samples)
    np.testing.assert_array_equal(a.energy, b.energy)
    np.testing.assert_array_equal(a.accepted, b.accepted)
    assert (a.step_size, a.divergences, a.acceptance_rate) == (b.step_size, b.divergences, b.acceptance_rate)


def kill_after(monkeypatch, n_saves):
    real_save, calls = resume.save_checkpoint, []

    def save_then_die(path, state):
        real_save(path, state)
        calls.append(state["iteration"])
        if len(calls) == n_saves:
            raise KeyboardInterrupt  # the job is killed right after this checkpoint

    monkeypatch.setattr(resume, "save_checkpoint", save_then_die)
    return real_save


def killed_then_resumed(run, ckpt, monkeypatch, n_saves):
    """``run(ckpt)`` killed right after its ``n_saves``-th checkpoint, then run again to the end."""
    real_save = kill_after(monkeypatch, n_saves)
    with pytest.raises(KeyboardInterrupt):
        run(ckpt)
    monkeypatch.setattr(resume, "save_checkpoint", real_save)
    return run(ckpt)


@pytest.mark.parametrize("n_saves", [1, 3])  # killed in warm-up (mid adaptation) or while sampling
def test_killed_run_resumes_bit_identically(tmp_path, monkeypatch, n_saves):
    reference = sample()
    assert_same(reference, sample())  # deterministic given the seed
    resumed = killed_then_resumed(sample, tmp_path / "hmc.pt", monkeypatch, n_saves)
    assert resumed.resumed_from == 10 * n_saves
    assert_same(resumed, reference)
    assert not np.array_equal(sample(seed=1).samples, reference.samples)


def test_checkpoint_of_another_identity_or_settings_is_ignored(tmp_path, monkeypatch, caplog):
    ckpt = tmp_path / "hmc.pt"
    real_save = kill_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        sample(ckpt, identity={"target": "other"})
    monkeypatch.setattr(resume, "save_checkpoint", real_save)
    saved = ckpt.read_bytes()
    longer = HmcSettings(**{**vars(CKPT_SETTINGS), "n_samples": 16})
    # each differs from the checkpoint in one thing only
    for kwargs in [{"identity": {"target": "standard"}}, {"identity": {"target": "other"}, "settings": longer},
                   {"identity": {"target": "other"}, "seed": 1}]:
        with caplog.at_level(logging.WARNING, logger="workflow.inference.hmc_sampler"):
            caplog.clear()
            result = sample(ckpt, **kwargs)
        assert "ignoring checkpoint" in caplog.text
        assert result.resumed_from == 0
        assert_same(result, sample(**kwargs))
        ckpt.write_bytes(saved)  # the run above replaced it with its own checkpoints
    assert sample(ckpt, identity={"target": "other"}).resumed_from == 20  # while a match is resumed


# --- 5b. chains advanced together ----------------------------------------------------------

SCALED = gaussian_potential(torch.diag(torch.tensor([0.3, 1.0, 3.0, 0.5], dtype=torch.float64) ** -2))


def scaled_grad_fn(v):
    return value_and_grad(SCALED, v)


def scaled_energy(v):
    return SCALED(v)


def position_metric(xb):
    """A metric_fn that depends on each chain's position, row by row (as the BNN's GGN metric)."""
    return 1.0 / (1.0 + xb.pow(2))


@pytest.mark.parametrize("mass_matrix", ["identity", "diagonal", "ggn"])
@pytest.mark.parametrize("how", ["potential", "grad_fn", "energy_fn"])
def test_chains_advanced_together_equal_the_chains_run_one_by_one(mass_matrix, how):
    """Bit for bit: each chain keeps its generator, step size, adaptation and mass matrix, and its
    energies are summed on its own row, whatever else is in the batch."""
    settings = HmcSettings(step_size=0.05, n_leapfrog=7, n_warmup=60, n_samples=30, thinning=2,
                           mass_matrix=mass_matrix, checkpoint_every=0)
    fns = {"potential": dict(potential=SCALED), "grad_fn": dict(potential=None, grad_fn=scaled_grad_fn),
           "energy_fn": dict(potential=None, grad_fn=scaled_grad_fn, energy_fn=scaled_energy)}[how]
    if mass_matrix == "ggn":
        fns["metric_fn"] = position_metric
    init = torch.randn(3, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    seeds = [7, 2, 11]
    together = run_hmc_chains(init=init, settings=settings, seeds=seeds, **fns)
    for c, seed in enumerate(seeds):
        alone = run_hmc(init=init[c], settings=settings, seed=seed, **fns)
        assert_same(together[c], alone)
        if mass_matrix != "identity":
            np.testing.assert_array_equal(together[c].inv_mass, alone.inv_mass)
    # the chains really differ, and adapted on their own: distinct step sizes
    assert len({r.step_size for r in together}) == 3
    assert not np.array_equal(together[0].samples, together[1].samples)


def test_wide_chains_together_equal_one_by_one_where_a_batch_reduction_would_not():
    """With 2 threads, summing a [chains, 200k] block over its rows rounds differently from summing
    each row alone (checked below): the kinetic energies must be summed per chain."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        p = torch.randn(2, 200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        batch_sum, row_sums = p.pow(2).sum(-1), torch.stack([r.pow(2).sum() for r in p])
        if torch.equal(batch_sum, row_sums):
            pytest.skip("this machine sums a batch of rows as it sums each row: the test cannot tell")
        settings = HmcSettings(step_size=0.05, n_leapfrog=2, n_warmup=3, n_samples=4, checkpoint_every=0)
        init = torch.randn(2, 200_000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        together = run_hmc_chains(standard_potential, init, settings, seeds=[0, 1])
        for c in range(2):
            assert_same(together[c], run_hmc(standard_potential, init[c], settings, seed=c))
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("mass_matrix", ["diagonal", "ggn"])
@pytest.mark.parametrize("n_saves", [2, 5])  # killed mid adaptation of the metric, or while sampling
def test_killed_batch_of_chains_resumes_bit_identically(tmp_path, monkeypatch, n_saves, mass_matrix):
    settings = HmcSettings(**{**vars(CKPT_SETTINGS), "mass_matrix": mass_matrix, "n_warmup": 40})
    init = torch.stack([torch.full((3,), 2.0), torch.full((3,), -1.0)])
    metric_fn = position_metric if mass_matrix == "ggn" else None

    def run(checkpoint=None):
        return run_hmc_chains(standard_potential, init, settings, seeds=[0, 5], checkpoint=checkpoint,
                              metric_fn=metric_fn)

    reference = run()
    resumed = killed_then_resumed(run, tmp_path / "chains.pt", monkeypatch, n_saves)
    for a, b in zip(resumed, reference):
        assert a.resumed_from == 10 * n_saves
        assert_same(a, b)
        np.testing.assert_array_equal(a.inv_mass, b.inv_mass)


@pytest.mark.parametrize("init, seeds, message", [
    (torch.zeros(2, 3), [1], "one seed per chain"),
    (torch.zeros(2, 3), [1, 1], "must differ"),
    (torch.zeros(3), [1], r"\[chains, dim\]"),
    (torch.zeros(0, 3), [], r"\[chains, dim\]"),
])
def test_bad_batches_of_chains_are_refused(init, seeds, message):
    with pytest.raises(ValueError, match=message):
        run_hmc_chains(standard_potential, init, HmcSettings(n_warmup=1, n_samples=1), seeds=seeds)


def test_a_chain_that_never_moves_is_named_by_its_seed_in_a_batch():
    def potential(x):  # +inf for x1 >= 0.5, except at the second chain's start (1, 1)
        start = (x == 1.0).all(-1)
        return torch.where((x[..., 1] < 0.5) | start, 0.5 * (x ** 2).sum(-1), torch.full_like(x[..., 0], math.inf))

    settings = HmcSettings(step_size=1e-3, n_leapfrog=2, n_warmup=0, adapt_step_size=False, n_samples=5,
                           checkpoint_every=0)
    # the first chain, at (-1, -1), moves freely: it is the second that never leaves its start
    with pytest.raises(FloatingPointError, match=r"HMC \(seed 9\): every one of the 5"):
        run_hmc_chains(potential, torch.tensor([[-1.0, -1.0], [1.0, 1.0]]), settings, seeds=[4, 9])
    ok = run_hmc_chains(potential, torch.tensor([[-1.0, -1.0], [-2.0, -1.0]]), settings, seeds=[4, 9])
    assert all(r.acceptance_rate > 0 for r in ok)


# --- 6. thinning ---------------------------------------------------------------------------


def test_thinning_keeps_every_kth_post_warmup_iteration():
    base = dict(step_size=0.5, n_leapfrog=4, n_warmup=10, checkpoint_every=0)
    every = run_hmc(standard_potential, torch.zeros(2), HmcSettings(n_samples=24, thinning=1, **base), seed=5)
    thinned = run_hmc(standard_potential, torch.zeros(2), HmcSettings(n_samples=8, thinning=3, **base), seed=5)
    assert thinned.samples.shape == (8, 2) and len(thinned.energy) == 8
    assert len(thinned.accepted) == 24
    np.testing.assert_array_equal(thinned.samples, every.samples[2::3])
    np.testing.assert_array_equal(thinned.energy, every.energy[2::3])
    np.testing.assert_array_equal(thinned.accepted, every.accepted)
    assert thinned.step_size == every.step_size


# --- 8. helpers and settings ---------------------------------------------------------------


def test_flatten_unflatten_round_trip_and_gradients():
    like = {"w": torch.randn(3, 4), "b": torch.randn(4), "scale": torch.tensor(2.0)}
    vec = flatten(like)
    assert vec.shape == (17,)
    back = unflatten(vec, like)
    assert list(back) == ["w", "b", "scale"]
    for k in like:
        assert back[k].shape == like[k].shape
        torch.testing.assert_close(back[k], like[k], rtol=0, atol=0)
    leaf = vec.clone().requires_grad_(True)
    (unflatten(leaf, like)["b"].sum() * 2).backward()
    assert leaf.grad[12:16].eq(2).all() and leaf.grad[:12].eq(0).all() and leaf.grad[16] == 0
    with pytest.raises(ValueError, match="17"):
        unflatten(torch.zeros(16), like)


@pytest.mark.parametrize("field, value", [
    ("step_size", 0.0), ("step_size", -1e-3), ("step_size", math.inf), ("n_leapfrog", 0), ("n_leapfrog", 2.5),
    ("n_samples", 0), ("thinning", 0), ("n_warmup", -1), ("n_warmup", 0), ("target_accept", 1.0),
    ("target_accept", 0.0), ("checkpoint_every", -1),
])
def test_bad_settings_are_refused_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        HmcSettings(**{field: value})


def test_no_warmup_is_fine_without_adaptation():
    assert HmcSettings(n_warmup=0, adapt_step_size=False).n_warmup == 0


# --- device efficiency and mixed precision ---------------------------------------------------


class _HostSync(AssertionError):
    pass


@pytest.fixture
def no_host_sync(monkeypatch):
    """Makes every tensor -> Python conversion (the host waiting for the device) raise."""
    def refuse(*_):
        raise _HostSync("a tensor was read back to the host")

    for name in ("__bool__", "__float__", "__int__", "item", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, refuse)


def test_leapfrog_never_reads_the_device_back(no_host_sync):
    """A whole trajectory, including one that turns non-finite half-way, runs without a host sync."""
    x, p = torch.zeros(2, 3), torch.ones(2, 3)
    grad_fn = lambda v: hmc.value_and_grad(nan_potential, v)  # noqa: E731
    u, g = grad_fn(x)
    x1, p1, u1, g1, bad = leapfrog(grad_fn, x, p, g, 0.4, 8)
    assert bad.shape == (2,)


def test_the_metropolis_test_uses_the_exact_energy_when_given():
    """With mixed precision the gradients may be rough and their potential wrong; ``energy_fn`` decides
    acceptance, so a chain whose grad_fn reports garbage energies equals the exact chain."""
    precision = torch.tensor([[2.0, 0.3], [0.3, 1.0]], dtype=torch.float64)
    potential = gaussian_potential(precision)
    s = HmcSettings(step_size=0.6, n_leapfrog=4, n_warmup=20, n_samples=50, checkpoint_every=0)
    exact = run_hmc(potential, torch.zeros(2, dtype=torch.float64), s, seed=1)

    def garbage_energy(v):
        u, g = hmc.value_and_grad(potential, v)
        return torch.zeros_like(u) + 123.0 * torch.rand(()), g

    wrong = run_hmc(None, torch.zeros(2, dtype=torch.float64), s, seed=1, grad_fn=garbage_energy)
    fixed = run_hmc(None, torch.zeros(2, dtype=torch.float64), s, seed=1, grad_fn=garbage_energy,
                    energy_fn=potential)
    np.testing.assert_array_equal(fixed.samples, exact.samples)
    np.testing.assert_array_equal(fixed.energy, exact.energy)
    assert not np.array_equal(wrong.accepted, exact.accepted)


def test_a_chain_whose_every_proposal_diverges_is_an_error():
    """It never leaves its start: no posterior sample, so no artifact."""
    s = HmcSettings(step_size=50.0, n_leapfrog=5, n_warmup=0, n_samples=20, adapt_step_size=False,
                    checkpoint_every=0)
    with pytest.raises(FloatingPointError, match="every one of the 20 post-warm-up proposals diverged"):
        run_hmc(wall_potential, torch.zeros(2), s, seed=0)


# --- 6. a diagonal mass matrix, adapted in warm-up -------------------------------------------

SCALES = torch.tensor(np.geomspace(0.01, 10.0, 6), dtype=torch.float64)  # standard deviations, 1000x apart


def test_adaptation_windows_are_stans():
    assert hmc.adaptation_windows(1000) == [(75, 100), (100, 150), (150, 250), (250, 450), (450, 950)]
    assert hmc.adaptation_windows(500) == [(75, 100), (100, 150), (150, 250), (250, 450)]
    assert hmc.adaptation_windows(100) == [(15, 90)]  # short warm-up: 15% / 75% / 10%


def test_kernel_with_any_diagonal_mass_matrix_leaves_a_gaussian_invariant():
    """Exact draws of N(0, diag(SCALES^2)) stay exact under transitions with a (wrong) diagonal metric."""
    chains, k = 4000, 4
    g = torch.Generator().manual_seed(2)
    potential = gaussian_potential(torch.diag(SCALES ** -2))

    def grad_fn(v):
        return value_and_grad(potential, v)

    x0 = torch.randn(chains, len(SCALES), generator=g, dtype=torch.float64) * SCALES
    inv_mass = SCALES ** 2 * torch.tensor([0.5, 2.0, 1.0, 0.7, 1.5, 1.0], dtype=torch.float64)
    x, n_accepted = x0, 0
    u, grad = grad_fn(x)
    for _ in range(k):
        step = hmc_step(grad_fn, x, u, grad, 0.9, 4, g, inv_mass=inv_mass)
        x, u, grad = step.x, step.u, step.grad
        n_accepted += int(step.accepted.sum())
    assert 0.3 < n_accepted / (k * chains) < 0.98
    z = (x / SCALES).numpy()  # standardised: each coordinate N(0, 1)
    assert np.all(np.abs(z.mean(0)) < 4.5 / np.sqrt(chains))
    assert np.all(np.abs(z.var(0) - 1) < 5 * np.sqrt(2 / chains))
    # the identity metric at this step size is unstable on the narrow coordinates: the metric matters
    step = hmc_step(grad_fn, x0, *grad_fn(x0), 0.9, 4, g)
    assert step.accepted.double().mean() < 0.05


def adapted_chain(mass_matrix, seed=0):
    settings = HmcSettings(step_size=0.01, n_leapfrog=3, n_warmup=600, n_samples=400, mass_matrix=mass_matrix,
                           checkpoint_every=0)
    return run_hmc(gaussian_potential(torch.diag(SCALES ** -2)), torch.zeros(len(SCALES), dtype=torch.float64),
                   settings, seed=seed)


def test_adapted_diagonal_mass_matrix_learns_the_scales_and_mixes_faster():
    diag, ident = adapted_chain("diagonal"), adapted_chain("identity")
    # the metric is the posterior's variance, learned across six orders of magnitude (the widest
    # coordinate, sd 10 from a start at 0, is the last to be explored: within 10x)
    ratio = diag.inv_mass / SCALES.numpy() ** 2
    assert np.all((ratio > 0.1) & (ratio < 2.0)), ratio
    assert np.all((ratio[:-1] > 0.5) & (ratio[:-1] < 2.0)), ratio
    z = diag.samples / SCALES.numpy()
    ess = effective_sample_size(z[None])  # [chains=1, draws, dim] -> per coordinate
    assert np.all(np.abs(z.mean(0)) < 4 / np.sqrt(ess)), (z.mean(0), ess)
    assert np.all(np.abs(z.var(0) - 1) < 0.35), z.var(0)
    # with the identity metric the step size is set by the narrowest scale: the wide ones barely move
    ess_identity = effective_sample_size((ident.samples / SCALES.numpy())[None])
    assert np.median(ess) > 10 * np.median(ess_identity), (ess, ess_identity)
    assert ident.inv_mass is None


def test_ggn_metric_is_taken_at_each_windows_start_and_end_and_mixes_like_the_true_scales():
    """mass_matrix 'ggn': the metric comes from metric_fn at the position, at the bounds of Stan's
    windows, and the step size is adapted afresh after each. Given the exact variances (a Gaussian's
    Laplace approximation is exact), every scale mixes, and the kept metric is that function's."""
    calls = []

    def exact_variances(xb):
        calls.append(xb.clone())
        return (SCALES ** 2).expand_as(xb).clone()

    settings = HmcSettings(step_size=0.01, n_leapfrog=3, n_warmup=600, n_samples=400, mass_matrix="ggn",
                           checkpoint_every=0)
    result = run_hmc(gaussian_potential(torch.diag(SCALES ** -2)), torch.zeros(len(SCALES), dtype=torch.float64),
                     settings, seed=0, metric_fn=exact_variances)
    bounds = sorted({b for w in hmc.adaptation_windows(600) for b in w})
    assert len(calls) == len(bounds) == 5 and all(c.shape == (1, len(SCALES)) for c in calls)
    np.testing.assert_array_equal(result.inv_mass, SCALES.numpy() ** 2)
    z = result.samples / SCALES.numpy()
    ess = effective_sample_size(z[None])
    assert np.all(np.abs(z.mean(0)) < 4 / np.sqrt(ess)), (z.mean(0), ess)
    assert np.all(np.abs(z.var(0) - 1) < 0.35), z.var(0)
    ess_identity = effective_sample_size((adapted_chain("identity").samples / SCALES.numpy())[None])
    assert np.median(ess) > 10 * np.median(ess_identity), (ess, ess_identity)


@pytest.mark.parametrize("metric_fn, message", [
    (None, "metric_fn"),
    (lambda xb: torch.ones(xb.shape[1]), r"\(1, 3\) tensor"),
    (lambda xb: -torch.ones_like(xb), "non-positive"),
    (lambda xb: torch.full_like(xb, float("nan")), "non-finite"),
])
def test_a_missing_or_bad_ggn_metric_is_refused(metric_fn, message):
    settings = HmcSettings(step_size=0.1, n_leapfrog=2, n_warmup=20, n_samples=2, mass_matrix="ggn",
                           checkpoint_every=0)
    with pytest.raises(ValueError, match=message):
        run_hmc(standard_potential, torch.zeros(3), settings, seed=0, metric_fn=metric_fn)


def test_a_run_killed_mid_window_resumes_bit_identically(tmp_path, monkeypatch):
    settings = HmcSettings(step_size=0.3, n_leapfrog=5, n_warmup=20, n_samples=15, thinning=2, checkpoint_every=10,
                           mass_matrix="diagonal")  # slow window [3, 18): killed after iteration 10
    reference = sample(settings=settings)
    real_save = kill_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        sample(tmp_path / "hmc.pt", settings=settings)
    monkeypatch.setattr(resume, "save_checkpoint", real_save)
    resumed = sample(tmp_path / "hmc.pt", settings=settings)
    assert resumed.resumed_from == 10
    assert_same(resumed, reference)
    np.testing.assert_array_equal(resumed.inv_mass, reference.inv_mass)
    assert not np.array_equal(reference.samples, sample().samples)  # the metric changed the chain


# --- 5c. what a GPU would change (CPU stand-ins) --------------------------------------------


@pytest.mark.parametrize("how", ["potential", "grad_fn", "energy_fn"])
def test_each_chain_is_evaluated_on_a_copy_of_its_row_not_a_view_at_an_offset(how, monkeypatch):
    """cuBLASLt and vectorised reductions pick kernels by their input's alignment, so a chain's row
    seen at its offset in the batch could round differently from the chain alone on a GPU: every
    per-chain function (potential, gradient, energy, kinetic energy) gets a fresh copy at offset 0."""
    offsets = []

    def recording(fn):
        def wrapped(v):
            offsets.append(v.storage_offset())
            return fn(v)
        return wrapped

    fns = {"potential": dict(potential=recording(SCALED)),
           "grad_fn": dict(potential=None, grad_fn=recording(scaled_grad_fn)),
           "energy_fn": dict(potential=None, grad_fn=scaled_grad_fn, energy_fn=recording(scaled_energy))}[how]
    real_hamiltonian = hmc.hamiltonian

    def hamiltonian(u, p, inv_mass=None):
        offsets.append(p.storage_offset())
        return real_hamiltonian(u, p, inv_mass)

    monkeypatch.setattr(hmc, "hamiltonian", hamiltonian)
    settings = HmcSettings(step_size=0.05, n_leapfrog=3, n_warmup=2, n_samples=2, checkpoint_every=0)
    init = torch.randn(3, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    run_hmc_chains(init=init, settings=settings, seeds=[7, 2, 11], **fns)
    assert len(offsets) > 20 and set(offsets) == {0}


def test_a_checkpoint_made_on_another_gpu_model_or_the_cpu_is_not_resumed(tmp_path, monkeypatch, caplog):
    """Another device rounds differently: a checkpoint resumed there would not match an uninterrupted
    run on either. The fingerprint holds the device and GPU model (not the index: another GPU of the
    same model computes the same)."""
    ckpt = tmp_path / "hmc.pt"
    monkeypatch.setattr(resume, "device_identity", lambda device: "cuda (NVIDIA A100-SXM4-80GB)")
    real_save = kill_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        sample(ckpt)
    monkeypatch.setattr(resume, "save_checkpoint", real_save)
    saved = ckpt.read_bytes()
    for other in ("cuda (NVIDIA H200)", "cpu"):
        monkeypatch.setattr(resume, "device_identity", lambda device, other=other: other)
        ckpt.write_bytes(saved)
        with caplog.at_level(logging.WARNING, logger="workflow.inference.hmc_sampler"):
            caplog.clear()
            assert sample(ckpt).resumed_from == 0
        assert "ignoring checkpoint" in caplog.text
    monkeypatch.setattr(resume, "device_identity", lambda device: "cuda (NVIDIA A100-SXM4-80GB)")
    ckpt.write_bytes(saved)
    assert sample(ckpt).resumed_from == 20  # the same model resumes
