"""Convergence diagnostics of MCMC draws shaped [chains, draws, ...], one value per trailing index.

The current convention (Vehtari, Gelman, Simpson, Carpenter and Buerkner 2021, "Rank-normalization,
folding, and localization", as ArviZ, Stan, NumPyro and BlackJAX compute it):

- ``rhat``: the rank-normalised split R-hat, the larger of the bulk value (split chains, ranks of
  all draws mapped to normal scores) and the tail value (the same on |x - median|, "folded").
  Converged chains give values below 1.01.
- ``ess_bulk``: the effective sample size of the rank-normalised split chains.
- ``ess_tail``: the smaller ESS of the indicators x <= q_0.05 and x <= q_0.95.

The classic forms stay as extra columns: ``split_rhat`` (BDA3's split R-hat, no ranks: it explodes
on nearly constant quantities, where the rank form stays bounded) and ``effective_sample_size``
(split chains, no ranks). Every ESS uses one estimator (Geyer's initial monotone sequence over the
multi-chain autocorrelations, Stan's manual), and each value matches ArviZ's (``arviz_stats``
rhat "rank", ess "bulk" / "tail" / "identity" on split chains) within 1e-6 (tests/test_mcmc_diagnostics.py).

Use them on predictive quantities: unlike raw weights, those are unchanged by the hidden-unit
permutations that make chains of a BNN land in different but equivalent modes.

``predictive_convergence`` reports, for p(y_true | x_n) per draw and test point, the shares of test
points at R-hat <= 1.01 / 1.1 (constant points counting as converged), the worst R-hat and bulk ESS,
the chainwise split R-hat of Sommer et al. (2024) (each chain's two halves: local mixing even where
chains sit in different modes) and the nested R-hat of Margossian et al. (2024) over chains grouped by
their start.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

TAIL_PROBS = (0.05, 0.95)  # ess_tail's quantiles


def split_chains(x) -> np.ndarray:
    """[chains, draws, ...] -> [2 * chains, draws // 2, ...]: first and second halves as separate chains
    (the middle draw of an odd count is dropped), so a drift within a chain shows up like a disagreement."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError(f"expected an array shaped [chains, draws, ...], got shape {x.shape}")
    half = x.shape[1] // 2
    if half < 2:
        raise ValueError(f"need at least 4 draws per chain, got {x.shape[1]}")
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half:]], axis=0)


def rank_normalize(s: np.ndarray) -> np.ndarray:
    """Normal scores of the ranks of all draws (every chain together), per trailing index: ranks
    averaged over ties, mapped by Blom's offset (r - 3/8) / (S + 1/4) through the normal quantile."""
    m, n = s.shape[:2]
    flat = s.reshape(m * n, -1)
    ranks = stats.rankdata(flat, method="average", axis=0)
    return stats.norm.ppf((ranks - 0.375) / (m * n + 0.25)).reshape(s.shape)


