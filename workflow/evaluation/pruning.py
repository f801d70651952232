"""Pruning a network by a per-weight score (Xiao et al., 2023: by the posterior's sigma).

Every parameter of the network (weights and biases alike) gets a score; the ``fraction`` of
parameters with the lowest scores is kept and the rest set to zero, and the pruned mean network
is evaluated. With sigma as the score the most certain weights are kept. Ties at the threshold
are broken by position, so exactly round(fraction * total) parameters survive.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


def keep_masks(scores: Mapping[str, np.ndarray], fraction: float) -> dict[str, np.ndarray]:
    """Boolean masks keeping the ``fraction`` of all entries (over all parameters) with the lowest score."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction retained must be in [0, 1], got {fraction!r}")
    flat = np.concatenate([np.asarray(s, dtype=np.float64).ravel() for s in scores.values()])
    if not np.all(np.isfinite(flat)):
        raise ValueError("pruning scores must be finite")
    n_keep = int(round(fraction * flat.size))
    keep = np.zeros(flat.size, dtype=bool)
    keep[np.argsort(flat, kind="stable")[:n_keep]] = True
    masks, start = {}, 0
    for name, s in scores.items():
        size = np.size(s)
        masks[name] = keep[start:start + size].reshape(np.shape(s))
        start += size
    return masks


def prune(params: Mapping[str, np.ndarray], scores: Mapping[str, np.ndarray], fraction: float) -> dict[str, np.ndarray]:
    """``params`` with every entry outside the kept ``fraction`` (lowest scores) set to zero."""
    if set(params) != set(scores):
        raise ValueError(f"parameters and scores name different tensors: {sorted(set(params) ^ set(scores))}")
    masks = keep_masks({k: scores[k] for k in params}, fraction)
    for k, p in params.items():
        if np.shape(p) != masks[k].shape:
            raise ValueError(f"parameter {k!r} has shape {np.shape(p)} but its scores {masks[k].shape}")
    return {k: np.where(masks[k], p, 0.0).astype(np.asarray(p).dtype) for k, p in params.items()}


def pruned_stack(params: Mapping[str, np.ndarray], scores: Mapping[str, np.ndarray],
                 fractions: Sequence[float]) -> dict[str, np.ndarray]:
    """One pruned copy per fraction, stacked [len(fractions), *shape], so all are evaluated in one batched pass."""
    copies = [prune(params, scores, f) for f in fractions]
    return {k: np.stack([c[k] for c in copies]) for k in params}
