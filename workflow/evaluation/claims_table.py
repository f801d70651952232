"""The claims of both papers as data, judged against one run's summary tables.

Every claim declares where the paper makes it, the paper's number where there is one, the
quantity it compares (read from the run's summary tables only), the rule that decides
"reproduced", and the control it is judged against: a measurement of the same kind where the
answer is known (DESIGN.md, "Claims and controls"). ``judge`` returns one verdict per claim and
variant: reproduced, not reproduced (with a diagnosis from the control's number) or not testable
by this config (with what is missing). The thresholds of the rules are part of the declarations,
so the table states them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

REPRODUCED, NOT_REPRODUCED, NOT_TESTABLE = "reproduced", "not reproduced", "not testable"
ACROSS = "all"  # the variant of a claim judged across the variants of a sweep (width, priors)
VERDICTS = (REPRODUCED, NOT_REPRODUCED, NOT_TESTABLE)

# thresholds of the rules (their words are in each claim's ``rule``)
GAP_CLOSED = 0.5  # rebasin closes at least this share of q_d's gap to HMC, (q_r - q_d) / (1 - q_d): "far above"
CLOSE = 0.95  # agreement with HMC of a predictive "close to HMC" (the paper: 0.99)
NEAR_ZERO = 0.05  # nats: a loss barrier "near zero"
MOST = 0.25  # alignment "removes most of" a barrier: aligned <= this fraction of naive
NOT_EXCESS = 0.02  # NoT found beyond the planted, as a share of the units: "equal"
PRUNE_DROP = 1.0  # accuracy points a pruned network may lose and still "keep its accuracy"
FLOOR_SLACK = 1.25  # aligned barrier within this factor (plus 0.01 nats) of the within-chain floor
RHAT = 1.01  # rank-normalised R-hat of a converged chain (Vehtari et al., 2021)
SIGMA_SPREAD = 2.0  # 90th / 10th percentile of VI's sigmas: sigmas learned per weight, not moved as one
UNITS_MOVED = 0.5  # median unit correlation with the chain's start below which the chain has moved its units


@dataclass
class Verdict:
    variant: str
    measured: float
    verdict: str
    reason: str
    control: str = ""
    control_value: float = math.nan


@dataclass(frozen=True)
class Claim:
    key: str
    paper: str
    place: str
    statement: str
    paper_value: str
    quantity: str
    rule: str
    judge: Callable[["Run"], list[Verdict]]


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


def _untestable(run: Run, reason: str) -> list[Verdict]:
    return [Verdict(v, math.nan, NOT_TESTABLE, reason) for v in run.variants]


def _fmt(x: float) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


# ---------------------------------------------------------------- Table 1 (Xiao et al.)

PAPER_MATCHING, PAPER_REFERENCE = "activation", "first"  # Xiao et al.'s rebasin


def _agreement(t1: pd.DataFrame, column: str) -> float:
    rows = t1[(t1["metric"] == "agreement with HMC") & (t1["column"] == column)]
    return float(rows["value"].iloc[0]) if len(rows) else math.nan


def _q_r_columns(t1: pd.DataFrame, label: str) -> dict[str, float]:
    cols = [c for c in pd.unique(t1["column"]) if c.startswith(f"{label} q_r (")]
    return {c: _agreement(t1, c) for c in cols}


def _reference_chain_control(run: Run, variant: str, method: str) -> tuple[str, float, str]:
    """The rebasin control: the share of the reference chain's own draws that matching permuted, and
    how far into the chain that starts, against the other chains' draws."""
    draws = run.table("rebasin_draws", variant)
    if draws is None:
        return "", math.nan, ""
    rows = draws[(draws["method"] == method) & (draws["matching"] == PAPER_MATCHING)
                 & (draws["reference"] == PAPER_REFERENCE)].set_index("draws_of")
    if "reference chain" not in rows.index:
        return "", math.nan, ""
    own = rows.loc["reference chain"]
    moved = 1.0 - float(own["unpermuted_share"])
    control = "share of the reference chain's own draws that matching permuted (one mode: ideally 0)"
    if int(own["draws"]) < 2:
        return control, moved, ""
    text = f"matching permuted {moved:.0%} of the reference chain's {int(own['draws'])} draws"
    if moved == 0:
        return control, moved, text
    lag = float(own.get("first_permuted_lag", math.nan))
    corr = float(own.get("unit_corr_at_first_permuted", math.nan))
    others = float(rows.loc["other chains", "not_to_reference_mean"]) if "other chains" in rows.index else math.nan
    text += (f" (mean NoT {float(own['not_to_reference_mean']):.1f} of {int(own['units'])} units; other chains' draws "
             f"{others:.1f}); the first permuted draw comes {lag:g} draws into the chain, when its units' weights "
             f"still correlate {corr:.2f} with the chain's start (no matching involved)")
    if corr < UNITS_MOVED:
        text += (": the chain had already moved its units, so it travels across unit labellings and one chain is not "
                 "one mode at the unit level. The posterior is that broad here: the science of this setting (prior, "
                 "data size), not a defect of matching")
    elif corr >= UNITS_MOVED:
        text += (": matching permutes draws whose units have not moved, so part of the permuting is noise of this "
                 "matching on single draws, a property of the matching on this net")
    return control, moved, text


