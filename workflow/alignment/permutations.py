"""Permutation specs: which parameter axes each hidden-unit permutation acts on.

A spec is data (as in Git Re-Basin): every permutation group lists the (parameter name, axis)
pairs it permutes. All alignment code is generic over it. Convention: applying a permutation
``perm`` to an axis reorders it as ``new[i] = old[perm[i]]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np


@dataclass(frozen=True)
class PermutationSpec:
    """``groups[g]`` = list of (parameter name, axis) permuted together by group ``g``."""

    groups: dict[str, tuple[tuple[str, int], ...]]

    def axes_of(self, name: str) -> dict[int, str]:
        """Axis -> group for one parameter (empty if the parameter is never permuted)."""
        return {axis: g for g, members in self.groups.items() for (p, axis) in members if p == name}

    def group_sizes(self, params: Mapping[str, np.ndarray], batch_dims: int = 0) -> dict[str, int]:
        """Size of every group, checked to agree across all the axes it acts on."""
        sizes = {}
        for g, members in self.groups.items():
            found = {params[p].shape[batch_dims + axis] for p, axis in members}
            if len(found) != 1:
                raise ValueError(f"permutation group {g!r} acts on axes of different sizes {sorted(found)}")
            sizes[g] = found.pop()
        return sizes

    def check(self, params: Mapping[str, np.ndarray], batch_dims: int = 0) -> None:
        """Raise if the spec names a parameter or axis the parameters do not have."""
        for g, members in self.groups.items():
            for p, axis in members:
                if p not in params:
                    raise KeyError(f"permutation group {g!r} names parameter {p!r}, not among {sorted(params)}")
                if not 0 <= axis < params[p].ndim - batch_dims:
                    raise ValueError(f"permutation group {g!r}: parameter {p!r} has no axis {axis}")
        self.group_sizes(params, batch_dims)


def permute_param(value, name: str, spec: PermutationSpec, perms: Mapping[str, np.ndarray],
                  batch_dims: int = 0, skip_axis: int | None = None):
    """Permute every spec'd axis of one parameter (numpy array or torch tensor)."""
    for axis, g in spec.axes_of(name).items():
        if axis == skip_axis or g not in perms:
            continue
        idx = perms[g]
        if hasattr(value, "index_select"):  # torch tensor
            import torch

            value = value.index_select(batch_dims + axis, torch.as_tensor(idx, device=value.device))
        else:
            value = np.take(value, idx, axis=batch_dims + axis)
    return value


def apply_permutation(params: Mapping[str, np.ndarray], spec: PermutationSpec,
                      perms: Mapping[str, np.ndarray], batch_dims: int = 0) -> dict:
    """Permuted copy of ``params``; ``batch_dims`` leading axes (e.g. chain, draw) are left alone."""
    return {name: permute_param(v, name, spec, perms, batch_dims) for name, v in params.items()}


def identity_permutations(sizes: Mapping[str, int]) -> dict[str, np.ndarray]:
    return {g: np.arange(n) for g, n in sizes.items()}


def random_permutations(sizes: Mapping[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {g: rng.permutation(n) for g, n in sizes.items()}


def invert(perm: np.ndarray) -> np.ndarray:
    inv = np.empty_like(perm)
    inv[perm] = np.arange(len(perm))
    return inv


def is_permutation(perm: np.ndarray) -> bool:
    perm = np.asarray(perm)
    return perm.ndim == 1 and np.array_equal(np.sort(perm), np.arange(len(perm)))


def count_cycles(perm: np.ndarray) -> int:
    """Number of cycles (fixed points included) of a permutation of range(n)."""
    perm = np.asarray(perm)
    if not is_permutation(perm):
        raise ValueError(f"not a permutation of range({len(perm)}): {perm}")
    seen = np.zeros(len(perm), dtype=bool)
    cycles = 0
    for start in range(len(perm)):
        if seen[start]:
            continue
        cycles += 1
        j = start
        while not seen[j]:
            seen[j] = True
            j = perm[j]
    return cycles


def number_of_transpositions(perm: np.ndarray) -> int:
    """NoT (Xiao et al.): the fewest transpositions composing ``perm`` = n - #cycles."""
    return len(perm) - count_cycles(perm)


def induced_permutation(perm: np.ndarray, keep) -> np.ndarray:
    """The permutation ``perm`` induces on the kept items: each kept item goes to the first kept item
    that following ``perm`` reaches (the first-return map), relabelled 0..len(kept)-1. Its cycles are
    ``perm``'s cycles with the other items struck out, so its NoT counts only the transpositions among
    the kept items (e.g. the units that matter, leaving out units the data never reach)."""
    perm, keep = np.asarray(perm), np.asarray(keep, dtype=bool)
    if keep.shape != perm.shape:
        raise ValueError(f"keep has shape {keep.shape}, the permutation {perm.shape}")
    kept = np.flatnonzero(keep)
    label = np.full(len(perm), -1)
    label[kept] = np.arange(len(kept))
    out = np.empty(len(kept), dtype=int)
    for i in kept:
        j = perm[i]
        while not keep[j]:
            j = perm[j]
        out[label[i]] = label[j]
    return out


def expected_not_uniform(n: int) -> float:
    """E[NoT] of a uniformly random permutation of n items: n - H_n."""
    return n - float(np.sum(1.0 / np.arange(1, n + 1)))


def compose(first: np.ndarray, then: np.ndarray) -> np.ndarray:
    """The permutation that applying ``first`` and then ``then`` amounts to (new[i] = old[first[then[i]]])."""
    return np.asarray(first)[np.asarray(then)]


def random_transpositions(sizes: Mapping[str, int], k: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The product of ``k`` uniformly random transpositions of hidden units (any group, any pair).

    A group is picked with probability proportional to its number of unit pairs, so every
    transposition of the network is equally likely. Transpositions may cancel: the NoT of the
    result is at most k.
    """
    if k < 0:
        raise ValueError(f"the number of transpositions must be >= 0, got {k}")
    groups = [g for g, n in sizes.items() if n >= 2]
    if k and not groups:
        raise ValueError("no permutation group has two units to transpose")
    pairs = np.array([sizes[g] * (sizes[g] - 1) / 2 for g in groups], dtype=np.float64)
    perms = identity_permutations(sizes)
    for _ in range(k):
        g = groups[rng.choice(len(groups), p=pairs / pairs.sum())]
        i, j = rng.choice(sizes[g], size=2, replace=False)
        perms[g][[i, j]] = perms[g][[j, i]]
    return perms
