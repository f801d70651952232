"""The claims table: each claim judged two-sided (preconditions, baselines, the paper's number within the
interval's half-width plus 10% of the effect), on summary tables written by hand; every rule has a planted
case where its verdict flips (the end-to-end test runs the table on a real run)."""

import math

import numpy as np
import pandas as pd
import pytest

from workflow.evaluation import bootstrap
from workflow.evaluation import claims_table as claims
from workflow.evaluation.claims_table import INCONCLUSIVE, NOT_REPRODUCED, NOT_TESTABLE, REPRODUCED, Run

CONFIG = {"name": "t", "methods": ["ensemble", "vi", "hmc"], "model": {"architecture": "mlp", "hidden": [128]},
          "data": {"dataset": "digits"}}
Q_R = "HMC q_r (activation, first ref.)"


def table1(metric="agreement with HMC", **values):
    return pd.DataFrame([{"metric": metric, "column": c, "value": a} for c, a in values.items()])


def diagnostics(strict=1.0, loose=1.0, constant=3):
    """chain_diagnostics of a reference with the given shares of test points at rank R-hat <= 1.01 and <= 1.1."""
    return pd.DataFrame([{"points": 100, "points_constant": constant, "rhat_share_1.01": strict,
                          "rhat_share_1.1": loose, "rhat_median": 1.0, "rhat_max": 1.005 if loose == 1 else 1.3,
                          "ess_bulk_min": 300.0, "ess_bulk_median": 400.0, "chainwise_rhat_max": 1.01,
                          "chainwise_rhat_share_1.1": 1.0, "nested_rhat": math.nan}])


CONVERGED = {"chain_diagnostics_base": diagnostics()}


def draws_table(unpermuted_share, lag=float("nan"), corr=float("nan"), method="hmc"):
    rows = [("reference chain", 1, 100, unpermuted_share, 110.0), ("other chains", 3, 300, 0.0, 122.0)]
    return pd.DataFrame([{"variant": "base", "method": method, "matching": "activation", "reference": "first",
                          "draws_of": g, "chains": c, "draws": d, "unpermuted_share": u, "not_to_reference_mean": n,
                          "permuted_unlike_chain_share": 1 - u, "not_to_chain_start_mean": n,
                          "first_permuted_lag": lag, "unit_corr_at_first_permuted": corr, "units": 128}
                         for g, c, d, u, n in rows])


def barriers(rows, distances=None):
    frame = pd.DataFrame([{"variant": v, "method": m, "alignment": a, "pair": p, "loss_barrier": b}
                          for v, m, a, p, b in rows])
    if distances:
        frame["distance"] = [distances.get(a, math.nan) for a in frame["alignment"]]
    return frame


def verdict(key, run):
    (c,) = [c for c in claims.CLAIMS if c.key == key]
    return c.judge(run)


def run_of(frames, config=CONFIG, variants=None, base=None):
    return Run(frames, config, variants or {"base": {}}, base)


# ---------------------------------------------------------------- the verdict's order and arithmetic

def test_decide_orders_preconditions_then_baselines_then_the_papers_number():
    rule = claims.Rule(0.8, claims.AT_LEAST, 0.8)
    met, failed = claims.Check("p", 1.0, "r", True), claims.Check("q", 0.3, ">= 0.95", False)
    assert claims.decide("b", 0.75, rule, "x").verdict == REPRODUCED  # 0.8 - 0.08 <= 0.75
    assert claims.decide("b", 0.70, rule, "x").verdict == NOT_REPRODUCED
    assert claims.decide("b", 0.70, rule, "x", low=0.6, high=0.8).verdict == REPRODUCED  # half-width 0.1 widens it
    v = claims.decide("b", 0.95, rule, "x", preconditions=[met, failed])
    assert v.verdict == INCONCLUSIVE and "a precondition failed: q 0.3" in v.reason
    assert "on the paper's number alone reproduced (0.95 against at least 0.8 within 0.08)" in v.reason
    assert v.preconditions[1].text() == "q 0.3 (>= 0.95): FAILED" and v.preconditions[0].text().endswith(": met")
    v = claims.decide("b", 0.95, rule, "x", baselines=[claims.Baseline("a baseline", 0.96, True)])
    assert v.verdict == NOT_REPRODUCED and "a baseline 0.96" in v.reason
    assert claims.decide("b", math.nan, rule, "why").verdict == NOT_TESTABLE
    # a precondition this run did not measure is not taken as met
    v = claims.decide("b", 0.95, rule, "x", preconditions=[claims.Check("r", math.nan, "converged", None)])
    assert v.verdict == INCONCLUSIVE and "not measured by this run: r nan" in v.reason
    # an interval wider than the paper's effect cannot tell the effect from nothing
    v = claims.decide("b", 0.75, rule, "x", low=-0.1, high=1.6)
    assert v.verdict == INCONCLUSIVE and "precision" in v.reason
    # no effect to scale the tolerance by: nothing to judge
    assert claims.decide("b", 0.1, claims.Rule(0.0, claims.AT_MOST, math.nan), "x").verdict == NOT_TESTABLE
    at_most = claims.Rule(0.0, claims.AT_MOST, 0.5)
    assert claims.decide("b", 0.05, at_most, "x").verdict == REPRODUCED
    assert claims.decide("b", 0.06, at_most, "x").verdict == NOT_REPRODUCED
    # a baseline inside the method's interval reaches it
    assert claims.reaches(0.7, 0.75, 0.69, 0.8, claims.AT_LEAST) and not claims.reaches(0.6, 0.75, 0.69, 0.8,
                                                                                           claims.AT_LEAST)
    assert claims.reaches(0.2, 0.1, 0.05, 0.21, claims.AT_MOST) and not claims.reaches(0.3, 0.1, 0.05, 0.21,
                                                                                          claims.AT_MOST)