def _lift_claim(method: str, label: str) -> Callable[[Run], list[Verdict]]:
    def judge(run: Run) -> list[Verdict]:
        if not run.has_method(method) or not run.has_method("hmc"):
            return _untestable(run, "needs method " + " and ".join(dict.fromkeys([method, "hmc"])))
        out = []
        for v in run.variants:
            t1 = run.table("table1", v)
            column = f"{label} q_r ({PAPER_MATCHING}, {PAPER_REFERENCE} ref.)"
            if t1 is None or column not in set(t1["column"]):
                out.append(Verdict(v, math.nan, NOT_TESTABLE,
                                   f"no Table 1 column {column!r}: rebasin.matchings must include {PAPER_MATCHING} and "
                                   f"rebasin.references {PAPER_REFERENCE} (the paper's rebasin)"))
                continue
            q_d, q_r = _agreement(t1, f"{label} q_d"), _agreement(t1, column)
            closed = (q_r - q_d) / (1.0 - q_d) if q_d < 1 else math.nan
            others = ", ".join(f"{c.split('q_r ')[1]} {_fmt(a)}" for c, a in _q_r_columns(t1, label).items()
                               if c != column)
            control, value, text = _reference_chain_control(run, v, method)
            reason = f"q_d {_fmt(q_d)} -> q_r {_fmt(q_r)}, closing {_fmt(closed)} of the gap to HMC"
            reason += f"; {text}" if text else ""
            reason += f"; other rebasins: {others}" if others else ""
            out.append(Verdict(v, closed, REPRODUCED if closed >= GAP_CLOSED else NOT_REPRODUCED, reason, control,
                               value))
        return out
    return judge


def _close_claim(column: str) -> Callable[[Run], list[Verdict]]:
    def judge(run: Run) -> list[Verdict]:
        out = []
        for v in run.variants:
            t1 = run.table("table1", v)
            if t1 is None or column not in set(t1["column"]):
                out.append(Verdict(v, math.nan, NOT_TESTABLE, f"no Table 1 column {column!r} (needs hmc and the "
                                                              "method in methods)"))
                continue
            a = _agreement(t1, column)
            diag = run.table("chain_diagnostics", v)
            rhat = float(diag["rhat_max"].iloc[0]) if diag is not None and "rhat_max" in diag else math.nan
            control = "rank-normalised R-hat max of the HMC reference (converged: <= 1.01)"
            if a >= CLOSE:
                out.append(Verdict(v, a, REPRODUCED, f"agreement {_fmt(a)}", control, rhat))
            else:
                why = (f"the HMC reference itself has not converged (R-hat max {_fmt(rhat)}), so part of the "
                       "disagreement is the reference's Monte Carlo error" if rhat > RHAT else
                       f"the HMC reference converged (R-hat max {_fmt(rhat)}): the method's predictive differs")
                out.append(Verdict(v, a, NOT_REPRODUCED, f"agreement {_fmt(a)}; {why}", control, rhat))
        return out
    return judge


# ---------------------------------------------------------------- barriers (Rossi et al.; HMC's floor)

def _barrier(run: Run, variant: str, method: str, alignment: str) -> float:
    """The mean loss barrier over the pairs of a method and alignment, NaN where there is none."""
    rows = _pair_barriers(run, variant, method, alignment)
    return float(rows.mean()) if len(rows) else math.nan


