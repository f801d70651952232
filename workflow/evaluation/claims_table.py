"""The claims of both papers as data, judged two-sided against one run's summary tables.

Every claim declares where the paper makes it, the paper's number (a number, with the direction the
claim reads it in), the quantity it compares (read from the run's summary tables only), and how the
verdict is reached (DESIGN.md, "Judging a claim"):

1. the measured value and its 95% interval, from the run's own spread (``evaluation.bootstrap``:
   Table 1 over test points and the reference's chains, barriers over pairs, studies over their rows);
2. the preconditions the claim needs (the HMC reference converged, VI learned its variances, the
   control is valid, ...): a failed one makes the verdict **inconclusive**, naming it and its number;
3. the trivial baselines beside the claim (the identity permutation, means-only matching, magnitude
   pruning, the agreement test accuracies alone force, ...): a baseline that reaches the method's value,
   or lies inside its interval, makes it **not reproduced**, naming the baseline's number;
4. the paper's number: **reproduced** when the measured value is on the claim's side of it within the
   tolerance, the interval's half-width plus 10% of the paper's effect (for a share or an agreement, of
   its distance from the trivial baseline); otherwise **not reproduced**.

A claim the run's config cannot test is **not testable**, with what is missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from . import bootstrap

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTABLE = "reproduced", "not reproduced", "inconclusive", "not testable"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTABLE)
ACROSS = "all"  # the variant of a claim judged across the variants of a sweep (width, priors)
AT_LEAST, AT_MOST = "at least", "at most"

EFFECT_SHARE = 0.10  # the tolerance beyond the interval: this share of the paper's effect
# the HMC reference's convergence (DESIGN.md, "Convergence of the HMC reference"): every test point's rank
# R-hat of p(y|x) <= 1.1 (Sommer et al. 2024) and at least 95% of them <= 1.01 (Vehtari et al. 2021)
RHAT_ALL, RHAT_STRICT, STRICT_SHARE = 1.1, 1.01, 0.95
SIGMA_SPREAD = 2.0  # 90th / 10th percentile of VI's sigmas: sigmas learned per weight, not moved as one
UNITS_MOVED = 0.5  # median unit correlation with the chain's start below which the chain has moved its units
PRUNE_DROP = 1.0  # accuracy points: the project's reading of "keeps its accuracy" (the paper states no number)
NOT_EXCESS = 0.02  # NoT found beyond the planted, as a share of the units: the floor of "found = planted"
SEED = 0  # every bootstrap of this module: verdicts are the same on every rerun


def gap_closed(before: float, after: float) -> float:
    """The share of the gap to 1 (agreement with HMC) that ``after`` closes from ``before``."""
    return (after - before) / (1.0 - before) if before < 1 else math.nan


# Xiao et al.'s Table 1 (MNIST, MLP 784-512-10): DESIGN.md, "Reference numbers"
XIAO_TABLE1 = {
    "agreement": {"HMC q_d": 0.1212, "HMC q_r": 0.8249, "Ens. samples": 0.9931, "Ens. q_d": 0.5239,
                  "Ens. q_r": 0.9868, "VI q": 0.9885},
    "TV": {"HMC q_d": 0.8641, "HMC q_r": 0.6570, "Ens. samples": 0.0229, "Ens. q_d": 0.7210, "Ens. q_r": 0.0495,
           "VI q": 0.0235},
    "accuracy": {"HMC samples": 98.43, "HMC q_d": 11.11, "HMC q_r": 82.34, "Ens. samples": 98.66, "Ens. q_d": 52.25,
                 "Ens. q_r": 97.72, "VI q": 98.11},
    "mean accuracy": {"HMC q_d": 28.06, "HMC q_r": 92.25, "Ens. q_d": 86.40, "Ens. q_r": 97.97, "VI q": 98.04},
}


@dataclass(frozen=True)
class Rule:
    """The paper's number, the side of it the claim is on, and the effect the tolerance is a share of."""
    paper: float
    direction: str
    effect: float
    basis: str = ""  # where ``paper`` and ``effect`` come from, when they are derived

    def tolerance(self, low: float, high: float) -> float:
        half = (high - low) / 2 if not (math.isnan(low) or math.isnan(high)) else 0.0
        return half + EFFECT_SHARE * abs(self.effect)

    def holds(self, measured: float, tolerance: float) -> bool:
        if self.direction == AT_LEAST:
            return measured >= self.paper - tolerance
        return measured <= self.paper + tolerance


@dataclass
class Check:
    """A precondition: its measured value, what it must be, and whether it was met (None: not measured here)."""
    name: str
    value: float
    rule: str
    passed: bool | None
    detail: str = ""

    def text(self) -> str:
        state = {True: "met", False: "FAILED", None: "not measured by this run"}[self.passed]
        detail = f"; {self.detail}" if self.detail else ""
        return f"{self.name} {_fmt(self.value)} ({self.rule}{detail}): {state}"


@dataclass
class Baseline:
    """A trivial baseline: its value on the claim's scale, and whether it reaches the method's value."""
    name: str
    value: float
    reaches: bool


@dataclass
class Verdict:
    variant: str
    measured: float
    verdict: str
    reason: str
    low: float = math.nan
    high: float = math.nan
    paper_number: float = math.nan
    tolerance: float = math.nan
    interval: str = ""
    preconditions: list[Check] = field(default_factory=list)
    baselines: list[Baseline] = field(default_factory=list)
    control: str = ""
    control_value: float = math.nan


@dataclass(frozen=True)
class Claim:
    key: str
    paper: str
    place: str
    statement: str
    paper_value: str  # the paper's number as the paper states it (words, for the reader)
    number: float  # the paper's number the rule compares with (in the rule's direction)
    quantity: str
    rule: str
    judge: Callable[["Run"], list[Verdict]]
    precondition: bool = False  # a row of its own that other claims need (met / not met), not a claim of a paper


class Run:
    """A run's summary tables (file stem -> frame), its config, its variants (name -> its value of every
    swept key) and the swept keys' base values (those the sweep holds the other keys at)."""

    def __init__(self, frames: dict[str, pd.DataFrame], config: dict, variants: dict[str, dict],
                 sweep_base: dict | None = None):
        self.frames, self.config, self.variants = frames, config, variants or {"base": {}}
        self.sweep_base = sweep_base or {}

    def table(self, kind: str, variant: str | None = None) -> pd.DataFrame | None:
        return self.frames.get(kind if variant is None else f"{kind}_{variant}")

    def has_method(self, method: str) -> bool:
        return method in self.config.get("methods", [])

    @property
    def architecture(self) -> str:
        return self.config.get("model", {}).get("architecture", "")

    @property
    def dataset(self) -> str:
        return self.config.get("data", {}).get("dataset", "")


def _fmt(x: float) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


def _untestable(run: Run, reason: str) -> list[Verdict]:
    return [Verdict(v, math.nan, NOT_TESTABLE, reason) for v in run.variants]


def decide(variant: str, measured: float, rule: Rule, reason: str, *, low: float = math.nan, high: float = math.nan,
           interval: str = "", preconditions: list[Check] = (), baselines: list[Baseline] = (), control: str = "",
           control_value: float = math.nan) -> Verdict:
    """The verdict of one claim and variant, in the module's order: preconditions, baselines, the paper's number."""
    preconditions, baselines = list(preconditions), list(baselines)
    tol = rule.tolerance(low, high)
    half = (high - low) / 2 if not (math.isnan(low) or math.isnan(high)) else math.nan
    if rule.effect > 0 and not math.isnan(half):  # an interval wider than the effect cannot tell it from nothing
        preconditions.append(Check("precision: the interval's half-width", half, f"below the effect {_fmt(rule.effect)}",
                                   bool(half < rule.effect)))
    v = Verdict(variant, measured, NOT_TESTABLE, reason, low, high, rule.paper, tol, interval, preconditions,
                baselines, control, control_value)
    if measured is None or math.isnan(measured):
        v.reason = reason or "no measured value"
        return v
    if math.isnan(rule.effect):
        v.reason += f"; no effect to scale the tolerance by ({rule.basis})"
        return v
    side = f"{rule.direction} {_fmt(rule.paper)} within {_fmt(tol)}"
    # a precondition this run did not measure cannot be taken as met
    failed = [c for c in preconditions if c.passed is not True]
    reaching = [b for b in baselines if b.reaches]
    number_alone = "reproduced" if rule.holds(measured, tol) else "not reproduced"
    if failed:
        v.verdict = INCONCLUSIVE
        v.reason += f"; on the paper's number alone {number_alone} ({_fmt(measured)} against {side})"
        parts = [f"{what}: " + "; ".join(f"{c.name} {_fmt(c.value)}" for c in failed if c.passed is state)
                 for what, state in (("a precondition failed", False), ("not measured by this run", None))
                 if any(c.passed is state for c in failed)]
        v.reason += "; inconclusive, " + "; ".join(parts)
    elif reaching:
        v.verdict = NOT_REPRODUCED
        v.reason += "; a trivial baseline does as well: " + "; ".join(f"{b.name} {_fmt(b.value)}" for b in reaching)
    elif rule.holds(measured, tol):
        v.verdict = REPRODUCED
        v.reason += f"; {_fmt(measured)} is {side} of the paper's number"
    else:
        v.verdict = NOT_REPRODUCED
        v.reason += f"; {_fmt(measured)} is not {side} of the paper's number"
    return v