def test_the_rules_read_the_papers_table_1():
    (lift,) = verdict("xiao-hmc-rebasin", run_of({"table1_base": table1(**{"HMC q_d": 0.2, Q_R: 0.8})}))
    assert lift.paper_number == pytest.approx((0.8249 - 0.1212) / (1 - 0.1212))
    assert lift.tolerance == pytest.approx(0.1 * lift.paper_number)  # no replicates: no interval
    close = verdict("xiao-ens-close", run_of({"table1_base": table1(**{"Ens. samples": 0.99})}))[0]
    assert close.paper_number == 0.9931
    assert close.tolerance == pytest.approx(0.1 * (0.9931 - (0.9843 + 0.9866 - 1)))


# ---------------------------------------------------------------- Table 1 (Xiao et al.)

def test_the_rebasin_lift_is_judged_against_the_papers_share():
    t = table1(**{"HMC q_d": 0.2, Q_R: 0.8, "HMC q_r (weight, first ref.)": 0.3})  # closes 0.75 of 0.8
    (v,) = verdict("xiao-hmc-rebasin", run_of({"table1_base": t, **CONVERGED}))
    assert v.verdict == REPRODUCED and v.measured == pytest.approx(0.75) and "weight, first ref.) 0.3" in v.reason
    t = table1(**{"HMC q_d": 0.2, Q_R: 0.6})  # closes 0.5: the old rule (>= 0.5) passed it, the paper's 0.80 does not
    (v,) = verdict("xiao-hmc-rebasin", run_of({"table1_base": t, **CONVERGED}))
    assert v.verdict == NOT_REPRODUCED and v.measured == pytest.approx(0.5) and "not at least 0.8008" in v.reason


def test_an_unconverged_reference_makes_every_claim_against_it_inconclusive():
    frames = {"table1_base": pd.concat([table1(**{"HMC q_d": 0.2, Q_R: 0.8, "Ens. samples": 0.995, "VI q": 0.995}),
                                        table1("test accuracy %", **{"HMC samples": 97.0, "Ens. samples": 97.0,
                                                                     "VI q": 97.0})])}
    for key in ("xiao-hmc-rebasin", "xiao-ens-close", "xiao-vi-close"):
        assert verdict(key, run_of({**frames, **CONVERGED}))[0].verdict == REPRODUCED, key
        for unconverged in (diagnostics(strict=0.43, loose=0.977), diagnostics(strict=0.96, loose=0.99)):
            v = verdict(key, run_of({**frames, "chain_diagnostics_base": unconverged}))[0]
            assert v.verdict == INCONCLUSIVE and "HMC reference converged" in v.reason, key


def test_close_to_hmc_is_not_reproduced_where_the_accuracies_alone_force_the_agreement():
    accuracies = table1("test accuracy %", **{"HMC samples": 99.7, "VI q": 99.5})  # force 0.992
    frames = {"table1_base": pd.concat([table1(**{"VI q": 0.992}), accuracies]), **CONVERGED}
    (v,) = verdict("xiao-vi-close", run_of(frames))
    assert v.verdict == NOT_REPRODUCED and "the agreement the test accuracies alone force 0.992" in v.reason
    frames["table1_base"] = pd.concat([table1(**{"VI q": 0.992}), table1("test accuracy %", **{"HMC samples": 99.0,
                                                                                               "VI q": 98.0})])
    assert verdict("xiao-vi-close", run_of(frames))[0].verdict == REPRODUCED


def test_tv_is_judged_against_the_papers_tv():
    frames = {"table1_base": table1("TV to HMC", **{"Ens. samples": 0.024, "VI q": 0.066}), **CONVERGED}
    (ens,) = verdict("xiao-ens-tv", run_of(frames))
    (vi,) = verdict("xiao-vi-tv", run_of(frames))
    assert ens.verdict == REPRODUCED and vi.verdict == NOT_REPRODUCED and vi.paper_number == 0.0235


def test_the_mean_network_claim_reads_both_accuracy_rows():
    t = pd.concat([table1("test accuracy %", **{Q_R: 71.3}), table1("test accuracy % of mean network", **{Q_R: 91.8})])
    (v,) = verdict("xiao-hmc-mean-network", run_of({"table1_base": t, **CONVERGED}))
    assert v.verdict == REPRODUCED and v.measured == pytest.approx(20.5)
    t = pd.concat([table1("test accuracy %", **{Q_R: 85.0}), table1("test accuracy % of mean network", **{Q_R: 86.0})])
    assert verdict("xiao-hmc-mean-network", run_of({"table1_base": t, **CONVERGED}))[0].verdict == NOT_REPRODUCED


@pytest.mark.parametrize("share, lag, corr, expected", [
    (0.02, 10, 0.1, REPRODUCED),  # the chain had moved its units: permuting its draws is the posterior's breadth
    (0.5, 1, 0.9, INCONCLUSIVE),  # draws permuted whose units had not moved: matching noise
    (1.0, float("nan"), float("nan"), REPRODUCED),
])
def test_the_rebasin_control_is_a_precondition(share, lag, corr, expected):
    frames = {"table1_base": table1(**{"HMC q_d": 0.2, Q_R: 0.8}), "rebasin_draws_base": draws_table(share, lag, corr),
              **CONVERGED}
    (v,) = verdict("xiao-hmc-rebasin", run_of(frames))
    assert v.verdict == expected
    if expected == INCONCLUSIVE:
        assert "matching leaves unmoved draws alone" in v.reason
        assert v.preconditions[1].text().endswith("(unit correlation with the chain's start < 0.5)): FAILED")


def test_without_the_papers_rebasin_the_lift_is_not_testable():
    t = table1(**{"HMC q_d": 0.2, "HMC q_r (weight, first ref.)": 0.9})
    (v,) = verdict("xiao-hmc-rebasin", run_of({"table1_base": t}))
    assert v.verdict == NOT_TESTABLE and "rebasin.matchings must include activation" in v.reason
    (v,) = verdict("xiao-ens-rebasin", run_of({}, {**CONFIG, "methods": ["vi"]}))
    assert v.verdict == NOT_TESTABLE and "needs method ensemble and hmc" in v.reason


