import itertools

import numpy as np
import pytest
import torch

from workflow.architectures import build_model
from workflow.alignment.permutations import (apply_permutation, compose, count_cycles, expected_not_uniform, invert,
                                   is_permutation, number_of_transpositions, random_permutations,
                                   random_transpositions)
from workflow.evaluation.predict import sample_log_probs, to_torch

from .conftest import make_mlp


@pytest.mark.parametrize("hidden", [(7,), (16, 12), (9, 5, 11)])
@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu", "sigmoid"])
def test_permuted_mlp_computes_the_same_function(hidden, activation, rng):
    model, spec, params = make_mlp(hidden, activation)
    x = torch.randn(50, 1, 4, 4)
    sizes = spec.group_sizes(params)
    assert list(sizes.values()) == list(hidden)
    base = sample_log_probs(model, to_torch({k: v[None] for k, v in params.items()}), x)
    for _ in range(5):
        perms = random_permutations(sizes, rng)
        permuted = apply_permutation(params, spec, perms)
        assert any(not np.array_equal(permuted[k], params[k]) for k in params)
        out = sample_log_probs(model, to_torch({k: v[None] for k, v in permuted.items()}), x)
        torch.testing.assert_close(out, base, rtol=1e-5, atol=1e-5)


def test_each_group_alone_is_an_invariance(rng):
    """Permuting a single group (others identity) must also leave the function unchanged."""
    model, spec, params = make_mlp((6, 6, 6))
    x = torch.randn(20, 1, 4, 4)
    base = model(x)
    sizes = spec.group_sizes(params)
    for g in spec.groups:
        perms = {g: rng.permutation(sizes[g])}
        permuted = to_torch(apply_permutation(params, spec, perms))
        out = torch.func.functional_call(model, permuted, (x,))
        torch.testing.assert_close(out, base, rtol=1e-5, atol=1e-5)


def test_permutation_with_batch_dims_acts_per_sample(rng):
    _, spec, params = make_mlp((5,))
    stacked = {k: np.stack([v, 2 * v, 3 * v])[None] for k, v in params.items()}  # [chain=1, draw=3, ...]
    perms = random_permutations(spec.group_sizes(params), rng)
    out = apply_permutation(stacked, spec, perms, batch_dims=2)
    single = apply_permutation(params, spec, perms)
    for k in params:
        np.testing.assert_array_equal(out[k][0, 2], 3 * single[k])


def test_inverse_permutation_restores_parameters(rng):
    _, spec, params = make_mlp((8, 8))
    perms = random_permutations(spec.group_sizes(params), rng)
    back = apply_permutation(apply_permutation(params, spec, perms), spec, {g: invert(p) for g, p in perms.items()})
    for k in params:
        np.testing.assert_array_equal(back[k], params[k])


def test_spec_names_every_hidden_parameter():
    model, spec = build_model("mlp", (1, 3, 3), 4, hidden=[5, 6])
    permuted = {p for members in spec.groups.values() for p, _ in members}
    assert permuted == {n for n, _ in model.named_parameters()} - {"out.bias"}


@pytest.mark.parametrize("perm, expected", [
    ([0, 1, 2, 3], 0),            # identity
    ([1, 0, 2, 3], 1),            # one swap
    ([1, 2, 0], 2),               # a 3-cycle is two transpositions
    ([1, 0, 3, 2], 2),            # two disjoint swaps
    ([3, 0, 1, 2], 3),            # a 4-cycle
    ([2, 3, 0, 1, 5, 4], 3),      # (0 2)(1 3)(4 5)
    ([0], 0),
])
def test_not_hand_checked(perm, expected):
    assert number_of_transpositions(np.array(perm)) == expected


def test_not_is_n_minus_cycles_and_minimal(rng):
    for n in (1, 2, 5, 30, 200):
        perm = rng.permutation(n)
        cycles = count_cycles(perm)
        assert number_of_transpositions(perm) == n - cycles
        # composing with one transposition changes NoT by exactly one
        i, j = rng.choice(n, 2, replace=False) if n > 1 else (0, 0)
        if n > 1:
            swapped = perm.copy()
            swapped[[i, j]] = swapped[[j, i]]
            assert abs(number_of_transpositions(swapped) - number_of_transpositions(perm)) == 1


