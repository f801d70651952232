"""Rebasin (Xiao et al., 2023): permute every sample of a set into one basin, then fit Gaussians.

q_d fits a diagonal Gaussian to the samples as they are; q_r fits it after aligning every sample
to a reference. The reference is the first sample (as in the paper) or, iterated, the mean of the
other aligned samples (leave-one-out) until the permutations stop changing. Alignment is weight
matching (generic over the permutation spec) or activation matching (correlations of hidden
activations on data; architectures with the hidden_activations hook).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
from scipy.optimize import linear_sum_assignment

from .matching import weight_matching
from .permutations import PermutationSpec, apply_permutation

REFERENCES = ("first", "iterated")
MATCHINGS = ("weight", "activation")


@dataclass
class RebasinResult:
    aligned: dict[str, np.ndarray]  # [S, *shape]: every sample in the reference's basin
    perms: list[dict[str, np.ndarray]]  # per sample, applied to it
    iterations: int = 1  # reference updates (1 for the first-sample reference)
    changed: list[int] = field(default_factory=list)  # samples whose permutation changed, per iteration


def _sample(samples: Mapping[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    return {k: v[i] for k, v in samples.items()}


def activation_matching(acts_a: Mapping[str, np.ndarray], acts_b: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per permutation group, the permutation of B's units maximising the correlation with A's units.

    A unit's activations do not depend on how other groups are ordered, so every group is one
    independent assignment problem. ``acts_*``: group -> [rows, units] (the architecture's
    ``hidden_activations`` hook)."""
    perms = {}
    for g in acts_a:
        a = (acts_a[g] - acts_a[g].mean(0)) / (acts_a[g].std(0) + 1e-12)
        b = (acts_b[g] - acts_b[g].mean(0)) / (acts_b[g].std(0) + 1e-12)
        _, cols = linear_sum_assignment(a.T @ b / len(a), maximize=True)
        perms[g] = cols
    return perms


def rebase(samples: Mapping[str, np.ndarray], spec: PermutationSpec, *, reference: str = "iterated",
           matching: str = "weight", activations: Callable | None = None, max_iterations: int = 10,
           seed: int = 0) -> RebasinResult:
    """Align every sample (leading axis S) to one reference; see the module docstring.

    ``activations(params) -> {group: [rows, units]}`` is needed for activation matching. With the
    iterated reference, sample i is matched to the mean of the other aligned samples (leave-one-out,
    as MergeMany), never to a mean that contains itself."""
    if reference not in REFERENCES:
        raise ValueError(f"unknown rebasin reference {reference!r}; allowed: {', '.join(REFERENCES)}")
    if matching not in MATCHINGS:
        raise ValueError(f"unknown rebasin matching {matching!r}; allowed: {', '.join(MATCHINGS)}")
    if matching == "activation" and activations is None:
        raise ValueError("activation matching needs the architecture's hidden activations (its hidden_activations "
                         "hook); use rebasin.matching: weight for this architecture")
    n = next(iter(samples.values())).shape[0]
    samples = {k: np.asarray(v, dtype=np.float64) for k, v in samples.items()}

    def match(ref, i, init):
        if matching == "activation":
            return activation_matching(activations(ref), activations(_sample(samples, i)))
        return weight_matching(ref, _sample(samples, i), spec, seed=seed + i, init=init).perms

    ref = _sample(samples, 0)
    perms = [match(ref, i, None) for i in range(n)]
    result = RebasinResult({}, perms)
    for it in range(1, max_iterations if reference == "iterated" and n > 1 else 1):
        aligned = [apply_permutation(_sample(samples, i), spec, perms[i]) for i in range(n)]
        total = {k: np.sum([a[k] for a in aligned], axis=0) for k in samples}
        new = [match({k: (total[k] - aligned[i][k]) / (n - 1) for k in samples}, i, perms[i]) for i in range(n)]
        changed = sum(any(not np.array_equal(new[i][g], perms[i][g]) for g in new[i]) for i in range(n))
        result.changed.append(changed)
        result.iterations = it + 1
        perms = new
        if changed == 0:
            break
    result.perms = perms
    aligned = [apply_permutation(_sample(samples, i), spec, perms[i]) for i in range(n)]
    result.aligned = {k: np.stack([a[k] for a in aligned]) for k in samples}
    return result


def fit_diagonal_gaussian(samples: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Mean and standard deviation (unbiased variance) over the leading sample axis."""
    n = next(iter(samples.values())).shape[0]
    if n < 2:
        raise ValueError(f"fitting a Gaussian needs at least 2 samples, got {n}")
    mean = {k: v.mean(0) for k, v in samples.items()}
    std = {k: v.std(0, ddof=1) for k, v in samples.items()}
    return mean, std