def replicates_frame(q_d, q_r, label="HMC", column=Q_R):
    return pd.DataFrame({bootstrap.replicate_column("agreement with HMC", f"{label} q_d"): q_d,
                         bootstrap.replicate_column("agreement with HMC", f"{label} {column.split(' ', 1)[1]}"
                                                    if label == "HMC" else column): q_r})


def test_the_lifts_interval_is_the_joint_bootstrap_of_its_own_formula():
    rng = np.random.default_rng(0)
    q_d = 0.2 + 0.02 * rng.standard_normal(1000)
    q_r = q_d + 0.6  # perfectly correlated: the share's spread comes from q_d alone
    frames = {"table1_base": table1(**{"HMC q_d": 0.2, Q_R: 0.8}).assign(interval="bootstrap over test points only"),
              "table1_replicates_base": replicates_frame(q_d, q_r), **CONVERGED}
    (v,) = verdict("xiao-hmc-rebasin", run_of(frames))
    shares = (q_r - q_d) / (1 - q_d)
    assert (v.low, v.high) == pytest.approx(bootstrap.interval(shares))
    assert v.interval == "bootstrap over test points only"
    # an interval that reaches 0 (the identity permutation's share) is not reproduced whatever the point value
    frames["table1_replicates_base"] = replicates_frame(q_d, q_d + rng.uniform(-0.1, 1.4, 1000) * 0.6)
    frames["table1_base"] = table1(**{"HMC q_d": 0.2, Q_R: 0.9})
    (v,) = verdict("xiao-hmc-rebasin", run_of(frames))
    assert v.low < 0 and v.verdict == NOT_REPRODUCED and "the identity permutation" in v.reason


def test_table1_replicates_resample_chains_only_where_there_are_three():
    rng = np.random.default_rng(1)
    n, c = 300, 4
    y = rng.integers(c, size=n)

    def probs(shift):
        logits = rng.standard_normal((n, c)) + 3 * np.eye(c)[y] + shift
        p = np.exp(logits)
        return p / p.sum(1, keepdims=True)

    chains = np.stack([probs(0) for _ in range(4)])
    other = probs(0)
    columns = {"HMC samples": (chains.mean(0), None, np.log(chains.mean(0)[np.arange(n), y])),
               "VI q": (other, other, np.log(other[np.arange(n), y]))}
    four = bootstrap.table1_replicates({"HMC samples": chains}, columns, y, "HMC samples", seed=0, replicates=200)
    two = bootstrap.table1_replicates({"HMC samples": chains[:2]}, columns, y, "HMC samples", seed=0, replicates=200)
    agree = bootstrap.replicate_column("agreement with HMC", "VI q")
    assert four[bootstrap.replicate_column("agreement with HMC", "HMC samples")].eq(1).all()
    low, high = bootstrap.interval(four[agree])
    value = np.mean(other.argmax(1) == chains.mean(0).argmax(1))
    assert low <= value <= high and high - low < 0.2
    assert bootstrap.scheme({"HMC samples": 4, "Ens. samples": 2}) == (
        "bootstrap over test points and HMC samples's 4 units; not resampled, fewer than 3 units: Ens. samples (2); "
        "fitted Gaussians not refitted")
    # with chains resampled the reference moves between replicates; with 2 it is the pooled one throughout
    acc = bootstrap.replicate_column("test accuracy %", "HMC samples")
    assert not np.allclose(four[acc], two[acc])


def test_barriers_are_resampled_by_seed_not_by_pair():
    """Pairs share seeds: a replicate draws seeds and weighs a pair by how often both its seeds were drawn."""
    values = pd.Series({"0-1": 1.0, "0-2": 1.0, "1-2": 1.0, "0-3": 5.0, "1-3": 5.0, "2-3": 5.0})
    reps = bootstrap.seed_replicates([values], seed=0, replicates=400)[:, 0]
    reps = reps[~np.isnan(reps)]
    assert np.all((reps >= 1.0) & (reps <= 5.0)) and np.any(reps == 1.0)  # seed 3 left out: only the 1.0 pairs
    halves = pd.Series({"0-0": 2.0, "1-1": 2.0, "2-2": 4.0})
    both = bootstrap.seed_replicates([values.iloc[:3], halves], seed=0, replicates=50)
    assert both.shape == (50, 2) and np.nanmin(both[:, 1]) >= 2.0
    assert bootstrap.seed_replicates([pd.Series({"0-1": 1.0})], seed=0) is None  # two seeds: no interval


def test_sigma_r_narrower_than_sigma_d():
    sigma = pd.DataFrame([{"label": "HMC q_d", "method": "hmc", "fit": "q_d", "matching": "", "reference": "",
                           "median_sigma": 0.9},
                          {"label": Q_R, "method": "hmc", "fit": "q_r", "matching": "activation", "reference": "first",
                           "median_sigma": 0.5}])
    assert verdict("xiao-sigma-narrower", run_of({"sigma_base": sigma, **CONVERGED}))[0].verdict == REPRODUCED
    sigma.loc[1, "median_sigma"] = 0.9
    assert verdict("xiao-sigma-narrower", run_of({"sigma_base": sigma, **CONVERGED}))[0].verdict == NOT_REPRODUCED


# ---------------------------------------------------------------- barriers

def sigma_vi(q10=0.01, q90=0.3):
    return pd.DataFrame([{"label": "VI q", "median_sigma": (q10 + q90) / 2, "sigma_q10": q10, "sigma_q90": q90,
                          "sigma_init": 0.05, "kl_share": 0.5}])


PAIRS = ("0-1", "0-2", "1-2")