def reaches(value: float, measured: float, low: float, high: float, direction: str) -> bool:
    """Whether a baseline's value reaches the method's: on the claim's side of it, or inside its interval."""
    if math.isnan(value):
        return False
    if direction == AT_LEAST:
        return value >= (measured if math.isnan(low) else low)
    return value <= (measured if math.isnan(high) else high)


# ---------------------------------------------------------------- preconditions

def converged(run: Run, variant: str) -> Check:
    """The HMC reference's convergence on p(y|x) per test point (the precondition of every HMC claim)."""
    rule = f"every test point's rank R-hat <= {RHAT_ALL:g}, >= {STRICT_SHARE:.0%} at <= {RHAT_STRICT:g}"
    d = run.table("chain_diagnostics", variant)
    if d is None or "rhat_share_1.01" not in d:
        return Check("HMC reference converged", math.nan, rule, None)
    r = d.iloc[0]
    strict, loose = float(r["rhat_share_1.01"]), float(r["rhat_share_1.1"])
    return Check(f"HMC reference converged: share of test points at R-hat <= {RHAT_STRICT:g}", strict, rule,
                 bool(strict >= STRICT_SHARE and loose >= 1.0),
                 f"at <= {RHAT_ALL:g}: {_fmt(loose)}, max {_fmt(float(r['rhat_max']))}")


def vi_learned(run: Run, variant: str) -> Check:
    sigma = run.table("sigma", variant)
    rule = f"sigma q90 / q10 >= {SIGMA_SPREAD:g}"
    rows = None if sigma is None or "sigma_q90" not in sigma else sigma[sigma["label"] == "VI q"]
    if rows is None or rows.empty:
        return Check("VI learned its variances", math.nan, rule, None)
    r = rows.iloc[0]
    if not (r["sigma_q10"] > 0 and r["sigma_q90"] > 0):  # NaN or collapsed sigmas: no spread to read
        return Check("VI learned its variances: sigma q90 / q10", math.nan, rule, None)
    spread = float(r["sigma_q90"] / r["sigma_q10"])
    return Check("VI learned its variances: sigma q90 / q10", spread, rule, bool(spread >= SIGMA_SPREAD))


def _table1_column(run: Run, variant: str, column: str, metric: str = "agreement with HMC") -> tuple[float, float, float]:
    """(value, low, high) of one cell of Table 1; NaNs where absent."""
    t1 = run.table("table1", variant)
    if t1 is None:
        return math.nan, math.nan, math.nan
    rows = t1[(t1["metric"] == metric) & (t1["column"] == column)]
    if rows.empty:
        return math.nan, math.nan, math.nan
    r = rows.iloc[0]
    return float(r["value"]), float(r.get("low", math.nan)), float(r.get("high", math.nan))


def _table1_scheme(run: Run, variant: str) -> str:
    """How Table 1's intervals were drawn, in words (its ``interval`` column), or why there are none."""
    if run.table("table1_replicates", variant) is None:
        return "no bootstrap replicates (table1_replicates_<variant>.csv): no interval"
    t1 = run.table("table1", variant)
    return str(t1["interval"].iloc[0]) if t1 is not None and "interval" in t1 else ""


def _replicated(run: Run, variant: str, statistic: Callable[[Callable[[str, str], pd.Series]], pd.Series]
                ) -> tuple[float, float, str]:
    """The interval of a statistic of Table 1's cells over the bootstrap replicates, and its scheme in words.
    ``statistic(cell)`` gets ``cell(metric, column)`` -> that cell's replicates."""
    reps, scheme = run.table("table1_replicates", variant), _table1_scheme(run, variant)
    if reps is None:
        return math.nan, math.nan, scheme
    try:
        values = statistic(lambda metric, column: reps[bootstrap.replicate_column(metric, column)])
    except KeyError as missing:
        return math.nan, math.nan, f"no replicates of {missing}: no interval"
    low, high = bootstrap.interval(values)
    return low, high, scheme


# ---------------------------------------------------------------- Table 1 (Xiao et al.)

def paper_setting(run: Run) -> str:
    """Where a run's setting is not Table 1's (MNIST, MLP 784-512-10), the words that say so."""
    hidden = run.config.get("model", {}).get("hidden")
    if run.dataset in ("mnist", "mnist-t10k") and run.architecture == "mlp" and hidden in ([512], (512,)):
        return ""
    return (f" (the paper's numbers are MNIST with an MLP 784-512-10; this run: {run.dataset or '?'}, "
            f"{run.architecture or '?'} {hidden if hidden is not None else ''})").replace(" )", ")")


PAPER_MATCHING, PAPER_REFERENCE = "activation", "first"  # Xiao et al.'s rebasin
Q_R = f"q_r ({PAPER_MATCHING}, {PAPER_REFERENCE} ref.)"


def _q_r_columns(t1: pd.DataFrame, label: str) -> dict[str, float]:
    cols = [c for c in pd.unique(t1["column"]) if c.startswith(f"{label} q_r (")]
    return {c: float(t1[(t1["metric"] == "agreement with HMC") & (t1["column"] == c)]["value"].iloc[0]) for c in cols}


def rebasin_control(run: Run, variant: str, method: str) -> tuple[Check | None, str]:
    """The rebasin control: the share of the reference chain's own draws that matching permuted, and how far
    into the chain that starts. As a precondition: matching must not permute draws whose units have not moved
    (their weights still correlate >= UNITS_MOVED with the chain's start): that permuting is matching noise."""
    draws = run.table("rebasin_draws", variant)
    if draws is None:
        return None, ""
    rows = draws[(draws["method"] == method) & (draws["matching"] == PAPER_MATCHING)
                 & (draws["reference"] == PAPER_REFERENCE)].set_index("draws_of")
    if "reference chain" not in rows.index or int(rows.loc["reference chain", "draws"]) < 2:
        return None, ""
    own = rows.loc["reference chain"]
    moved = 1.0 - float(own["unpermuted_share"])
    text = f"matching permuted {moved:.0%} of the reference chain's {int(own['draws'])} draws"
    rule = f"draws permuted only once their units moved (unit correlation with the chain's start < {UNITS_MOVED:g})"
    if moved == 0:
        return Check("matching keeps one chain's draws together", 0.0, rule, True), text
    lag = float(own.get("first_permuted_lag", math.nan))
    corr = float(own.get("unit_corr_at_first_permuted", math.nan))
    others = float(rows.loc["other chains", "not_to_reference_mean"]) if "other chains" in rows.index else math.nan
    text += (f" (mean NoT {float(own['not_to_reference_mean']):.1f} of {int(own['units'])} units; other chains' draws "
             f"{others:.1f}); the first permuted draw comes {lag:g} draws into the chain, when its units' weights "
             f"correlate {_fmt(corr)} with the chain's start")
    check = Check("matching leaves unmoved draws alone: unit correlation with the chain's start at the first permuted "
                  "draw", corr, rule, None if math.isnan(corr) else bool(corr < UNITS_MOVED))
    return check, text


def _lift_claim(method: str, label: str) -> Callable[[Run], list[Verdict]]:
    paper = gap_closed(XIAO_TABLE1["agreement"][f"{label} q_d"], XIAO_TABLE1["agreement"][f"{label} q_r"])
    rule = Rule(paper, AT_LEAST, paper, "(q_r - q_d) / (1 - q_d) of Table 1's agreements; the effect: its distance "
                                        "from the identity permutation's 0")

    def judge(run: Run) -> list[Verdict]:
        if not run.has_method(method) or not run.has_method("hmc"):
            return _untestable(run, "needs method " + " and ".join(dict.fromkeys([method, "hmc"])))
        out = []
        for v in run.variants:
            column = f"{label} {Q_R}"
            q_d, q_r = _table1_column(run, v, f"{label} q_d")[0], _table1_column(run, v, column)[0]
            if math.isnan(q_r):
                out.append(Verdict(v, math.nan, NOT_TESTABLE,
                                   f"no Table 1 column {column!r}: rebasin.matchings must include {PAPER_MATCHING} and "
                                   f"rebasin.references {PAPER_REFERENCE} (the paper's rebasin)"))
                continue
            closed = gap_closed(q_d, q_r)
            low, high, scheme = _replicated(run, v, lambda cell: (cell("agreement with HMC", column)
                                                                  - cell("agreement with HMC", f"{label} q_d"))
                                            / (1.0 - cell("agreement with HMC", f"{label} q_d")))
            reason = f"q_d {_fmt(q_d)} -> q_r {_fmt(q_r)}, closing {_fmt(closed)} of the gap to HMC" + paper_setting(run)
            checks = [converged(run, v)]
            control, text = rebasin_control(run, v, method)
            if control is not None:
                checks.append(control)
            reason += f"; {text}" if text else ""
            others = ", ".join(f"{c.split('q_r ')[1]} {_fmt(a)}" for c, a in _q_r_columns(run.table("table1", v),
                                                                                        label).items() if c != column)
            reason += f"; other rebasins: {others}" if others else ""
            identity = Baseline("the identity permutation (q_d itself closes none of the gap)", 0.0,
                                reaches(0.0, closed, low, high, AT_LEAST))
            out.append(decide(v, closed, rule, reason, low=low, high=high, interval=scheme, preconditions=checks,
                              baselines=[identity]))
        return out
    return judge


