"""Numerical core of the diagonal Laplace approximation for classification networks.

Around a MAP solution w* of the summed categorical NLL with prior N(0, 1/delta):
posterior precision = diag GGN of the NLL at w* + delta, the GGN being sum_n J_n^T H_n J_n with
J_n the [C, P] Jacobian of the logits and H_n = diag(p_n) - p_n p_n^T the logit Hessian.
Plain torch (torch.func) and scipy; knows nothing of the rest of the workflow.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vjp, vmap

__all__ = ["diagonal_ggn", "log_marginal_likelihood", "optimize_prior_precision", "laplace_std"]

# CPU chunk cap: examples x parameters per per-class gradient block (16 MB in float32)
_CPU_CHUNK_ELEMENTS = 2 ** 22
# per-example size from which a parameter's squares are summed example by example (see _square_sum)
_LOOP_MIN_ELEMENTS = 2 ** 15


@contextlib.contextmanager
def _eval_mode(model: nn.Module):
    # dropout would make vmap fail (and the GGN is of the deterministic net); restore flags after
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def diagonal_ggn(model: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor | None = None,
                 *, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Diagonal of the generalised Gauss-Newton matrix of sum_n -log softmax(f(x_n; w))[y_n] at ``params``.

    diag(J^T H J)_i = sum_c p_c J_ci^2 - (sum_c p_c J_ci)^2 = sum_c (sqrt(p_c) (J_c - p^T J)_i)^2, so each
    class c costs one vector-Jacobian product with cotangent sqrt(p_c) (e_c - p) per example (the centred
    form: a sum of squares, never negative, no cancellation). Per-example gradients come from a
    vjp with respect to the parameters expanded along the batch: one forward and C vjps per chunk of
    at most ``batch_size`` examples (on CPU also at most 2^22 / P examples, which is faster), so
    peak memory is about 2 x chunk x P floats plus the chunk's saved activations, never chunk x C x P.
    Sums over a chunk's examples are taken in the model's dtype, the running total in float64.

    ``y`` is accepted for symmetry with the NLL but unused (H does not depend on the labels).
    ``params`` may be a subset of the model's parameters (the rest stay fixed at the model's values);
    the model's forward must map [B, ...] to [B, C] logits. The model is evaluated in eval mode
    (its training flags are restored) and its own parameters are not touched.
    Returns float64 tensors with the names, shapes and device of ``params``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    batch_size = int(batch_size)
    if not params:
        raise ValueError("params is empty")
    known = dict(model.named_parameters())
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"params names not among the model's parameters: {unknown}")
    for k, v in params.items():
        if tuple(v.shape) != tuple(known[k].shape):
            raise ValueError(f"params[{k!r}] has shape {tuple(v.shape)}, the model's is {tuple(known[k].shape)}")
    if x.ndim < 1 or len(x) == 0:
        raise ValueError("x must hold at least one example along its first axis")
    if y is not None and len(y) != len(x):
        raise ValueError(f"x has {len(x)} examples but y has {len(y)}")

    params = {k: v.detach() for k, v in params.items()}
    first = next(iter(params.values()))
    device, dtype = first.device, first.dtype

    def single(p, xn):
        return functional_call(model, p, (xn.unsqueeze(0),)).squeeze(0)

    chunk = batch_size
    if device.type == "cpu":
        # on CPU, chunks whose per-class gradients stay cache-sized are several times faster (fresh large
        # blocks are page-faulted in on every vjp); GPUs want the large chunks as given
        chunk = min(batch_size, max(1, _CPU_CHUNK_ELEMENTS // sum(v.numel() for v in params.values())))
    acc = {k: torch.zeros(v.shape, dtype=torch.float64, device=device) for k, v in params.items()}
    with _eval_mode(model), torch.no_grad():  # vjp below still differentiates: func transforms ignore an outer no_grad
        for start in range(0, len(x), chunk):
            xb = x[start:start + chunk].to(device)
            if xb.is_floating_point():
                xb = xb.to(dtype)
            n = len(xb)
            # one (zero-copy) parameter copy per example, so the vjp returns per-example gradients
            expanded = {k: v.expand((n, *v.shape)) for k, v in params.items()}
            logits, vjp_fn = vjp(lambda pe: vmap(single)(pe, xb), expanded)
            if logits.ndim != 2 or logits.shape[0] != n:
                raise ValueError(f"the model must map [B, ...] inputs to [B, C] logits; got {tuple(logits.shape)}")
            prob = torch.softmax(logits.detach().to(torch.float64), dim=-1)
            root = prob.sqrt()
            for c in range(prob.shape[1]):
                cot = -prob
                cot[:, c] += 1.0
                (grads,) = vjp_fn((cot * root[:, c:c + 1]).to(logits.dtype))
                for k, g in grads.items():
                    acc[k] += _square_sum(g)
                del grads  # free this class's block before the next vjp allocates one
    return acc


def _square_sum(g: torch.Tensor) -> torch.Tensor:
    """sum_b g[b]^2 in g's dtype, as float64 (at most one chunk of terms is summed in low precision)."""
    if g.device.type != "cpu" or g[0].numel() < _LOOP_MIN_ELEMENTS:
        return g.square().sum(0).to(torch.float64)
    # large blocks on CPU: accumulate in the per-example gradient's own memory layout (a weight's
    # gradient comes transposed; a reduction across it is strided and several times slower)
    part = torch.zeros_like(g[0])
    for gb in g:
        part.addcmul_(gb, gb)
    return part.to(torch.float64)


