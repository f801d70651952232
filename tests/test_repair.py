"""REPAIR along barrier paths (evaluation/repair.py, barrier.repair)."""

import numpy as np
import pytest
import torch

from workflow.architectures import build_model, get_params
from workflow.evaluation import repair as R

CASES = [("mlp", (1, 6, 6), {"hidden": [24, 16]}), ("resnet20", (1, 10, 10), {"width": 1})]


def _pair(name, shape, args):
    """Two unrelated networks, B's parameters jittered so its LayerNorm scales and biases differ from A's."""
    torch.manual_seed(0)
    model, spec = build_model(name, shape, 5, **args)
    a = get_params(model)
    torch.manual_seed(1)
    b = {k: v + 0.3 * torch.randn_like(v) for k, v in get_params(build_model(name, shape, 5, **args)[0]).items()}
    return model, spec, a, b


@pytest.mark.parametrize("name,shape,args", CASES)
def test_repaired_channels_have_the_interpolated_statistics(name, shape, args):
    """Folded into the parameters, the correction gives every repair layer's channels exactly the
    interpolation of the endpoints' mean and std on the repair data (later layers included: each is
    corrected on its repaired input). The plain midpoint does not have them."""
    model, _, a, b = _pair(name, shape, args)
    x = torch.randn(300, *shape)
    layers = R.layer_names(model)
    assert len(layers) == (2 if name == "mlp" else 21)
    sa, sb = R.channel_stats(model, a, x, layers), R.channel_stats(model, b, x, layers)
    for t in (0.3, 0.5):
        mid = {k: (1 - t) * a[k] + t * b[k] for k in a}
        targets = R.interpolate_stats(sa, sb, t)
        got = R.channel_stats(model, R.repair(model, mid, x, layers, targets), x, layers)
        plain = R.channel_stats(model, mid, x, layers)
        for layer in layers:
            for i in (0, 1):
                torch.testing.assert_close(got[layer][i], targets[layer][i], atol=2e-5, rtol=1e-4)
        assert max((plain[l][1] - targets[l][1]).abs().max().item() for l in layers) > 1e-2


@pytest.mark.parametrize("name,shape,args", CASES)
def test_repairing_a_network_toward_its_own_statistics_changes_nothing(name, shape, args):
    model, _, a, _ = _pair(name, shape, args)
    x = torch.randn(200, *shape)
    layers = R.layer_names(model)
    fixed = R.repair(model, a, x, layers, R.channel_stats(model, a, x, layers))
    for k in a:
        torch.testing.assert_close(fixed[k], a[k], atol=1e-5, rtol=1e-5)


def test_a_constant_channel_is_shifted_not_blown_up():
    """A unit constant on the repair data (it reads only an input that is 0 there) has no spread to
    rescale: REPAIR moves its mean and keeps its weights, where a rescale by target / 0 would blow up
    on any input where it is not constant."""
    model, _, a, b = _pair(*CASES[0])
    a = {k: v.clone() for k, v in a.items()}
    a["hidden.0.weight"][3] = 0.0
    a["hidden.0.weight"][3, 0] = 0.7
    x = torch.randn(100, *CASES[0][1])
    x.view(100, -1)[:, 0] = 0.0
    layers = R.layer_names(model)
    targets = R.channel_stats(model, b, x, layers)
    fixed = R.repair(model, a, x, layers, targets)
    torch.testing.assert_close(fixed["hidden.0.weight"][3], a["hidden.0.weight"][3])
    assert fixed["hidden.0.bias"][3] == pytest.approx(float(targets["hidden.0"][0][3]), abs=1e-5)