def _close_claim(label: str, column: str) -> Callable[[Run], list[Verdict]]:
    """Agreement with HMC of a method's predictive. The baseline: the agreement the two test accuracies alone
    force (two predictives with accuracies a and b agree on at least a + b - 1 of the points)."""
    paper = XIAO_TABLE1["agreement"][label]
    forced = XIAO_TABLE1["accuracy"]["HMC samples"] / 100 + XIAO_TABLE1["accuracy"][label] / 100 - 1
    rule = Rule(paper, AT_LEAST, paper - forced, f"the effect: the paper's agreement above what its accuracies force "
                                                 f"({_fmt(forced)})")

    def judge(run: Run) -> list[Verdict]:
        out = []
        for v in run.variants:
            a, low, high = _table1_column(run, v, column)
            if math.isnan(a):
                out.append(Verdict(v, math.nan, NOT_TESTABLE, f"no Table 1 column {column!r} (needs hmc and the "
                                                              "method in methods)"))
                continue
            acc = _table1_column(run, v, column, "test accuracy %")[0]
            acc_ref = _table1_column(run, v, "HMC samples", "test accuracy %")[0]
            bound = acc / 100 + acc_ref / 100 - 1
            scheme = _table1_scheme(run, v)  # the cell's own interval is Table 1's low and high
            reason = (f"agreement {_fmt(a)}; test accuracies {_fmt(acc)}% and HMC's {_fmt(acc_ref)}% force {_fmt(bound)}"
                      + paper_setting(run))
            out.append(decide(v, a, rule, reason, low=low, high=high, interval=scheme,
                              preconditions=[converged(run, v)],
                              baselines=[Baseline("the agreement the test accuracies alone force", bound,
                                                  reaches(bound, a, low, high, AT_LEAST))]))
        return out
    return judge


def _tv_claim(label: str, column: str) -> Callable[[Run], list[Verdict]]:
    """Total variation to HMC's predictive, on the convention of evaluation/compare.py (1/2 sum |p - q|, which
    the paper's numbers use: DESIGN.md, "Reference numbers")."""
    paper = XIAO_TABLE1["TV"][label]
    rule = Rule(paper, AT_MOST, paper, "the effect: the paper's TV itself (its distance from agreeing exactly)")

    def judge(run: Run) -> list[Verdict]:
        out = []
        for v in run.variants:
            tv, low, high = _table1_column(run, v, column, "TV to HMC")
            if math.isnan(tv):
                out.append(Verdict(v, math.nan, NOT_TESTABLE, f"no Table 1 column {column!r}"))
                continue
            scheme = _table1_scheme(run, v)
            out.append(decide(v, tv, rule, f"TV {_fmt(tv)} (1/2 sum |p - p_HMC|, mean over test points)"
                              + paper_setting(run), low=low, high=high, interval=scheme,
                              preconditions=[converged(run, v)]))
        return out
    return judge


def _mean_network_claim(label: str, strict_gain: bool) -> Callable[[Run], list[Verdict]]:
    """The rebased mean network mu_r predicts better than q_r's samples: accuracy of mu_r minus that of q_r."""
    paper = XIAO_TABLE1["mean accuracy"][f"{label} q_r"] - XIAO_TABLE1["accuracy"][f"{label} q_r"]
    rule = Rule(paper, AT_LEAST, paper, "accuracy points of mu_r above q_r's samples in Table 1")

    def judge(run: Run) -> list[Verdict]:
        out = []
        column = f"{label} {Q_R}"
        for v in run.variants:
            mean_acc, acc = (_table1_column(run, v, column, "test accuracy % of mean network")[0],
                             _table1_column(run, v, column, "test accuracy %")[0])
            if math.isnan(mean_acc) or math.isnan(acc):
                out.append(Verdict(v, math.nan, NOT_TESTABLE, f"no Table 1 column {column!r} with both accuracies"))
                continue
            low, high, scheme = _replicated(run, v, lambda cell: cell("test accuracy % of mean network", column)
                                            - cell("test accuracy %", column))
            # the ensemble's claim is 'as accurate or more' (0.25 points): no gain is no baseline for it
            baselines = [Baseline("no gain (mu_r as accurate as q_r's samples)", 0.0,
                                  reaches(0.0, mean_acc - acc, low, high, AT_LEAST))] if strict_gain else []
            out.append(decide(v, mean_acc - acc, rule, f"mu_r {_fmt(mean_acc)}% against q_r's samples {_fmt(acc)}%"
                              + paper_setting(run),
                              low=low, high=high, interval=scheme, preconditions=[converged(run, v)],
                              baselines=baselines))
        return out
    return judge


def _sigma_narrower(run: Run) -> list[Verdict]:
    """Xiao et al.'s Figure 5 (left): the rebased Gaussian's sigmas are narrower than q_d's."""
    rule = Rule(1.0, AT_MOST, 0.0, "median sigma_r / median sigma_d below 1 (the paper gives no number)")
    out = []
    for v in run.variants:
        sigma = run.table("sigma", v)
        rows = None if sigma is None or "method" not in sigma else sigma[sigma["method"] == "hmc"]
        if rows is None or rows.empty:
            out.append(Verdict(v, math.nan, NOT_TESTABLE, "no sigma table with HMC's q_d and q_r"))
            continue
        q_d = rows[rows["fit"] == "q_d"]["median_sigma"]
        q_r = rows[(rows["fit"] == "q_r") & (rows["matching"] == PAPER_MATCHING)
                   & (rows["reference"] == PAPER_REFERENCE)]["median_sigma"]
        if q_d.empty or q_r.empty:
            out.append(Verdict(v, math.nan, NOT_TESTABLE, f"no HMC q_d and {Q_R} in the sigma table"))
            continue
        ratio = float(q_r.iloc[0]) / float(q_d.iloc[0])
        # strictly below 1: one fit each, no interval, so a ratio of 1 is no narrowing
        out.append(decide(v, ratio if ratio < 1 else ratio + 1e-12, rule,
                          f"median sigma: q_d {_fmt(float(q_d.iloc[0]))}, {Q_R} {_fmt(float(q_r.iloc[0]))}",
                          interval="one fit each: no interval", preconditions=[converged(run, v)]))
    return out


# ---------------------------------------------------------------- barriers (Rossi et al.; HMC's floor)

def _pair_barriers(run: Run, variant: str, method: str, alignment: str, column: str = "loss_barrier") -> pd.Series:
    """The loss barrier (or another column) of every pair (indexed by pair) of a method and alignment."""
    b = run.table("barriers")
    if b is None or column not in b:
        return pd.Series(dtype=float)
    rows = b[(b["variant"] == variant) & (b["method"] == method) & (b["alignment"] == alignment)]
    return rows.set_index("pair")[column]


def _barrier(run: Run, variant: str, method: str, alignment: str) -> float:
    rows = _pair_barriers(run, variant, method, alignment)
    return float(rows.mean()) if len(rows) else math.nan


def _seed_interval(groups: list[pd.Series], statistic) -> tuple[float, float, str]:
    """The interval of ``statistic(means)`` (one mean per per-pair series) over seed bootstrap replicates."""
    reps = bootstrap.seed_replicates(groups, seed=SEED)
    seeds = len({s for g in groups for p in g.index for s in bootstrap.pair_seeds(p)})
    if reps is None:
        return math.nan, math.nan, f"{seeds} seed{'s' if seeds != 1 else ''}: fewer than {bootstrap.MIN_UNITS}, no interval"
    low, high = bootstrap.interval(statistic(reps.T))
    return low, high, f"bootstrap over the {seeds} seeds the pairs are made of"


def _pairs_interval(values: pd.Series) -> tuple[float, float, str]:
    return _seed_interval([values], lambda m: m[0])


def _ratio_interval(run: Run, variant: str, method: str, aligned: str) -> tuple[float, float, str]:
    """The interval of mean aligned / mean naive barrier, seeds resampled together."""
    frame = pd.concat({"aligned": _pair_barriers(run, variant, method, aligned),
                       "naive": _pair_barriers(run, variant, method, "naive")}, axis=1).dropna()
    with np.errstate(invalid="ignore", divide="ignore"):
        return _seed_interval([frame["aligned"], frame["naive"]], lambda m: np.where(m[1] > 0, m[0] / m[1], np.nan))


def near_zero_rule(naive: float) -> Rule:
    """'Near zero' after alignment, where the paper prints no number: 0, with the run's naive barrier (what
    alignment is claimed to remove) as the effect (DESIGN.md, "Judging a claim")."""
    return Rule(0.0, AT_MOST, naive, f"0 nats; the effect: the naive barrier {_fmt(naive)} alignment removes")