def test_not_of_small_permutations_by_exhaustion():
    """NoT = fewest adjacent-or-not swaps to sort, checked by brute force breadth-first search for n <= 5."""
    for n in range(1, 6):
        dist = {tuple(range(n)): 0}
        frontier = [tuple(range(n))]
        while frontier:
            nxt = []
            for p in frontier:
                for i, j in itertools.combinations(range(n), 2):
                    q = list(p)
                    q[i], q[j] = q[j], q[i]
                    q = tuple(q)
                    if q not in dist:
                        dist[q] = dist[p] + 1
                        nxt.append(q)
            frontier = nxt
        for p, d in dist.items():
            assert number_of_transpositions(np.array(p)) == d


def test_expected_not_of_uniform_permutations(rng):
    n, draws = 50, 4000
    values = [number_of_transpositions(rng.permutation(n)) for _ in range(draws)]
    # Var(#cycles) = H_n - H_n^(2) < H_n; 5 standard errors
    hn = np.sum(1.0 / np.arange(1, n + 1))
    assert abs(np.mean(values) - expected_not_uniform(n)) < 5 * np.sqrt(hn / draws)


def test_not_refuses_non_permutations():
    with pytest.raises(ValueError, match="not a permutation"):
        number_of_transpositions(np.array([0, 0, 1]))


def test_compose_is_applying_one_after_the_other(rng):
    _, spec, params = make_mlp()
    sizes = spec.group_sizes(params)
    p, q = random_permutations(sizes, rng), random_permutations(sizes, rng)
    twice = apply_permutation(apply_permutation(params, spec, p), spec, q)
    once = apply_permutation(params, spec, {g: compose(p[g], q[g]) for g in p})
    for k in params:
        np.testing.assert_array_equal(twice[k], once[k])
    assert all(number_of_transpositions(compose(p[g], invert(p[g]))) == 0 for g in p)


@pytest.mark.parametrize("k", [0, 1, 5, 40])
def test_k_random_transpositions_have_at_most_k_and_the_same_parity(k, rng):
    sizes = {"P0": 16, "P1": 12}
    for _ in range(20):
        perms = random_transpositions(sizes, k, rng)
        total = sum(number_of_transpositions(p) for p in perms.values())
        assert total <= k and (k - total) % 2 == 0
        assert all(is_permutation(p) and len(p) == sizes[g] for g, p in perms.items())


def test_single_transpositions_fall_in_groups_by_their_pair_counts(rng):
    sizes = {"big": 30, "small": 4}  # 435 vs 6 pairs
    hits = sum(number_of_transpositions(random_transpositions(sizes, 1, rng)["small"]) for _ in range(2000))
    assert hits / 2000 == pytest.approx(6 / 441, abs=0.01)
    with pytest.raises(ValueError, match=">= 0"):
        random_transpositions(sizes, -1, rng)


# ---------------------------------------------------------------- properties (Hypothesis)

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

perm_of = st.integers(1, 60).flatmap(lambda n: st.permutations(range(n)).map(np.array))
same_size_perms = st.integers(1, 60).flatmap(
    lambda n: st.tuples(*[st.permutations(range(n)).map(np.array)] * 3))


def swaps_to_sort(perm) -> int:
    """Transpositions selection sort needs to turn ``perm`` into the identity: an independent NoT."""
    p, swaps = list(perm), 0
    for i in range(len(p)):
        while p[i] != i:
            j = p[i]
            p[i], p[j] = p[j], p[i]
            swaps += 1
    return swaps


@given(same_size_perms)
def test_compose_and_invert_are_inverse(perms):
    p, q, r = perms
    identity = np.arange(len(p))
    np.testing.assert_array_equal(compose(p, invert(p)), identity)
    np.testing.assert_array_equal(compose(invert(p), p), identity)
    np.testing.assert_array_equal(invert(invert(p)), p)
    np.testing.assert_array_equal(invert(compose(p, q)), compose(invert(q), invert(p)))
    np.testing.assert_array_equal(compose(compose(p, q), r), compose(p, compose(q, r)))
    # compose means "apply first, then": taking new[i] = old[perm[i]] twice
    x = np.arange(len(p)) * 10 + 3
    np.testing.assert_array_equal(x[p][q], x[compose(p, q)])


