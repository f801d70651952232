"""MCMC convergence diagnostics (workflow/evaluation/mcmc_diagnostics.py): the rank-normalised, folded split
R-hat and bulk and tail ESS of Vehtari et al. (2021) equal ArviZ's within 1e-6 on fixed chains, each
part of them (ranks, folding, splitting, the tail quantiles) does what it is there for, and the
classic forms are kept beside them; predictive_convergence's shares count constant points as converged, its
chainwise R-hat sees each chain alone and its nested R-hat is Margossian et al.'s formula."""

import math
import warnings

import numpy as np
import pytest
from arviz_stats.base import array_stats

from workflow.evaluation import mcmc_diagnostics as diag
from workflow.evaluation.mcmc_diagnostics import (effective_sample_size, ess_bulk, ess_tail, predictive_convergence,
                                                  rhat, split_rhat)


def ar1(rng, chains, draws, rho, dims=()):
    """Stationary AR(1) chains with unit marginal variance."""
    x = np.empty((chains, draws, *dims))
    x[:, 0] = rng.normal(size=(chains, *dims))
    noise = rng.normal(size=(chains, draws, *dims)) * math.sqrt(1 - rho ** 2)
    for t in range(1, draws):
        x[:, t] = rho * x[:, t - 1] + noise[:, t]
    return x


def fixed_chains():
    """Chains of every kind the estimators branch on: iid, slow and anti-correlated AR(1), short and
    odd lengths, disagreeing locations, discrete values with ties, heavy tails, one chain."""
    rng = np.random.default_rng(20)
    return {
        "iid": rng.normal(size=(4, 200, 5)),
        "ar 0.9, odd draws": ar1(rng, 3, 301, 0.9, (4,)),
        "ar -0.7": ar1(rng, 2, 50, -0.7, (3,)),
        "ar -0.5, 10 and 13 draws": ar1(rng, 2, 10, -0.5, (200,)),
        "ar 0.3, 13 draws": ar1(rng, 3, 13, 0.3, (200,)),
        "ar 0.6, 15 draws (7 per half)": ar1(rng, 2, 15, 0.6, (200,)),
        "short": rng.normal(size=(2, 9, 3)),
        "shifted chains": rng.normal(size=(4, 100, 3)) + np.array([0.0, 0.0, 1.0, 1.0])[:, None, None],
        "ties": rng.integers(0, 3, size=(4, 100, 3)).astype(float),
        "cauchy": rng.standard_cauchy(size=(4, 150, 3)),
        "one chain": ar1(rng, 1, 120, 0.5, (2,)),
    }


@pytest.mark.parametrize("case", list(fixed_chains()))
def test_rhat_and_ess_equal_arviz(case):
    x = fixed_chains()[case]
    ax = np.moveaxis(x, (0, 1), (-2, -1))  # ArviZ's arrays are [..., chain, draw]
    pairs = [(ess_bulk(x), array_stats.ess(ax, method="bulk")),
             (ess_tail(x), array_stats.ess(ax, method="tail", prob=0.05)),
             # the classic ESS is ArviZ's plain estimator on the split chains
             (effective_sample_size(x), array_stats.ess(np.moveaxis(diag.split_chains(x), (0, 1), (-2, -1)),
                                                        method="identity"))]
    if x.shape[0] > 1:  # ArviZ gives R-hat from two chains on; ours splits a single chain too
        pairs += [(rhat(x), array_stats.rhat(ax, method="rank")), (split_rhat(x), array_stats.rhat(ax, method="split"))]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_the_rank_form_stays_bounded_where_the_classic_one_explodes(rng):
    """Two chains of a nearly constant quantity (a predictive probability near 1) at different
    values: the classic ratio divides by a vanishing within-chain variance (the README once reported
    4e35); ranks see two separated chains, a large but finite value that still flags them."""
    x = 1.0 - 1e-9 * rng.random(size=(2, 100))
    x[1] -= 1e-7
    assert split_rhat(x) > 50
    assert 1.5 < rhat(x) < 10


def test_folding_catches_chains_that_differ_in_spread_only(rng):
    """Same location, one chain 3x wider: the bulk (location) part sees nothing, the folded part does."""
    x = rng.normal(size=(4, 1000)) * np.array([1.0, 1.0, 1.0, 3.0])[:, None]
    assert split_rhat(x) < 1.01
    assert rhat(x) > 1.05


def test_splitting_catches_a_drift_every_chain_shares(rng):
    drifting = rng.normal(size=(4, 4000)) + np.linspace(0, 2, 4000)[None]
    assert rhat(drifting) > 1.1 and split_rhat(drifting) > 1.1


