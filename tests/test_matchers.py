"""Every matcher of the registry (workflow/alignment/matchers.py): exact recovery of a planted
permutation with one hidden layer, an objective that never decreases where the method guarantees
it, and an aligned network that computes the same function (MLP and ResNet20)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from workflow.alignment import matchers
from workflow.alignment.matching import checked_channels, objective
from workflow.alignment.permutations import apply_permutation, invert, random_permutations
from workflow.alignment.sinkhorn import sinkhorn, sinkhorn_matching, soft_permute
from workflow.architectures import build_model, hook
from workflow.config import ConfigError, load_schema, validate_config
from workflow.evaluation.predict import to_torch

from .conftest import make_mlp

X = torch.randn(300, 1, 4, 4, generator=torch.Generator().manual_seed(0))


def run_matcher(name, model, architecture, a, b, spec, x=X, **keywords):
    m = matchers.get(name)
    if m.compares == matchers.ACTIVATIONS:
        acts = hook(architecture, "hidden_activations")
        return m.match(acts(model, a, x), acts(model, b, x))
    if m.compares == matchers.LOSS:  # trained on labels of A's own predictions
        with torch.no_grad():
            y = torch.func.functional_call(model, to_torch(a), (x,)).argmax(1)
        return m.match(model, a, b, spec, x, y, **{"steps": 5, "batch_size": 32, **keywords}).perms
    return m.match(a, b, spec, **keywords).perms


@pytest.mark.parametrize("name", matchers.names())
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_matcher_recovers_a_planted_permutation_of_one_hidden_layer(name, seed):
    model, spec, a = make_mlp((24,), seed=seed)
    planted = random_permutations(spec.group_sizes(a), np.random.default_rng(seed))
    b = apply_permutation(a, spec, planted)
    found = run_matcher(name, model, "mlp", a, b, spec)
    for g in planted:
        np.testing.assert_array_equal(found[g], invert(planted[g]))


@pytest.mark.parametrize("name", matchers.names())
@pytest.mark.parametrize("architecture, args, x", [("mlp", {"hidden": [12, 10]}, X),
                                                    ("resnet20", {"width": 1}, torch.randn(4, 1, 8, 8))])
def test_the_aligned_network_computes_the_same_function(name, architecture, args, x):
    torch.manual_seed(0)
    model, spec = build_model(architecture, tuple(x.shape[1:]), 5, **args)
    a = {k: v.detach().numpy().astype(np.float64) for k, v in model.named_parameters()}
    rng = np.random.default_rng(1)
    planted = apply_permutation(a, spec, random_permutations(spec.group_sizes(a), rng))
    b = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in planted.items()}  # another network, shuffled
    found = run_matcher(name, model, architecture, a, b, spec, x=x, **({"anneal_steps": 4} if name == "sinkhorn"
                                                                        else {}))
    assert any(not np.array_equal(p, np.arange(len(p))) for p in found.values())  # something was permuted
    aligned = apply_permutation(b, spec, found)
    with torch.no_grad():
        out_b = torch.func.functional_call(model, to_torch(b), (x,))
        out_aligned = torch.func.functional_call(model, to_torch(aligned), (x,))
    torch.testing.assert_close(out_aligned, out_b, rtol=1e-5, atol=1e-5)


mlp_cases = st.tuples(st.lists(st.integers(1, 8), min_size=1, max_size=3), st.integers(0, 2 ** 31 - 1))


@settings(max_examples=25, deadline=None)
@given(mlp_cases)
@pytest.mark.parametrize("name", matchers.names(matchers.WEIGHTS))
def test_weight_matchers_never_lower_the_objective_they_climb(name, case):
    """Both end in coordinate descent, which only climbs: the trace never falls, the end is at least
    the start's objective (for Sinkhorn the rounded annealing's) and is the objective of the
    returned permutations."""
    hidden, seed = case
    model, spec = build_model("mlp", (1, 2, 2), 3, hidden=hidden)
    rng = np.random.default_rng(seed)
    a = {k: rng.standard_normal(v.shape) for k, v in model.state_dict().items()}
    b = {k: rng.standard_normal(v.shape) for k, v in a.items()}
    result = matchers.get(name).match(a, b, spec, seed=seed % 100)
    trace = np.asarray(result.objective_trace)
    assert np.all(np.diff(trace) >= -1e-9 * np.maximum(1.0, np.abs(trace[:-1])))
    np.testing.assert_allclose(trace[-1], objective(checked_channels(a, b, spec), spec, result.perms), rtol=1e-12)


@pytest.mark.parametrize("name", matchers.names(matchers.ACTIVATIONS))
def test_activation_matchers_solve_each_groups_assignment_exactly(name):
    """Each group is one linear assignment: no other permutation of a group scores higher on the
    matcher's own cost (checked against every permutation of a small layer)."""
    import itertools

    model, spec, a = make_mlp((5,), seed=3)
    b = make_mlp((5,), seed=4)[2]
    acts = hook("mlp", "hidden_activations")
    ha, hb = acts(model, a, X)["P0"], acts(model, b, X)["P0"]
    if name == "correlation":
        ha, hb = [(h - h.mean(0)) / (h.std(0) + 1e-12) for h in (ha, hb)]
    score = lambda p: float(np.sum(ha * hb[:, p]))  # noqa: E731
    found = matchers.get(name).match(acts(model, a, X), acts(model, b, X))["P0"]
    best = max(score(np.array(p)) for p in itertools.permutations(range(5)))
    assert score(found) == pytest.approx(best, rel=1e-12)