def _untestable_mlp_vi_claim(run: Run) -> list[Verdict] | None:
    """Why an MLP claim on VI barriers cannot be judged on this run, or None when it can."""
    if run.architecture != "mlp":
        return _untestable(run, f"an MLP claim; this run's architecture is {run.architecture!r}")
    if not run.has_method("vi") or run.table("barriers") is None:
        return _untestable(run, "needs method vi with at least two seeds (barriers)")
    return None


def _vi_baselines(run: Run, variant: str, measured: float, low: float, high: float, ratio: bool) -> list[Baseline]:
    """Means-only matching of the same VI pairs, and the ensemble's weight matching (point estimates of the same
    net), on the claim's scale (a barrier, or a ratio to the naive one)."""
    out = []
    for name, method, kind in (("means-only matching of the same VI pairs", "vi", "weight"),
                               ("point estimates of the same net: the ensemble's weight matching", "ensemble",
                                "weight")):
        value = _barrier(run, variant, method, kind)
        if ratio:
            naive = _barrier(run, variant, method, "naive")
            value = value / naive if naive > 0 else math.nan
        if not math.isnan(value):
            out.append(Baseline(name, value, reaches(value, measured, low, high, AT_MOST)))
    return out


def _vi_near_zero(run: Run) -> list[Verdict]:
    if (untestable := _untestable_mlp_vi_claim(run)) is not None:
        return untestable
    out = []
    for v in run.variants:
        pairs = _pair_barriers(run, v, "vi", "w2")
        naive = _barrier(run, v, "vi", "naive")
        if pairs.empty:
            out.append(Verdict(v, math.nan, NOT_TESTABLE, "no W2-aligned VI barrier (alignment.kinds must include w2)"))
            continue
        aligned = float(pairs.mean())
        low, high, scheme = _pairs_interval(pairs)
        out.append(decide(v, aligned, near_zero_rule(naive), f"naive {_fmt(naive)} -> W2 {_fmt(aligned)}", low=low,
                          high=high, interval=scheme, preconditions=[vi_learned(run, v)],
                          baselines=_vi_baselines(run, v, aligned, low, high, ratio=False)))
    return out


def _alignment_removes_most(run: Run) -> list[Verdict]:
    if (untestable := _untestable_mlp_vi_claim(run)) is not None:
        return untestable
    rule = Rule(0.0, AT_MOST, 1.0, "aligned / naive of 0; the effect: the identity permutation's ratio of 1")
    out = []
    for v in run.variants:
        aligned, naive = _barrier(run, v, "vi", "w2"), _barrier(run, v, "vi", "naive")
        ratio = aligned / naive if naive > 0 else math.nan
        if math.isnan(ratio):
            out.append(Verdict(v, math.nan, NOT_TESTABLE, "no positive naive and W2-aligned VI barrier"))
            continue
        low, high, scheme = _ratio_interval(run, v, "vi", "w2")
        out.append(decide(v, ratio, rule, f"W2 / naive = {_fmt(aligned)} / {_fmt(naive)}", low=low, high=high,
                          interval=scheme, preconditions=[vi_learned(run, v)],
                          baselines=_vi_baselines(run, v, ratio, low, high, ratio=True)))
    return out


def _swept(run: Run, keys: tuple[str, ...]) -> dict[str, dict]:
    """variant -> its values of the given dotted keys, for the variants that set any of them and hold
    every other swept key at its base value: a width trend is read at the base prior, not across a
    prior that changes with it (a sweep with no base values known keeps every variant)."""
    def held(overrides: dict) -> bool:
        return all(overrides.get(k, base) == base for k, base in run.sweep_base.items() if k not in keys)

    return {v: {k: o[k] for k in keys if k in o} for v, o in run.variants.items()
            if any(k in o for k in keys) and held(o)}


def _width(value) -> float:
    if isinstance(value, (list, tuple)):
        return float(sum(value))
    if isinstance(value, str):
        return float(sum(float(w) for w in value.split("x")))
    return float(value)


def _width_change(run: Run, narrow: str, wide: str, alignment: str) -> tuple[float, float, float]:
    """The mean barrier at the widest width minus at the narrowest, with its interval (pairs of each width
    resampled independently)."""
    a, b = _pair_barriers(run, wide, "vi", alignment), _pair_barriers(run, narrow, "vi", alignment)
    if a.empty or b.empty:
        return math.nan, math.nan, math.nan
    change = float(a.mean() - b.mean())
    wide_reps, narrow_reps = (bootstrap.seed_replicates([g], seed=SEED + i) for i, g in enumerate((a, b)))
    if wide_reps is None or narrow_reps is None:
        return change, math.nan, math.nan
    return (change, *bootstrap.interval(wide_reps[:, 0] - narrow_reps[:, 0]))


def _width_claim(architecture: str, alignment: str, keys: tuple[str, ...]) -> Callable[[Run], list[Verdict]]:
    """A barrier falls as the width grows: the widest minus the narrowest swept width, below 0 beyond its
    interval (the paper gives no number: 0, no effect to add; the interval must lie below 0)."""
    def judge(run: Run) -> list[Verdict]:
        if run.architecture != architecture:
            return [Verdict(ACROSS, math.nan, NOT_TESTABLE, f"a {architecture} claim; this run's architecture is "
                            f"{run.architecture!r}")]
        swept = _swept(run, keys)
        if len({_width(next(iter(o.values()))) for o in swept.values()}) < 2:
            return [Verdict(ACROSS, math.nan, NOT_TESTABLE, f"no sweep over {' or '.join(keys)} with two widths or "
                            "more (experiments/rossi-mlp-mnist.yaml sweeps model.hidden)")]
        if run.table("barriers") is None or not run.has_method("vi"):
            return [Verdict(ACROSS, math.nan, NOT_TESTABLE, "needs method vi with at least two seeds (barriers)")]
        widths = {v: _width(next(iter(o.values()))) for v, o in swept.items()}
        order = sorted(widths, key=widths.get)
        narrow, wide = order[0], order[-1]
        trend = ", ".join(f"{widths[v]:g}: {_fmt(_barrier(run, v, 'vi', alignment))}" for v in order)
        change, low, high = _width_change(run, narrow, wide, alignment)
        rule = Rule(0.0, AT_MOST, 0.0, "a fall: the change below 0")
        checks = [vi_learned(run, v) for v in (narrow, wide)]
        # no fall within the interval: the upper end at or above 0 is the baseline of 'no width effect'
        flat = Baseline("no width effect: a change of 0 inside the interval (or above the change)", 0.0, not math.isnan(change) and
                        (change >= 0 if math.isnan(high) else high >= 0))
        return [decide(ACROSS, change, rule, f"{alignment} VI barrier by width {trend}", low=low, high=high,
                       interval="bootstrap over each width's seeds" if not math.isnan(low) else
                       "fewer than 3 seeds at a width: no interval", preconditions=checks, baselines=[flat])]
    return judge


def _priors_claim(run: Run) -> list[Verdict]:
    if run.architecture != "mlp":  # judged on the MLP's near-zero rule
        return [Verdict(ACROSS, math.nan, NOT_TESTABLE, f"an MLP claim; this run's architecture is "
                        f"{run.architecture!r}")]
    swept = _swept(run, ("prior.std", "vi.temperature"))
    if not swept:
        return [Verdict(ACROSS, math.nan, NOT_TESTABLE, "no sweep over prior.std or vi.temperature")]
    if run.table("barriers") is None or not run.has_method("vi"):
        return [Verdict(ACROSS, math.nan, NOT_TESTABLE, "needs method vi with at least two seeds (barriers)")]
    aligned = {v: _barrier(run, v, "vi", "w2") for v in swept}
    worst = max(aligned, key=lambda v: aligned[v])
    listing = ", ".join(f"{v}: {_fmt(b)}" for v, b in aligned.items())
    low, high, scheme = _pairs_interval(_pair_barriers(run, worst, "vi", "w2"))
    return [decide(ACROSS, aligned[worst], near_zero_rule(_barrier(run, worst, "vi", "naive")),
                   f"W2-aligned VI barrier per variant: {listing} (worst: {worst})", low=low, high=high,
                   interval=scheme, preconditions=[vi_learned(run, v) for v in swept],
                   baselines=_vi_baselines(run, worst, aligned[worst], low, high, ratio=False))]


