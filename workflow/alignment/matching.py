"""Weight matching (Ainsworth et al., Git Re-Basin), generic over a permutation spec.

Maximise sum_k w_k * sum_params <A_k, P(B_k)> over the spec's permutations by coordinate
descent: groups in random order, each step one linear assignment problem, until a full sweep
improves nothing. Coordinate descent can stop in a local optimum once there are two or more
groups; ``restarts`` > 1 runs it again from random permutations in other group orders and keeps
the best objective. Several channels sharing the permutations (e.g. means and standard
deviations of two Gaussians, which makes it a W2 alignment) are summed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from .permutations import PermutationSpec, identity_permutations, permute_param, random_permutations

Params = Mapping[str, np.ndarray]


@dataclass
class MatchingResult:
    perms: dict[str, np.ndarray]
    objective_trace: list[float] = field(default_factory=list)  # after every group update
    sweeps: int = 0
    converged: bool = False
    restart: int = 0  # which restart found it (0: the one from ``init`` or the layer-wise start)
    restart_objectives: list[float] = field(default_factory=list)  # the final objective of every restart


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


def _group_terms(channels, spec: PermutationSpec, perms, group: str, n: int):
    """Per (channel weight, A's rows, B's rows) of every parameter axis the group acts on: the unit
    axis moved first and flattened, B's other permuted axes already permuted (float64)."""
    terms = []
    for a, b, w in channels:
        for name, axis in spec.groups[group]:
            wa = np.moveaxis(a[name], axis, 0).reshape(n, -1)
            wb = permute_param(b[name], name, spec, perms, skip_axis=axis)
            terms.append((w, wa, np.moveaxis(wb, axis, 0).reshape(n, -1)))
    return terms


def _group_cost(terms, n: int) -> np.ndarray:
    """C[i, j] = gain of mapping unit j of B onto unit i of A, other groups held fixed. In float32:
    it only proposes an assignment, which is then accepted or not on its float64 gain."""
    cost = np.zeros((n, n), dtype=np.float32)
    for w, wa, wb in terms:
        cost += np.float32(w) * (wa.astype(np.float32) @ wb.astype(np.float32).T)
    return cost


def _assignment_gains(terms, old: np.ndarray, new: np.ndarray) -> tuple[float, float]:
    """sum_i C[i, old[i]] and sum_i C[i, new[i]] in float64 over the units i the two assignments map
    differently (the others cancel), from the rows alone: O(changed x m), not a matrix product."""
    rows = np.flatnonzero(old != new)
    gain_old = gain_new = 0.0
    for w, wa, wb in terms:
        a = wa[rows]
        gain_old += w * float(np.vdot(a, wb[old[rows]]))
        gain_new += w * float(np.vdot(a, wb[new[rows]]))
    return gain_old, gain_new


def fan_in_matching(channels, spec: PermutationSpec, sizes: dict) -> dict[str, np.ndarray]:
    """A start for coordinate descent: the groups in the spec's order (inputs to outputs), each
    matched on the parameters whose axis 0 it permutes (the units' incoming weights and biases),
    the groups before it already applied, as layer-wise matching would. Coordinate descent from
    the identity instead meets the layers' outgoing weights while the next layer is still unmatched,
    and settles in worse optima: on an MLP 784-1024x3-10 of two random initialisations this start
    reaches an objective about 9% higher (benchmarks/bench_matching.py)."""
    perms: dict[str, np.ndarray] = {}
    for g, members in spec.groups.items():
        incoming = [(name, axis) for name, axis in members if axis == 0] or list(members)
        sub = PermutationSpec({**spec.groups, g: tuple(incoming)})
        terms = _group_terms(channels, sub, perms, g, sizes[g])
        perms[g] = linear_sum_assignment(_group_cost(terms, sizes[g]), maximize=True)[1]
    return perms


def _neighbours(spec: PermutationSpec) -> dict[str, set[str]]:
    """Groups sharing a parameter with each group: only their changes change its cost matrix."""
    members = {g: {p for p, _ in m} for g, m in spec.groups.items()}
    return {g: {h for h in members if h != g and members[g] & members[h]} for g in members}