def _pair_barriers(run: Run, variant: str, method: str, alignment: str) -> pd.Series:
    """The loss barrier of every pair (indexed by pair) of a method and alignment."""
    b = run.table("barriers")
    if b is None:
        return pd.Series(dtype=float)
    rows = b[(b["variant"] == variant) & (b["method"] == method) & (b["alignment"] == alignment)]
    return rows.set_index("pair")["loss_barrier"]


def _untestable_mlp_vi_claim(run: Run) -> list[Verdict] | None:
    """Why an MLP claim on VI barriers cannot be judged on this run, or None when it can."""
    if run.architecture != "mlp":
        return _untestable(run, f"an MLP claim; this run's architecture is {run.architecture!r}")
    if not run.has_method("vi") or run.table("barriers") is None:
        return _untestable(run, "needs method vi with at least two seeds (barriers)")
    return None


def _vi_near_zero(run: Run) -> list[Verdict]:
    if (untestable := _untestable_mlp_vi_claim(run)) is not None:
        return untestable
    out = []
    for v in run.variants:
        aligned, naive = _barrier(run, v, "vi", "w2"), _barrier(run, v, "vi", "naive")
        ens = _barrier(run, v, "ensemble", "weight")
        control = "the ensemble's weight-matched barrier (point estimates of the same net)"
        if math.isnan(aligned):
            out.append(Verdict(v, math.nan, NOT_TESTABLE, "no W2-aligned VI barrier (alignment.kinds must include w2)"))
        elif aligned <= NEAR_ZERO:
            out.append(Verdict(v, aligned, REPRODUCED, f"naive {_fmt(naive)} -> W2 {_fmt(aligned)}", control, ens))
        else:
            if math.isnan(ens):
                why = "no ensemble barrier to compare with"
            elif ens > NEAR_ZERO:
                why = (f"point estimates of this net keep a barrier after matching too ({_fmt(ens)}): linear mode "
                       "connectivity does not hold at this width and data size (the science of this setting; "
                       "see the width claim), not a defect of the W2 alignment")
            else:
                why = (f"matched point estimates connect ({_fmt(ens)}) but VI does not: VI's sigmas or the "
                       "W2 alignment keep the barrier")
            out.append(Verdict(v, aligned, NOT_REPRODUCED, f"naive {_fmt(naive)} -> W2 {_fmt(aligned)}; {why}",
                               control, ens))
    return out


def _ratio(aligned: float, naive: float) -> float:
    return aligned / naive if naive > 0 else math.nan


def _alignment_removes_most(run: Run) -> list[Verdict]:
    if (untestable := _untestable_mlp_vi_claim(run)) is not None:
        return untestable
    out = []
    for v in run.variants:
        aligned, naive = _barrier(run, v, "vi", "w2"), _barrier(run, v, "vi", "naive")
        ratio = _ratio(aligned, naive)
        ens_ratio = _ratio(_barrier(run, v, "ensemble", "weight"), _barrier(run, v, "ensemble", "naive"))
        control = "the same ratio for the ensemble's weight matching"
        if math.isnan(ratio):
            out.append(Verdict(v, math.nan, NOT_TESTABLE, "no positive naive and W2-aligned VI barrier"))
        elif ratio <= MOST:
            out.append(Verdict(v, ratio, REPRODUCED, f"W2 / naive = {_fmt(aligned)} / {_fmt(naive)}", control,
                               ens_ratio))
        else:
            if math.isnan(ens_ratio):
                why = "no ensemble barrier to compare with"
            elif ens_ratio > MOST:
                why = f"the ensemble's matching keeps {_fmt(ens_ratio)} of its barrier as well: the net, not the " \
                      "Gaussian alignment"
            else:
                why = f"the ensemble's matching removes more ({_fmt(ens_ratio)}): VI's barrier resists alignment"
            out.append(Verdict(v, ratio, NOT_REPRODUCED, f"W2 / naive = {_fmt(aligned)} / {_fmt(naive)}; {why}",
                               control, ens_ratio))
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


