"""ResNet20 (LayerNorm): exact permutation invariance, spec coverage, matching, activations, arguments."""

import numpy as np
import pytest
import torch
from torch.func import functional_call, vmap

from workflow.architectures import resnet
from workflow.alignment.matching import weight_matching
from workflow.alignment.permutations import PermutationSpec, apply_permutation, invert, random_permutations
from workflow.alignment.rebasing import activation_matching

N_GROUPS = 3 + 3 * 3  # one per residual stream, one inner per block


def make(input_shape=(1, 8, 8), n_classes=5, width=1, seed=0):
    """Model, spec and float64 params; LayerNorm scales/biases are randomised (at init they are 1 and 0,
    so permuting them would go unnoticed)."""
    torch.manual_seed(seed)
    model = resnet.build(input_shape, n_classes, width=width).double()
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    gen = torch.Generator().manual_seed(seed + 1)
    for k, v in params.items():
        if ".norm" in k:
            base = 1.0 if k.endswith("weight") else 0.0
            params[k] = base + 0.5 * torch.randn(v.shape, generator=gen, dtype=v.dtype)
    return model, resnet.permutation_spec(model), params


def inputs(input_shape, n=4, seed=0):
    return torch.randn(n, *input_shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def logits(model, params, x):
    with torch.no_grad():
        return functional_call(model, params, (x,))


def sizes(spec, params):
    return spec.group_sizes({k: v.numpy() for k, v in params.items()})


@pytest.mark.parametrize("input_shape", [(1, 8, 8), (3, 16, 16)])
@pytest.mark.parametrize("width", [1, 2])
def test_outputs_unchanged_under_random_permutations_of_all_groups(input_shape, width):
    model, spec, params = make(input_shape, width=width)
    x = inputs(input_shape)
    perms = random_permutations(sizes(spec, params), np.random.default_rng(1))
    assert all(not np.array_equal(p, np.arange(len(p))) for p in perms.values())
    permuted = apply_permutation(params, spec, perms)
    assert any(not torch.equal(permuted[k], params[k]) for k in params)
    out, out_p = logits(model, params, x), logits(model, permuted, x)
    assert out.abs().max() > 1e-3  # not a trivially constant network
    torch.testing.assert_close(out_p, out, atol=1e-10, rtol=0)


def test_outputs_unchanged_in_float32():
    torch.manual_seed(0)
    model = resnet.build((3, 16, 16), 10)
    spec = resnet.permutation_spec(model)
    params = {k: v.detach() for k, v in model.named_parameters()}
    x = torch.randn(4, 3, 16, 16)
    perms = random_permutations(sizes(spec, params), np.random.default_rng(2))
    torch.testing.assert_close(logits(model, apply_permutation(params, spec, perms), x), logits(model, params, x),
                               atol=1e-5, rtol=0)


def test_layer_norm_normalises_each_example_over_channels_and_pixels():
    """Statistics over (C, H, W) per example, per-channel affine (invariance alone cannot tell this from
    other channel-wise norms)."""
    x = torch.randn(2, 5, 3, 4, dtype=torch.float64)
    norm = resnet.ChannelLayerNorm(5).double()
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, 5))
        norm.bias.copy_(torch.linspace(-1.0, 1.0, 5))
        mu, var = x.mean((1, 2, 3), keepdim=True), x.var((1, 2, 3), unbiased=False, keepdim=True)
        want = (x - mu) / torch.sqrt(var + 1e-5) * norm.weight[:, None, None] + norm.bias[:, None, None]
        torch.testing.assert_close(norm(x), want)


def expected_axes(name, param):
    """The channel axes a parameter has: conv [out, in, kh, kw] both (the stem's input channels are the
    data's), LayerNorm its only axis, the head its input axis, the head's bias none."""
    if name == "head.bias":
        return set()
    if name == "head.weight":
        return {1}
    if param.ndim == 4:
        return {0} if name == "stem.conv.weight" else {0, 1}
    return {0}


