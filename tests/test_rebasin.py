import numpy as np
import pytest
import torch

from workflow.alignment.permutations import apply_permutation, compose, number_of_transpositions, random_permutations
from workflow.architectures.mlp import hidden_activations
from workflow.alignment.rebasing import activation_matching, draw_diagnostics, fit_diagonal_gaussian, rebase

from .conftest import make_mlp


def permuted_copies(n=8, hidden=(12, 10), noise=0.0, seed=0):
    model, spec, params = make_mlp(hidden)
    rng = np.random.default_rng(seed)
    sizes = spec.group_sizes(params)
    copies = []
    for i in range(n):
        p = {k: v + noise * rng.standard_normal(v.shape) for k, v in params.items()}
        copies.append(apply_permutation(p, spec, random_permutations(sizes, rng)) if i else p)
    return model, spec, params, {k: np.stack([c[k] for c in copies]) for k in params}


@pytest.mark.parametrize("reference", ["first", "iterated"])
def test_rebasin_of_permuted_copies_gives_zero_sigma(reference):
    _, spec, params, samples = permuted_copies()
    result = rebase(samples, spec, reference=reference)
    mean_r, std_r = fit_diagonal_gaussian(result.aligned)
    mean_d, std_d = fit_diagonal_gaussian(samples)
    for k in params:
        np.testing.assert_allclose(std_r[k], 0.0, atol=1e-12)
        np.testing.assert_allclose(mean_r[k], params[k], atol=1e-12)
    permuted = [k for k in params if k != "out.bias"]
    assert all(std_d[k].mean() > 0.01 for k in permuted)  # q_d smears the units together


def test_activation_matching_recovers_permuted_copies():
    model, spec, params, samples = permuted_copies(n=4)
    x = torch.randn(300, 1, 4, 4)
    result = rebase(samples, spec, reference="first", matching="activation",
                    activations=lambda p: hidden_activations(model, p, x))
    _, std_r = fit_diagonal_gaussian(result.aligned)
    for k in params:
        np.testing.assert_allclose(std_r[k], 0.0, atol=1e-12)
    perms = activation_matching(hidden_activations(model, params, x), hidden_activations(model, params, x))
    assert all(np.array_equal(p, np.arange(len(p))) for p in perms.values())


def same_basin_fraction(truth, found) -> float:
    """Fraction of (sample, unit) pairs in the common basin: sample i was permuted by truth[i] and
    aligned by found[i], so compose(truth[i], found[i]) is one relabelling for every i when all
    samples land in the same basin; counts the units that agree with the most common relabelling."""
    agree = total = 0
    for g in truth[0]:
        comp = np.array([compose(t[g], f[g]) for t, f in zip(truth, found)])
        for unit in comp.T:
            agree += np.unique(unit, return_counts=True)[1].max()
            total += len(unit)
    return agree / total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_iterated_reference_puts_more_units_in_one_basin_than_the_first_sample(seed):
    """Noise as large as the differences between units: matching each sample to one noisy sample
    (first) swaps some units; matching to the leave-one-out mean of the aligned others (iterated)
    averages the noise down and fixes them."""
    _, spec, params = make_mlp((16,))
    rng = np.random.default_rng(seed)
    params = {k: rng.standard_normal(v.shape) for k, v in params.items()}
    truth, copies = [], []
    for _ in range(12):
        truth.append(random_permutations(spec.group_sizes(params), rng))
        noisy = {k: v + rng.standard_normal(v.shape) for k, v in params.items()}
        copies.append(apply_permutation(noisy, spec, truth[-1]))
    samples = {k: np.stack([c[k] for c in copies]) for k in params}
    first = rebase(samples, spec, reference="first")
    iterated = rebase(samples, spec, reference="iterated")
    assert iterated.changed[0] > 0 and iterated.changed[-1] == 0  # the reference updates changed matches
    assert same_basin_fraction(truth, iterated.perms) > same_basin_fraction(truth, first.perms) + 0.02
    spread = lambda r: sum(float(s.sum()) for s in fit_diagonal_gaussian(r.aligned)[1].values())  # noqa: E731
    assert spread(iterated) < 0.99 * spread(first)


def test_rebasin_refuses_unknown_options_and_single_samples():
    _, spec, _, samples = permuted_copies(n=2)
    with pytest.raises(ValueError, match="allowed: first, iterated"):
        rebase(samples, spec, reference="mean")
    with pytest.raises(ValueError, match="hidden activations"):
        rebase(samples, spec, matching="activation")
    with pytest.raises(ValueError, match="at least 2"):
        fit_diagonal_gaussian({k: v[:1] for k, v in samples.items()})