@pytest.mark.parametrize("w2, means_only, ens, spread, expected, words", [
    (0.010, 0.030, 0.040, (0.01, 0.3), REPRODUCED, "is at most 0"),
    (0.010, 0.030, 0.040, (0.10, 0.15), INCONCLUSIVE, "VI learned its variances"),  # sigmas moved together
    (0.020, 0.020, 0.040, (0.01, 0.3), NOT_REPRODUCED, "means-only matching of the same VI pairs 0.02"),
    (0.020, 0.030, 0.010, (0.01, 0.3), NOT_REPRODUCED, "the ensemble's weight matching 0.01"),  # the case
    (0.200, 0.300, 0.300, (0.01, 0.3), NOT_REPRODUCED, "is not at most 0"),
])
def test_rossis_near_zero_barrier_against_its_baselines_and_precondition(w2, means_only, ens, spread, expected, words):
    rows = [("base", "vi", "naive", p, 0.5) for p in PAIRS] + [("base", "vi", "w2", p, w2) for p in PAIRS]
    rows += [("base", "vi", "weight", p, means_only) for p in PAIRS]
    rows += [("base", "ensemble", "weight", p, ens) for p in PAIRS] + [("base", "ensemble", "naive", p, 0.5) for p in PAIRS]
    (v,) = verdict("rossi-vi-near-zero", run_of({"barriers": barriers(rows), "sigma_base": sigma_vi(*spread)}))
    assert v.verdict == expected and words in v.reason and v.measured == pytest.approx(w2)


def test_the_near_zero_claim_is_an_mlp_claim():
    cfg = {**CONFIG, "model": {"architecture": "resnet20"}}
    for key in ("rossi-vi-near-zero", "rossi-vi-most", "rossi-priors"):
        (v,) = verdict(key, run_of({"barriers": barriers([("base", "vi", "naive", "0-1", 1.0)])}, cfg,
                                   {"base": {"prior.std": 1.0}}))
        assert v.verdict == NOT_TESTABLE and "resnet20" in v.reason


@pytest.mark.parametrize("aligned, naive, aligned_verdict, naive_verdict", [
    ((0.3, 0.2, 0.1), (0.7, 0.6, 0.5), REPRODUCED, REPRODUCED),
    ((0.3, 0.2, 0.1), (0.5, 0.6, 0.7), REPRODUCED, NOT_REPRODUCED),  # MNIST t10k's case: the naive barrier rises
    ((0.1, 0.2, 0.3), (0.7, 0.6, 0.5), NOT_REPRODUCED, REPRODUCED),
])
def test_the_width_claim_is_judged_with_and_without_alignment(aligned, naive, aligned_verdict, naive_verdict):
    variants = {"h64": {"model.hidden": [64]}, "h256": {"model.hidden": [256]}, "h128": {"model.hidden": [128]}}
    widths = {"h64": 0, "h128": 1, "h256": 2}
    rows = [(v, "vi", "w2", p, aligned[i]) for v, i in widths.items() for p in PAIRS]
    rows += [(v, "vi", "naive", p, naive[i]) for v, i in widths.items() for p in PAIRS]
    frames = {"barriers": barriers(rows), **{f"sigma_{v}": sigma_vi() for v in variants}}
    (w,) = verdict("rossi-width", run_of(frames, variants=variants))
    (n,) = verdict("rossi-naive-width", run_of(frames, variants=variants))
    assert (w.verdict, n.verdict) == (aligned_verdict, naive_verdict)
    assert w.measured == pytest.approx(aligned[2] - aligned[0]) and n.measured == pytest.approx(naive[2] - naive[0])
    assert w.reason.index("64: ") < w.reason.index("128: ") < w.reason.index("256: ")
    (w,) = verdict("rossi-width", run_of(frames))
    assert w.verdict == NOT_TESTABLE and "model.hidden" in w.reason


def test_a_one_at_a_time_sweep_reads_each_claim_at_the_others_base_values():
    base = {"model.hidden": [128], "prior.std": 1.0}
    variants = {"model.hidden-32": {"model.hidden": [32], "prior.std": 1.0},
                "model.hidden-128": {"model.hidden": [128], "prior.std": 1.0},
                "model.hidden-512": {"model.hidden": [512], "prior.std": 1.0},
                "prior.std-0.3": {"model.hidden": [128], "prior.std": 0.3}}
    aligned = {"model.hidden-32": 0.04, "model.hidden-128": 0.03, "model.hidden-512": 0.02, "prior.std-0.3": 0.2}
    rows = [(v, "vi", kind, p, aligned[v] if kind == "w2" else 0.5) for v in variants for kind in ("w2", "naive")
            for p in PAIRS]
    frames = {"barriers": barriers(rows), **{f"sigma_{v}": sigma_vi() for v in variants}}
    run = run_of(frames, variants=variants, base=base)
    (width,) = verdict("rossi-width", run)
    assert width.verdict == REPRODUCED and "0.2" not in width.reason.split(";")[0]
    (priors,) = verdict("rossi-priors", run)
    assert priors.verdict == NOT_REPRODUCED and priors.measured == pytest.approx(0.2)
    assert "model.hidden-32" not in priors.reason and "model.hidden-128" in priors.reason


def hmc_rows(aligned, floor, naive=0.45, halves_distance=50.0, chains_distance=70.0):
    rows = [("base", "hmc", "naive", p, naive) for p in PAIRS] + [("base", "hmc", "weight", p, aligned) for p in PAIRS]
    rows += [("base", "hmc", claims.WITHIN_CHAIN, f"{c}-{c}", 0.3) for c in range(3)]
    rows += [("base", "hmc", claims.WITHIN_CHAIN_ALIGNED, f"{c}-{c}", floor) for c in range(3)]
    return barriers(rows, {"naive": chains_distance, claims.WITHIN_CHAIN: halves_distance})