def _resnet_claim(dataset: str, absolute: bool = False, remains: bool = False) -> Callable[[Run], list[Verdict]]:
    """ResNet20 VI barriers after W2 alignment: on CIFAR-10 mostly removed (ratio to naive near 0) and near zero
    (absolute); on CIFAR-100 a barrier remains (ratio above the near-zero tolerance), while alignment still lowers
    it (the identity permutation, ratio 1, must lie above the interval: a no-op matcher cannot reproduce it)."""
    def judge(run: Run) -> list[Verdict]:
        if run.architecture != "resnet20" or run.dataset != dataset:
            return _untestable(run, f"needs model.architecture resnet20 on data.dataset {dataset} (this run: "
                                    f"{run.architecture} on {run.dataset}); the CIFAR files must be under the data root "
                                    f"(experiments/rossi-resnet20-{dataset}.yaml)")
        out = []
        for v in run.variants:
            pairs = _pair_barriers(run, v, "vi", "w2")
            naive = _barrier(run, v, "vi", "naive")
            if pairs.empty or not naive > 0:
                out.append(Verdict(v, math.nan, NOT_TESTABLE, "no W2-aligned and positive naive VI barrier"))
                continue
            aligned = float(pairs.mean())
            text = f"naive {_fmt(naive)} -> W2 {_fmt(aligned)}"
            checks = [vi_learned(run, v)]
            if absolute:
                low, high, scheme = _pairs_interval(pairs)
                out.append(decide(v, aligned, near_zero_rule(naive), text, low=low, high=high, interval=scheme,
                                  preconditions=checks, baselines=_vi_baselines(run, v, aligned, low, high, False)))
                continue
            ratio = aligned / naive
            low, high, scheme = _ratio_interval(run, v, "vi", "w2")
            if remains:
                rule = Rule(EFFECT_SHARE, AT_LEAST, 0.0, "a ratio above the near-zero tolerance (10% of the naive "
                                                         "barrier)")
                identity = Baseline("the identity permutation (ratio 1: alignment lowered nothing)", 1.0,
                                    ratio >= 1.0 if math.isnan(high) else high >= 1.0)
                out.append(decide(v, ratio, rule, text, low=low, high=high, interval=scheme, preconditions=checks,
                                  baselines=[identity]))
            else:
                rule = Rule(0.0, AT_MOST, 1.0, "aligned / naive of 0; the effect: the identity permutation's 1")
                out.append(decide(v, ratio, rule, text, low=low, high=high, interval=scheme, preconditions=checks,
                                  baselines=_vi_baselines(run, v, ratio, low, high, True)))
        return out
    return judge


def within_chain_valid(run: Run, variant: str) -> Check:
    """The within-chain control holds only where a chain stays in one mode: its two halves must be closer
    to each other (unaligned) than two different chains are (unaligned)."""
    rule = "the halves of one chain closer (L2, unaligned) than two different chains"
    halves = _pair_barriers(run, variant, "hmc", WITHIN_CHAIN, "distance")
    chains = _pair_barriers(run, variant, "hmc", "naive", "distance")
    if halves.empty or chains.empty:
        return Check("within-chain control valid", math.nan, rule, None)
    ratio = float(halves.mean() / chains.mean())
    return Check("within-chain control valid: halves' distance / chains' distance", ratio, rule, bool(ratio < 1.0),
                 f"{_fmt(float(halves.mean()))} / {_fmt(float(chains.mean()))}")


WITHIN_CHAIN, WITHIN_CHAIN_ALIGNED = "within-chain", "within-chain weight"


def _hmc_floor(run: Run) -> list[Verdict]:
    """Aligned HMC chains share one basin: their barrier exceeds that of the halves of one chain, aligned the
    same way, by no more than the tolerance (0 excess, the effect: naive minus the floor)."""
    if not run.has_method("hmc") or run.table("barriers") is None:
        return _untestable(run, "needs method hmc with at least two chains (barriers)")
    out = []
    for v in run.variants:
        aligned = _pair_barriers(run, v, "hmc", "weight")
        floor = _pair_barriers(run, v, "hmc", WITHIN_CHAIN_ALIGNED)
        naive = _barrier(run, v, "hmc", "naive")
        if aligned.empty or floor.empty:
            out.append(Verdict(v, math.nan, NOT_TESTABLE, f"needs HMC's weight-aligned and {WITHIN_CHAIN_ALIGNED!r} "
                                                          "barrier rows"))
            continue
        excess = float(aligned.mean() - floor.mean())
        # chains resampled once per replicate: the floor's halves and the aligned pairs come from the same chains
        low, high, scheme = _seed_interval([aligned, floor], lambda m: m[0] - m[1])
        rule = Rule(0.0, AT_MOST, naive - float(floor.mean()), "no excess over the floor; the effect: the naive "
                                                                 "barrier's excess over it")
        identity = Baseline("the identity permutation's excess over the floor", naive - float(floor.mean()),
                            reaches(naive - float(floor.mean()), excess, low, high, AT_MOST))
        text = (f"naive {_fmt(naive)} -> weight-aligned {_fmt(float(aligned.mean()))}; halves of one chain aligned "
                f"the same way {_fmt(float(floor.mean()))} (unaligned {_fmt(_barrier(run, v, 'hmc', WITHIN_CHAIN))})")
        out.append(decide(v, excess, rule, text, low=low, high=high, interval=scheme,
                          preconditions=[converged(run, v), within_chain_valid(run, v)], baselines=[identity],
                          control="the barrier between the aligned halves of one chain", control_value=float(floor.mean())))
    return out


JOINT_CANDIDATES = (("ensemble", "weight"), ("vi", "w2"))  # whose joint alignment judges the one-basin claim


def _one_basin(run: Run) -> list[Verdict]:
    """All seeds in one basin: one labelling of every seed (the joint alignment) connects every pair with a
    barrier near zero. The baseline: the identity permutation's worst pair; the control: the same pairs each
    aligned on its own."""
    out = []
    for v in run.variants:
        found = next(((m, k, rows) for m, k in JOINT_CANDIDATES
                      if len(rows := _pair_barriers(run, v, m, f"joint_{k}"))), None)
        if found is None:
            out.append(Verdict(v, math.nan, NOT_TESTABLE, "no joint alignment (needs alignment.joint and 3 seeds or "
                                                          "more of the ensemble, or of VI with w2)"))
            continue
        method, kind, joint = found
        pairwise = _pair_barriers(run, v, method, kind)
        naive = _pair_barriers(run, v, method, "naive")
        worst = float(joint.max())
        low = high = math.nan  # a bootstrap never exceeds the observed worst pair: no interval for a maximum
        table = run.table("joint_alignment", v)
        cycle = ""
        if table is not None:
            row = table[(table["method"] == method) & (table["alignment"] == kind)]
            if len(row):
                cycle = (f"; the pairwise permutations leave {_fmt(float(row['pairwise_cycle_not_per_100_mean'].iloc[0]))}"
                         " transpositions per 100 units around a triple of seeds")
        text = (f"{method} ({kind}), {len(joint)} pairs: worst jointly aligned barrier {_fmt(worst)}, worst pairwise "
                f"{_fmt(float(pairwise.max()) if len(pairwise) else math.nan)}{cycle}")
        naive_worst = float(naive.max()) if len(naive) else math.nan
        baselines = [Baseline("the identity permutation's worst barrier", naive_worst,
                              reaches(naive_worst, worst, low, high, AT_MOST))]
        out.append(decide(v, worst, near_zero_rule(naive_worst), text, interval=f"the worst of {len(joint)} pairs: "
                          "no interval", baselines=baselines, preconditions=[vi_learned(run, v)] if method == "vi" else [],
                          control=f"worst barrier of the same {method} pairs each aligned on its own ({kind})",
                          control_value=float(pairwise.max()) if len(pairwise) else math.nan))
    return out


# ---------------------------------------------------------------- weight-space studies (Xiao et al.)

def _expected_random_not(n: float) -> float:
    """NoT of a uniformly random permutation of n items: n - H_n."""
    return n - sum(1.0 / i for i in range(1, int(n) + 1))


def _not_claim(run: Run) -> list[Verdict]:
    """Found = planted: the mean |found - planted| NoT over the planted runs (k > 0), 0 within the tolerance, the
    effect being the mean planted NoT. Baselines: the identity permutation (finding none) and a uniformly random
    permutation's NoT, each as far from the planted."""
    out = []
    for v in run.variants:
        t = run.table("not_k", v)
        if t is None:
            out.append(Verdict(v, math.nan, NOT_TESTABLE, "no NoT study (needs the ensemble and not_study.ks)"))
            continue
        t = t.assign(excess=t["not_found"] - t["not_planted"])
        planted, zero = t[t["k"] > 0], t[t["k"] == 0]
        if planted.empty:
            out.append(Verdict(v, math.nan, NOT_TESTABLE, "not_study.ks plants no transposition (all k = 0)"))
            continue
        units = float(t["units_total"].iloc[0])
        off = planted["excess"].abs()  # found above or below the planted: both miss it
        distance = float(off.mean())
        low, high = bootstrap.mean_interval(off.to_numpy(), seed=SEED)
        floor = float(zero["excess"].mean()) if len(zero) else math.nan
        by_k = ", ".join(f"k={k}: {g['excess'].mean():+.1f}" for k, g in t.groupby("k"))
        setting = (f"setting {t['setting'].iloc[0]}, {t['matching'].iloc[0]} matching, " if "setting" in t else "")
        text = (f"excess NoT per k {by_k} of {units:g} units ({setting}minibatch order "
                f"{t['data_order'].iloc[0] if 'data_order' in t else '?'})")
        if "not_found_live" in t and t["not_found_live"].notna().all():
            live = float((planted["not_found_live"] - planted["not_planted_live"]).mean())
            text += f"; over the {float(t['units_live'].mean()):.0f} units that matter the excess is {live:+.1f}"
        if not math.isnan(floor):
            text += (f"; with nothing planted (k = 0) {floor:+.1f}: an excess at k = 0 is a floor of the training "
                     "setting (minibatch order, optimiser, prior), not of the planted permutation")
        planted_mean = float(planted["not_planted"].mean())
        rule = Rule(0.0, AT_MOST, planted_mean, f"found = planted; the effect: the mean planted NoT {_fmt(planted_mean)}")
        random_off = float(np.mean([abs(_expected_random_not(units) - k) for k in planted["not_planted"]]))
        baselines = [Baseline("the identity permutation's distance from the planted NoT (finding none)", planted_mean,
                              reaches(planted_mean, distance, low, high, AT_MOST)),
                     Baseline("a random permutation's distance from the planted NoT", random_off,
                              reaches(random_off, distance, low, high, AT_MOST))]
        out.append(decide(v, distance, rule, text, low=low, high=high,
                          interval=(f"bootstrap over {len(planted)} planted runs" if not math.isnan(low) else
                                    "fewer than 3 planted runs: no interval"), baselines=baselines,
                          control="NoT found with nothing planted (k = 0): the floor of this setting",
                          control_value=floor))
    return out