def test_iterated_reference_leaves_the_sample_out_of_its_own_reference(monkeypatch):
    """MergeMany's leave-one-out: after the first pass, sample i is matched to the mean of the other
    aligned samples, never to a mean that contains itself."""
    import workflow.alignment.matching as matching_module
    from workflow.alignment.permutations import apply_permutation

    _, spec, _, samples = permuted_copies(n=4, noise=0.05, seed=5)
    calls = []
    real = matching_module.weight_matching

    def spy(ref, sample, spec_, **kw):
        calls.append((ref, sample))
        return real(ref, sample, spec_, **kw)

    monkeypatch.setattr(matching_module, "weight_matching", spy)  # the registry looks it up when used
    result = rebase(samples, spec, reference="iterated", max_iterations=2)
    n = 4
    assert len(calls) == 2 * n
    first_perms = [real(calls[0][0], calls[i][1], spec, seed=i).perms for i in range(n)]
    aligned = [apply_permutation(calls[i][1], spec, first_perms[i]) for i in range(n)]
    for i in range(n):
        ref, sample = calls[n + i]
        others = {k: np.mean([aligned[j][k] for j in range(n) if j != i], axis=0) for k in ref}
        with_self = {k: np.mean([aligned[j][k] for j in range(n)], axis=0) for k in ref}
        for k in ref:
            np.testing.assert_allclose(ref[k], others[k], atol=1e-12)
        assert any(not np.allclose(ref[k], with_self[k]) for k in ref)
    assert result.iterations == 2


def test_fitted_gaussian_has_the_sample_mean_and_the_unbiased_standard_deviation():
    """A survivor of the mutation run (ddof 1 -> 0) asked for this: q_d / q_r use the unbiased variance."""
    samples = {"w": np.array([[1.0, 2.0], [3.0, 2.0], [5.0, 8.0]])}
    mean, std = fit_diagonal_gaussian(samples)
    np.testing.assert_allclose(mean["w"], [3.0, 4.0])
    np.testing.assert_allclose(std["w"], [2.0, np.sqrt(12.0)])  # sum of squares / (3 - 1)


@pytest.mark.parametrize("cost", ["inner", "correlation"])
def test_activation_matching_maximises_its_own_cost_by_brute_force(cost, rng):
    """Units with different scales and offsets: the inner-product cost (Xiao et al.) and the correlation
    cost can disagree; each must find the best permutation of its own objective."""
    import itertools

    n = 5
    a = rng.standard_normal((40, n)) * rng.uniform(0.2, 5.0, n) + rng.uniform(-3, 3, n)
    b = rng.standard_normal((40, n)) * rng.uniform(0.2, 5.0, n) + rng.uniform(-3, 3, n)

    def score(p):
        x, y = a, b[:, list(p)]
        if cost == "correlation":
            x, y = (x - x.mean(0)) / x.std(0), (y - y.mean(0)) / y.std(0)
        return float(np.sum(x * y))

    best = max(itertools.permutations(range(n)), key=score)
    perm = activation_matching({"P0": a}, {"P0": b}, cost=cost)["P0"]
    assert score(perm) == pytest.approx(score(best), rel=1e-12)


def test_the_inner_product_and_correlation_costs_differ():
    """A unit with a large mean but no variation matches by inner product, not by correlation."""
    x = np.linspace(-1, 1, 50)
    a = np.stack([x, 10 + 0.01 * np.sin(7 * x)], 1)
    b = np.stack([10 + 0.01 * x, np.sin(7 * x)], 1)  # b's unit 0 is a's unit 1 by magnitude, unit 0 by shape
    assert list(activation_matching({"g": a}, {"g": b}, cost="inner")["g"]) == [1, 0]
    assert list(activation_matching({"g": a}, {"g": b}, cost="correlation")["g"]) == [0, 1]
    with pytest.raises(ValueError, match="allowed: inner, correlation"):
        activation_matching({"g": a}, {"g": b}, cost="cosine")


def test_draw_diagnostics_count_transpositions_to_the_reference_and_within_the_chain():
    ident, swap01, cycle = np.arange(4), np.array([1, 0, 2, 3]), np.array([1, 2, 0, 3])
    perms = [{"P0": ident, "P1": ident[:3]}, {"P0": swap01, "P1": ident[:3]},  # chain a
             {"P0": cycle, "P1": np.array([0, 2, 1])}, {"P0": cycle, "P1": np.array([0, 2, 1])}]  # chain b
    rows = draw_diagnostics(perms, ["a", "a", "b", "b"])
    assert [r["not_to_reference"] for r in rows] == [0, 1, 3, 3]
    assert [r["not_to_chain_start"] for r in rows] == [0, 1, 0, 0]  # chain b: one permutation for both draws
    assert [r["draw_in_chain"] for r in rows] == [0, 1, 0, 1] and rows[0]["units"] == 7
    with pytest.raises(ValueError, match="chain labels"):
        draw_diagnostics(perms, ["a"])