def test_hmcs_aligned_barrier_is_judged_against_the_aligned_halves_of_one_chain():
    (v,) = verdict("xiao-hmc-one-basin", run_of({"barriers": hmc_rows(0.23, 0.22), **CONVERGED}))
    assert v.verdict == REPRODUCED and v.control_value == pytest.approx(0.22)
    (v,) = verdict("xiao-hmc-one-basin", run_of({"barriers": hmc_rows(0.40, 0.22), **CONVERGED}))
    assert v.verdict == NOT_REPRODUCED and v.measured == pytest.approx(0.18)
    # halves farther apart than two chains: the chain moves between modes and the control says nothing
    (v,) = verdict("xiao-hmc-one-basin", run_of({"barriers": hmc_rows(0.23, 0.22, halves_distance=81.1,
                                                                       chains_distance=70.9), **CONVERGED}))
    assert v.verdict == INCONCLUSIVE and "within-chain control valid" in v.reason
    assert "81.1 / 70.9): FAILED" in v.preconditions[1].text()
    (v,) = verdict("xiao-hmc-one-basin", run_of({"barriers": hmc_rows(0.23, 0.22)}))
    assert v.verdict == INCONCLUSIVE and "not measured by this run: HMC reference" in v.reason  # no diagnostics
    rows = hmc_rows(0.23, 0.22)
    (v,) = verdict("xiao-hmc-one-basin", run_of({"barriers": rows[rows["alignment"] != claims.WITHIN_CHAIN_ALIGNED]}))
    assert v.verdict == NOT_TESTABLE and "within-chain weight" in v.reason


def test_one_basin_is_judged_on_the_worst_jointly_aligned_pair():
    rows = [("base", "ensemble", "joint_weight", p, b) for p, b in zip(PAIRS, (0.01, 0.02, 0.01))]
    rows += [("base", "ensemble", "weight", p, 0.01) for p in PAIRS] + [("base", "ensemble", "naive", p, 0.5) for p in PAIRS]
    (v,) = verdict("one-basin", run_of({"barriers": barriers(rows)}))
    assert v.verdict == REPRODUCED and v.measured == 0.02 and v.control_value == 0.01
    rows[2] = ("base", "ensemble", "joint_weight", "1-2", 0.2)  # one pair apart under the one labelling
    joint = pd.DataFrame([{"method": "ensemble", "alignment": "weight", "pairwise_cycle_not_per_100_mean": 7.5}])
    (v,) = verdict("one-basin", run_of({"barriers": barriers(rows), "joint_alignment_base": joint}))
    assert v.verdict == NOT_REPRODUCED and v.measured == 0.2 and "7.5 transpositions per 100 units" in v.reason
    vi = [("base", "vi", "joint_w2", p, 0.01) for p in PAIRS] + [("base", "vi", "naive", p, 0.5) for p in PAIRS]
    (v,) = verdict("one-basin", run_of({"barriers": barriers(vi), "sigma_base": sigma_vi()}))
    assert v.verdict == REPRODUCED and v.reason.startswith("vi (w2)")
    (v,) = verdict("one-basin", run_of({"barriers": barriers(vi), "sigma_base": sigma_vi(0.1, 0.15)}))
    assert v.verdict == INCONCLUSIVE  # a VI that did not learn its variances
    (v,) = verdict("one-basin", run_of({"barriers": barriers(vi[3:])}))
    assert v.verdict == NOT_TESTABLE and "alignment.joint" in v.reason


def resnet(naive, w2, dataset):
    rows = [("base", "vi", "naive", p, naive) for p in PAIRS] + [("base", "vi", "w2", p, b) for p, b in zip(PAIRS, w2)]
    return run_of({"barriers": barriers(rows), "sigma_base": sigma_vi()},
                  {**CONFIG, "model": {"architecture": "resnet20"}, "data": {"dataset": dataset}})


def test_a_no_op_matcher_cannot_reproduce_the_cifar100_claim():
    (v,) = verdict("rossi-resnet-cifar100", resnet(1.0, (1.0, 1.0, 1.0), "cifar100"))
    assert v.verdict == NOT_REPRODUCED and "the identity permutation" in v.reason
    (v,) = verdict("rossi-resnet-cifar100", resnet(1.0, (0.5, 0.55, 0.6), "cifar100"))
    assert v.verdict == REPRODUCED
    (v,) = verdict("rossi-resnet-cifar100", resnet(1.0, (0.01, 0.02, 0.01), "cifar100"))
    assert v.verdict == NOT_REPRODUCED  # no barrier remains
    (v,) = verdict("rossi-resnet-cifar100", resnet(1.0, (0.5, 0.5, 0.5), "cifar10"))
    assert v.verdict == NOT_TESTABLE


def test_cifar10_is_judged_as_a_ratio_and_as_an_absolute_barrier():
    run = resnet(1.0, (0.02, 0.03, 0.02), "cifar10")
    assert verdict("rossi-resnet-cifar10", run)[0].verdict == REPRODUCED
    assert verdict("rossi-resnet-cifar10-near-zero", run)[0].verdict == REPRODUCED
    run = resnet(1.0, (0.3, 0.35, 0.3), "cifar10")
    assert verdict("rossi-resnet-cifar10", run)[0].verdict == NOT_REPRODUCED
    assert verdict("rossi-resnet-cifar10-near-zero", run)[0].verdict == NOT_REPRODUCED


# ---------------------------------------------------------------- weight-space studies

def not_k(excess_by_k, units=128, l2=None):
    rows = [{"k": k, "seed": s, "not_planted": k, "not_found": k + e, "units_total": units,
             "data_order": "reshuffled", "l2_naive": (l2 or {}).get(k, 1.0 + k + s),
             "loss_barrier_naive": 0.01 * k + 0.001 * s} for k, e in excess_by_k for s in (0, 1)]
    return pd.DataFrame(rows)


