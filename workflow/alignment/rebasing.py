"""Rebasin (Xiao et al., 2023): permute every sample of a set into one basin, then fit Gaussians.

q_d fits a diagonal Gaussian to the samples as they are; q_r fits it after aligning every sample
to a reference. The reference is the first sample (as in the paper) or, iterated, the mean of the
other aligned samples (leave-one-out) until the permutations stop changing. Alignment is weight
matching (generic over the permutation spec) or matching of hidden activations on data
(architectures with the hidden_activations hook): "activation" is Xiao et al.'s cost, the raw inner
products of post-activation units, C[i, j] = -sum_x a_i(x) b_j(x); "correlation" standardises
every unit first (Pearson correlations), so that a unit's scale does not decide its match.

``draw_diagnostics`` is the control of a rebasin: draws of one HMC chain sit in one mode, so
matching should give them all the same permutation; the NoT of each draw's permutation, to the
reference and to its own chain's first draw, says whether matching scrambled them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
from scipy.optimize import linear_sum_assignment

from .permutations import PermutationSpec, apply_permutation, compose, invert, number_of_transpositions

REFERENCES = ("first", "iterated")


@dataclass
class RebasinResult:
    aligned: dict[str, np.ndarray]  # [S, *shape]: every sample in the reference's basin
    perms: list[dict[str, np.ndarray]]  # per sample, applied to it
    iterations: int = 1  # reference updates (1 for the first-sample reference)
    changed: list[int] = field(default_factory=list)  # samples whose permutation changed, per iteration


def _sample(samples: Mapping[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    return {k: v[i] for k, v in samples.items()}


def activation_matching(acts_a: Mapping[str, np.ndarray], acts_b: Mapping[str, np.ndarray], *,
                        cost: str = "inner") -> dict[str, np.ndarray]:
    """Per permutation group, the permutation of B's units that best matches A's units: maximising
    the summed inner products of their activations (``cost="inner"``, Xiao et al.) or correlations
    (``cost="correlation"``).

    A unit's activations do not depend on how other groups are ordered, so every group is one
    independent assignment problem. ``acts_*``: group -> [rows, units] (the architecture's
    ``hidden_activations`` hook)."""
    if cost not in ("inner", "correlation"):
        raise ValueError(f"unknown activation matching cost {cost!r}; allowed: inner, correlation")
    perms = {}
    for g in acts_a:
        a, b = acts_a[g], acts_b[g]
        if cost == "correlation":
            a = (a - a.mean(0)) / (a.std(0) + 1e-12)
            b = (b - b.mean(0)) / (b.std(0) + 1e-12)
        _, cols = linear_sum_assignment(a.T @ b / len(a), maximize=True)
        perms[g] = cols
    return perms


def rebase(samples: Mapping[str, np.ndarray], spec: PermutationSpec, *, reference: str = "iterated",
           matching: str = "weight", activations: Callable | None = None, max_iterations: int = 10,
           seed: int = 0, extra: Mapping[str, np.ndarray] | None = None, sequential: bool = True) -> RebasinResult:
    """Align every sample (leading axis S) to one reference; see the module docstring.

    ``activations(params) -> {group: [rows, units]}`` is needed for activation matching. With the
    iterated reference, sample i is matched to the mean of the other aligned samples (leave-one-out,
    as MergeMany), never to a mean that contains itself. ``extra`` (leading axis S, e.g. the
    standard deviations of S diagonal Gaussians whose means are ``samples``) joins the weight
    matching as a second channel, its reference built the same way: for diagonal Gaussians the
    mean of the means and the mean of the standard deviations are the W2 barycentre, so this
    aligns S Gaussians jointly in W2.

    Each reference update matches one sample after another, each against the others as they are
    now, as Git Re-Basin's MergeMany does (``sequential``); with ``sequential=False`` every sample
    is matched against the others as they were before the update, all at once. That simultaneous
    update swings with few samples (a handful of seeds: every sample follows the others' previous
    frame, and every one changes at every update without end); one at a time it settles."""
    from . import matchers

    if reference not in REFERENCES:
        raise ValueError(f"unknown rebasin reference {reference!r}; allowed: {', '.join(REFERENCES)}")
    matcher = matchers.get(matching, matchers.SAMPLE_MATCHERS)  # a loss matcher would train once per sample
    if matcher.compares == matchers.ACTIVATIONS and activations is None:
        raise ValueError(f"{matching} matching needs the architecture's hidden activations (its hidden_activations "
                         "hook); use a weight matcher for this architecture")
    if extra is not None and matcher.compares == matchers.ACTIVATIONS:
        raise ValueError(f"{matching} matching compares activations; it cannot align a second channel (extra)")
    n = next(iter(samples.values())).shape[0]
    samples = {k: np.asarray(v, dtype=np.float64) for k, v in samples.items()}
    sets = [samples] if extra is None else [samples, {k: np.asarray(v, dtype=np.float64) for k, v in extra.items()}]

    def match(refs, i, init):
        if matcher.compares == matchers.ACTIVATIONS:
            return matcher.match(activations(refs[0]), activations(_sample(samples, i)))
        channels = [(refs[1], _sample(sets[1], i), 1.0)] if extra is not None else ()
        return matcher.match(refs[0], _sample(samples, i), spec, seed=seed + i, init=init,
                             extra_channels=channels).perms

    perms = [match([_sample(x, 0) for x in sets], i, None) for i in range(n)]
    result = RebasinResult({}, perms)
    for it in range(1, max_iterations if reference == "iterated" and n > 1 else 1):
        aligned = [[apply_permutation(_sample(x, i), spec, perms[i]) for i in range(n)] for x in sets]
        totals = [{k: np.sum([a[k] for a in al], axis=0) for k in samples} for al in aligned]

        def others(i):  # the leave-one-out reference of sample i, per channel
            return [{k: (t[k] - al[i][k]) / (n - 1) for k in samples} for t, al in zip(totals, aligned)]

        if sequential:
            new = list(perms)
            for i in range(n):
                new[i] = match(others(i), i, perms[i])
                for x, al, t in zip(sets, aligned, totals):  # the others see sample i where it is now
                    moved = apply_permutation(_sample(x, i), spec, new[i])
                    for k in samples:
                        t[k] = t[k] - al[i][k] + moved[k]
                    al[i] = moved
        else:
            new = [match(others(i), i, perms[i]) for i in range(n)]
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


def unit_vectors(params: Mapping[str, np.ndarray], spec: PermutationSpec) -> dict[str, np.ndarray]:
    """Per group, every unit's weights as one row: the slices of all parameters the group permutes
    (incoming and outgoing weights, biases), [units, features]."""
    out = {}
    for g, members in spec.groups.items():
        out[g] = np.concatenate([np.moveaxis(np.asarray(params[p]), axis, 0).reshape(params[p].shape[axis], -1)
                                 for p, axis in members], axis=1)
    return out


def unit_correlation(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], spec: PermutationSpec) -> float:
    """Median over all hidden units of the correlation between a unit's weights in ``a`` and the same
    unit's (same index, no matching) in ``b``: about 1 while a chain keeps its units, about 0 once
    every unit has moved."""
    corrs, vectors_b = [], unit_vectors(b, spec)
    for g, ua in unit_vectors(a, spec).items():
        ub = vectors_b[g]
        ua, ub = ua - ua.mean(1, keepdims=True), ub - ub.mean(1, keepdims=True)
        denom = np.sqrt((ua ** 2).sum(1) * (ub ** 2).sum(1))
        corrs.append(np.where(denom > 0, (ua * ub).sum(1) / np.where(denom > 0, denom, 1), np.nan))
    return float(np.nanmedian(np.concatenate(corrs)))


def draw_diagnostics(perms: list[Mapping[str, np.ndarray]], chains, samples: Mapping[str, np.ndarray] | None = None,
                     spec: PermutationSpec | None = None) -> list[dict]:
    """Per draw, what matching did to it: ``not_to_reference``, the NoT of its permutation (summed over
    groups; 0: left as it was), and ``not_to_chain_start``, the NoT between its permutation and that of
    its chain's first draw (0: matched like the rest of its chain, as one mode's draws should be).
    With ``samples`` and ``spec``, ``unit_corr_to_chain_start`` says, without any matching, whether the
    chain kept its units since its first draw (``unit_correlation``). ``chains``: the chain (or member)
    of every draw, draws of a chain contiguous and in order."""
    chains = list(chains)
    if len(chains) != len(perms):
        raise ValueError(f"{len(perms)} permutations but {len(chains)} chain labels")
    rows, start = [], {}
    for i, (perm, chain) in enumerate(zip(perms, chains)):
        first = perms[start.setdefault(chain, i)]
        row = {"draw": i, "chain": chain, "draw_in_chain": i - start[chain],
               "not_to_reference": sum(number_of_transpositions(p) for p in perm.values()),
               "not_to_chain_start": sum(number_of_transpositions(compose(invert(first[g]), perm[g])) for g in perm),
               "units": sum(len(p) for p in perm.values())}
        if samples is not None and spec is not None:
            row["unit_corr_to_chain_start"] = unit_correlation(_sample(samples, start[chain]), _sample(samples, i),
                                                               spec)
        rows.append(row)
    return rows
