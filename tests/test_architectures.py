"""Every registered architecture, through the registry: invariance of its permutation spec, exact
recovery of planted permutations by weight matching and W2 alignment, and aligned posteriors that
compute the same function. A new architecture must add its small cases to CASES."""

import dataclasses

import numpy as np
import pytest
import torch

from workflow import architectures
from workflow.storage.artifacts import Posterior
from workflow.alignment.matching import weight_matching
from workflow.alignment.permutations import apply_permutation, invert, random_permutations
from workflow.evaluation.predict import Stacked, sample_log_probs

# architecture -> small (input shape, arguments) cases
CASES = {
    "mlp": [((1, 4, 4), {"hidden": [7]}), ((1, 4, 4), {"hidden": [9, 5, 11], "activation": "tanh"})],
    "resnet20": [((1, 8, 8), {"width": 1}), ((3, 6, 6), {"width": 1})],
}
PARAMS = [pytest.param(name, shape, args, id=f"{name}-{i}") for name, cases in CASES.items()
          for i, (shape, args) in enumerate(cases)]


def test_every_registered_architecture_has_test_cases():
    assert set(CASES) == set(architectures.names())


def make(name, shape, args, seed=0):
    torch.manual_seed(seed)
    model, spec = architectures.build_model(name, shape, 4, **args)
    model = model.double()
    params = {k: v.detach().numpy().copy() for k, v in model.named_parameters()}
    # LayerNorm scales and biases start at 1 and 0: perturb them so that a permutation that
    # misses them shows in the outputs
    rng = np.random.default_rng(seed)
    params = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in params.items()}
    return model, spec, params


def outputs(model, params, x):
    return sample_log_probs(model, Stacked({k: torch.as_tensor(v)[None] for k, v in params.items()}), x)[0].double()


@pytest.mark.parametrize("name, shape, args", PARAMS)
def test_permuting_all_groups_at_once_leaves_the_function_unchanged(name, shape, args, rng):
    model, spec, params = make(name, shape, args)
    spec.check(params)
    x = torch.randn(6, *shape, dtype=torch.float64)
    base = torch.func.functional_call(model, {k: torch.as_tensor(v) for k, v in params.items()}, (x,))
    for _ in range(3):
        perms = random_permutations(spec.group_sizes(params), rng)
        permuted = apply_permutation(params, spec, perms)
        assert any(not np.array_equal(permuted[k], params[k]) for k in params)
        out = torch.func.functional_call(model, {k: torch.as_tensor(v) for k, v in permuted.items()}, (x,))
        torch.testing.assert_close(out, base, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name, shape, args", PARAMS)
def test_a_group_left_out_of_one_parameter_changes_the_function(name, shape, args, rng):
    """The invariance test can fail: drop one (parameter, axis) from a group and outputs change."""
    model, spec, params = make(name, shape, args)
    x = torch.randn(6, *shape, dtype=torch.float64)
    group = next(iter(spec.groups))
    broken = dataclasses.replace(spec, groups={**spec.groups, group: spec.groups[group][1:]})
    perms = {g: np.roll(np.arange(n), 1) for g, n in spec.group_sizes(params).items()}
    good = apply_permutation(params, spec, perms)
    bad = apply_permutation(params, broken, perms)
    f = lambda p: torch.func.functional_call(model, {k: torch.as_tensor(v) for k, v in p.items()}, (x,))  # noqa: E731
    torch.testing.assert_close(f(good), f(params), rtol=1e-10, atol=1e-10)
    assert not torch.allclose(f(bad), f(params), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name, shape, args", PARAMS)
def test_weight_matching_and_w2_alignment_recover_a_planted_permutation(name, shape, args, rng):
    _, spec, params = make(name, shape, args)
    planted = random_permutations(spec.group_sizes(params), rng)
    b = apply_permutation(params, spec, planted)
    found = weight_matching(params, b, spec, seed=1).perms
    for g in planted:
        np.testing.assert_array_equal(found[g], invert(planted[g]))
    std = {k: rng.uniform(0.01, 1.0, v.shape) for k, v in params.items()}
    w2 = weight_matching(params, b, spec, seed=2,
                         extra_channels=[(std, apply_permutation(std, spec, planted), 1.0)]).perms
    for g in planted:
        np.testing.assert_array_equal(w2[g], invert(planted[g]))


@pytest.mark.parametrize("name, shape, args", PARAMS)
def test_the_aligned_posterior_of_b_computes_the_same_function_as_b(name, shape, args):
    model, spec, a = make(name, shape, args, seed=0)
    _, _, b = make(name, shape, args, seed=1)
    post = Posterior(kind="samples", method="ensemble", architecture=name, architecture_args=args, dataset="toy",
                     input_shape=shape, n_classes=4, seed=1, samples={k: v[None, None] for k, v in b.items()})
    result = weight_matching(a, b, spec, seed=0)
    aligned = post.permuted(spec, result.perms)
    assert any(not np.array_equal(aligned.samples[k], post.samples[k]) for k in b)
    x = torch.randn(5, *shape, dtype=torch.float64)
    torch.testing.assert_close(outputs(model, aligned.representative(), x), outputs(model, b, x),
                               rtol=1e-5, atol=1e-5)


def test_unknown_architectures_and_arguments_name_what_is_allowed():
    with pytest.raises(ValueError, match="allowed: mlp, resnet20"):
        architectures.build_model("vgg", (1, 4, 4), 3)
    with pytest.raises(ValueError, match="'resnet20' takes no argument\\(s\\) hidden; allowed: width"):
        architectures.build_model("resnet20", (1, 8, 8), 3, hidden=[8])


@pytest.mark.parametrize("name,shape,args", PARAMS + [pytest.param("resnet20", (3, 8, 8), {"width": 2}, id="rn-w2"),
                                                     pytest.param("mlp", (2,), {"hidden": [3, 3]}, id="mlp-2")])
def test_the_spec_from_parameter_names_is_the_models(name, shape, args):
    """Alignment jobs take the spec from a posterior's parameter names (no torch): it must be the
    very spec the built model gives, member for member and in order."""
    model, spec = architectures.build_model(name, shape, 10, **args)
    names = [n for n, _ in model.named_parameters()]
    assert architectures.permutation_spec(name, names, shape, 10, **args) == spec
    assert architectures.entry(name).spec_from_names is not None  # every family here has one


@pytest.mark.parametrize("name,shape,args", PARAMS + [pytest.param("resnet20", (3, 8, 8), {"width": 2}, id="rn-w2"),
                                                     pytest.param("mlp", (2,), {"hidden": [3, 3]}, id="mlp-2")])
def test_the_parameter_shapes_without_torch_are_the_models(name, shape, args):
    model, _ = architectures.build_model(name, shape, 10, **args)
    expected = {k: tuple(v.shape) for k, v in model.named_parameters()}
    assert architectures.parameter_shapes(name, shape, 10, **args) == expected