def test_the_not_claim_against_the_planted_transpositions():
    (v,) = verdict("xiao-not-training", run_of({"not_k_base": not_k([(0, 0), (8, 1), (32, 0)])}))
    assert v.verdict == REPRODUCED and v.measured == 0.5
    # a matcher that finds nothing (found 0 at every k) is as far off as the identity permutation
    (v,) = verdict("xiao-not-training", run_of({"not_k_base": not_k([(0, 0), (8, -8), (32, -32)])}))
    assert v.verdict == NOT_REPRODUCED and v.measured == 20 and "identity permutation" in v.reason
    (v,) = verdict("xiao-not-training", run_of({"not_k_base": not_k([(0, 90), (8, 89), (32, 91)])}))
    assert v.verdict == NOT_REPRODUCED and "a floor of the training setting" in v.reason and v.control_value == 90
    t = not_k([(0, 20), (8, 20), (32, 20)])
    t = t.assign(setting="xiao", matching="activation", units_live=100, not_planted_live=t["not_planted"],
                 not_found_live=t["not_planted"])
    (v,) = verdict("xiao-not-training", run_of({"not_k_base": t}))
    assert "setting xiao, activation matching" in v.reason and "over the 100 units that matter the excess is +0.0" in v.reason


def test_figure_3s_trends_are_judged_by_rank_correlation():
    t = not_k([(0, 0), (2, 0), (8, 0), (32, 0), (128, 0)])
    (v,) = verdict("xiao-not-distance", run_of({"not_k_base": t}))
    assert v.verdict == REPRODUCED and v.measured > 0.9
    flat = t.assign(l2_naive=np.random.default_rng(0).permutation(len(t)))
    (v,) = verdict("xiao-not-distance", run_of({"not_k_base": flat}))
    assert v.verdict == NOT_REPRODUCED
    (v,) = verdict("xiao-not-barrier", run_of({"not_k_base": not_k([(0, 0), (8, 0)])}))
    assert v.verdict == NOT_TESTABLE


def pruning(sigma_accs, magnitude_accs, half=0.3):
    """A pruning table whose paired intervals of the points lost are the drop +- ``half``."""
    rows = []
    for label, crit, accs in (("merged: Ens. mean + HMC sigma", "sigma", sigma_accs),
                              ("Ens. mean by magnitude", "|mu|", magnitude_accs)):
        rows += [{"label": label, "criterion": crit, "fraction_retained": f, "test_accuracy": a,
                  "accuracy_drop_low": 100 * (accs[0] - a) - half, "accuracy_drop_high": 100 * (accs[0] - a) + half}
                 for f, a in zip((1.0, 0.5, 0.2), accs)]
    return pd.DataFrame(rows)


def test_pruning_by_sigma_must_beat_pruning_by_magnitude():
    frames = {"pruning_base": pruning((0.97, 0.965, 0.90), (0.97, 0.90, 0.5)), **CONVERGED}
    (v,) = verdict("xiao-pruning", run_of(frames))
    assert v.verdict == REPRODUCED and v.measured == pytest.approx(0.5) and v.control_value == pytest.approx(7.0)
    assert v.low < 0.5 < v.high
    # the GGN page's case: sigma loses 0.7, magnitude 0.1: the trivial baseline does better, not reproduced
    frames["pruning_base"] = pruning((0.97, 0.963, 0.90), (0.97, 0.969, 0.5))
    (v,) = verdict("xiao-pruning", run_of(frames))
    assert v.verdict == NOT_REPRODUCED and "magnitude pruning of the same mean to 0.5 loses 0.1" in v.reason


def test_a_failed_pruning_names_prior_dominated_sigmas():
    sigma = pd.DataFrame([{"label": "HMC q_r (weight, first ref.)", "method": "hmc", "fit": "q_r",
                           "median_sigma": 0.92}])
    cfg = {**CONFIG, "prior": {"std": 1.0}}
    frames = {"pruning_base": pruning((0.96, 0.91, 0.9), (0.96, 0.965, 0.9)), "sigma_base": sigma, **CONVERGED}
    (v,) = verdict("xiao-pruning", run_of(frames, cfg))
    assert v.verdict == NOT_REPRODUCED and v.measured == pytest.approx(5.0) and "prior-dominated" in v.reason
    sigma["median_sigma"] = 0.1
    assert "prior-dominated" not in verdict("xiao-pruning", run_of(frames, cfg))[0].reason


# ---------------------------------------------------------------- the preconditions' own rows

@pytest.mark.parametrize("q10, q90, expected", [(0.0023, 0.0025, NOT_REPRODUCED), (0.01, 0.3, REPRODUCED)])
def test_vi_that_moved_every_sigma_together_is_not_a_posterior(q10, q90, expected):
    sigma = pd.DataFrame([{"label": "VI q", "median_sigma": (q10 + q90) / 2, "sigma_q10": q10, "sigma_q90": q90,
                           "sigma_init": 0.001, "kl_share": 0.9}])
    (v,) = verdict("vi-learned", run_of({"sigma_base": sigma}))
    assert v.verdict == expected and v.measured == pytest.approx(q90 / q10) and v.control_value == 0.001
    assert "KL share of the objective 0.9" in v.reason
    assert verdict("vi-learned", run_of({}))[0].verdict == NOT_TESTABLE


def test_vi_whose_sigmas_went_to_the_prior_is_diagnosed_as_the_prior():
    sigma = pd.DataFrame([{"label": "VI q", "median_sigma": 0.97, "sigma_q10": 0.86, "sigma_q90": 1.0,
                           "sigma_init": 0.01, "kl_share": 0.64, "test_error": 0.87}])
    cfg = {**CONFIG, "prior": {"std": 1.0}}
    (v,) = verdict("vi-learned", run_of({"sigma_base": sigma}, cfg))
    assert v.verdict == NOT_REPRODUCED and "prior's scale" in v.reason and "test error 0.87" in v.reason
    (v,) = verdict("vi-learned", run_of({"sigma_base": sigma}, cfg, {"base": {"prior.std": 10.0}}))
    assert "prior's scale" not in v.reason and "moved together" in v.reason


@pytest.mark.parametrize("strict, loose, expected", [(0.96, 1.0, REPRODUCED), (0.94, 1.0, NOT_REPRODUCED),
                                                     (0.99, 0.998, NOT_REPRODUCED)])
