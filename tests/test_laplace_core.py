"""Diagonal Laplace core: GGN diagonal against brute force, marginal likelihood, prior precision, stds."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

import workflow.inference.laplace_ggn as lc
from workflow.inference.laplace_ggn import diagonal_ggn, laplace_std, log_marginal_likelihood, optimize_prior_precision


# ---------------------------------------------------------------- brute-force references

def _flat(params):
    names = list(params)
    return names, torch.cat([params[k].reshape(-1) for k in names])


def _unflat(names, shapes, w):
    out, i = {}, 0
    for k in names:
        n = math.prod(shapes[k])
        out[k] = w[i:i + n].reshape(shapes[k])
        i += n
    return out


def brute_ggn(model, params, x):
    """sum_n diag(J_n^T H_n J_n) from full [C, P] Jacobians and the dense logit Hessian H_n."""
    model.eval()
    names, w0 = _flat(params)
    shapes = {k: params[k].shape for k in names}
    total = torch.zeros_like(w0)
    for xn in x:
        def logits(w, xn=xn):
            return functional_call(model, _unflat(names, shapes, w), (xn[None],))[0]
        jac = torch.autograd.functional.jacobian(logits, w0)  # [C, P]
        p = torch.softmax(logits(w0).detach(), -1)
        hess = torch.diag(p) - torch.outer(p, p)
        total += torch.einsum("cp,cd,dp->p", jac, hess, jac)
    return _unflat(names, shapes, total)


def hessian_diag(model, params, x, y):
    """Diagonal of the autograd Hessian of the summed NLL."""
    names, w0 = _flat(params)
    shapes = {k: params[k].shape for k in names}

    def nll(w):
        return nn.functional.cross_entropy(functional_call(model, _unflat(names, shapes, w), (x,)), y, reduction="sum")

    return _unflat(names, shapes, torch.diagonal(torch.autograd.functional.hessian(nll, w0)))


def assert_dicts_close(a, b, rtol):
    assert set(a) == set(b)
    for k in a:
        assert a[k].shape == b[k].shape, k
        scale = b[k].abs().max().item()
        err = (a[k].double() - b[k].double()).abs().max().item()
        assert err <= rtol * scale, (k, err, scale)


def max_rel_diff(a, b):
    return max(((a[k] - b[k]).abs().max() / b[k].abs().max()).item() for k in a)


def params_of(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


# ---------------------------------------------------------------- GGN diagonal

@pytest.mark.parametrize("n_classes", [3, 2])
def test_ggn_equals_hessian_for_logistic_regression(n_classes):
    torch.manual_seed(0)
    model = nn.Linear(5, n_classes).double()
    params = params_of(model)
    x = torch.randn(40, 5, dtype=torch.float64)
    y = torch.randint(n_classes, (40,))
    ggn = diagonal_ggn(model, params, x, y, batch_size=1000)
    assert all(ggn[k].dtype == torch.float64 and ggn[k].shape == params[k].shape for k in params)
    # the GGN is the exact Hessian of a model linear in its parameters
    assert_dicts_close(ggn, hessian_diag(model, params, x, y), rtol=1e-10)
    assert_dicts_close(diagonal_ggn(model, params, x, batch_size=7), ggn, rtol=1e-12)


def test_cpu_chunk_cap_gives_same_result(monkeypatch):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    params = params_of(model)
    x = torch.randn(23, 6, dtype=torch.float64)
    ref = diagonal_ggn(model, params, x)
    monkeypatch.setattr(lc, "_CPU_CHUNK_ELEMENTS", 300)  # P = 83: chunks of 3 examples
    assert_dicts_close(diagonal_ggn(model, params, x), ref, rtol=1e-12)


@pytest.mark.parametrize("loop_min", [2 ** 15, 1])  # both ways of summing squares over a chunk
def test_ggn_mlp_matches_brute_force_and_differs_from_hessian(monkeypatch, loop_min):
    monkeypatch.setattr(lc, "_LOOP_MIN_ELEMENTS", loop_min)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 7), nn.Tanh(), nn.Linear(7, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    params = params_of(model)
    x = torch.randn(9, 4, dtype=torch.float64)
    y = torch.randint(3, (9,))
    ggn = diagonal_ggn(model, params, x, y, batch_size=4)
    assert_dicts_close(ggn, brute_ggn(model, params, x), rtol=1e-10)
    # a nonlinear net: the Hessian has the residual term, so returning it would fail the line above
    assert max_rel_diff(hessian_diag(model, params, x, y), ggn) > 1e-2


class TinyConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.norm = nn.GroupNorm(1, 3)  # LayerNorm over (channels, height, width)
        self.drop = nn.Dropout(0.5)     # must be off during the GGN
        self.head = nn.Linear(3, 4)

    def forward(self, x):
        h = torch.relu(self.norm(self.conv(x)))
        return self.head(self.drop(h.mean(dim=(2, 3))))


def test_ggn_conv_net_with_norm_matches_brute_force():
    torch.manual_seed(0)
    model = TinyConvNet().double()
    params = params_of(model)
    before = params_of(model)
    x = torch.randn(6, 2, 5, 5, dtype=torch.float64)
    model.train()
    ggn = diagonal_ggn(model, params, x, batch_size=4)
    assert model.training and model.drop.training  # flags restored
    assert all(torch.equal(v, before[k]) for k, v in model.named_parameters())  # model untouched
    assert_dicts_close(ggn, brute_ggn(model, params, x), rtol=1e-10)


def test_ggn_float32_and_parameter_subset():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(5, 6), nn.LayerNorm(6), nn.ReLU(), nn.Linear(6, 3))
    x = torch.randn(11, 5)
    params32 = params_of(model)
    ggn32 = diagonal_ggn(model, params32, x)
    ggn64 = diagonal_ggn(model.double(), {k: v.double() for k, v in params32.items()}, x.double())
    assert all(v.dtype == torch.float64 for v in ggn32.values())
    assert_dicts_close(ggn32, ggn64, rtol=1e-5)
    # a subset of the parameters: the same diagonal entries (the rest are held at the model's values)
    sub = diagonal_ggn(model, {"3.weight": params32["3.weight"].double()}, x.double())
    assert list(sub) == ["3.weight"]
    assert torch.allclose(sub["3.weight"], ggn64["3.weight"], rtol=1e-12, atol=0)


def test_ggn_bad_inputs():
    model = nn.Linear(3, 2)
    params = params_of(model)
    x = torch.randn(4, 3)
    for bad in (0, -3, 2.5, None, True):
        with pytest.raises(ValueError, match="batch_size"):
            diagonal_ggn(model, params, x, batch_size=bad)
    with pytest.raises(ValueError, match="y has"):
        diagonal_ggn(model, params, x, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="not among"):
        diagonal_ggn(model, {"nope": torch.zeros(1)}, x)
    with pytest.raises(ValueError, match="shape"):
        diagonal_ggn(model, {"weight": torch.zeros(3, 2)}, x)
    with pytest.raises(ValueError, match="logits"):
        diagonal_ggn(nn.Sequential(nn.Linear(3, 1), nn.Flatten(0)), {"0.weight": torch.zeros(1, 3)}, x)  # [B] outputs


# ---------------------------------------------------------------- marginal likelihood, prior precision

@pytest.fixture(scope="module")
def logistic_fit():
    torch.manual_seed(3)
    model = nn.Linear(4, 3).double()
    x = torch.randn(50, 4, dtype=torch.float64)
    y = torch.randint(3, (50,))
    params = params_of(model)
    with torch.no_grad():
        nll = float(nn.functional.cross_entropy(model(x), y, reduction="sum"))
    return nll, params, diagonal_ggn(model, params, x, y)


def test_log_marginal_likelihood_formula(logistic_fit):
    nll, params, ggn = logistic_fit
    w = np.concatenate([v.numpy().ravel() for v in params.values()])
    g = np.concatenate([ggn[k].numpy().ravel() for k in params])
    for delta in (0.01, 1.0, 37.0):
        expect = -nll - delta / 2 * w @ w + w.size / 2 * np.log(delta) - 0.5 * np.log(g + delta).sum()
        assert log_marginal_likelihood(nll, params, ggn, delta) == pytest.approx(expect, rel=1e-12)
    with pytest.raises(ValueError):
        log_marginal_likelihood(nll, params, ggn, -1.0)
    with pytest.raises(ValueError):
        log_marginal_likelihood(nll, params, {k: v for k, v in list(ggn.items())[:1]}, 1.0)
    with pytest.raises(ValueError):
        log_marginal_likelihood(nll, params, {k: -v - 1 for k, v in ggn.items()}, 1.0)


def test_optimize_prior_precision_matches_grid(logistic_fit):
    nll, params, ggn = logistic_fit
    best = optimize_prior_precision(nll, params, ggn, init=1.0)
    grid = np.exp(np.linspace(np.log(1e-4), np.log(1e4), 4001))
    values = [log_marginal_likelihood(nll, params, ggn, d) for d in grid]
    i = int(np.argmax(values))
    assert 0 < i < len(grid) - 1  # an interior maximum
    assert grid[i - 1] <= best <= grid[i + 1]
    assert log_marginal_likelihood(nll, params, ggn, best) >= max(values) - 1e-9


def test_optimize_prior_precision_closed_form():
    # P identical parameters w_i = m with ggn_i = g: d/d delta = 0 gives m^2 delta^2 + m^2 g delta - g = 0
    m, g, shape = 0.3, 5.0, (4, 5)
    params = {"w": torch.full(shape, m, dtype=torch.float64)}
    ggn = {"w": torch.full(shape, g, dtype=torch.float64)}
    exact = (-m * m * g + math.sqrt(m ** 4 * g * g + 4 * m * m * g)) / (2 * m * m)
    assert optimize_prior_precision(12.5, params, ggn, init=1.0) == pytest.approx(exact, rel=1e-7)
    # an optimum outside the bounds lands on the nearer bound
    assert optimize_prior_precision(12.5, params, ggn, init=0.01, bounds=(1e-3, 1.0)) == pytest.approx(1.0, rel=1e-6)


def test_optimize_prior_precision_bad_arguments(logistic_fit):
    nll, params, ggn = logistic_fit
    for init, bounds in [(0.0, (1e-4, 1e4)), (-1.0, (1e-4, 1e4)), (float("nan"), (1e-4, 1e4)),
                         (1e5, (1e-4, 1e4)), (1.0, (1e4, 1e-4)), (1.0, (0.0, 1e4)), (1.0, (1e-4, math.inf)),
                         (1.0, (1.0,))]:
        with pytest.raises(ValueError):
            optimize_prior_precision(nll, params, ggn, init=init, bounds=bounds)


# ---------------------------------------------------------------- posterior standard deviations

def test_laplace_std():
    ggn = {"a.weight": torch.rand(3, 4, dtype=torch.float64) * 10, "a.bias": torch.zeros(3, dtype=torch.float64)}
    std1, std2 = laplace_std(ggn, 1.0), laplace_std(ggn, 4.0)
    for k, g in ggn.items():
        assert std1[k].shape == g.shape and std1[k].dtype == torch.float32
        assert torch.allclose(std1[k].double(), 1 / torch.sqrt(g + 1.0), rtol=1e-6)
        assert (std2[k] < std1[k]).all()  # more prior precision, narrower posterior
    assert torch.allclose(std2["a.bias"], torch.full((3,), 0.5))
    for bad in (0.0, -1.0, float("nan"), float("inf"), None, "x"):
        with pytest.raises(ValueError):
            laplace_std(ggn, bad)
    with pytest.raises(ValueError):
        laplace_std({"w": -torch.ones(2)}, 1.0)
