"""Loss and error barriers along paths between two solutions.

Point estimates and sample sets follow the linear path (sample s of A is paired with sample s of
B; a point estimate is a set of one). Diagonal Gaussians follow the W2 geodesic: means and
standard deviations interpolate linearly, and the same noise eps_s gives w_s(t) = mu_t + sigma_t
eps_s at every t (common random numbers: the curve is smooth in t).
Barrier B = max_t [ v(t) - ((1 - t) v(0) + t v(1)) ] on the t grid, for the loss, the error and the
expected calibration error (ECE) alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import torch

# torch is imported by the path functions only: summaries (barrier_height, summarize) stay light


def t_grid(n_points: int) -> np.ndarray:
    if n_points < 3:
        raise ValueError(f"a barrier needs a point between the endpoints: n_points must be >= 3, got {n_points}")
    return np.linspace(0.0, 1.0, n_points)


def interpolate(a: Mapping, b: Mapping, t: float) -> dict:
    return {k: (1.0 - t) * a[k] + t * b[k] for k in a}


def linear_path(model: torch.nn.Module, a: Mapping, b: Mapping, x: torch.Tensor, y: torch.Tensor, ts: np.ndarray,
                *, memory_mb: float | None = None, repair_x: torch.Tensor | None = None) -> pd.DataFrame:
    """Marginalized loss and error at every t of the path between stacks ``a`` and ``b`` ([S, *shape] each);
    with ``repair_x``, every draw between the endpoints is REPAIRed on those inputs (evaluation/repair.py)."""
    from .predict import DEFAULT_MEMORY_MB, Stacked, log_predictive

    memory_mb = DEFAULT_MEMORY_MB if memory_mb is None else memory_mb
    if set(a) != set(b) or any(a[k].shape != b[k].shape for k in a):
        raise ValueError("the two endpoints must have the same parameters with the same shapes (and sample counts)")
    at = _repairer(model, Stacked(a), Stacked(b), repair_x)
    return pd.DataFrame([path_point(t, log_predictive(model, at(Stacked(interpolate(a, b, float(t))), float(t)), x,
                                                      memory_mb=memory_mb), y) for t in ts])


def _repairer(model, a, b, repair_x):
    """f(source at t, t): the source itself, or with ``repair_x`` its draws REPAIRed toward the endpoints'
    (sources ``a`` and ``b``, drawn alike) statistics; the endpoints themselves are left as they are."""
    if repair_x is None:
        return lambda source, t: source
    from . import repair

    layers = repair.layer_names(model)
    stats_a, stats_b = (repair.sample_stats(model, s, repair_x, layers) for s in (a, b))
    return lambda source, t: (source if t in (0.0, 1.0)
                              else repair.Repaired(model, source, t, stats_a, stats_b, repair_x, layers))


def gaussian_path(model: torch.nn.Module, a_mean, a_std, b_mean, b_std, n_samples: int, seed: int,
                  x: torch.Tensor, y: torch.Tensor, ts: np.ndarray, *,
                  memory_mb: float | None = None, linearized: bool = False,
                  repair_x: torch.Tensor | None = None) -> pd.DataFrame:
    """Marginalized loss and error along the W2 geodesic between N(a_mean, a_std^2) and N(b_mean, b_std^2),
    with the same ``n_samples`` noise draws (``seed``) at every t; ``linearized``: each Gaussian of the
    path predicts through the network linearised at its mean (the GLM predictive); ``repair_x``: draw s
    at t is REPAIRed toward draw s (the same noise) of each endpoint."""
    from .predict import DEFAULT_MEMORY_MB, Gaussian, log_predictive

    if linearized and repair_x is not None:
        raise ValueError("barrier.repair renormalises the network's channels, but a linearised (GLM) predictive "
                         "has no channels of its own to renormalise; set barrier.repair: false for Laplace GLM paths")
    memory_mb = DEFAULT_MEMORY_MB if memory_mb is None else memory_mb
    at = _repairer(model, Gaussian(a_mean, a_std, n_samples, seed), Gaussian(b_mean, b_std, n_samples, seed), repair_x)
    rows = []
    for t in ts:
        source = Gaussian(interpolate(a_mean, b_mean, float(t)), interpolate(a_std, b_std, float(t)), n_samples, seed,
                          linearized=linearized)
        rows.append(path_point(t, log_predictive(model, at(source, float(t)), x, memory_mb=memory_mb), y))
    return pd.DataFrame(rows)


def mixture_path(logp_a: torch.Tensor, logp_b: torch.Tensor, y: torch.Tensor, ts: np.ndarray) -> pd.DataFrame:
    """Loss and error of the mixture (1 - t) q_a + t q_b from the endpoints' predictives (log-probs [N, C]).

    By convexity of -log its loss never rises above the straight line: a barrier of zero always,
    which is why barriers are measured along the geodesic instead.
    """
    import torch

    rows = []
    for t in ts:
        t = float(t)
        if t in (0.0, 1.0):
            logp = logp_a if t == 0.0 else logp_b
        else:
            logp = torch.logaddexp(logp_a + np.log1p(-t), logp_b + np.log(t))
        rows.append(path_point(t, logp, y))
    return pd.DataFrame(rows)


def path_point(t: float, logp: torch.Tensor, y: torch.Tensor) -> dict:
    """One point of a path from its predictive (log-probabilities [N, C]): marginalized NLL, error
    rate and expected calibration error."""
    from .compare import expected_calibration_error
    from .predict import loss_error

    loss, error = loss_error(logp, y)
    ece = expected_calibration_error(logp.exp().cpu().numpy(), y.cpu().numpy())
    return {"t": float(t), "loss": loss, "error": error, "ece": ece}


def barrier_height(ts: np.ndarray, values: np.ndarray) -> float:
    """max over t of the value above the straight line between the endpoints."""
    ts, values = np.asarray(ts, dtype=float), np.asarray(values, dtype=float)
    order = np.argsort(ts)
    ts, values = ts[order], values[order]
    if ts[0] != 0.0 or ts[-1] != 1.0:
        raise ValueError("the t grid must start at 0 and end at 1")
    line = (1.0 - ts) * values[0] + ts * values[-1]
    return float(np.max(values - line))


def summarize(curves: pd.DataFrame) -> pd.DataFrame:
    """One row per (variant, method, alignment, pair): loss and error barriers from a tidy curve table."""
    keys = [c for c in ("variant", "method", "alignment", "pair", "seed_a", "seed_b") if c in curves]
    rows = []
    duplicated = curves.duplicated(keys + ["t"])
    if duplicated.any():
        raise ValueError(f"curve table has {int(duplicated.sum())} repeated (pair, t) rows, e.g. "
                         f"{curves.loc[duplicated, keys + ['t']].iloc[0].to_dict()}: two curves claim the same pair")
    for key, g in curves.groupby(keys, sort=True):
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        row["loss_barrier"] = barrier_height(g["t"], g["loss"])
        row["error_barrier"] = barrier_height(g["t"], g["error"])
        if "ece" in g:  # curves written before the ECE column have none
            row["ece_barrier"] = barrier_height(g["t"], g["ece"])
        row["loss_endpoints_mean"] = float(g.loc[g["t"].isin([0.0, 1.0]), "loss"].mean())
        rows.append(row)
    return pd.DataFrame(rows)