@pytest.mark.parametrize("matching", ["weight", "activation", "correlation"])
def test_rebasin_leaves_one_chains_draws_together(matching, rng):
    """Two 'chains' of noisy copies, the second planted in a permuted basin: every draw of a chain gets
    the same permutation (NoT 0 to its chain's start); the first chain's draws are left as they are
    and the second's are moved by the planted permutation."""
    model, spec, params = make_mlp((10,))
    planted = random_permutations(spec.group_sizes(params), rng)
    draws = []
    for chain in range(2):
        for _ in range(4):
            noisy = {k: v + 0.01 * rng.standard_normal(v.shape) for k, v in params.items()}
            draws.append(apply_permutation(noisy, spec, planted) if chain else noisy)
    samples = {k: np.stack([d[k] for d in draws]) for k in params}
    x = torch.randn(200, 1, 4, 4)
    result = rebase(samples, spec, reference="first", matching=matching,
                    activations=lambda p: hidden_activations(model, p, x))
    rows = draw_diagnostics(result.perms, ["0"] * 4 + ["1"] * 4)
    assert all(r["not_to_chain_start"] == 0 for r in rows)
    assert [r["not_to_reference"] for r in rows[:4]] == [0] * 4
    assert all(r["not_to_reference"] == sum(number_of_transpositions(p) for p in planted.values()) > 0
               for r in rows[4:])


def test_unit_correlation_is_one_for_the_same_units_and_follows_a_permutation(rng):
    """No matching involved: a draw keeps its units (1), a unit-wise permuted copy does not, and the
    permutation undone restores 1; fresh random weights give about 0."""
    from workflow.alignment.rebasing import unit_correlation

    _, spec, params = make_mlp((40, 30))
    params = {k: rng.standard_normal(v.shape) for k, v in params.items()}
    assert unit_correlation(params, params, spec) == pytest.approx(1.0)
    perms = random_permutations(spec.group_sizes(params), rng)
    moved = apply_permutation(params, spec, perms)
    assert abs(unit_correlation(params, moved, spec)) < 0.3
    from workflow.alignment.permutations import invert

    assert unit_correlation(params, apply_permutation(moved, spec, {g: invert(p) for g, p in perms.items()}),
                            spec) == pytest.approx(1.0)
    fresh = {k: rng.standard_normal(v.shape) for k, v in params.items()}
    assert abs(unit_correlation(params, fresh, spec)) < 0.2


def test_activation_matching_refuses_more_points_than_the_memory_budget_holds():
    """Activations of all 8,000 MNIST t10k examples of a ResNet20 took 19 GB and were killed for memory;
    the job now refuses before computing them, naming the setting and how many points fit."""
    from workflow.jobs.rebasin import activation_points

    def hook(model, params, x):  # 1 MiB of float64 activations per example
        return {"g0": np.zeros((len(x), 2**17))}

    x = np.zeros((8000, 3))
    assert activation_points(hook, None, {}, x, None, 20000, "activation") == 8000
    assert activation_points(hook, None, {}, x, 300, 1024, "activation") == 300
    with pytest.raises(ValueError, match=r"8000 examples take about 16,000 MB .* compute.memory_mb 1024; "
                                         r"set rebasin.activation_points to at most 512"):
        activation_points(hook, None, {}, x, None, 1024, "activation")


@pytest.mark.parametrize("seed", range(4))
def test_the_iterated_reference_settles_one_sample_at_a_time_and_swings_all_at_once(seed):
    """Three unrelated networks: matched one after another (MergeMany) the leave-one-out reference
    reaches a fixed point in a few updates; matched all at once against the previous update, every
    sample follows the others' old frame and all of them change at every update, without end."""
    from workflow.architectures import build_model

    model, spec = build_model("mlp", (1, 4, 4), 5, hidden=[12, 10])
    rng = np.random.default_rng(seed)
    samples = {k: rng.standard_normal((3, *v.shape)) for k, v in model.state_dict().items()}
    settled = rebase(samples, spec, reference="iterated")
    assert settled.changed[-1] == 0 and settled.iterations < 10
    swinging = rebase(samples, spec, reference="iterated", sequential=False)
    assert swinging.changed[-1] == 3 and swinging.iterations == 10


def test_a_second_channel_joins_the_matching_with_its_own_leave_one_out_reference():
    """Means and standard deviations of Gaussians permuted alike: with the standard deviations as a
    second channel the rebasin still undoes every planted permutation, and it refuses a second channel
    for matchers that compare activations."""
    _, spec, params, means = permuted_copies(n=4, seed=3)
    rng = np.random.default_rng(9)
    base_std = {k: np.exp(rng.standard_normal(v.shape)) for k, v in params.items()}
    result0 = rebase(means, spec, reference="iterated")
    stds = {k: np.stack([apply_permutation(base_std, spec, {g: np.argsort(p) for g, p in perms.items()})[k]
                         for perms in result0.perms]) for k in params}
    result = rebase(means, spec, reference="iterated", extra=stds)
    for i, perms in enumerate(result.perms):
        aligned_std = apply_permutation({k: v[i] for k, v in stds.items()}, spec, perms)
        for k in params:
            np.testing.assert_allclose(aligned_std[k], base_std[k], atol=1e-12)
            np.testing.assert_allclose(result.aligned[k][i], params[k], atol=1e-12)
    with pytest.raises(ValueError, match="cannot align a second channel"):
        rebase(means, spec, matching="activation", activations=lambda p: {}, extra=stds)
