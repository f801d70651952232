"""Weight matching (Ainsworth et al., Git Re-Basin), generic over a permutation spec.

Maximise sum_k w_k * sum_params <A_k, P(B_k)> over the spec's permutations by coordinate
descent: groups in random order, each step one linear assignment problem, until a full sweep
improves nothing. Several channels sharing the permutations (e.g. means and standard
deviations of two Gaussians, which makes it a W2 alignment) are summed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from .permutations import PermutationSpec, identity_permutations, permute_param

Params = Mapping[str, np.ndarray]


@dataclass
class MatchingResult:
    perms: dict[str, np.ndarray]
    objective_trace: list[float] = field(default_factory=list)  # after every group update
    sweeps: int = 0
    converged: bool = False


def _as_f64(params: Params) -> dict[str, np.ndarray]:
    # float64 so that ties and tiny improvements are decided consistently
    return {k: np.asarray(v.detach().cpu() if hasattr(v, "detach") else v, dtype=np.float64) for k, v in params.items()}


def objective(channels: Sequence[tuple[Params, Params, float]], spec: PermutationSpec,
              perms: Mapping[str, np.ndarray]) -> float:
    """sum_k w_k * <A_k, P(B_k)> over all parameters."""
    total = 0.0
    for a, b, w in channels:
        for name in a:
            total += w * float(np.vdot(a[name], permute_param(b[name], name, spec, perms)))
    return total


def _group_cost(channels, spec: PermutationSpec, perms, group: str, n: int) -> np.ndarray:
    """C[i, j] = gain of mapping unit j of B onto unit i of A, other groups held fixed."""
    cost = np.zeros((n, n))
    for a, b, w in channels:
        for name, axis in spec.groups[group]:
            wa = np.moveaxis(a[name], axis, 0).reshape(n, -1)
            wb = permute_param(b[name], name, spec, perms, skip_axis=axis)
            wb = np.moveaxis(wb, axis, 0).reshape(n, -1)
            cost += w * (wa @ wb.T)
    return cost


def weight_matching(params_a: Params, params_b: Params, spec: PermutationSpec, *, seed: int = 0,
                    max_sweeps: int = 100, init: Mapping[str, np.ndarray] | None = None,
                    extra_channels: Sequence[tuple[Params, Params, float]] = ()) -> MatchingResult:
    """Permutations P maximising <A, P(B)> (plus any extra channels); apply them to B to align it."""
    channels = [(_as_f64(params_a), _as_f64(params_b), 1.0)]
    channels += [(_as_f64(a), _as_f64(b), float(w)) for a, b, w in extra_channels]
    for a, b, _ in channels:
        if set(a) != set(b):
            raise ValueError(f"parameter names differ: {sorted(set(a) ^ set(b))}")
        for name in a:
            if a[name].shape != b[name].shape:
                raise ValueError(f"parameter {name!r} has shapes {a[name].shape} and {b[name].shape}")
        spec.check(a)
    sizes = spec.group_sizes(channels[0][0])
    perms = {g: np.array(p) for g, p in (init or identity_permutations(sizes)).items()}
    rng = np.random.default_rng(seed)
    result = MatchingResult(perms, [objective(channels, spec, perms)])
    groups = list(spec.groups)
    for sweep in range(max_sweeps):
        improved = False
        for gi in rng.permutation(len(groups)):
            g = groups[gi]
            cost = _group_cost(channels, spec, perms, g, sizes[g])
            _, cols = linear_sum_assignment(cost, maximize=True)
            old = cost[np.arange(sizes[g]), perms[g]].sum()
            new = cost[np.arange(sizes[g]), cols].sum()
            # strict improvement with a relative tolerance, so float noise cannot cycle forever
            if new > old + 1e-12 * max(1.0, abs(old)):
                perms[g] = cols
                improved = True
            result.objective_trace.append(objective(channels, spec, perms))
        result.sweeps = sweep + 1
        if not improved:
            result.converged = True
            break
    result.perms = perms
    return result
