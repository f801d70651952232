"""Intervals on a run's measured values: percentile bootstraps over the run's own independent units.

Table 1's metrics are resampled over test points and, where the reference method has 3 chains or
more, over its chains as well (two-level: the chains of a replicate are drawn with replacement and
their predictives pooled, then the test points). Below 3 chains the chains are not resampled, and the
verdicts say so. ``table1_replicates`` writes one row per replicate and one column per
(metric, column) of Table 1, so that a claim derived from several cells (a share of a gap closed,
a difference of accuracies) gets the joint interval of its own formula.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

REPLICATES = 1000  # percentile intervals at 95%: the 2.5% tails hold 25 replicates each
LEVEL = 0.95
MIN_UNITS = 3  # fewer independent units than this: they are not resampled (an interval over 2 is no interval)
REPLICATE_METRICS = ("agreement with HMC", "TV to HMC", "test accuracy %", "test accuracy % of mean network",
                     "test NLL")


def replicate_column(metric: str, column: str) -> str:
    return f"{metric}|{column}"


def interval(values) -> tuple[float, float]:
    """The central LEVEL percentile interval of bootstrap replicates (NaN replicates dropped)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size < 2:
        return math.nan, math.nan
    tail = 100 * (1 - LEVEL) / 2
    return float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))


def scheme(chains: int) -> str:
    """What the replicates resample, in words a verdict can quote."""
    if chains >= MIN_UNITS:
        return f"bootstrap over test points and the reference's {chains} chains"
    return f"bootstrap over test points only (the reference has {chains} chain{'s' if chains != 1 else ''}, fewer than {MIN_UNITS})"


def table1_replicates(chain_probs: np.ndarray, columns: dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray]],
                      y: np.ndarray, reference: str, *, seed: int, replicates: int = REPLICATES) -> pd.DataFrame:
    """Bootstrap replicates of Table 1's metrics.

    ``chain_probs``: the reference method's predictive per chain, [K, N, C]; ``columns``: label ->
    (predictive [N, C], mean network's predictive [N, C] or None, log p(y_n | x_n) [N]); ``reference``: the
    label of the reference's own column, whose predictive is the pooled chains of each replicate.
    Returns one row per replicate: ``replicate``, then one column per (metric, label)."""
    k, n = chain_probs.shape[:2]
    rng = np.random.default_rng(seed)
    resample_chains = k >= MIN_UNITS
    argmax = {label: p.argmax(1) for label, (p, _, _) in columns.items()}
    correct = {label: (a == y).astype(np.float64) for label, a in argmax.items()}
    correct_mean = {label: (m.argmax(1) == y).astype(np.float64) for label, (_, m, _) in columns.items() if m is not None}
    nll = {label: -np.asarray(lp, dtype=np.float64) for label, (_, _, lp) in columns.items()}
    pooled = chain_probs.mean(0)
    rows = []
    for b in range(replicates):
        weights = np.bincount(rng.integers(k, size=k), minlength=k) / k if resample_chains else None
        points = rng.integers(n, size=n)
        ref = (np.tensordot(weights, chain_probs[:, points], axes=1) if resample_chains else pooled[points])
        ref_arg = ref.argmax(1)
        row = {"replicate": b}
        for label, (p, _, _) in columns.items():
            if label == reference:
                p_b, arg_b = ref, ref_arg
                right = (ref_arg == y[points]).astype(np.float64)
            else:
                p_b, arg_b = p[points], argmax[label][points]
                right = correct[label][points]
            row[replicate_column("agreement with HMC", label)] = float(np.mean(arg_b == ref_arg))
            row[replicate_column("TV to HMC", label)] = float(np.mean(0.5 * np.abs(p_b - ref).sum(1)))
            row[replicate_column("test accuracy %", label)] = 100 * float(right.mean())
            row[replicate_column("test accuracy % of mean network", label)] = (
                100 * float(correct_mean[label][points].mean()) if label in correct_mean else math.nan)
            row[replicate_column("test NLL", label)] = float(nll[label][points].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def mean_interval(values, *, seed: int, replicates: int = REPLICATES) -> tuple[float, float]:
    """Interval of the mean of independent units (pairs, seeds) by resampling them; NaN below MIN_UNITS."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size < MIN_UNITS:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    return interval(v[rng.integers(v.size, size=(replicates, v.size))].mean(1))


def statistic_interval(frame: pd.DataFrame, statistic, *, seed: int, replicates: int = REPLICATES) -> tuple[float, float]:
    """Interval of ``statistic(frame)`` by resampling the rows of ``frame`` (its independent units); NaN
    below MIN_UNITS rows."""
    if len(frame) < MIN_UNITS:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    values = [statistic(frame.iloc[rng.integers(len(frame), size=len(frame))]) for _ in range(replicates)]
    return interval(values)


def paired_drop_interval(correct_before, correct_after, *, seed: int, replicates: int = REPLICATES) -> tuple[float, float]:
    """Interval of the accuracy points lost from ``correct_before`` to ``correct_after`` (0/1 per test point, the same
    points), the points resampled together."""
    before, after = np.asarray(correct_before, dtype=np.float64), np.asarray(correct_after, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(len(before), size=(replicates, len(before)))
    return interval(100 * (before[idx].mean(1) - after[idx].mean(1)))
