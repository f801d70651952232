"""Comparing predictives with a reference predictive (HMC's, in Xiao et al.'s Table 1).

Predictives are class probabilities [N, C], averages of softmax outputs over weight samples.
"""

from __future__ import annotations

import numpy as np


def _check(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if p.shape != q.shape or p.ndim != 2:
        raise ValueError(f"predictives must both be [N, C] arrays of the same shape, got {p.shape} and {q.shape}")
    for name, r in (("p", p), ("reference", q)):
        if np.any(r < -1e-9) or not np.allclose(r.sum(1), 1.0, atol=1e-5):
            raise ValueError(f"{name} is not a probability table: rows must be non-negative and sum to 1")
    return p, q


def agreement(p: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of points whose argmax prediction equals the reference's argmax."""
    p, q = _check(p, reference)
    return float(np.mean(p.argmax(1) == q.argmax(1)))


def total_variation(p: np.ndarray, reference: np.ndarray) -> float:
    """Mean over points of (1/2) sum_y |p(y|x) - p_ref(y|x)|."""
    p, q = _check(p, reference)
    return float(np.mean(0.5 * np.abs(p - q).sum(1)))


def accuracy(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.asarray(p).argmax(1) == np.asarray(y)))


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the argmax (Guo et al. 2017; Izmailov et al. 2021 report it
    beside HMC): the points binned by their confidence max_y p(y|x) into ``bins`` equal-width bins
    (lo, hi], then sum_b (n_b / N) |accuracy_b - mean confidence_b|."""
    p, y = np.asarray(p, dtype=np.float64), np.asarray(y)
    if p.ndim != 2 or y.shape != (len(p),):
        raise ValueError(f"expected p [N, C] and labels [N], got shapes {p.shape} and {y.shape}")
    if not isinstance(bins, int) or isinstance(bins, bool) or bins < 1:
        raise ValueError(f"bins must be an integer >= 1, got {bins!r}")
    confidence = p.max(1)
    correct = (p.argmax(1) == y).astype(np.float64)
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, correct, bins) - np.bincount(which, confidence, bins))
    return float(gap.sum() / len(p)) if counts.sum() else float("nan")