def test_iid_and_ar1_draws_give_the_known_answers(rng):
    iid = rng.normal(size=(4, 4000, 3))
    assert np.all(np.abs(rhat(iid) - 1) < 0.01) and np.all(np.abs(split_rhat(iid) - 1) < 0.01)
    for ess in (effective_sample_size(iid), ess_bulk(iid), ess_tail(iid)):
        assert ess.shape == (3,) and np.all(np.abs(ess / 16000 - 1) < 0.15)
    np.testing.assert_allclose(ess_bulk(iid), [ess_bulk(iid[..., i]) for i in range(3)])  # vectorised
    rho = 0.9
    chain = ar1(rng, 4, 8000, rho)
    expected = chain.size * (1 - rho) / (1 + rho)  # integrated autocorrelation time (1 + rho) / (1 - rho)
    assert abs(effective_sample_size(chain) / expected - 1) < 0.3
    assert abs(ess_bulk(chain) / expected - 1) < 0.3
    assert rhat(chain) < 1.01


def test_tail_ess_sees_a_chain_stuck_in_one_tail(rng):
    """The tails mix slower than the bulk: a chain that visits the upper tail in long excursions."""
    x = rng.normal(size=(4, 2000))
    x[0, 500:900] = 2.5 + 0.1 * rng.normal(size=400)
    assert ess_tail(x) < 0.5 * ess_bulk(x)


def test_constant_draws_and_bad_shapes():
    ones = np.ones((2, 10))
    assert np.isnan(split_rhat(ones)) and np.isnan(rhat(ones))
    assert effective_sample_size(ones) == ess_bulk(ones) == 20  # constant: every draw counts, as ArviZ
    rng = np.random.default_rng(0)
    assert split_rhat(rng.standard_normal((3, 4))).shape == ()
    with pytest.raises(ValueError, match="at least 4 draws"):
        rhat(rng.standard_normal((3, 3)))
    with pytest.raises(ValueError, match=r"\[chains, draws"):
        ess_bulk(np.zeros(10))


def test_summary_gives_the_worst_and_median_of_each(rng):
    x = rng.normal(size=(3, 40, 6))
    s = diag.summary(x)
    assert s["rhat_max"] == pytest.approx(np.max(rhat(x)))
    assert s["rhat_classic_median"] == pytest.approx(np.median(split_rhat(x)))
    assert s["ess_bulk_min"] == pytest.approx(np.min(ess_bulk(x)))
    assert s["ess_tail_median"] == pytest.approx(np.median(ess_tail(x)))
    assert s["ess_classic_min"] == pytest.approx(np.min(effective_sample_size(x)))
    assert math.isnan(diag.summary(np.ones((2, 10, 2)))["rhat_max"])


def test_predictive_convergence_shares_flag_a_point_whose_chains_disagree(rng):
    x = rng.normal(size=(4, 1000, 20))
    c = predictive_convergence(x)
    assert c["points"] == 20 and c["points_constant"] == 0
    assert c["rhat_share_1.1"] == 1.0 and c["rhat_share_1.01"] >= 0.9
    assert c["rhat_max"] == pytest.approx(np.max(rhat(x))) and c["rhat_median"] == pytest.approx(np.median(rhat(x)))
    assert c["ess_bulk_min"] == pytest.approx(np.min(ess_bulk(x)))
    x[0, :, 7] += 3.0  # one chain 3 sd off at one point
    c = predictive_convergence(x)
    assert c["rhat_share_1.1"] == pytest.approx(19 / 20) and c["rhat_share_1.01"] < 1.0
    assert c["rhat_max"] > 1.1


def test_predictive_convergence_counts_constant_points_as_converged_and_keeps_them(rng):
    """3 of 10 points constant (a probability of exactly 1): their R-hat is undefined, they are counted
    converged, and they stay in the denominator: with the other 7 unconverged the share is 3 / 10."""
    x = rng.normal(size=(4, 400, 10))
    x[..., :3] = np.array([1.0, 0.5, 0.25])
    c = predictive_convergence(x)
    assert c["points_constant"] == 3
    assert c["rhat_share_1.01"] == c["rhat_share_1.1"] == c["chainwise_rhat_share_1.1"] == 1.0
    assert c["rhat_max"] == pytest.approx(np.max(rhat(x[..., 3:])))  # over the 7, no NaN
    assert c["rhat_median"] == pytest.approx(np.median(rhat(x[..., 3:])))
    assert c["ess_bulk_min"] == pytest.approx(np.min(ess_bulk(x[..., 3:])))
    assert c["ess_bulk_median"] == pytest.approx(np.median(ess_bulk(x[..., 3:])))
    x[..., 3:] += 3.0 * np.arange(4)[:, None, None]  # the 7 others: every chain at its own mean
    c = predictive_convergence(x)
    assert c["rhat_share_1.01"] == c["rhat_share_1.1"] == pytest.approx(0.3)
    everywhere = predictive_convergence(np.ones((2, 10, 3)))
    assert everywhere["points_constant"] == 3 and everywhere["rhat_share_1.1"] == 1.0
    assert all(math.isnan(everywhere[k]) for k in ("rhat_max", "rhat_median", "ess_bulk_min", "chainwise_rhat_max"))