def _not_trend_claim(column: str, what: str) -> Callable[[Run], list[Verdict]]:
    """Xiao et al.'s Figure 3: ``column`` (unaligned, between the planted and the unplanted network) grows with the
    planted NoT: Spearman's rho over the study's runs, 1 for a monotone rise (the effect: 1 above no trend)."""
    rule = Rule(1.0, AT_LEAST, 1.0, "a monotone rise (Spearman 1); the effect: its distance from no trend (0)")

    def judge(run: Run) -> list[Verdict]:
        out = []
        for v in run.variants:
            t = run.table("not_k", v)
            if t is None or column not in t:
                out.append(Verdict(v, math.nan, NOT_TESTABLE, f"no NoT study with {column} (needs the ensemble and "
                                                              "not_study.ks)"))
                continue
            if t["not_planted"].nunique() < 3:
                out.append(Verdict(v, math.nan, NOT_TESTABLE, "fewer than 3 distinct planted NoT in not_study.ks"))
                continue

            def rho(f):
                return f["not_planted"].corr(f[column], method="spearman")
            measured = float(rho(t))
            low, high = bootstrap.statistic_interval(t[["not_planted", column]], rho, seed=SEED)
            by_k = ", ".join(f"k={k}: {_fmt(float(g[column].mean()))}" for k, g in t.groupby("k"))
            out.append(decide(v, measured, rule, f"{what} by planted k {by_k}", low=low, high=high,
                              interval=f"bootstrap over the study's {len(t)} runs",
                              baselines=[Baseline("no trend (Spearman 0)", 0.0,
                                                  reaches(0.0, measured, low, high, AT_LEAST))]))
        return out
    return judge


def _pruning_claim(run: Run) -> list[Verdict]:
    """Pruning the merged posterior by sigma keeps its accuracy: the points lost at the smallest fraction >= 0.5,
    0 within the tolerance (the project's PRUNE_DROP, the paper states no number). Baseline: the same mean pruned
    by magnitude; where it loses no more, sigma is no better a guide than |mu|."""
    rule = Rule(0.0, AT_MOST, PRUNE_DROP / EFFECT_SHARE, f"no loss; the tolerance: {PRUNE_DROP:g} point plus the "
                                                         "interval (the paper states no number)")
    out = []
    for v in run.variants:
        t = run.table("pruning", v)
        label = next((lab for lab in ([] if t is None else pd.unique(t["label"])) if lab.startswith("merged:")), None)
        if label is None:
            out.append(Verdict(v, math.nan, NOT_TESTABLE, "no merged posterior (needs hmc and the ensemble)"))
            continue
        curve = t[t["label"] == label].set_index("fraction_retained")["test_accuracy"]
        halves = [f for f in curve.index if 0.5 - 1e-9 <= f < 1.0]
        if 1.0 not in curve.index or not halves:
            out.append(Verdict(v, math.nan, NOT_TESTABLE, "pruning.fractions must include 1.0 and one in [0.5, 1)"))
            continue
        f = min(halves)
        drop = 100 * (curve[1.0] - curve[f])
        name = label.removeprefix("merged: ").split(" mean + ", 1)[0]  # the merged mean's method
        mag = t[(t["criterion"] == "|mu|") & (t["label"] == f"{name} mean by magnitude")].set_index(
            "fraction_retained")["test_accuracy"]
        mag_drop = 100 * (mag[1.0] - mag[f]) if 1.0 in mag.index and f in mag.index else math.nan
        row = t[(t["label"] == label) & (t["fraction_retained"] == f)].iloc[0]
        low, high = (float(row["accuracy_drop_low"]), float(row["accuracy_drop_high"])) if "accuracy_drop_low" in t \
            else (math.nan, math.nan)
        text = f"{label}: {100 * curve[1.0]:.2f}% -> {100 * curve[f]:.2f}% keeping {f:g} of the weights"
        text += _prior_dominated(run, v)
        baselines = ([] if math.isnan(mag_drop) else
                     [Baseline(f"magnitude pruning of the same mean to {f:g} loses", mag_drop,
                               reaches(mag_drop, drop, low, high, AT_MOST))])
        out.append(decide(v, drop, rule, text, low=low, high=high,
                          interval=("paired bootstrap over the test points" if not math.isnan(low) else
                                    "no accuracy_drop_low column (pruning table of older code): no interval"),
                          preconditions=[converged(run, v)], baselines=baselines,
                          control=f"accuracy points lost pruning the same mean by magnitude to {f:g}",
                          control_value=mag_drop))
    return out


def _prior_dominated(run: Run, variant: str) -> str:
    """Why sigma may not rank weights: the reference's q_r sigmas sit at the prior's scale."""
    sigma, prior = run.table("sigma", variant), run.config.get("prior", {}).get("std")
    if sigma is None or not prior:
        return ""
    rows = sigma[(sigma["fit"] == "q_r") & (sigma["method"] == "hmc")]
    if rows.empty:
        return ""
    median = float(rows["median_sigma"].iloc[0])
    if median < 0.5 * prior:
        return ""
    return (f" (HMC q_r's median sigma {median:.3g} against the prior's {prior:g}: most weights are prior-dominated, "
            "so their sigmas barely rank them)")


def _variant_prior_std(run: Run, variant: str) -> float | None:
    """The prior's standard deviation in a variant: its swept value, else the run's."""
    return run.variants.get(variant, {}).get("prior.std", run.config.get("prior", {}).get("std"))


# ---------------------------------------------------------------- the preconditions' own rows

def _vi_learned(run: Run) -> list[Verdict]:
    if not run.has_method("vi"):
        return _untestable(run, "needs method vi")
    rule = Rule(SIGMA_SPREAD, AT_LEAST, 0.0, "the project's threshold (DESIGN.md, 'Claims and controls')")
    out = []
    for v in run.variants:
        sigma = run.table("sigma", v)
        rows = None if sigma is None else sigma[sigma["label"] == "VI q"]
        if rows is None or rows.empty or "sigma_q90" not in rows:
            out.append(Verdict(v, math.nan, NOT_TESTABLE, "no sigma table with VI's percentiles (sigma_<variant>.csv)"))
            continue
        r = rows.iloc[0]
        spread = vi_learned(run, v).value
        if math.isnan(spread):
            out.append(Verdict(v, math.nan, NOT_TESTABLE, f"VI's sigma percentiles are not positive (q10 "
                                                          f"{_fmt(r['sigma_q10'])}, q90 {_fmt(r['sigma_q90'])})"))
            continue
        init, share = float(r.get("sigma_init", math.nan)), float(r.get("kl_share", math.nan))
        error = float(r.get("test_error", math.nan))
        text = (f"sigma 10th / 50th / 90th percentile {_fmt(r['sigma_q10'])} / {_fmt(r['median_sigma'])} / "
                f"{_fmt(r['sigma_q90'])} (from sigma_init {_fmt(init)}); KL share of the objective {_fmt(share)}"
                + ("" if math.isnan(error) else f"; test error {_fmt(error)}"))
        prior = _variant_prior_std(run, v)
        if spread < SIGMA_SPREAD:
            if prior and float(r["sigma_q10"]) >= 0.5 * prior:
                text += (f": nearly every sigma sits at the prior's scale ({prior:g}), so q is close to the prior "
                         "(a colder posterior, vi.temperature < 1, or a narrower prior)")
            else:
                text += (": the sigmas moved together, not each by what the data say of its weight, so this VI is "
                         "close to a point estimate (train longer, or with a larger sigma_init or learning rate)")
        out.append(decide(v, spread, rule, text, interval="one value: no interval", control="sigma_init",
                          control_value=init))
    return out