@pytest.mark.parametrize("width", [1, 3])
def test_spec_names_every_channel_axis(width):
    model, spec, params = make((3, 8, 8), width=width)
    assert len(spec.groups) == N_GROUPS
    assert set(spec.groups) == {f"P_stream{g}" for g in range(3)} | {f"P_g{g}b{b}_inner" for g in range(3)
                                                                       for b in range(3)}
    spec.check(params)
    for name, p in params.items():
        assert set(spec.axes_of(name)) == expected_axes(name, p), name
    # every member of a group is a real parameter axis, and no (parameter, axis) is in two groups
    members = [m for ms in spec.groups.values() for m in ms]
    assert len(members) == len(set(members))
    assert all(name in params for name, _ in members)
    got = sizes(spec, params)
    assert got["P_stream0"] == got["P_g0b0_inner"] == 16 * width
    assert got["P_stream1"] == 32 * width and got["P_stream2"] == got["P_g2b2_inner"] == 64 * width
    assert len([p for p in params.values() if p.ndim > 1]) == 20 + 2  # 20 layers + 2 projection shortcuts


def test_spec_shares_streams_across_residual_additions():
    _, spec, _ = make()
    s0, s1, s2 = (dict(spec.groups[f"P_stream{g}"]) for g in range(3))
    assert s0["stem.conv.weight"] == 0 and s0["groups.0.2.norm2.bias"] == 0
    assert s0["groups.1.0.shortcut.conv.weight"] == 1 and s0["groups.1.0.conv1.weight"] == 1
    assert s1["groups.1.0.shortcut.conv.weight"] == 0 and s1["groups.1.2.conv2.weight"] == 0
    assert s1["groups.2.0.conv1.weight"] == 1 and s2["head.weight"] == 1
    inner = dict(spec.groups["P_g1b2_inner"])
    assert inner == {"groups.1.2.conv1.weight": 0, "groups.1.2.norm1.weight": 0, "groups.1.2.norm1.bias": 0,
                     "groups.1.2.conv2.weight": 1}


def test_dropping_any_spec_member_breaks_invariance():
    """Every (parameter, axis) in the spec is needed: permuting a group everywhere but one place changes
    the outputs (so the invariance test above can fail)."""
    model, spec, params = make((3, 8, 8))
    x = inputs((3, 8, 8))
    perms = random_permutations(sizes(spec, params), np.random.default_rng(3))
    out = logits(model, params, x)
    torch.testing.assert_close(logits(model, apply_permutation(params, spec, perms), x), out, atol=1e-10, rtol=0)
    for g, members in spec.groups.items():
        for dropped in members:
            broken = PermutationSpec({**spec.groups, g: tuple(m for m in members if m != dropped)})
            diff = (logits(model, apply_permutation(params, broken, perms), x) - out).abs().max()
            assert diff > 1e-6, f"dropping {dropped} from {g} left the outputs unchanged"


@pytest.mark.parametrize("seed", [0, 1])
def test_weight_matching_recovers_planted_permutation(seed):
    model, spec, params = make((3, 8, 8), seed=seed)
    a = {k: v.numpy() for k, v in params.items()}
    planted = random_permutations(sizes(spec, params), np.random.default_rng(10 + seed))
    b = apply_permutation(a, spec, planted)
    result = weight_matching(a, b, spec, seed=seed)
    assert result.converged
    for g in spec.groups:
        np.testing.assert_array_equal(result.perms[g], invert(planted[g]), err_msg=g)
    aligned = apply_permutation(b, spec, result.perms)
    assert all(np.array_equal(aligned[k], a[k]) for k in a)


def test_hidden_activations_permute_with_the_units():
    model, spec, params = make((3, 8, 8))
    x = inputs((3, 8, 8), n=3)
    perms = random_permutations(sizes(spec, params), np.random.default_rng(4))
    acts = resnet.hidden_activations(model, params, x)
    acts_p = resnet.hidden_activations(model, apply_permutation(params, spec, perms), x)
    assert set(acts) == set(spec.groups)
    positions = {0: 64, 1: 16, 2: 4}  # 8x8, then strides 2, 2
    for g, a in acts.items():
        level = int(g[len("P_stream")]) if g.startswith("P_stream") else int(g[3])
        layers = (4 if level == 0 else 3) if g.startswith("P_stream") else 1  # (stem +) blocks
        assert a.dtype == np.float64 and a.shape == (3 * positions[level] * layers, sizes(spec, params)[g]), g
        assert (a >= 0).all() and a.std() > 0, g  # post-relu, not constant
        np.testing.assert_allclose(acts_p[g], a[:, perms[g]], atol=1e-12, rtol=0, err_msg=g)
    # the last rows of stream 2 are the last block's output: pooled and fed to the head they give the logits
    last = torch.from_numpy(acts["P_stream2"][-3 * 4:]).reshape(3, 4, -1).mean(1)
    torch.testing.assert_close(last @ params["head.weight"].T + params["head.bias"], logits(model, params, x))