def test_chainwise_rhat_sees_each_chain_alone(rng):
    """Chains that each mix but sit in different modes: the usual R-hat flags them, the chainwise one
    (each chain's two halves) does not; a chain that drifts within itself is flagged by the chainwise one."""
    x = rng.normal(size=(4, 1000, 5)) + 3.0 * np.arange(4)[:, None, None]
    x[1, :, 4] = 0.5  # constant within one chain only: converged there, left out of the max
    c = predictive_convergence(x)
    assert c["rhat_max"] > 1.5 and c["rhat_share_1.1"] == 0.0
    assert c["chainwise_rhat_max"] < 1.05 and c["chainwise_rhat_share_1.1"] == 1.0
    assert c["chainwise_rhat_max"] == pytest.approx(max(np.nanmax(rhat(x[i:i + 1])) for i in range(4)))
    drifting = rng.normal(size=(4, 1000, 5))
    drifting[0, 500:, 2] += 3.0
    c = predictive_convergence(drifting)
    assert c["chainwise_rhat_max"] > 1.1 and c["chainwise_rhat_share_1.1"] == pytest.approx(19 / 20)
    assert c["chainwise_rhat_max"] == pytest.approx(np.max(rhat(drifting[:1])))


def test_nested_rhat_follows_margossian_et_al(rng):
    starts = ["a", "a", "b", "b"]
    apart = rng.normal(size=(4, 200, 3))
    apart[2:] += 3.0  # the superchains from start b sit elsewhere
    c = predictive_convergence(apart, starts)
    assert c["nested_rhat"] > 1.5 and c["nested_rhat_superchains"] == 2
    c = predictive_convergence(rng.normal(size=(4, 2000, 3)), starts)
    assert c["nested_rhat"] < 1.05 and c["nested_rhat_superchains"] == 2
    six = np.concatenate([apart, apart[:2]])
    for chains, labels, found in ((apart, None, 0), (apart, ["a", "a", "a", "b"], 2), (six, list("aaaabb"), 2),
                                  (apart, ["a", "b", "c", "d"], 4), (apart, ["a"] * 4, 1)):
        # no starts, unequal superchains, one chain each, one superchain: NaN, not a formula run into a 0 ddof
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            c = predictive_convergence(chains, labels)
        assert math.isnan(c["nested_rhat"]) and c["nested_rhat_superchains"] == found
    with pytest.raises(ValueError, match="starts names 3 chains"):
        predictive_convergence(apart, ["a", "a", "b"])


def test_nested_rhat_equals_the_formula_by_hand():
    """K = 2 superchains of M = 2 chains of n = 4 draws (the fewest split R-hat takes), point 0 by
    hand, point 1 constant (left out of the max). Chain means 1, 2 | 5, 6, every within-chain variance
    (ddof 1) 4/3; superchain means 1.5, 5.5: B_nu = (2^2 + 2^2) / (2 - 1) = 8; per superchain
    B~_k = ((0.5)^2 + (0.5)^2) / (2 - 1) = 1/2 and W~_k = 4/3, so W_nu = 11/6; sqrt(1 + 8 / (11/6)) = sqrt(59/11).
    Any ddof of 0 gives another number (B_nu 4, B~_k 1/4, W~_k 1)."""
    point = np.array([[0, 2, 0, 2], [1, 3, 1, 3], [4, 6, 4, 6], [5, 7, 5, 7]], dtype=float)
    x = np.stack([point, np.full_like(point, 0.9)], axis=-1)
    c = predictive_convergence(x, ["a", "a", "b", "b"])
    assert c["points_constant"] == 1
    assert c["nested_rhat"] == pytest.approx(math.sqrt(59 / 11), rel=1e-12)
    # superchains are the labels, wherever their chains are
    interleaved = predictive_convergence(x[[0, 2, 1, 3]], [7, 8, 7, 8])
    assert interleaved["nested_rhat"] == pytest.approx(math.sqrt(59 / 11), rel=1e-12)