def _hmc_converged(run: Run) -> list[Verdict]:
    out = []
    for v in run.variants:
        d = run.table("chain_diagnostics", v)
        if d is None or "rhat_share_1.01" not in d:
            out.append(Verdict(v, math.nan, NOT_TESTABLE, "no per-point convergence in chain diagnostics (needs hmc "
                                                          "with 2+ chains of 4+ draws)"))
            continue
        r = d.iloc[0]
        text = (f"{int(r['points'])} test points, {int(r['points_constant'])} with p(y|x) constant over every draw "
                f"(counted as converged); rank R-hat <= {RHAT_STRICT:g}: {_fmt(float(r['rhat_share_1.01']))}, <= "
                f"{RHAT_ALL:g}: {_fmt(float(r['rhat_share_1.1']))}, median {_fmt(float(r['rhat_median']))}, max "
                f"{_fmt(float(r['rhat_max']))}; bulk ESS min / median {_fmt(float(r['ess_bulk_min']))} / "
                f"{_fmt(float(r['ess_bulk_median']))}; chainwise split R-hat max "
                f"{_fmt(float(r.get('chainwise_rhat_max', math.nan)))} (share <= {RHAT_ALL:g}: "
                f"{_fmt(float(r.get('chainwise_rhat_share_1.1', math.nan)))})")
        nested = float(r.get("nested_rhat", math.nan))
        text += (f"; nested R-hat max {_fmt(nested)}" if not math.isnan(nested) else
                 "; nested R-hat: no two chains share a start")
        strict, loose = float(r["rhat_share_1.01"]), float(r["rhat_share_1.1"])
        met = strict >= STRICT_SHARE and loose >= 1.0
        text += (f"; {_fmt(strict)} of the test points at <= {RHAT_STRICT:g} (needs {STRICT_SHARE:g}) and "
                 f"{_fmt(loose)} at <= {RHAT_ALL:g} (needs 1): " + ("met" if met else "not met"))
        out.append(Verdict(v, strict, REPRODUCED if met else NOT_REPRODUCED, text, paper_number=STRICT_SHARE,
                           tolerance=0.0, interval="a diagnostic: no interval"))
    return out


# ---------------------------------------------------------------- the declarations

XIAO = "Xiao et al. (2023)"
ROSSI = "Rossi et al. (NeurIPS 2023)"
TOLERANCE = "within the 95% half-width + 10% of the effect"


def _lift_number(label: str) -> float:
    return gap_closed(XIAO_TABLE1["agreement"][f"{label} q_d"], XIAO_TABLE1["agreement"][f"{label} q_r"])


def _mean_gain(label: str) -> float:
    return XIAO_TABLE1["mean accuracy"][f"{label} q_r"] - XIAO_TABLE1["accuracy"][f"{label} q_r"]


def _gap_words(label: str) -> str:
    a = XIAO_TABLE1["agreement"]
    return f"agreement {a[label + ' q_d']} -> {a[label + ' q_r']} (closes {_fmt(gap_closed(a[label + ' q_d'], a[label + ' q_r']))})"


CLAIMS = (
    Claim("hmc-converged", "Vehtari et al. (2021); Sommer et al. (2024)", "convention (precondition of every HMC claim)",
          "The HMC reference chains have converged", f"{STRICT_SHARE:.0%} of points at R-hat <= {RHAT_STRICT:g}, all at "
          f"<= {RHAT_ALL:g}", STRICT_SHARE, "rhat_share_1.01 of chain_diagnostics_<variant>.csv (rank R-hat of p(y|x) per test point)",
          f">= {STRICT_SHARE:g}, and rhat_share_1.1 = 1", _hmc_converged, precondition=True),
    Claim("xiao-hmc-rebasin", XIAO, "Table 1", "Rebasin lifts HMC's fitted Gaussian: q_r agrees with HMC far more "
          "than q_d", _gap_words("HMC"), _lift_number('HMC'), f"(q_r - q_d) / (1 - q_d) of 'HMC {Q_R}', agreement in table1_<variant>.csv",
          f"at least the paper's share {TOLERANCE}", _lift_claim("hmc", "HMC")),
    Claim("xiao-ens-rebasin", XIAO, "Table 1", "Rebasin lifts the ensemble's fitted Gaussian far above q_d",
          _gap_words("Ens."), _lift_number('Ens.'), f"(q_r - q_d) / (1 - q_d) of 'Ens. {Q_R}'", f"at least the paper's share {TOLERANCE}",
          _lift_claim("ensemble", "Ens.")),
    Claim("xiao-ens-close", XIAO, "Table 1", "Deep-ensemble samples predict close to HMC", "agreement 0.9931", XIAO_TABLE1['agreement']['Ens. samples'],
          "agreement with HMC of 'Ens. samples'", f"at least the paper's agreement {TOLERANCE}, above what accuracies "
          "force", _close_claim("Ens. samples", "Ens. samples")),
    Claim("xiao-vi-close", XIAO, "Table 1", "Mean-field VI predicts close to HMC", "agreement 0.9885", XIAO_TABLE1['agreement']['VI q'],
          "agreement with HMC of 'VI q'", f"at least the paper's agreement {TOLERANCE}, above what accuracies force",
          _close_claim("VI q", "VI q")),
    Claim("xiao-ens-tv", XIAO, "Table 1", "Deep-ensemble samples are close to HMC's predictive in total variation",
          "TV 0.0229", XIAO_TABLE1['TV']['Ens. samples'], "TV to HMC of 'Ens. samples' (1/2 sum |p - q|)", f"at most the paper's TV {TOLERANCE}",
          _tv_claim("Ens. samples", "Ens. samples")),
    Claim("xiao-vi-tv", XIAO, "Table 1", "Mean-field VI is close to HMC's predictive in total variation", "TV 0.0235", XIAO_TABLE1['TV']['VI q'],
          "TV to HMC of 'VI q' (1/2 sum |p - q|)", f"at most the paper's TV {TOLERANCE}", _tv_claim("VI q", "VI q")),
    Claim("xiao-hmc-mean-network", XIAO, "Table 1", "HMC's rebased mean network mu_r is more accurate than q_r's samples",
          "92.25% against 82.34%", _mean_gain('HMC'), f"accuracy of mu_r minus q_r's samples, 'HMC {Q_R}'",
          f"at least the paper's gain {TOLERANCE}", _mean_network_claim("HMC", strict_gain=True)),
    Claim("xiao-ens-mean-network", XIAO, "Table 1", "The ensemble's rebased mean network mu_r is as accurate as q_r's "
          "samples or more", "97.97% against 97.72%", _mean_gain('Ens.'), f"accuracy of mu_r minus q_r's samples, 'Ens. {Q_R}'",
          f"at least the paper's gain {TOLERANCE}", _mean_network_claim("Ens.", strict_gain=False)),
    Claim("xiao-sigma-narrower", XIAO, "Figure 5 (left)", "Rebasin narrows HMC's sigmas: sigma_r below sigma_d",
          "sigma_r < sigma_d", 1.0, f"median sigma of 'HMC {Q_R}' / of 'HMC q_d' (sigma_<variant>.csv)", "below 1",
          _sigma_narrower),
    Claim("xiao-hmc-one-basin", XIAO, "premise of rebasin (Sec. 3)",
          "Aligned, HMC chains share one basin: their barrier falls to that between the aligned halves of one chain",
          "excess 0", 0.0, "mean hmc 'weight' barrier minus mean 'within-chain weight' barrier (barriers.csv)",
          f"at most 0 {TOLERANCE}", _hmc_floor),
    Claim("one-basin", "Ainsworth et al. (2023), after Entezari et al. (2022)",
          "single-basin conjecture (premise of merging, and of rebasing ensembles)",
          "Jointly aligned, all seeds lie in one basin: one labelling connects every pair", "barrier 0", 0.0,
          "largest loss barrier of the 'joint_weight' ensemble rows (else 'joint_w2' VI rows) of barriers.csv",
          f"at most 0 {TOLERANCE}", _one_basin),
    Claim("xiao-not-training", XIAO, "Figure 3", "The NoT found after training equals the NoT planted at "
          "initialisation", "found = planted", 0.0, "|not_found - not_planted| of not_k_<variant>.csv (k > 0), mean",
          f"at most 0 {TOLERANCE}", _not_claim),
    Claim("xiao-not-distance", XIAO, "Figure 3", "The weight distance between the planted and the unplanted network "
          "grows with the planted NoT", "monotone rise", 1.0, "Spearman rho of l2_naive and not_planted (not_k_<variant>.csv)",
          f"at least 1 {TOLERANCE}", _not_trend_claim("l2_naive", "L2 distance")),
    Claim("xiao-not-barrier", XIAO, "Figure 3", "The loss barrier between the planted and the unplanted network grows "
          "with the planted NoT", "monotone rise", 1.0,
          "Spearman rho of loss_barrier_naive and not_planted (not_k_<variant>.csv)", f"at least 1 {TOLERANCE}",
          _not_trend_claim("loss_barrier_naive", "loss barrier")),
    Claim("xiao-pruning", XIAO, "pruning study", "Keeping only the low-sigma weights of the merged posterior keeps "
          "its accuracy", "no loss", 0.0, "accuracy points lost by the merged mean at the smallest fraction >= 0.5 "
          "(pruning_<variant>.csv)", f"at most {PRUNE_DROP:g} point + the interval's half-width, and less than "
          "magnitude pruning loses", _pruning_claim),
    Claim("vi-learned", "DESIGN.md, after Rossi et al.", "precondition of every VI claim",
          "VI learned a posterior: its sigmas spread by what the data say of each weight", f"q90 / q10 >= {SIGMA_SPREAD:g}", SIGMA_SPREAD,
          "sigma_q90 / sigma_q10 of 'VI q' in sigma_<variant>.csv", f">= {SIGMA_SPREAD}", _vi_learned,
          precondition=True),
    Claim("rossi-vi-near-zero", ROSSI, "MLP experiments", "W2 alignment brings MLP VI barriers near zero", "barrier ~0", 0.0,
          "loss barrier of vi 'w2' rows of barriers.csv, mean over pairs",
          f"at most 0 {TOLERANCE} (the effect: the naive barrier), below means-only matching", _vi_near_zero),
    Claim("rossi-vi-most", ROSSI, "MLP experiments", "Barriers are clearly positive before alignment and mostly "
          "gone after it", "ratio ~0", 0.0, "vi 'w2' / 'naive' loss barrier", f"at most 0 {TOLERANCE} (the effect: 1)",
          _alignment_removes_most),
    Claim("rossi-width", ROSSI, "width experiments", "The aligned MLP barrier falls as the width grows", "a fall", 0.0,
          "vi 'w2' loss barrier at the widest minus at the narrowest swept width", "below 0 beyond the interval",
          _width_claim("mlp", "w2", ("model.hidden",))),
    Claim("rossi-naive-width", ROSSI, "width experiments", "The naive (unaligned) MLP barrier falls as the width grows",
          "a fall", 0.0, "vi 'naive' loss barrier at the widest minus at the narrowest swept width",
          "below 0 beyond the interval", _width_claim("mlp", "naive", ("model.hidden",))),
    Claim("rossi-priors", ROSSI, "prior and temperature experiments", "Alignment brings barriers near zero across "
          "priors and temperatures", "barrier ~0", 0.0, "largest vi 'w2' loss barrier over the swept prior.std / vi.temperature",
          f"at most 0 {TOLERANCE}", _priors_claim),
    Claim("rossi-resnet-cifar10", ROSSI, "ResNet20 experiments", "On CIFAR-10, W2 alignment removes most of the "
          "ResNet20 VI barrier", "ratio ~0", 0.0, "vi 'w2' / 'naive' loss barrier", f"at most 0 {TOLERANCE} (the effect: 1)",
          _resnet_claim("cifar10")),
    Claim("rossi-resnet-cifar10-near-zero", ROSSI, "ResNet20 experiments", "On CIFAR-10, the aligned ResNet20 VI "
          "barrier is nearly zero", "barrier ~0", 0.0, "vi 'w2' loss barrier, mean over pairs",
          f"at most 0 {TOLERANCE} (the effect: the naive barrier)", _resnet_claim("cifar10", absolute=True)),
    Claim("rossi-resnet-cifar100", ROSSI, "ResNet20 experiments", "On CIFAR-100, a ResNet20 VI barrier remains "
          "after alignment, which still lowers it", "ratio > 0", EFFECT_SHARE, "vi 'w2' / 'naive' loss barrier",
          f"at least {EFFECT_SHARE:g} beyond the interval, below 1", _resnet_claim("cifar100", remains=True)),
    Claim("rossi-resnet-width", ROSSI, "ResNet20 experiments", "The aligned ResNet20 barrier falls as the width "
          "multiplier grows", "a fall", 0.0, "vi 'w2' loss barrier at the widest minus at the narrowest model.width",
          "below 0 beyond the interval", _width_claim("resnet20", "w2", ("model.width",))),
)