def checked_channels(params_a: Params, params_b: Params, spec: PermutationSpec,
                     extra_channels: Sequence[tuple[Params, Params, float]] = ()) -> list:
    """[(A, B, weight)] in float64, B's names and shapes checked against A's and the spec."""
    channels = [(_as_f64(params_a), _as_f64(params_b), 1.0)]
    channels += [(_as_f64(a), _as_f64(b), float(w)) for a, b, w in extra_channels]
    for a, b, _ in channels:
        if set(a) != set(b):
            raise ValueError(f"parameter names differ: {sorted(set(a) ^ set(b))}")
        for name in a:
            if a[name].shape != b[name].shape:
                raise ValueError(f"parameter {name!r} has shapes {a[name].shape} and {b[name].shape}")
        spec.check(a)
    return channels


def weight_matching(params_a: Params, params_b: Params, spec: PermutationSpec, *, seed: int = 0,
                    max_sweeps: int = 100, init: Mapping[str, np.ndarray] | None = None,
                    extra_channels: Sequence[tuple[Params, Params, float]] = (), restarts: int = 1) -> MatchingResult:
    """Permutations P maximising <A, P(B)> (plus any extra channels); apply them to B to align it.

    The first run starts from ``init`` (default: ``fan_in_matching``, layer by layer, or the identity
    where that scores higher); each further restart from random permutations, with its own group
    order. The best objective wins (the earliest on ties), so more restarts never give a worse
    result."""
    if isinstance(restarts, bool) or not isinstance(restarts, (int, np.integer)) or restarts < 1:
        raise ValueError(f"restarts must be an integer >= 1, got {restarts!r}")
    channels = checked_channels(params_a, params_b, spec, extra_channels)
    sizes = spec.group_sizes(channels[0][0])
    best = None
    finals = []
    for r in range(restarts):
        if r == 0:
            rng = np.random.default_rng(seed)
            if init is not None:
                start = {g: np.array(p) for g, p in init.items()}
            else:
                # never start below the identity: coordinate descent only climbs, so the result then
                # never leaves B further from A than it was
                start = fan_in_matching(channels, spec, sizes)
                identity = identity_permutations(sizes)
                if objective(channels, spec, start) < objective(channels, spec, identity):
                    start = identity
        else:
            rng = np.random.default_rng([seed, r])
            start = random_permutations(sizes, rng)
        result = _coordinate_descent(channels, spec, sizes, start, rng, max_sweeps)
        result.restart = r
        finals.append(result.objective_trace[-1])
        if best is None or finals[-1] > best.objective_trace[-1]:
            best = result
    best.restart_objectives = finals
    return best


def _coordinate_descent(channels, spec: PermutationSpec, sizes: dict, perms: dict, rng: np.random.Generator,
                        max_sweeps: int) -> MatchingResult:
    """Coordinate descent over the groups in random order until a sweep improves nothing. A group
    whose neighbours have not changed since it was last solved is skipped: its cost matrix, hence
    its assignment, would be the same. The objective is carried along by the exact float64 gain of
    each accepted assignment, and recomputed in full after every sweep."""
    current = objective(channels, spec, perms)
    result = MatchingResult(perms, [current])
    groups = list(spec.groups)
    neighbours = _neighbours(spec)
    changed_at = {g: 0 for g in groups}  # update counter value when each group last changed
    solved_at: dict[str, int] = {}  # counter value when each group was last solved
    counter = 0
    for sweep in range(max_sweeps):
        improved = False
        for gi in rng.permutation(len(groups)):
            g = groups[gi]
            if g in solved_at and all(changed_at[h] <= solved_at[g] for h in neighbours[g]):
                result.objective_trace.append(current)
                continue
            terms = _group_terms(channels, spec, perms, g, sizes[g])
            _, cols = linear_sum_assignment(_group_cost(terms, sizes[g]), maximize=True)
            old, new = _assignment_gains(terms, perms[g], cols)
            solved_at[g] = counter
            # strict improvement with a relative tolerance, so float noise cannot cycle forever
            if new > old + 1e-12 * max(1.0, abs(old)):
                perms[g] = cols
                improved = True
                counter += 1
                changed_at[g] = solved_at[g] = counter
                current += new - old
            result.objective_trace.append(current)
        current = result.objective_trace[-1] = objective(channels, spec, perms)
        result.sweeps = sweep + 1
        if not improved:
            result.converged = True
            break
    result.perms = perms
    return result