def _width_claim(run: Run) -> list[Verdict]:
    swept = _swept(run, ("model.hidden", "model.width"))
    if len({_width(next(iter(o.values()))) for o in swept.values()}) < 2:
        return [Verdict(ACROSS, math.nan, NOT_TESTABLE, "no sweep over model.hidden (or model.width) with two widths "
                        "or more; experiments/rossi-mlp-mnist.yaml sweeps it")]
    if run.table("barriers") is None or not run.has_method("vi"):
        return [Verdict(ACROSS, math.nan, NOT_TESTABLE, "needs method vi with at least two seeds (barriers)")]
    widths = {v: _width(next(iter(o.values()))) for v, o in swept.items()}
    aligned = {v: _barrier(run, v, "vi", "w2") for v in widths}
    naive = {v: _barrier(run, v, "vi", "naive") for v in widths}
    order = sorted(widths, key=widths.get)
    narrow, wide = order[0], order[-1]
    rho = pd.Series([aligned[v] for v in order]).corr(pd.Series([widths[v] for v in order]), method="spearman")
    trend = ", ".join(f"{widths[v]:g}: {_fmt(aligned[v])}" for v in order)
    control = "the naive VI barrier at the widest width minus at the narrowest"
    naive_change = naive[wide] - naive[narrow]
    measured = aligned[wide] - aligned[narrow]
    if measured < 0:
        return [Verdict(ACROSS, measured, REPRODUCED, f"aligned barrier by width {trend} (Spearman {rho:+.2f})",
                        control, naive_change)]
    why = ("the naive barrier grows with width as well: in this setting wider nets are harder to connect at all, "
           "which contradicts Rossi et al.'s claim (a finding of this setting, not of the alignment)"
           if naive_change > 0 else
           "the naive barrier falls with width while the aligned one does not: alignment gains less in wider nets")
    return [Verdict(ACROSS, measured, NOT_REPRODUCED, f"aligned barrier by width {trend} (Spearman {rho:+.2f}); {why}",
                    control, naive_change)]


def _priors_claim(run: Run) -> list[Verdict]:
    if run.architecture != "mlp":  # judged on the MLP's near-zero threshold
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
    ens = _barrier(run, worst, "ensemble", "weight")
    control = "the ensemble's weight-matched barrier in the worst variant"
    verdict = REPRODUCED if aligned[worst] <= NEAR_ZERO else NOT_REPRODUCED
    return [Verdict(ACROSS, aligned[worst], verdict, f"W2-aligned VI barrier per variant: {listing}", control, ens)]


def _resnet_claim(dataset: str, near_zero: bool) -> Callable[[Run], list[Verdict]]:
    def judge(run: Run) -> list[Verdict]:
        if run.architecture != "resnet20" or run.dataset != dataset:
            return _untestable(run, f"needs model.architecture resnet20 on data.dataset {dataset} (this run: "
                                    f"{run.architecture} on {run.dataset}); the CIFAR files must be under the data root "
                                    f"(experiments/rossi-resnet20-{dataset}.yaml)")
        out = []
        for v in run.variants:
            aligned, naive = _barrier(run, v, "vi", "w2"), _barrier(run, v, "vi", "naive")
            sigma = run.table("sigma", v)
            vi_sigma = (float(sigma.loc[sigma["label"] == "VI q", "median_sigma"].iloc[0])
                        if sigma is not None and (sigma["label"] == "VI q").any() else math.nan)
            control = "median sigma of VI q (a VI that stays at its initial sigma tests nothing Bayesian)"
            if math.isnan(aligned):
                out.append(Verdict(v, math.nan, NOT_TESTABLE, "no W2-aligned VI barrier"))
                continue
            holds = aligned <= MOST * naive if near_zero else aligned > MOST * naive
            out.append(Verdict(v, aligned, REPRODUCED if holds else NOT_REPRODUCED,
                               f"naive {_fmt(naive)} -> W2 {_fmt(aligned)}", control, vi_sigma))
        return out
    return judge