@given(perm_of)
def test_not_is_n_minus_cycles_and_the_fewest_transpositions(p):
    assert number_of_transpositions(p) == len(p) - count_cycles(p) == swaps_to_sort(p)
    assert number_of_transpositions(invert(p)) == number_of_transpositions(p)
    assert (number_of_transpositions(p) == 0) == np.array_equal(p, np.arange(len(p)))


@given(same_size_perms)
def test_not_is_subadditive_under_composition(perms):
    p, q, _ = perms
    assert number_of_transpositions(compose(p, q)) <= number_of_transpositions(p) + number_of_transpositions(q)
    # and a metric's triangle inequality: d(p, r) = NoT(p^-1 r)
    d = lambda a, b: number_of_transpositions(compose(invert(a), b))  # noqa: E731
    assert d(p, perms[2]) <= d(p, q) + d(q, perms[2])


mlp_shapes = st.tuples(st.lists(st.integers(1, 12), min_size=1, max_size=4), st.integers(2, 6),
                       st.integers(0, 2 ** 31 - 1))


@settings(max_examples=40, deadline=None)
@given(mlp_shapes)
def test_applying_a_permutation_then_its_inverse_is_the_identity_on_every_parameter(case):
    hidden, n_classes, seed = case
    _, spec = build_model("mlp", (1, 2, 3), n_classes, hidden=hidden)
    rng = np.random.default_rng(seed)
    params = {k: rng.standard_normal(v.shape) for k, v in build_model("mlp", (1, 2, 3), n_classes,
                                                                         hidden=hidden)[0].state_dict().items()}
    perms = random_permutations(spec.group_sizes(params), rng)
    there = apply_permutation(params, spec, perms)
    back = apply_permutation(there, spec, {g: invert(p) for g, p in perms.items()})
    for k in params:
        np.testing.assert_array_equal(back[k], params[k])
    # batched (chain, draw) copies permute the same way, leading axes left alone
    stacked = {k: np.stack([v, 2 * v])[:, None] for k, v in params.items()}
    moved = apply_permutation(stacked, spec, perms, batch_dims=2)
    for k in params:
        np.testing.assert_array_equal(moved[k][1, 0], 2 * there[k])


def test_spec_check_counts_axes_after_the_batch_dims():
    """A survivor of the mutation run asked for this: an axis that exists only among the leading
    (chain, draw) axes is not a parameter axis."""
    from workflow.alignment.permutations import PermutationSpec

    spec = PermutationSpec({"P": (("w", 1),)})
    spec.check({"w": np.zeros((3, 4))})
    spec.check({"w": np.zeros((2, 5, 3, 4))}, batch_dims=2)
    with pytest.raises(ValueError, match="has no axis 1"):
        spec.check({"w": np.zeros((2, 5, 3))}, batch_dims=2)


def test_the_induced_permutation_strikes_the_left_out_items_from_the_cycles():
    from workflow.alignment.permutations import induced_permutation

    perm = np.array([1, 2, 3, 0, 5, 4])  # cycles (0 1 2 3)(4 5)
    keep = np.array([True, False, True, True, False, False])
    # (0 1 2 3) without 1 is (0 2 3) on the kept items 0, 2, 3 -> labels 0, 1, 2; (4 5) is gone
    assert induced_permutation(perm, keep).tolist() == [1, 2, 0]
    assert number_of_transpositions(induced_permutation(perm, keep)) == 2
    assert induced_permutation(perm, np.ones(6, bool)).tolist() == perm.tolist()
    # a transposition of two left-out units (dead units swapped) counts nothing
    assert number_of_transpositions(induced_permutation(np.array([0, 2, 1]), [True, False, False])) == 0
    with pytest.raises(ValueError, match="shape"):
        induced_permutation(perm, [True])