def _flat64(tensors: dict[str, torch.Tensor], names) -> np.ndarray:
    return np.concatenate([np.asarray(torch.as_tensor(tensors[k]).detach().cpu().to(torch.float64)).ravel()
                           for k in names])


def _check_precision(prior_precision) -> float:
    try:
        delta = float(prior_precision)
    except (TypeError, ValueError):
        delta = math.nan
    if not math.isfinite(delta) or delta <= 0:
        raise ValueError(f"prior precision must be a positive finite number, got {prior_precision!r}")
    return delta


def _flatten_pair(params: dict, ggn: dict) -> tuple[np.ndarray, np.ndarray]:
    if set(params) != set(ggn):
        raise ValueError(f"params and ggn have different names: {sorted(set(params) ^ set(ggn))}")
    names = sorted(params)
    for k in names:
        if tuple(params[k].shape) != tuple(ggn[k].shape):
            raise ValueError(f"params[{k!r}] has shape {tuple(params[k].shape)} but ggn[{k!r}] {tuple(ggn[k].shape)}")
    w, g = _flat64(params, names), _flat64(ggn, names)
    if not np.all(np.isfinite(w)):
        raise ValueError("params hold non-finite values")
    if not np.all(np.isfinite(g)) or np.any(g < 0):
        raise ValueError("ggn must be finite and non-negative (a GGN diagonal)")
    return w, g


def _lml(nll: float, sq_norm: float, g: np.ndarray, delta: float) -> float:
    return float(-nll - 0.5 * delta * sq_norm + 0.5 * g.size * math.log(delta) - 0.5 * np.sum(np.log(g + delta)))


def log_marginal_likelihood(nll: float, params: dict, ggn: dict, prior_precision: float) -> float:
    """Laplace approximation of log p(D | delta) around the MAP w* (MacKay; Immer et al. 2021):

    -nll(w*) - delta/2 ||w*||^2 + P/2 log delta - 1/2 sum_i log(ggn_i + delta)   (the 2 pi terms cancel),
    with ``nll`` the summed training NLL at w* = ``params`` and ``ggn`` its diagonal GGN.
    """
    delta = _check_precision(prior_precision)
    if not math.isfinite(float(nll)):
        raise ValueError(f"nll must be finite, got {nll!r}")
    w, g = _flatten_pair(params, ggn)
    return _lml(float(nll), float(w @ w), g, delta)


def optimize_prior_precision(nll: float, params: dict, ggn: dict, *, init: float, bounds=(1e-4, 1e4)) -> float:
    """The prior precision delta in ``bounds`` maximising ``log_marginal_likelihood`` with w* held fixed
    (as the Laplace library's post-hoc marglik tuning does), by bounded Brent search over log delta.

    The objective is concave in log delta (second derivative -delta ||w*||^2/2 - sum_i ggn_i delta /
    (2 (ggn_i + delta)^2)), so the bounded search finds the global maximum;
    ``init`` must lie within the bounds and is kept if the search does not beat it.
    """
    from scipy.optimize import minimize_scalar

    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError) as err:
        raise ValueError(f"bounds must be a pair of positive numbers, got {bounds!r}") from err
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
        raise ValueError(f"bounds must satisfy 0 < low < high (finite), got {bounds!r}")
    init = _check_precision(init)
    if not lo <= init <= hi:
        raise ValueError(f"init {init} lies outside bounds {bounds!r}")
    if not math.isfinite(float(nll)):
        raise ValueError(f"nll must be finite, got {nll!r}")
    w, g = _flatten_pair(params, ggn)
    sq_norm, nll = float(w @ w), float(nll)

    res = minimize_scalar(lambda t: -_lml(nll, sq_norm, g, math.exp(t)), bounds=(math.log(lo), math.log(hi)),
                          method="bounded", options={"xatol": 1e-10})
    best = min(max(math.exp(res.x), lo), hi)
    return best if _lml(nll, sq_norm, g, best) >= _lml(nll, sq_norm, g, init) else init


def laplace_std(ggn: dict, prior_precision: float) -> dict[str, torch.Tensor]:
    """Posterior standard deviations 1 / sqrt(ggn + delta) (float32, same names, shapes, devices)."""
    delta = _check_precision(prior_precision)
    out = {}
    for k, g in ggn.items():
        g = torch.as_tensor(g).detach().to(torch.float64)
        if not torch.isfinite(g).all() or (g < 0).any():
            raise ValueError(f"ggn[{k!r}] must be finite and non-negative")
        out[k] = (g + delta).rsqrt().to(torch.float32)
    return out