def _hmc_floor(run: Run) -> list[Verdict]:
    if not run.has_method("hmc") or run.table("barriers") is None:
        return _untestable(run, "needs method hmc with at least two chains (barriers)")
    out = []
    for v in run.variants:
        aligned, floor = _barrier(run, v, "hmc", "weight"), _barrier(run, v, "hmc", "within-chain")
        naive = _barrier(run, v, "hmc", "naive")
        control = "the barrier between the two halves of one chain (within-chain row of barriers.csv)"
        if math.isnan(aligned) or math.isnan(floor):
            out.append(Verdict(v, aligned, NOT_TESTABLE, "needs HMC's weight-aligned and within-chain barrier rows"))
            continue
        base = f"naive {_fmt(naive)} -> weight-aligned {_fmt(aligned)}; within one chain {_fmt(floor)}"
        if aligned <= FLOOR_SLACK * floor + 0.01:
            out.append(Verdict(v, aligned, REPRODUCED, base + ": alignment reaches the within-mode floor", control,
                               floor))
        else:
            out.append(Verdict(v, aligned, NOT_REPRODUCED, base + ": aligned chains stay above what one mode's draws "
                               "show, so matching leaves them in different basins", control, floor))
    return out


JOINT_CANDIDATES = (("ensemble", "weight"), ("vi", "w2"))  # whose joint alignment judges the one-basin claim


def _one_basin(run: Run) -> list[Verdict]:
    """All seeds in one basin: one labelling of every seed (the joint alignment) connects every pair
    with a barrier near zero. The control is the same pairs each aligned on its own: where those are
    near zero and the joint ones are not, the pairwise permutations disagree with one another."""
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
        worst, worst_pair = float(joint.max()), float(pairwise.max()) if len(pairwise) else math.nan
        control = f"worst barrier of the same {method} pairs each aligned on its own ({kind})"
        table = run.table("joint_alignment", v)
        cycle = ""
        if table is not None:
            row = table[(table["method"] == method) & (table["alignment"] == kind)]
            if len(row):
                cycle = (f"; the pairwise permutations leave {_fmt(float(row['pairwise_cycle_not_per_100_mean'].iloc[0]))}"
                         " transpositions per 100 units around a triple of seeds")
        base = (f"{method} ({kind}), {len(joint)} pairs: worst jointly aligned barrier {_fmt(worst)}, worst pairwise "
                f"{_fmt(worst_pair)}{cycle}")
        if worst <= NEAR_ZERO:
            out.append(Verdict(v, worst, REPRODUCED, base, control, worst_pair))
        elif worst_pair <= NEAR_ZERO:
            out.append(Verdict(v, worst, NOT_REPRODUCED, base + ": every pair is connected when aligned on its own, "
                               "but no one labelling connects them all, so the basins are pairwise, not one",
                               control, worst_pair))
        else:
            out.append(Verdict(v, worst, NOT_REPRODUCED, base + ": pairs stay apart even aligned one by one, so the "
                               "matcher finds no shared basin for these seeds, jointly or not", control, worst_pair))
    return out


# ---------------------------------------------------------------- weight-space studies (Xiao et al.)

def _not_claim(run: Run) -> list[Verdict]:
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
        excess = float(planted["excess"].mean())
        floor = float(zero["excess"].mean()) if len(zero) else math.nan
        control = "NoT found with nothing planted (k = 0): the floor of this setting"
        by_k = ", ".join(f"k={k}: {g['excess'].mean():+.1f}" for k, g in t.groupby("k"))
        setting = (f"setting {t['setting'].iloc[0]}, {t['matching'].iloc[0]} matching, " if "setting" in t else "")
        live = ""
        excess_live = math.nan
        if "not_found_live" in t and t["not_found_live"].notna().all():
            excess_live = float((planted["not_found_live"] - planted["not_planted_live"]).mean())
            units_live = float(t["units_live"].mean())
            live = (f"; over the {units_live:.0f} units that matter (active on the data) the excess is "
                    f"{excess_live:+.1f}, misplaced {float(planted['not_residual_live'].mean()):.1f}")
        text = f"excess NoT per k {by_k} of {units:g} units ({setting}minibatch order " \
               f"{t['data_order'].iloc[0] if 'data_order' in t else '?'}){live}"
        if excess <= NOT_EXCESS * units:
            out.append(Verdict(v, excess, REPRODUCED, text, control, floor))
            continue
        if not math.isnan(excess_live) and excess_live <= NOT_EXCESS * units:
            why = ("over the units that matter found equals planted: the excess is units the data never reach, "
                   "interchangeable and changing nothing, not an effect of training")
        elif not math.isnan(floor) and abs(excess - floor) <= max(2.0, 0.25 * abs(floor)):
            apart = (f" (and end L2 {float(zero['l2_naive'].mean()):.3g} apart)" if "l2_naive" in zero else "")
            why = (f"the same excess appears with nothing planted: two runs from one initialisation with another "
                   f"minibatch order already differ by that many transpositions{apart}, so it is a floor set by the "
                   "training setting (minibatch order, optimiser, prior), not by the planted permutation")
        elif math.isnan(floor):
            why = "no k = 0 control in not_study.ks"
        else:
            why = "the excess grows beyond the k = 0 floor: training itself moved units"
        out.append(Verdict(v, excess, NOT_REPRODUCED, f"{text}; {why}", control, floor))
    return out