def test_sinkhorn_of_a_hard_permutation_is_weight_matchings_permute_and_its_matrices_are_doubly_stochastic():
    _, spec, a = make_mlp((6, 5))
    perms = random_permutations(spec.group_sizes(a), np.random.default_rng(0))
    hard = {g: np.eye(len(p))[p] for g, p in perms.items()}  # S[i, p[i]] = 1
    for name, value in a.items():
        np.testing.assert_array_equal(soft_permute(value, name, spec, hard), apply_permutation(a, spec, perms)[name])
    s = sinkhorn(np.random.default_rng(1).standard_normal((7, 7)) * 3, 200)
    np.testing.assert_allclose(s.sum(0), 1, atol=1e-9)
    np.testing.assert_allclose(s.sum(1), 1, atol=1e-9)


@pytest.mark.parametrize("scale", [1.0, 1e-3])
def test_sinkhorn_escapes_the_local_optimum_of_coordinate_descent_from_the_identity(scale):
    """hidden [3, 2, 2], 2 classes, seed 1 (tests/test_matching.py): coordinate descent from the
    identity stops at W2 > 1; annealing from the uniform matrices, which favour no unit order,
    reaches the planted permutation. The costs are standardised, so weights a thousand times
    smaller anneal alike."""
    from workflow.storage.artifacts import w2_distance

    from .test_matching import random_mlp

    spec, mean, rng = random_mlp([3, 2, 2], 2, 1)
    std = {k: scale * np.exp(0.5 * rng.standard_normal(v.shape)) for k, v in mean.items()}
    mean = {k: scale * v for k, v in mean.items()}
    perms = random_permutations(spec.group_sizes(mean), rng)
    mean_b, std_b = apply_permutation(mean, spec, perms), apply_permutation(std, spec, perms)
    result = sinkhorn_matching(mean, mean_b, spec, seed=int(rng.integers(100)), extra_channels=[(std, std_b, 1.0)])
    assert w2_distance(mean, std, apply_permutation(mean_b, spec, result.perms),
                       apply_permutation(std_b, spec, result.perms)) == pytest.approx(0, abs=1e-9)


def test_sinkhorns_soft_cost_of_hard_permutations_is_weight_matchings_cost_with_channel_weights():
    """With every other group's soft permutation a hard one, a group's soft cost is weight matching's
    cost matrix for the same channels and channel weights (a W2 weight other than 1 included)."""
    from workflow.alignment.matching import _group_cost, _group_terms
    from workflow.alignment.sinkhorn import soft_group_cost

    _, spec, a = make_mlp((6, 5))
    _, _, b = make_mlp((6, 5), seed=1)
    rng = np.random.default_rng(3)
    sa, sb = ({k: np.exp(rng.standard_normal(v.shape)) for k, v in a.items()} for _ in range(2))
    channels = [(a, b, 1.0), (sa, sb, 2.5)]
    sizes = spec.group_sizes(a)
    perms = random_permutations(sizes, rng)
    hard = {g: np.eye(len(p))[p] for g, p in perms.items()}
    for g, n in sizes.items():
        np.testing.assert_allclose(soft_group_cost(channels, spec, hard, g, n),
                                   _group_cost(_group_terms(channels, spec, perms, g, n), n), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad", [dict(anneal_steps=0), dict(t_end=0.0), dict(t_start=0.01, t_end=0.1),
                                 dict(sinkhorn_iterations=0)])
def test_bad_sinkhorn_settings_are_refused(bad):
    _, spec, a = make_mlp((4,))
    with pytest.raises(ValueError, match="Sinkhorn matching needs"):
        sinkhorn_matching(a, a, spec, **bad)


