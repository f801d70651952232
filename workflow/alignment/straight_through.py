"""Git Re-Basin's straight-through estimator (Ainsworth et al., 2023, Sec. 3.3): permutations that
minimise the loss at the midpoint of A and B aligned, rather than a weight proxy.

A free parameter set W, started at A, is trained so that the network at the midpoint
(A + proj(W)) / 2 has a low training loss, where proj(W) is B permuted by weight matching onto W.
The projection is a permutation, which has no gradient: the straight-through estimator takes its
value from proj(W) and its gradient as if it were W (proj(W) + W - stop_gradient(W)). Every step
therefore yields one candidate permutation of B.

The result is the candidate whose midpoint has the lowest loss on the evaluation points (the
training points given, or their first ``eval_points``), the first candidate being weight matching
onto A itself: the kept midpoint loss never rises along the steps, and the estimator never returns
a permutation whose midpoint is worse there than weight matching's. ``objective_trace`` records
that kept loss (lower is better, unlike weight matching's objective).

For Gaussians (``extra_channels`` with the standard deviations) the projection is the W2 weight
matching of the means onto W and the standard deviations onto A's, and the midpoint is that of the
means.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .matching import MatchingResult, Params, weight_matching
from .permutations import PermutationSpec, apply_permutation


def midpoint_loss(model, a, b_perm, x, y) -> float:
    import torch
    from torch.func import functional_call

    with torch.no_grad():
        mid = {k: 0.5 * (a[k] + b_perm[k]) for k in a}
        return float(torch.nn.functional.cross_entropy(functional_call(model, mid, (x,)), y))


def ste_matching(model, params_a: Params, params_b: Params, spec: PermutationSpec, x, y, *, seed: int = 0,
                 max_sweeps: int = 100, extra_channels: Sequence[tuple[Params, Params, float]] = (),
                 restarts: int = 1, steps: int = 200, lr: float = 1e-3, batch_size: int = 128,
                 eval_points: int = 2000, init: Mapping[str, np.ndarray] | None = None) -> MatchingResult:
    """Permutations of B that lower the midpoint's training loss (straight-through estimator); apply
    them to B to align it. ``x``, ``y``: training inputs and labels (torch tensors)."""
    import torch
    from torch.func import functional_call

    if steps < 0 or batch_size < 1 or eval_points < 1 or not lr > 0:
        raise ValueError(f"straight-through matching needs steps >= 0, batch_size >= 1, eval_points >= 1 and "
                         f"lr > 0; got steps={steps}, batch_size={batch_size}, eval_points={eval_points}, lr={lr}")
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"straight-through matching needs training points with labels: got {len(x)} inputs and "
                         f"{len(y)} labels")
    dtype = next(model.parameters()).dtype
    device = next(model.parameters()).device

    def tensors(params):
        return {k: torch.as_tensor(np.asarray(v), dtype=dtype, device=device) for k, v in params.items()}

    a_t = tensors(params_a)
    x_eval, y_eval = x[:eval_points], y[:eval_points]
    perms = weight_matching(params_a, params_b, spec, seed=seed, max_sweeps=max_sweeps,
                            extra_channels=extra_channels, restarts=restarts, init=init).perms
    best_perms = perms
    b_perm = tensors(apply_permutation(params_b, spec, perms))  # B under the current permutations
    best = midpoint_loss(model, a_t, b_perm, x_eval, y_eval)
    result = MatchingResult(best_perms, [best])
    seen = {_key(perms)}
    w = {k: v.clone().requires_grad_(True) for k, v in a_t.items()}
    optimizer = torch.optim.Adam(w.values(), lr=lr)
    rng = np.random.default_rng(seed)
    for step in range(steps):
        idx = torch.as_tensor(rng.choice(len(x), size=min(batch_size, len(x)), replace=False), device=x.device)
        projected = {k: b_perm[k] + w[k] - w[k].detach() for k in w}  # value proj(W), gradient of W
        mid = {k: 0.5 * (a_t[k] + projected[k]) for k in w}
        loss = torch.nn.functional.cross_entropy(functional_call(model, mid, (x[idx],)), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        current = {k: v.detach().cpu().numpy() for k, v in w.items()}
        # B projected onto the updated W, from the last permutations (a few sweeps from a warm start)
        perms = weight_matching(current, params_b, spec, seed=seed + step + 1, max_sweeps=max_sweeps, init=perms,
                                extra_channels=extra_channels).perms
        key = _key(perms)
        if key not in seen:
            seen.add(key)
            b_perm = tensors(apply_permutation(params_b, spec, perms))
            value = midpoint_loss(model, a_t, b_perm, x_eval, y_eval)
            if value < best:
                best, best_perms = value, perms
        result.objective_trace.append(best)
    result.perms = best_perms
    result.sweeps = steps
    result.converged = True  # a fixed number of steps: nothing to converge
    return result


def _key(perms: Mapping[str, np.ndarray]) -> tuple:
    return tuple((g, p.tobytes()) for g, p in sorted(perms.items()))
