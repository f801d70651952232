"""Intervals on a run's measured values: percentile bootstraps over the run's own independent units.

Table 1's metrics are resampled over test points and, where a sample set has 3 units or more (the
reference's chains, the ensemble's members), over its units as well (two-level: the units of a
replicate are drawn with replacement and their predictives pooled, then the test points). Below 3
units they are not resampled, and the verdicts say so; fitted Gaussians (q_d, q_r, VI) are not refitted
per replicate. Barriers are resampled by seed (``seed_replicates``): pairs share seeds, so a replicate
draws seeds and weighs every pair by how often both its seeds were drawn. ``table1_replicates`` writes one row per replicate and one column per
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


def scheme(units: dict[str, int]) -> str:
    """What the replicates resample, in words a verdict can quote (``units``: sample column -> its units)."""
    resampled = [f"{label}'s {n} units" for label, n in units.items() if n >= MIN_UNITS]
    kept = [f"{label} ({n})" for label, n in units.items() if n < MIN_UNITS]
    text = "bootstrap over test points" + (" and " + ", ".join(resampled) if resampled else "")
    if kept:
        text += f"; not resampled, fewer than {MIN_UNITS} units: " + ", ".join(kept)
    return text + "; fitted Gaussians not refitted"


def table1_replicates(units: dict[str, np.ndarray], columns: dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray]],
                      y: np.ndarray, reference: str, *, seed: int, replicates: int = REPLICATES) -> pd.DataFrame:
    """Bootstrap replicates of Table 1's metrics.

    ``units``: sample column -> its predictive per unit (chain or member), [K, N, C], the reference's among
    them; ``columns``: label -> (predictive [N, C], mean network's predictive [N, C] or None, log p(y_n | x_n)
    [N]); ``reference``: the label of the reference's column, against whose predictive of each replicate the
    others are compared. A column with MIN_UNITS units or more is pooled from its resampled units.
    Returns one row per replicate: ``replicate``, then one column per (metric, label)."""
    n = len(y)
    rng = np.random.default_rng(seed)
    argmax = {label: p.argmax(1) for label, (p, _, _) in columns.items()}
    correct = {label: (a == y).astype(np.float64) for label, a in argmax.items()}
    correct_mean = {label: (m.argmax(1) == y).astype(np.float64) for label, (_, m, _) in columns.items() if m is not None}
    nll = {label: -np.asarray(lp, dtype=np.float64) for label, (_, _, lp) in columns.items()}
    resampled = {label: u for label, u in units.items() if len(u) >= MIN_UNITS}
    rows = []
    for b in range(replicates):
        points = rng.integers(n, size=n)
        drawn = {}
        for label, u in resampled.items():  # a fixed order: the same draws for every rerun
            weights = np.bincount(rng.integers(len(u), size=len(u)), minlength=len(u)) / len(u)
            p_b = np.tensordot(weights, u[:, points], axes=1)
            drawn[label] = (p_b, p_b.argmax(1))
        ref, ref_arg = drawn.get(reference) or (columns[reference][0][points], argmax[reference][points])
        row = {"replicate": b}
        for label, (p, _, _) in columns.items():
            if label in drawn:
                p_b, arg_b = drawn[label]
                right = (arg_b == y[points]).astype(np.float64)
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


def pair_seeds(pair) -> tuple[str, str]:
    """The two seeds (or chains, 'seed.chain') of a pair label 'a-b'."""
    a, _, b = str(pair).partition("-")
    return a, b


def seed_replicates(groups: list[pd.Series], *, seed: int, replicates: int = REPLICATES) -> np.ndarray | None:
    """Bootstrap replicates of the mean of each per-pair series in ``groups`` (indexed by pair 'a-b', the halves of
    one chain as 'c-c'), resampling the seeds the pairs are made of: a replicate draws the seeds with replacement
    and weighs a pair by the product of its seeds' draws (a half-pair 'c-c' by its chain's). [replicates, groups];
    None below MIN_UNITS seeds."""
    seeds = sorted({s for g in groups for p in g.index for s in pair_seeds(p)})
    if len(seeds) < MIN_UNITS:
        return None
    where = {s: i for i, s in enumerate(seeds)}
    rng = np.random.default_rng(seed)
    counts = np.stack([np.bincount(rng.integers(len(seeds), size=len(seeds)), minlength=len(seeds))
                       for _ in range(replicates)]).astype(np.float64)
    out = np.empty((replicates, len(groups)))
    for j, g in enumerate(groups):
        a = np.array([where[pair_seeds(p)[0]] for p in g.index])
        b = np.array([where[pair_seeds(p)[1]] for p in g.index])
        w = np.where(a == b, counts[:, a], counts[:, a] * counts[:, b])  # [replicates, pairs]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, j] = (w * g.to_numpy(dtype=np.float64)).sum(1) / w.sum(1)
    return out


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