def test_a_repaired_path_keeps_its_endpoints_and_repairs_every_draw_between_them():
    """linear_path and gaussian_path with repair_x: the endpoints are the plain path's; between them the
    draws are repaired draw by draw (the same pairing, and the same noise, as the plain path)."""
    from workflow.evaluation.barriers import gaussian_path, linear_path
    from workflow.evaluation.predict import Gaussian

    model, _, a, b = _pair(*CASES[0])
    torch.manual_seed(2)
    x, y = torch.randn(400, *CASES[0][1]), torch.randint(0, 5, (400,))
    ts = np.linspace(0, 1, 5)
    stack = {k: v[None] for k, v in a.items()}
    stack_b = {k: v[None] for k, v in b.items()}
    plain = linear_path(model, stack, stack_b, x, y, ts)
    fixed = linear_path(model, stack, stack_b, x, y, ts, repair_x=x[:200])
    assert fixed.loc[[0, 4], "loss"].tolist() == plain.loc[[0, 4], "loss"].tolist()
    assert not np.allclose(fixed["loss"][1:4], plain["loss"][1:4])

    std = {k: torch.full_like(v, 0.01) for k, v in a.items()}
    g_plain = gaussian_path(model, a, std, b, std, 4, 7, x, y, ts)
    g_fixed = gaussian_path(model, a, std, b, std, 4, 7, x, y, ts, repair_x=x[:200])
    assert g_fixed.loc[[0, 4], "loss"].tolist() == g_plain.loc[[0, 4], "loss"].tolist()
    # draw s at t is repaired toward draw s (the same noise) of both endpoints
    layers = R.layer_names(model)
    src = {t: Gaussian({k: (1 - t) * a[k] + t * b[k] for k in a}, std, 4, 7) for t in (0.0, 0.5, 1.0)}
    sa, sb = (R.sample_stats(model, src[t], x[:200], layers) for t in (0.0, 1.0))
    drawn = R.Repaired(model, src[0.5], 0.5, sa, sb, x[:200], layers).chunk(2, 3, "cpu")
    got = R.channel_stats(model, {k: v[0] for k, v in drawn.items()}, x[:200], layers)
    want = R.interpolate_stats(sa[2], sb[2], 0.5)
    for layer in layers:
        torch.testing.assert_close(got[layer][1], want[layer][1], atol=2e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="linearised"):
        gaussian_path(model, a, std, b, std, 4, 7, x, y, ts, linearized=True, repair_x=x[:200])


def test_the_barrier_job_writes_repaired_rows_beside_the_plain_ones(tmp_path):
    """barrier.repair: the curve table holds '<alignment>+repair' rows beside the plain ones, with the
    same endpoints; off, none."""
    from workflow.config import validate_config
    from workflow.jobs.metrics import _path_curve
    from workflow.storage.artifacts import Posterior

    model, _, a, b = _pair(*CASES[0])
    cfg = validate_config({"name": "t", "seeds": [0, 1], "methods": ["ensemble"], "data": {"dataset": "digits"},
                           "barrier": {"n_points": 3, "repair": True, "repair_points": 50},
                           "model": {"architecture": "mlp", "hidden": [24, 16]}})
    torch.manual_seed(3)
    data = {"x_test": torch.randn(60, 1, 6, 6), "y_test": torch.randint(0, 5, (60,)),
            "x_train": torch.randn(80, 1, 6, 6)}

    def post(p, seed):
        return Posterior(method="ensemble", kind="samples", seed=seed, architecture="mlp", dataset="digits",
                         architecture_args={"hidden": [24, 16], "activation": "relu"}, input_shape=(1, 6, 6),
                         n_classes=5, samples={k: v.numpy()[None, None] for k, v in p.items()})

    curve = _path_curve(post(a, 0), post(b, 1), data, cfg, alignment="naive", pair="0-1", meta={}, device="cpu",
                        variant="base")
    assert list(curve["alignment"].unique()) == ["naive", "naive+repair"]
    ends = curve[curve["t"].isin([0.0, 1.0])].groupby("t")["loss"].nunique()
    assert (ends == 1).all()
    cfg["barrier"]["repair"] = False
    assert list(_path_curve(post(a, 0), post(b, 1), data, cfg, alignment="naive", pair="0-1", meta={},
                            device="cpu", variant="base")["alignment"].unique()) == ["naive"]


def test_the_target_statistics_interpolate_mean_and_std_each_on_their_own():
    a = {"l": (torch.tensor([1.0, 2.0]), torch.tensor([10.0, 20.0]))}
    b = {"l": (torch.tensor([5.0, 6.0]), torch.tensor([30.0, 40.0]))}
    mean, std = R.interpolate_stats(a, b, 0.25)["l"]
    torch.testing.assert_close(mean, torch.tensor([2.0, 3.0]))
    torch.testing.assert_close(std, torch.tensor([15.0, 25.0]))