def _precondition_text(checks: list[Check]) -> str:
    return "; ".join(c.text() for c in checks)


def judge(run: Run) -> pd.DataFrame:
    """One row per claim and variant: the declaration, the measured value and its interval, the paper's number
    and the tolerance, the verdict, its preconditions, baselines and control."""
    rows = []
    for c in CLAIMS:
        for v in c.judge(run):
            if v.verdict not in VERDICTS:
                raise ValueError(f"claim {c.key}: verdict {v.verdict!r} is not one of {VERDICTS}")
            if not (math.isnan(v.paper_number) or math.isclose(v.paper_number, c.number)):
                raise ValueError(f"claim {c.key}: judged against {v.paper_number}, declared {c.number}")
            rows.append({"claim": c.key, "kind": "precondition" if c.precondition else "claim", "paper": c.paper, "place": c.place, "statement": c.statement,
                         "paper_value": c.paper_value, "paper_number": c.number, "quantity": c.quantity,
                         "rule": c.rule, "variant": v.variant, "measured": v.measured, "low": v.low, "high": v.high,
                         "interval": v.interval, "tolerance": v.tolerance, "verdict": v.verdict, "reason": v.reason,
                         "preconditions": _precondition_text(v.preconditions),
                         "baselines": "; ".join(f"{b.name} {_fmt(b.value)}" + (" (reaches)" if b.reaches else "")
                                                for b in v.baselines),
                         "control": v.control, "control_value": v.control_value})
    return pd.DataFrame(rows)


def _collapsed(table: pd.DataFrame) -> list:
    """The rows a reader needs: a claim untestable for one reason in every variant of a sweep is one
    row ("every variant"), not one per variant; every other verdict keeps its own row."""
    variants = len(set(table["variant"]) - {ACROSS})
    untestable = table[(table["verdict"] == NOT_TESTABLE) & (table["variant"] != ACROSS)]
    everywhere = {key for key, g in untestable.groupby(["claim", "reason"]) if variants > 1 and len(g) == variants}
    rows, seen = [], set()
    for r in table.itertuples():
        key = (r.claim, r.reason)
        if r.verdict == NOT_TESTABLE and key in everywhere:
            if key in seen:
                continue
            seen.add(key)
            r = r._replace(variant="every variant")
        rows.append(r)
    return rows


def shown_verdict(kind: str, verdict: str) -> str:
    """A precondition's row reads met / not met: it is no claim of a paper to reproduce."""
    if kind == "precondition":
        return {REPRODUCED: "met", NOT_REPRODUCED: "not met"}.get(verdict, verdict)
    return verdict


def counts(table: pd.DataFrame) -> str:
    """The stamp's summary: the papers' claims by verdict, then the preconditions."""
    claims, pre = table[table["kind"] == "claim"], table[table["kind"] == "precondition"]
    n = claims["verdict"].value_counts()
    text = "Claims: " + ", ".join(f"{n.get(v, 0)} {v}" for v in VERDICTS) + "."
    if len(pre):  # one entry per precondition, its variants counted by verdict
        text += " Preconditions: " + ", ".join(
            f"{key} " + ", ".join(f"{n} {shown_verdict('precondition', v)}" if len(g) > 1 else
                                  shown_verdict("precondition", v) for v, n in g["verdict"].value_counts().items())
            for key, g in pre.groupby("claim", sort=False)) + "."
    return text


def measured_cell(measured: float, low: float, high: float) -> str:
    """A measured value with its 95% interval, as the tables print it."""
    if math.isnan(measured):
        return "-"
    if math.isnan(low) or math.isnan(high):
        return _fmt(measured)
    return f"{_fmt(measured)} [{_fmt(low)}, {_fmt(high)}]"


def markdown(table: pd.DataFrame, *, title: str, stamp: str) -> str:
    """The claims table as a reader meets it: one line per claim and variant, then the reasons, preconditions
    and baselines."""
    rows = _collapsed(table)
    lines = [f"# {title}", "", stamp, "",
             "| claim | paper, place | paper | variant | measured [95% interval] | rule | verdict |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.statement} | {r.paper}, {r.place} | {r.paper_value or '-'} | {r.variant} | "
                     f"{measured_cell(r.measured, r.low, r.high)} | {r.rule} | **{shown_verdict(r.kind, r.verdict)}** |")
    lines += ["", "## Why: interval, preconditions, baselines and control behind each verdict", ""]
    for r in rows:
        parts = [f"- **{r.claim}** ({r.variant}, {shown_verdict(r.kind, r.verdict)}): {r.reason}."]
        if r.interval:
            parts.append(f"Interval: {r.interval}.")
        if not math.isnan(r.tolerance):
            parts.append(f"Paper's number {_fmt(r.paper_number)}, tolerance {_fmt(r.tolerance)}.")
        if r.preconditions:
            parts.append(f"Preconditions: {r.preconditions}.")
        if r.baselines:
            parts.append(f"Baselines: {r.baselines}.")
        if r.control:
            parts.append(f"Control: {r.control} = {_fmt(r.control_value)}.")
        lines.append(" ".join(parts))
    return "\n".join(lines) + "\n"