def test_activation_matching_recovers_planted_permutation():
    model, spec, params = make((3, 8, 8))
    x = inputs((3, 8, 8), n=8)
    planted = random_permutations(sizes(spec, params), np.random.default_rng(5))
    b = apply_permutation(params, spec, planted)
    acts_a = resnet.hidden_activations(model, params, x)
    perms = activation_matching(acts_a, resnet.hidden_activations(model, b, x))
    acts_aligned = resnet.hidden_activations(model, apply_permutation(b, spec, perms), x)
    for g in spec.groups:
        # units dead on every row are interchangeable (ties); every live unit is recovered exactly
        live = acts_a[g].std(0) > 0
        assert live.sum() >= len(live) // 2, g
        np.testing.assert_array_equal(perms[g][live], invert(planted[g])[live], err_msg=g)
        np.testing.assert_allclose(acts_aligned[g], acts_a[g], atol=1e-12, rtol=0, err_msg=g)


def test_reset_parameters_reinitialises_everything():
    torch.manual_seed(7)
    fresh = resnet.build((3, 8, 8), 4)
    model = resnet.build((3, 8, 8), 4)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    torch.manual_seed(7)
    for m in model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    for (k, v), (_, w) in zip(model.named_parameters(), fresh.named_parameters()):
        assert torch.equal(v, w), k
    assert torch.equal(model.groups[2][1].norm1.weight, torch.ones(64))
    assert torch.equal(model.stem.norm.bias, torch.zeros(16))


def test_vmap_over_stacked_parameters_and_flat_inputs():
    model, spec, params = make((1, 8, 8))
    x = inputs((1, 8, 8))
    perms = random_permutations(sizes(spec, params), np.random.default_rng(6))
    stack = {k: torch.stack([v, 2 * v]) for k, v in params.items()}
    out = vmap(lambda p: functional_call(model, p, (x.flatten(1),)))(stack)
    torch.testing.assert_close(out[0], logits(model, params, x))
    torch.testing.assert_close(out[1], logits(model, {k: 2 * v for k, v in params.items()}, x))
    # the spec also permutes stacked samples (leading axis left alone)
    permuted = apply_permutation(stack, spec, perms, batch_dims=1)
    torch.testing.assert_close(vmap(lambda p: functional_call(model, p, (x,)))(permuted), out, atol=1e-10, rtol=0)


def test_registry_builds_resnet20():
    from workflow.architectures import build_model

    model, spec = build_model("resnet20", (1, 28, 28), 10, width=2)
    assert model.head.in_features == 128 and len(spec.groups) == N_GROUPS
    assert sum(p.numel() for p in model.parameters()) > 4 * 250_000


@pytest.mark.parametrize("kwargs, message", [
    (dict(width=0), r"positive integer \(1, 2, 4, \.\.\.\)"),
    (dict(width=-2), r"positive integer"),
    (dict(width=1.5), r"positive integer"),
    (dict(width=True), r"positive integer"),
    (dict(input_shape=(28, 28)), r"\(channels, height, width\) with 3 positive integers"),
    (dict(input_shape=(1, 8, 8, 1)), r"\(channels, height, width\)"),
    (dict(input_shape=(1, 0, 8)), r"3 positive integers"),
    (dict(n_classes=1), r"integer >= 2"),
    (dict(n_classes=2.0), r"integer >= 2"),
])
def test_bad_arguments_name_the_allowed_values(kwargs, message):
    args = dict(input_shape=(1, 8, 8), n_classes=10, width=1) | kwargs
    with pytest.raises(ValueError, match=message):
        resnet.build(args["input_shape"], args["n_classes"], width=args["width"])