def test_convergence_needs_every_point_at_1_1_and_95_percent_at_1_01(strict, loose, expected):
    (v,) = verdict("hmc-converged", run_of({"chain_diagnostics_base": diagnostics(strict, loose, constant=57)}))
    assert v.verdict == expected and v.measured == strict
    assert "57 with p(y|x) constant over every draw (counted as converged)" in v.reason
    assert "nested R-hat: no two chains share a start" in v.reason
    assert claims.converged(run_of({"chain_diagnostics_base": diagnostics(strict, loose)}), "base").passed is (
        expected == REPRODUCED)
    old = pd.DataFrame([{"rhat_max": 1.2}])  # chain diagnostics of older code: no per-point shares
    assert verdict("hmc-converged", run_of({"chain_diagnostics_base": old}))[0].verdict == NOT_TESTABLE


# ---------------------------------------------------------------- the job, the page, the README

def test_every_claim_answers_every_run_and_the_job_writes_both_files(tmp_path):
    from workflow.jobs.claims import claims_job

    b = barriers([("base", "vi", "naive", p, 0.5) for p in PAIRS] + [("base", "vi", "w2", p, 0.01) for p in PAIRS])
    b.to_csv(tmp_path / "barriers.csv", index=False)
    table1(**{"HMC q_d": 0.2, Q_R: 0.8, "VI q": 0.99}).to_csv(tmp_path / "table1_base.csv", index=False)
    diagnostics().to_csv(tmp_path / "chain_diagnostics_base.csv", index=False)
    sigma_vi().to_csv(tmp_path / "sigma_base.csv", index=False)
    claims_job([tmp_path / f for f in ("barriers.csv", "table1_base.csv", "chain_diagnostics_base.csv",
                                       "sigma_base.csv")], CONFIG, {"base": {}}, tmp_path / "claims.csv",
               tmp_path / "claims.md")
    t = pd.read_csv(tmp_path / "claims.csv")
    assert set(t["claim"]) == {c.key for c in claims.CLAIMS}
    assert set(t["verdict"]) <= set(claims.VERDICTS)
    assert (t.loc[t["verdict"] == NOT_TESTABLE, "reason"].str.len() > 10).all()  # every gap says why
    md = (tmp_path / "claims.md").read_text()
    assert "config sha1" in md and md.count("\n- **") == len(t) and "0 inconclusive" in md
    by = t.set_index("claim")
    assert by.loc["rossi-vi-near-zero", "verdict"] == REPRODUCED and by.loc["xiao-vi-close", "verdict"] == REPRODUCED
    assert "0.01 [0.01, 0.01]" in md  # the measured value with its interval
    assert by.loc["rossi-resnet-cifar10", "verdict"] == NOT_TESTABLE and math.isnan(by.loc["rossi-resnet-cifar10",
                                                                                           "measured"])
    assert not by["paper_number"].drop(["rossi-resnet-cifar10"]).isna().any()  # every rule has a number


def test_a_sweep_shows_a_claim_untestable_everywhere_once():
    variants = {"hidden-16": {"model.hidden": 16}, "hidden-32": {"model.hidden": 32}}
    b = barriers([(v, "vi", kind, "0-1", value) for v in variants
                  for kind, value in (("naive", 0.5), ("w2", 0.01 if v == "hidden-16" else 0.2))])
    table = claims.judge(run_of({"barriers": b, **{f"sigma_{v}": sigma_vi() for v in variants}}, variants=variants))
    md = claims.markdown(table, title="t", stamp="s")
    resnet_rows = [line for line in md.splitlines() if line.startswith("| On CIFAR-10, W2")]
    assert len(resnet_rows) == 1 and "| every variant |" in resnet_rows[0]
    near_zero = table[table["claim"] == "rossi-vi-near-zero"]
    assert set(near_zero["verdict"]) == {REPRODUCED, NOT_REPRODUCED}


def test_the_results_page_is_the_runs_own_files_under_a_stamp(tmp_path, monkeypatch):
    from workflow.jobs import claims as claims_module
    from workflow.jobs.claims import claims_job
    from workflow.jobs.results_doc import results_doc_job

    monkeypatch.setattr(claims_module, "code_revision", lambda: "0123abc")  # a committed checkout's claims
    run = tmp_path / "results" / "t"
    (run / "tables").mkdir(parents=True)
    table1(**{"HMC q_d": 0.2, Q_R: 0.8}).to_csv(run / "tables" / "table1_base.csv", index=False)
    (run / "tables" / "table1_base.md").write_text("| metric | HMC q_d |\n|---|---|\n| agreement with HMC | 0.2 |\n")
    config = tmp_path / "c.yaml"
    config.write_text("name: t\nseeds: [0, 1]\n")
    with pytest.raises(FileNotFoundError, match="snakemake claims"):
        results_doc_job(run, config, tmp_path / "page.md")
    claims_job([run / "tables" / "table1_base.csv"], CONFIG, {"base": {}}, run / "claims.csv", run / "claims.md")
    results_doc_job(run, config, tmp_path / "page.md")
    page = (tmp_path / "page.md").read_text()
    assert page.startswith("# Results of `t`") and "Do not edit by hand" in page
    assert (run / "tables" / "table1_base.md").read_text() in page and "name: t\nseeds: [0, 1]" in page
    # claims judged by uncommitted code never reach a page
    monkeypatch.setattr(claims_module, "code_revision", lambda: "0123abc-dirty")
    claims_job([run / "tables" / "table1_base.csv"], CONFIG, {"base": {}}, run / "claims.csv", run / "claims.md")
    with pytest.raises(ValueError, match="uncommitted code"):
        results_doc_job(run, config, tmp_path / "page.md")