def _pruning_claim(run: Run) -> list[Verdict]:
    out = []
    for v in run.variants:
        t = run.table("pruning", v)
        label = next((lab for lab in ([] if t is None else pd.unique(t["label"])) if lab.startswith("merged:")), None)
        if label is None:
            out.append(Verdict(v, math.nan, NOT_TESTABLE, "no merged posterior (needs hmc and the ensemble)"))
            continue
        curve = t[t["label"] == label].set_index("fraction_retained")["test_accuracy"]
        halves = [f for f in curve.index if f >= 0.5 - 1e-9 and f < 1.0]
        if 1.0 not in curve.index or not halves:
            out.append(Verdict(v, math.nan, NOT_TESTABLE, "pruning.fractions must include 1.0 and one in [0.5, 1)"))
            continue
        f = min(halves)
        drop = 100 * (curve[1.0] - curve[f])
        mag = t[(t["criterion"] == "|mu|")].set_index("fraction_retained")["test_accuracy"]
        mag_drop = 100 * (mag[1.0] - mag[f]) if 1.0 in mag.index and f in mag.index else math.nan
        control = f"accuracy points lost pruning the same mean by magnitude to {f:g}"
        text = f"{label}: {100 * curve[1.0]:.2f}% -> {100 * curve[f]:.2f}% keeping {f:g} of the weights"
        verdict = REPRODUCED if drop <= PRUNE_DROP else NOT_REPRODUCED
        if verdict == NOT_REPRODUCED:
            text += ("; magnitude pruning loses as much or more: the net has little to spare at this size"
                     if mag_drop >= drop else "; magnitude pruning keeps more: sigma is a worse guide here")
            text += _prior_dominated(run, v)
        out.append(Verdict(v, drop, verdict, text, control, mag_drop))
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


def _vi_learned(run: Run) -> list[Verdict]:
    if not run.has_method("vi"):
        return _untestable(run, "needs method vi")
    out = []
    for v in run.variants:
        sigma = run.table("sigma", v)
        rows = None if sigma is None else sigma[sigma["label"] == "VI q"]
        if rows is None or rows.empty or "sigma_q90" not in rows:
            out.append(Verdict(v, math.nan, NOT_TESTABLE, "no sigma table with VI's percentiles (sigma_<variant>.csv)"))
            continue
        r = rows.iloc[0]
        spread = float(r["sigma_q90"] / r["sigma_q10"]) if r["sigma_q10"] > 0 else math.inf
        init, share = float(r.get("sigma_init", math.nan)), float(r.get("kl_share", math.nan))
        error = float(r.get("test_error", math.nan))
        text = (f"sigma 10th / 50th / 90th percentile {_fmt(r['sigma_q10'])} / {_fmt(r['median_sigma'])} / "
                f"{_fmt(r['sigma_q90'])} (from sigma_init {_fmt(init)}); KL share of the objective {_fmt(share)}"
                + ("" if math.isnan(error) else f"; test error {_fmt(error)}"))
        prior = _variant_prior_std(run, v)
        if spread >= SIGMA_SPREAD:
            out.append(Verdict(v, spread, REPRODUCED, text, "sigma_init", init))
        elif prior and float(r["sigma_q10"]) >= 0.5 * prior:
            out.append(Verdict(v, spread, NOT_REPRODUCED, text + f": nearly every sigma sits at the prior's scale "
                               f"({prior:g}), so q is close to the prior: the data pin down few weights of this net "
                               "at this temperature, and its barriers compare two near-prior networks (a colder "
                               "posterior, vi.temperature < 1, or a narrower prior)", "sigma_init", init))
        else:
            out.append(Verdict(v, spread, NOT_REPRODUCED, text + ": the sigmas moved together, not each by what the "
                               "data say of its weight, so this VI is close to a point estimate and its barriers do "
                               "not test a Bayesian claim (train longer, or with a larger sigma_init or learning rate)",
                               "sigma_init", init))
    return out