def test_the_config_offers_exactly_the_registrys_matchers():
    props = load_schema()["properties"]
    assert props["alignment"]["properties"]["matcher"]["enum"] == ["weight", "sinkhorn", "ste"]
    assert props["rebasin"]["properties"]["matchings"]["items"]["enum"] == ["weight", "sinkhorn", "activation",
                                                                            "correlation"]
    base = {"name": "t", "seeds": [0, 1], "data": {"dataset": "digits"}, "model": {"architecture": "mlp"}}
    assert validate_config({**base, "alignment": {"matcher": "sinkhorn"}})["alignment"]["matcher"] == "sinkhorn"
    with pytest.raises(ConfigError, match="alignment.matcher"):
        validate_config({**base, "alignment": {"matcher": "activation"}})  # one mode of activations per pair
    with pytest.raises(ConfigError, match="rebasin.matchings"):
        validate_config({**base, "rebasin": {"matchings": ["ste"]}})  # one training run per sample
    with pytest.raises(ConfigError, match="'ste' optimises the barrier of one pair, but alignment.joint"):
        validate_config({**base, "alignment": {"matcher": "ste", "joint": True}})
    with pytest.raises(ValueError, match="unknown matcher that compares weights 'activation'; allowed: weight, "
                                         "sinkhorn"):
        matchers.get("activation", matchers.WEIGHTS)


def _trained_pair():
    """Two small MLPs trained on the same teacher labels from different seeds (different bases)."""
    torch.manual_seed(0)
    teacher, _ = build_model("mlp", (1, 4, 4), 5, hidden=[32])
    with torch.no_grad():
        y = teacher(X).argmax(1)
    params = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        model, spec = build_model("mlp", (1, 4, 4), 5, hidden=[24, 24])
        opt = torch.optim.Adam(model.parameters(), 1e-2)
        for _ in range(150):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(X), y).backward()
            opt.step()
        params.append({k: v.detach().numpy() for k, v in model.named_parameters()})
    return model, spec, params[0], params[1], y


def test_the_straight_through_matcher_keeps_its_best_midpoint_and_never_loses_to_weight_matching():
    """Its trace is the best midpoint loss found so far (never rising), starting from weight
    matching's; the permutations it returns have exactly that midpoint loss, so they are never worse
    there than weight matching's. On two trained networks its steps find a lower midpoint."""
    from workflow.alignment.matching import weight_matching
    from workflow.alignment.straight_through import midpoint_loss, ste_matching

    model, spec, a, b, y = _trained_pair()

    def midpoint(perms):
        return midpoint_loss(model, to_torch(a), to_torch(apply_permutation(b, spec, perms)), X, y)

    result = ste_matching(model, a, b, spec, X, y, steps=60, lr=1e-2, batch_size=64)
    trace = np.asarray(result.objective_trace)
    assert len(trace) == 61 and np.all(np.diff(trace) <= 0)
    assert trace[0] == pytest.approx(midpoint(weight_matching(a, b, spec).perms), rel=1e-6)
    assert trace[-1] == pytest.approx(midpoint(result.perms), rel=1e-6)
    assert trace[-1] < trace[0]
    assert ste_matching(model, a, b, spec, X, y, steps=0).perms.keys() == result.perms.keys()


@pytest.mark.parametrize("bad", [dict(steps=-1), dict(lr=0.0), dict(batch_size=0), dict(eval_points=0)])
def test_bad_straight_through_settings_are_refused(bad):
    from workflow.alignment.straight_through import ste_matching

    model, spec, a = make_mlp((8,))
    with pytest.raises(ValueError, match="straight-through matching needs"):
        ste_matching(model, a, a, spec, X, torch.zeros(len(X), dtype=torch.long), **bad)


def test_the_midpoint_loss_is_the_cross_entropy_of_the_averaged_network():
    from torch.func import functional_call

    from workflow.alignment.straight_through import midpoint_loss

    model, _ = build_model("mlp", (1, 2, 2), 3, hidden=[5])
    gen = torch.Generator().manual_seed(0)
    a = {k: torch.randn(v.shape, generator=gen) for k, v in model.named_parameters()}
    b = {k: torch.randn(v.shape, generator=gen) for k, v in model.named_parameters()}
    x, y = torch.randn(7, 1, 2, 2, generator=gen), torch.tensor([0, 1, 2, 0, 1, 2, 0])
    mid = {k: (a[k] + b[k]) / 2 for k in a}
    expected = torch.nn.functional.cross_entropy(functional_call(model, mid, (x,)), y)
    assert midpoint_loss(model, a, b, x, y) == pytest.approx(float(expected), rel=1e-6)