def test_the_readmes_result_is_the_default_pages_table_1_claims(tmp_path, monkeypatch):
    """README.md's result block is `python -m workflow readme-result`'s output on the committed page."""
    from pathlib import Path

    from workflow.jobs.results_doc import README_BEGIN, README_END, readme_result, readme_result_job

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    block = readme.split(README_BEGIN, 1)[1].split(README_END, 1)[0]
    monkeypatch.chdir(root)
    assert README_BEGIN + block + README_END == readme_result("docs/results/digits-default.md")

    page = tmp_path / "page.md"
    page.write_text("Written by `x`; code 0123456789abcdef, config sha1 f.\n\n"
                    "| claim | paper, place | paper | variant | measured [95% interval] | rule | verdict |\n"
                    "|---|---|---|---|---|---|---|\n"
                    "| A | X, Table 1 | 0.8 | base | 0.7 [0.6, 0.8] | r | **reproduced** |\n"
                    "| B | X, Figure 3 | a fall | base | 0.1 | r | **reproduced** |\n"
                    "| C | X, Table 1 | 0.9 | base | - | r | **not testable** |\n"
                    "| D | X, Table 1 | 1.0 | base | 2.0 | r | **inconclusive** |\n\nafter\n")
    block = readme_result(page)
    assert "| A | X, Table 1 | 0.8 | 0.7 [0.6, 0.8] | **reproduced** |" in block and "code 0123456" in block
    assert "| D | X, Table 1 | 1.0 | 2.0 | **inconclusive** |" in block
    assert "| B |" not in block and "| C |" not in block and "after" not in block
    target = tmp_path / "README.md"
    target.write_text(f"intro\n{README_BEGIN}\nold\n{README_END}\nrest\n")
    readme_result_job(page, target)
    assert target.read_text() == f"intro\n{block}\nrest\n"


def test_the_results_page_says_which_code_wrote_the_runs_artifacts(tmp_path):
    import h5py

    from workflow.jobs.claims import claims_job
    from workflow.jobs.results_doc import results_doc_job

    run = tmp_path / "results" / "t"
    (run / "tables").mkdir(parents=True)
    table1(**{"HMC q_d": 0.2, Q_R: 0.8}).to_csv(run / "tables" / "table1_base.csv", index=False)
    claims_job([run / "tables" / "table1_base.csv"], CONFIG, {"base": {}}, run / "claims.csv", run / "claims.md")
    judged_by = pd.read_csv(run / "claims.csv")["code"].iloc[0]
    if str(judged_by).endswith("-dirty"):
        pytest.skip("the checkout has uncommitted changes: results-doc refuses claims judged by them")
    config = tmp_path / "c.yaml"
    config.write_text("name: t\n")
    posteriors = run / "base" / "posteriors" / "vi"
    posteriors.mkdir(parents=True)
    for seed in range(2):
        with h5py.File(posteriors / f"seed{seed}.h5", "w") as f:
            f.attrs["code_revision"] = judged_by
    results_doc_job(run, config, tmp_path / "page.md")
    assert "All 2 HDF5 artifacts of the run were written by that same code." in (tmp_path / "page.md").read_text()
    with h5py.File(posteriors / "seed1.h5", "a") as f:
        f.attrs["code_revision"] = "0123abc"
    results_doc_job(run, config, tmp_path / "page.md")
    page = (tmp_path / "page.md").read_text()
    assert f"written by code {judged_by} (1), 0123abc (1)" in page and "not all by the code that judged" in page


def test_docs_results_index_is_the_pages_own_verdicts(tmp_path, monkeypatch):
    """docs/results.md's findings are `python -m workflow results-index`'s output on the committed pages: a
    finding typed by hand, or a page regenerated without the index, fails here."""
    from pathlib import Path

    from workflow.jobs.results_doc import INDEX_BEGIN, INDEX_END, page_verdicts, results_index

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    doc = (root / "docs" / "results.md").read_text()
    block = doc.split(INDEX_BEGIN, 1)[1].split(INDEX_END, 1)[0]
    assert block.strip() == results_index(sorted(Path("docs/results").glob("*.md"))).strip()

    page = tmp_path / "p.md"
    page.write_text("Written by `x`; code 0123456789abcdef, config sha1 f.\n\n"
                    "| claim | paper, place | paper | variant | measured [95% interval] | rule | verdict |\n"
                    "|---|---|---|---|---|---|---|\n| A | X | 1 | base | 0.7 [0.6, 0.8] | r | **inconclusive** |\n"
                    "| B | X | 1 | base | - | r | **not testable** |\n\n## Why\n\n"
                    "- **a-key** (base, inconclusive): why.\n- **b-key** (base, not testable): no data.\n")
    code, two_sided, rows = page_verdicts(page)
    assert code == "0123456" and two_sided and [r["key"] for r in rows] == ["a-key", "b-key"]
    text = results_index([page])
    assert "| a-key | base | 0.7 [0.6, 0.8] | inconclusive |" in text and "Not testable by this config: b-key." in text
    assert "uncommitted" not in text
    page.write_text(page.read_text().replace("measured [95% interval]", "measured"))  # a page of the one-sided rules
    assert "not yet rerun" in results_index([page])
    page.write_text(page.read_text().replace("code 0123456789abcdef,", "code 0123456789abcdef-dirty,"))
    assert "judged by uncommitted code (-dirty)" in results_index([page])
    page.write_text(page.read_text().replace("- **b-key** (base, not testable): no data.\n", ""))
    with pytest.raises(ValueError, match="regenerate the page"):
        page_verdicts(page)


def test_the_stamp_counts_the_papers_claims_apart_from_the_preconditions():
    t = pd.DataFrame({"claim": ["hmc-converged"] * 3 + ["vi-learned"] * 3 + ["x", "y"],
                      "kind": ["precondition"] * 6 + ["claim"] * 2,
                      "verdict": [NOT_TESTABLE] * 3 + [NOT_REPRODUCED, NOT_REPRODUCED, REPRODUCED, REPRODUCED,
                                                       INCONCLUSIVE]})
    assert claims.counts(t) == ("Claims: 1 reproduced, 0 not reproduced, 1 inconclusive, 0 not testable. "
                                "Preconditions: hmc-converged 3 not testable, vi-learned 2 not met, 1 met.")
    assert claims.counts(t.iloc[[0, 3, 6]]).endswith("Preconditions: hmc-converged not testable, vi-learned not met.")