def _hmc_converged(run: Run) -> list[Verdict]:
    out = []
    for v in run.variants:
        d = run.table("chain_diagnostics", v)
        if d is None or "rhat_max" not in d:
            out.append(Verdict(v, math.nan, NOT_TESTABLE, "no chain diagnostics (needs hmc with 2+ chains of 4+ draws)"))
            continue
        r = d.iloc[0]
        text = (f"rank R-hat median {_fmt(r['rhat_median'])}, max {_fmt(r['rhat_max'])}; classic max "
                f"{_fmt(r.get('rhat_classic_max', math.nan))}; bulk ESS min {_fmt(r.get('ess_bulk_min', math.nan))}")
        ok = r["rhat_max"] <= RHAT
        out.append(Verdict(v, float(r["rhat_max"]), REPRODUCED if ok else NOT_REPRODUCED,
                           text + ("" if ok else ": Table 1's reference carries Monte Carlo error; more or longer "
                                   "chains (hmc.n_samples, seeds) lower it"),
                           "classic split R-hat max (the pre-2021 measure)", float(r.get("rhat_classic_max", np.nan))))
    return out


# ---------------------------------------------------------------- the declarations

XIAO = "Xiao et al. (2023)"
ROSSI = "Rossi et al. (NeurIPS 2023)"