def _rhat_of_split(s: np.ndarray) -> np.ndarray:
    """sqrt(var_plus / W) of chains already split: W the mean within-chain variance, var_plus =
    (n - 1) / n * W + the variance of the chain means. NaN where every draw is equal."""
    n = s.shape[1]
    within = s.var(axis=1, ddof=1).mean(axis=0)
    var_plus = (n - 1) / n * within + s.mean(axis=1).var(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(var_plus / within)


def split_rhat(x) -> np.ndarray:
    """The classic split R-hat (BDA3 ch. 11.4; Vehtari et al. 2021, eq. 4), no ranks, no folding."""
    return _rhat_of_split(split_chains(x))


def rhat(x) -> np.ndarray:
    """Rank-normalised, folded split R-hat: max(bulk, tail) (Vehtari et al. 2021, section 4.2)."""
    s = split_chains(x)
    folded = np.abs(s - np.median(s.reshape(-1, *s.shape[2:]), axis=0))
    with np.errstate(invalid="ignore"):
        return np.fmax(_rhat_of_split(rank_normalize(s)), _rhat_of_split(rank_normalize(folded)))


def _autocovariance(s: np.ndarray) -> np.ndarray:
    """Biased autocovariance of each chain at every lag, [chains, draws, ...] (zero-padded FFT)."""
    n = s.shape[1]
    centred = s - s.mean(axis=1, keepdims=True)
    size = 1 << (2 * n - 1).bit_length()  # padding: a circular correlation would wrap around
    f = np.fft.rfft(centred, n=size, axis=1)
    return np.fft.irfft(f * np.conj(f), n=size, axis=1)[:, :n] / n


def ess_of_split(s: np.ndarray) -> np.ndarray:
    """ESS of chains as given (already split: two or more), per trailing index (Stan's manual, "Effective sample
    size"): rho_t = 1 - (W - mean autocovariance_t) / var_plus; pair sums P_k = rho_2k + rho_2k+1
    taken while positive (Geyer's initial positive sequence) and made non-increasing (initial
    monotone sequence); tau = -1 + 2 * sum P_k + the first dropped pair's even term where positive;
    ESS = S / max(tau, 1 / log10 S). Constant draws: S; undefined (NaN) where var_plus is."""
    s = np.asarray(s, dtype=np.float64)
    m, n = s.shape[:2]
    total = m * n
    trailing = s.shape[2:]
    s = s.reshape(m, n, -1)
    acov = _autocovariance(s)
    mean_var = acov[:, 0].mean(axis=0) * n / (n - 1)
    var_plus = mean_var * (n - 1) / n + s.mean(axis=1).var(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (mean_var - acov.mean(axis=0)) / var_plus  # [n, K]
    rho[0] = 1.0
    pairs = rho[0:n - n % 2:2] + rho[1::2]  # P_k = rho_2k + rho_2k+1, [n // 2, K]
    last = max(0, (n - 3) // 2)  # pairs 1..last are examined (lags up to n - 2), while the sum before is positive
    nonpositive = pairs[: last + 1] <= 0
    kept = np.where(nonpositive.any(axis=0), nonpositive.argmax(axis=0), last)  # pairs 0..kept-1 are summed
    index = np.arange(pairs.shape[0])[:, None]
    monotone = np.minimum.accumulate(np.where(index < kept, pairs, np.inf), axis=0)
    summed = np.where(index < kept, monotone, 0.0).sum(axis=0)
    columns = np.arange(rho.shape[1])
    even = rho[np.minimum(2 * kept, n - 1), columns]
    # the first pair not summed: its even term counts once, as it is where its pair was kept
    # (stopped by the lag limit), where positive otherwise
    stored = pairs[kept, columns] >= 0
    partial = np.where(kept == 0, 1.0, np.where(stored, even, np.maximum(even, 0.0)))
    tau = np.maximum(-1.0 + 2.0 * summed + partial, 1.0 / math.log10(total))
    ess = total / tau
    ess = np.where(np.isnan(rho).any(axis=0) | ~np.isfinite(var_plus), np.nan, ess)
    constant = (s.max(axis=(0, 1)) - s.min(axis=(0, 1))) < np.finfo(float).resolution
    return np.where(constant, float(total), ess).reshape(trailing)


def effective_sample_size(x) -> np.ndarray:
    """The classic ESS: split chains, no rank normalisation."""
    return ess_of_split(split_chains(x))


def ess_bulk(x) -> np.ndarray:
    """Bulk ESS: the ESS of the rank-normalised split chains (Vehtari et al. 2021, section 4.3)."""
    return ess_of_split(rank_normalize(split_chains(x)))


def ess_tail(x) -> np.ndarray:
    """Tail ESS: the smaller ESS of the indicators x <= q for the 5% and 95% quantiles of all draws."""
    x = np.asarray(x, dtype=np.float64)
    split_chains(x)  # the shape checks
    values = []
    for prob in TAIL_PROBS:
        q = np.quantile(x.reshape(-1, *x.shape[2:]), prob, axis=0)
        values.append(ess_of_split(split_chains((x <= q).astype(np.float64))))
    return np.fmin(*values)


def summary(x) -> dict[str, float]:
    """Median and worst value of each diagnostic over the trailing indices: the new R-hat and its
    classic form (max and median), bulk, tail and classic ESS (min and median). NaNs are skipped."""
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: reported as NaN
        for name, values, worst in (("rhat", rhat(x), np.nanmax), ("rhat_classic", split_rhat(x), np.nanmax),
                                    ("ess_bulk", ess_bulk(x), np.nanmin), ("ess_tail", ess_tail(x), np.nanmin),
                                    ("ess_classic", effective_sample_size(x), np.nanmin)):
            values = np.atleast_1d(values)
            ok = not np.isnan(values).all()
            out[f"{name}_{'max' if worst is np.nanmax else 'min'}"] = float(worst(values)) if ok else math.nan
            out[f"{name}_median"] = float(np.nanmedian(values)) if ok else math.nan
    return out


RHAT_THRESHOLDS = (1.01, 1.1)  # predictive_convergence's shares


def _constant(x: np.ndarray, axis) -> np.ndarray:
    """Where every value along axis is the same (max - min below float resolution, as ess_of_split)."""
    return (x.max(axis=axis) - x.min(axis=axis)) < np.finfo(float).resolution


def _nested_rhat(x: np.ndarray, starts) -> tuple[np.ndarray | None, int]:
    """Nested R-hat per trailing index of x [chains, draws, N], superchains the chains sharing a start
    label; None where undefined (see predictive_convergence), with the number of superchains found."""
    if starts is None:
        return None, 0
    labels = list(starts)
    if len(labels) != x.shape[0]:
        raise ValueError(f"starts names {len(labels)} chains, x has {x.shape[0]}")
    groups: dict = {}
    for chain, label in enumerate(labels):
        groups.setdefault(label, []).append(chain)
    sizes = {len(chains) for chains in groups.values()}
    if len(groups) < 2 or len(sizes) != 1 or sizes.pop() < 2:
        return None, len(groups)
    nested = x[np.array(list(groups.values()))]  # [K superchains, M chains, draws, N]
    between = nested.mean(axis=(1, 2)).var(axis=0, ddof=1)  # B_nu
    chain_means = nested.mean(axis=2)  # [K, M, N]
    within = (chain_means.var(axis=1, ddof=1) + nested.var(axis=2, ddof=1).mean(axis=1)).mean(axis=0)  # W_nu
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(1.0 + between / within), len(groups)


def predictive_convergence(x, starts=None) -> dict[str, float]:
    """x: p(y_true | x_n) per draw, shaped [chains, draws, N] (N test points). starts: optional sequence, one label per chain, naming the start (initialisation) each chain came from; chains with the same label share a start.

    Convergence of the predictive the way the BNN literature judges an HMC reference, as a flat dict
    of floats (NaN where undefined):

    - ``points``: N; ``points_constant``: the points whose value is the same in every draw of every
      chain (max - min below float resolution). Their R-hat is undefined: they count as converged
      below and always stay in the denominators.
    - ``rhat_share_1.01``, ``rhat_share_1.1``: the share of all N points with rank-normalised split
      R-hat (``rhat``) <= 1.01 / <= 1.1.
    - ``rhat_max``, ``rhat_median``, ``ess_bulk_min``, ``ess_bulk_median``: over the non-constant points.
    - ``chainwise_rhat_max``, ``chainwise_rhat_share_1.1``: the chainwise split R-hat of Sommer et al.
      (2024), ``rhat(x[c:c+1])`` for each chain c alone (its two halves compared): the max over the
      (chain, point) pairs not constant within that chain, and the share of all chains * N pairs at
      <= 1.1, pairs constant within their chain counting as converged. Small values with a large
      ``rhat`` mean chains that mix locally but sit in different modes.
    - ``nested_rhat``: the max over the non-constant points of the nested R-hat of Margossian,
      Hoffman, Sountsov, Riou-Durand, Vehtari and Gelman (2024, "Nested R-hat: assessing the
      convergence of Markov chain Monte Carlo when running many short chains", Bayesian Analysis,
      doi:10.1214/24-BA1453; arXiv 2110.13017, eqs. 15-19 as the R package posterior's rhat_nested,
      which computes the same, cites them), on the raw, non-split chains. Superchains
      k = 1..K are the groups of chains sharing a start label, each of M chains m of n draws f_nmk:

          f_.mk = mean_n f_nmk,  f_..k = mean_m f_.mk,  f_... = mean_k f_..k
          B_nu  = 1 / (K - 1) * sum_k (f_..k - f_...)^2
          B~_k  = 1 / (M - 1) * sum_m (f_.mk - f_..k)^2
          W~_k  = 1 / M * sum_m 1 / (n - 1) * sum_n (f_nmk - f_.mk)^2
          W_nu  = 1 / K * sum_k (B~_k + W~_k)
          nested R-hat = sqrt(1 + B_nu / W_nu)

      Defined only where ``starts`` is given, K >= 2 and every superchain has the same M >= 2 chains;
      NaN otherwise. ``nested_rhat_superchains``: K, the number of distinct start labels (0 without
      ``starts``).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"expected an array shaped [chains, draws, N], got shape {x.shape}")
    chains, _, points = x.shape
    constant = _constant(x, axis=(0, 1))
    varying = ~constant
    values = rhat(x)
    chainwise = rhat(np.moveaxis(x, 0, 1)[None])  # [chains, N]: each chain a trailing index, as rhat(x[c:c+1])
    chain_constant = _constant(x, axis=1)  # [chains, N]
    nested, superchains = _nested_rhat(x, starts)

    def share(r, converged_anyway, threshold):
        return float(np.mean((r <= threshold) | converged_anyway)) if r.size else math.nan

    def over(reduce, r, keep):
        return float(reduce(r[keep])) if keep.any() else math.nan

    out = {"points": float(points), "points_constant": float(constant.sum())}
    with np.errstate(invalid="ignore"):  # NaN R-hat of constant points compared: False, and replaced
        for threshold in RHAT_THRESHOLDS:
            out[f"rhat_share_{threshold}"] = share(values, constant, threshold)
        out["rhat_max"] = over(np.max, values, varying)
        out["rhat_median"] = over(np.median, values, varying)
        bulk = ess_bulk(x)
        out["ess_bulk_min"] = over(np.min, bulk, varying)
        out["ess_bulk_median"] = over(np.median, bulk, varying)
        out["chainwise_rhat_max"] = over(np.max, chainwise, ~chain_constant)
        out["chainwise_rhat_share_1.1"] = share(chainwise, chain_constant, 1.1)
    out["nested_rhat"] = math.nan if nested is None else over(np.max, nested, varying)
    out["nested_rhat_superchains"] = float(superchains)
    return out
