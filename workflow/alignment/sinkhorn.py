"""Sinkhorn matching: the weight-matching objective sum_k w_k <A_k, P(B_k)> over doubly stochastic
matrices with an entropy term whose weight is annealed to zero (softassign; Gold and Rangarajan,
1996; the entropic relaxation that Sinkhorn re-basin, Pena et al. 2023, differentiates through).

Every group starts at the uniform matrix (all units equally likely), so no unit order is favoured.
At temperature T a group's soft permutation is the Sinkhorn projection of exp(C / T), C its cost
matrix given the other groups' current soft permutations, standardised; the groups are updated in
the spec's order, and T falls geometrically from ``t_start`` to ``t_end``. At high T the objective
is smooth and every group sees the average of the others, which is the point: coordinate descent
on hard permutations commits to one group's order before the others are known, and can stop in a
local optimum. At the end each soft permutation is rounded to the nearest hard one (one linear
assignment) and polished by weight matching's coordinate descent from there, so the result is a
local optimum of the exact objective, like weight matching's, reached from another start.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from .matching import MatchingResult, Params, checked_channels, weight_matching
from .permutations import PermutationSpec


def soft_permute(value: np.ndarray, name: str, spec: PermutationSpec, soft: Mapping[str, np.ndarray],
                 skip_axis: int | None = None) -> np.ndarray:
    """``value`` with every spec'd axis mixed by its group's soft permutation: new[i] = sum_j S[i, j] old[j]
    (a hard permutation matrix, S[i, perm[i]] = 1, gives ``permute_param``'s result)."""
    for axis, g in spec.axes_of(name).items():
        if axis == skip_axis or g not in soft:
            continue
        value = np.moveaxis(np.tensordot(soft[g], value, axes=([1], [axis])), 0, axis)
    return value


def soft_group_cost(channels, spec: PermutationSpec, soft: Mapping[str, np.ndarray], group: str,
                    n: int) -> np.ndarray:
    """C[i, j] = gain of mapping unit j of B onto unit i of A, the other groups mixed by their soft
    permutations (in the channels' precision)."""
    cost = np.zeros((n, n), dtype=np.float32)
    for a, b, w in channels:
        for name, axis in spec.groups[group]:
            wa = np.moveaxis(a[name], axis, 0).reshape(n, -1)
            wb = soft_permute(b[name], name, spec, soft, skip_axis=axis)
            cost += np.float32(w) * (wa @ np.moveaxis(wb, axis, 0).reshape(n, -1).T)
    return cost


def _log_sum_exp(x: np.ndarray, axis: int) -> np.ndarray:
    top = x.max(axis=axis, keepdims=True)
    return top + np.log(np.exp(x - top).sum(axis=axis, keepdims=True))


def sinkhorn(log_kernel: np.ndarray, iterations: int) -> np.ndarray:
    """The doubly stochastic matrix diag(u) K diag(v) nearest K = exp(log_kernel), in the log domain."""
    log_p = log_kernel.astype(np.float64)
    for _ in range(iterations):
        log_p = log_p - _log_sum_exp(log_p, axis=1)
        log_p = log_p - _log_sum_exp(log_p, axis=0)
    return np.exp(log_p)


def sinkhorn_matching(params_a: Params, params_b: Params, spec: PermutationSpec, *, seed: int = 0,
                      max_sweeps: int = 100, init: Mapping[str, np.ndarray] | None = None,
                      extra_channels: Sequence[tuple[Params, Params, float]] = (), restarts: int = 1,
                      anneal_steps: int = 30, t_start: float = 1.0, t_end: float = 0.01,
                      sinkhorn_iterations: int = 30) -> MatchingResult:
    """Permutations P maximising <A, P(B)> (plus any extra channels) by annealed Sinkhorn, then
    weight matching's coordinate descent from the rounded result (``restarts`` > 1 adds its random
    restarts; ``init`` is ignored: the annealing starts from the uniform matrices)."""
    if not (anneal_steps >= 1 and 0 < t_end <= t_start and sinkhorn_iterations >= 1):
        raise ValueError(f"Sinkhorn matching needs anneal_steps >= 1, 0 < t_end <= t_start and sinkhorn_iterations "
                         f">= 1; got {anneal_steps}, {t_end}, {t_start}, {sinkhorn_iterations}")
    channels = checked_channels(params_a, params_b, spec, extra_channels)
    sizes = spec.group_sizes(channels[0][0])
    # float32 guides the annealing; the polish decides in float64
    single = [({k: v.astype(np.float32) for k, v in a.items()}, {k: v.astype(np.float32) for k, v in b.items()}, w)
              for a, b, w in channels]
    soft = {g: np.full((n, n), 1.0 / n, dtype=np.float32) for g, n in sizes.items()}
    for t in np.geomspace(t_start, t_end, anneal_steps):
        for g, n in sizes.items():
            cost = soft_group_cost(single, spec, soft, g, n).astype(np.float64)
            scale = cost.std()
            standardised = (cost - cost.mean()) / scale if scale > 0 else np.zeros_like(cost)
            soft[g] = sinkhorn(standardised / t, sinkhorn_iterations).astype(np.float32)
    rounded = {g: linear_sum_assignment(s, maximize=True)[1] for g, s in soft.items()}
    # the polish's trace starts at the rounded permutations' objective
    return weight_matching(params_a, params_b, spec, seed=seed, max_sweeps=max_sweeps, init=rounded,
                           extra_channels=extra_channels, restarts=restarts)