CLAIMS = (
    Claim("hmc-converged", "Vehtari et al. (2021)", "convention (precondition of every HMC claim)",
          "The HMC reference chains have converged", "R-hat <= 1.01",
          "rhat_max of chain_diagnostics_<variant>.csv (p(y|x) at the test points)",
          f"rank-normalised R-hat max <= {RHAT}", _hmc_converged),
    Claim("xiao-hmc-rebasin", XIAO, "Table 1", "Rebasin lifts HMC's fitted Gaussian: q_r agrees with HMC far more "
          "than q_d", "agreement 0.1212 -> 0.8249",
          "share of q_d's gap to HMC that 'HMC q_r (activation, first ref.)' closes: (q_r - q_d) / (1 - q_d), "
          "agreement with HMC in table1_<variant>.csv", f">= {GAP_CLOSED} (the paper: 0.80)", _lift_claim("hmc", "HMC")),
    Claim("xiao-ens-rebasin", XIAO, "Table 1", "Rebasin lifts the ensemble's fitted Gaussian far above q_d",
          "agreement 0.5239 -> 0.9868", "share of q_d's gap to HMC that 'Ens. q_r (activation, first ref.)' closes",
          f">= {GAP_CLOSED} (the paper: 0.97)", _lift_claim("ensemble", "Ens.")),
    Claim("xiao-ens-close", XIAO, "Table 1", "Deep-ensemble samples predict close to HMC", "agreement 0.9931",
          "agreement with HMC of 'Ens. samples'", f"agreement >= {CLOSE}", _close_claim("Ens. samples")),
    Claim("xiao-vi-close", XIAO, "Table 1", "Mean-field VI predicts close to HMC", "agreement 0.9885",
          "agreement with HMC of 'VI q'", f"agreement >= {CLOSE}", _close_claim("VI q")),
    Claim("xiao-hmc-one-basin", XIAO, "premise of rebasin (Sec. 3)",
          "Aligned, HMC chains share one basin: their barrier falls to that between draws of one chain", "",
          "loss barrier of hmc 'weight' vs 'within-chain' rows of barriers.csv",
          f"aligned <= {FLOOR_SLACK} x within-chain + 0.01 nats", _hmc_floor),
    Claim("one-basin", "Ainsworth et al. (2023), after Entezari et al. (2022)",
          "single-basin conjecture (premise of merging, and of rebasing ensembles)",
          "Jointly aligned, all seeds lie in one basin: one labelling connects every pair", "",
          "largest loss barrier of the 'joint_weight' ensemble rows (else 'joint_w2' VI rows) of barriers.csv",
          f"<= {NEAR_ZERO} nats", _one_basin),
    Claim("xiao-not-training", XIAO, "Figure 3", "The NoT found after training equals the NoT planted at "
          "initialisation", "found = planted", "not_found - not_planted of not_k_<variant>.csv (k > 0), mean",
          f"excess <= {NOT_EXCESS:.0%} of the units", _not_claim),
    Claim("xiao-pruning", XIAO, "pruning study", "Keeping only the low-sigma weights of the merged posterior keeps "
          "its accuracy", "", "accuracy points lost by the merged mean at the smallest fraction >= 0.5 "
          "(pruning_<variant>.csv)", f"loss <= {PRUNE_DROP} point", _pruning_claim),
    Claim("vi-learned", "DESIGN.md, after Rossi et al.", "precondition of every VI claim",
          "VI learned a posterior: its sigmas spread by what the data say of each weight", "",
          "sigma_q90 / sigma_q10 of 'VI q' in sigma_<variant>.csv", f">= {SIGMA_SPREAD}", _vi_learned),
    Claim("rossi-vi-near-zero", ROSSI, "MLP experiments", "W2 alignment brings MLP VI barriers near zero", "",
          "loss barrier of vi 'w2' rows of barriers.csv, mean over pairs", f"<= {NEAR_ZERO} nats", _vi_near_zero),
    Claim("rossi-vi-most", ROSSI, "MLP experiments", "Barriers are clearly positive before alignment and mostly "
          "gone after it", "", "vi 'w2' / 'naive' loss barrier", f"ratio <= {MOST}", _alignment_removes_most),
    Claim("rossi-width", ROSSI, "width experiments", "The aligned barrier falls as the width grows", "",
          "vi 'w2' loss barrier at the widest minus at the narrowest swept width", "< 0", _width_claim),
    Claim("rossi-priors", ROSSI, "prior and temperature experiments", "Alignment brings barriers near zero across "
          "priors and temperatures", "", "largest vi 'w2' loss barrier over the swept prior.std / vi.temperature",
          f"<= {NEAR_ZERO} nats", _priors_claim),
    Claim("rossi-resnet-cifar10", ROSSI, "ResNet20 experiments", "On CIFAR-10, W2 alignment removes most of the "
          "ResNet20 VI barrier", "", "vi 'w2' / 'naive' loss barrier", f"aligned <= {MOST} x naive",
          _resnet_claim("cifar10", near_zero=True)),
    Claim("rossi-resnet-cifar100", ROSSI, "ResNet20 experiments", "On CIFAR-100, a ResNet20 VI barrier remains "
          "after alignment", "", "vi 'w2' / 'naive' loss barrier", f"aligned > {MOST} x naive",
          _resnet_claim("cifar100", near_zero=False)),
)


def judge(run: Run) -> pd.DataFrame:
    """One row per claim and variant: the declaration, the measured value, the verdict and its control."""
    rows = []
    for c in CLAIMS:
        for v in c.judge(run):
            if v.verdict not in VERDICTS:
                raise ValueError(f"claim {c.key}: verdict {v.verdict!r} is not one of {VERDICTS}")
            rows.append({"claim": c.key, "paper": c.paper, "place": c.place, "statement": c.statement,
                         "paper_value": c.paper_value, "quantity": c.quantity, "rule": c.rule, "variant": v.variant,
                         "measured": v.measured, "verdict": v.verdict, "reason": v.reason, "control": v.control,
                         "control_value": v.control_value})
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


def markdown(table: pd.DataFrame, *, title: str, stamp: str) -> str:
    """The claims table as a reader meets it: one line per claim and variant, then the diagnoses."""
    rows = _collapsed(table)
    lines = [f"# {title}", "", stamp, "",
             "| claim | paper, place | paper | variant | measured | rule | verdict |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.statement} | {r.paper}, {r.place} | {r.paper_value or '-'} | {r.variant} | "
                     f"{_fmt(r.measured)} | {r.rule} | **{r.verdict}** |")
    lines += ["", "## Why, and the control behind each verdict", ""]
    for r in rows:
        control = (f" Control: {r.control} = {_fmt(r.control_value)}." if r.control else "")
        lines.append(f"- **{r.claim}** ({r.variant}, {r.verdict}): {r.reason}.{control}")
    return "\n".join(lines) + "\n"
