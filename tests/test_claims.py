"""The claims table: each claim's rule, its 'not testable' reasons and the diagnosis from its control,
on summary tables written by hand (the end-to-end test runs it on a real run)."""

import math

import pandas as pd
import pytest

from workflow.evaluation import claims_table as claims
from workflow.evaluation.claims_table import NOT_REPRODUCED, NOT_TESTABLE, REPRODUCED, Run

CONFIG = {"name": "t", "methods": ["ensemble", "vi", "hmc"], "model": {"architecture": "mlp", "hidden": [128]},
          "data": {"dataset": "digits"}}


def table1(**agreement):
    return pd.DataFrame([{"metric": "agreement with HMC", "column": c, "value": a} for c, a in agreement.items()])


def draws_table(unpermuted_share, lag=float("nan"), corr=float("nan"), method="hmc"):
    rows = [("reference chain", 1, 100, unpermuted_share, 110.0), ("other chains", 3, 300, 0.0, 122.0)]
    return pd.DataFrame([{"variant": "base", "method": method, "matching": "activation", "reference": "first",
                          "draws_of": g, "chains": c, "draws": d, "unpermuted_share": u, "not_to_reference_mean": n,
                          "permuted_unlike_chain_share": 1 - u, "not_to_chain_start_mean": n,
                          "first_permuted_lag": lag, "unit_corr_at_first_permuted": corr, "units": 128}
                         for g, c, d, u, n in rows])


def barriers(rows):
    return pd.DataFrame([{"variant": v, "method": m, "alignment": a, "pair": p, "loss_barrier": b}
                         for v, m, a, p, b in rows])


def verdict(key, run):
    (c,) = [c for c in claims.CLAIMS if c.key == key]
    return c.judge(run)


Q_R = "HMC q_r (activation, first ref.)"


def test_the_rebasin_lift_is_judged_on_the_papers_matching_and_reference():
    t = table1(**{"HMC q_d": 0.2, Q_R: 0.8, "HMC q_r (weight, first ref.)": 0.3})
    (v,) = verdict("xiao-hmc-rebasin", Run({"table1_base": t}, CONFIG, {"base": {}}))
    assert v.verdict == REPRODUCED and v.measured == pytest.approx(0.75) and "weight, first ref.) 0.3" in v.reason
    t = table1(**{"HMC q_d": 0.2, Q_R: 0.5})  # closes 0.375 of the gap
    (v,) = verdict("xiao-hmc-rebasin", Run({"table1_base": t}, CONFIG, {"base": {}}))
    assert v.verdict == NOT_REPRODUCED and v.measured == pytest.approx(0.375)
    assert math.isnan(v.control_value)  # no rebasin_draws table: no control number
    t = table1(**{"Ens. q_d": 0.73, "Ens. q_r (activation, first ref.)": 0.978})  # +0.25, but 92% of the gap
    (v,) = verdict("xiao-ens-rebasin", Run({"table1_base": t}, CONFIG, {"base": {}}))
    assert v.verdict == REPRODUCED


@pytest.mark.parametrize("share, lag, corr, words", [
    (0.02, 10, 0.1, "the chain had already moved its units"),
    (0.5, 1, 0.9, "part of the permuting is noise of this matching"),
    (1.0, float("nan"), float("nan"), "matching permuted 0% of the reference chain's 100 draws"),
])
def test_the_lift_is_diagnosed_by_the_reference_chains_own_draws(share, lag, corr, words):
    frames = {"table1_base": table1(**{"HMC q_d": 0.2, Q_R: 0.3}),
              "rebasin_draws_base": draws_table(share, lag, corr)}
    (v,) = verdict("xiao-hmc-rebasin", Run(frames, CONFIG, {"base": {}}))
    assert v.verdict == NOT_REPRODUCED and words in v.reason
    assert v.control_value == pytest.approx(1 - share)


def test_without_the_papers_rebasin_the_lift_is_not_testable():
    t = table1(**{"HMC q_d": 0.2, "HMC q_r (weight, first ref.)": 0.9})
    (v,) = verdict("xiao-hmc-rebasin", Run({"table1_base": t}, CONFIG, {"base": {}}))
    assert v.verdict == NOT_TESTABLE and "rebasin.matchings must include activation" in v.reason
    (v,) = verdict("xiao-ens-rebasin", Run({}, {**CONFIG, "methods": ["vi"]}, {"base": {}}))
    assert v.verdict == NOT_TESTABLE and "needs method ensemble and hmc" in v.reason
    (v,) = verdict("xiao-hmc-rebasin", Run({}, {**CONFIG, "methods": ["vi"]}, {"base": {}}))
    assert v.reason == "needs method hmc"


def test_close_to_hmc_blames_an_unconverged_reference_only_when_it_is_one():
    frames = {"table1_base": table1(**{"VI q": 0.9}), "chain_diagnostics_base": pd.DataFrame([{"rhat_max": 1.2}])}
    (v,) = verdict("xiao-vi-close", Run(frames, CONFIG, {"base": {}}))
    assert v.verdict == NOT_REPRODUCED and "has not converged" in v.reason and v.control_value == 1.2
    frames["chain_diagnostics_base"] = pd.DataFrame([{"rhat_max": 1.005}])
    (v,) = verdict("xiao-vi-close", Run(frames, CONFIG, {"base": {}}))
    assert "converged" in v.reason and "not converged" not in v.reason
    frames["table1_base"] = table1(**{"VI q": 0.96})
    assert verdict("xiao-vi-close", Run(frames, CONFIG, {"base": {}}))[0].verdict == REPRODUCED


@pytest.mark.parametrize("vi_w2, ens, expected, words", [
    (0.01, 0.02, REPRODUCED, "naive"),
    (0.2, 0.3, NOT_REPRODUCED, "point estimates of this net keep a barrier"),
    (0.2, 0.01, NOT_REPRODUCED, "matched point estimates connect"),
])
def test_rossis_near_zero_barrier_and_its_ensemble_control(vi_w2, ens, expected, words):
    b = barriers([("base", "vi", "naive", "0-1", 0.5), ("base", "vi", "w2", "0-1", vi_w2),
                  ("base", "ensemble", "weight", "0-1", ens)])
    (v,) = verdict("rossi-vi-near-zero", Run({"barriers": b}, CONFIG, {"base": {}}))
    assert v.verdict == expected and words in v.reason and v.measured == vi_w2 and v.control_value == ens


def test_the_near_zero_claim_is_an_mlp_claim():
    cfg = {**CONFIG, "model": {"architecture": "resnet20"}}
    (v,) = verdict("rossi-vi-near-zero", Run({"barriers": barriers([])}, cfg, {"base": {}}))
    assert v.verdict == NOT_TESTABLE and "resnet20" in v.reason


@pytest.mark.parametrize("aligned, naive, expected", [((0.3, 0.2, 0.1), (0.5, 0.6, 0.7), REPRODUCED),
                                                      ((0.1, 0.2, 0.3), (0.4, 0.5, 0.6), NOT_REPRODUCED)])
def test_the_width_claim_reads_the_sweep(aligned, naive, expected):
    variants = {"h64": {"model.hidden": [64]}, "h256": {"model.hidden": [256]}, "h128": {"model.hidden": [128]}}
    widths = {"h64": 0, "h128": 1, "h256": 2}
    rows = [(v, "vi", "w2", "0-1", aligned[i]) for v, i in widths.items()]
    rows += [(v, "vi", "naive", "0-1", naive[i]) for v, i in widths.items()]
    (v,) = verdict("rossi-width", Run({"barriers": barriers(rows)}, CONFIG, variants))
    assert v.verdict == expected
    assert v.measured == pytest.approx(aligned[2] - aligned[0]) and v.control_value == pytest.approx(naive[2] - naive[0])
    assert "64: " in v.reason and v.reason.index("64: ") < v.reason.index("128: ") < v.reason.index("256: ")
    if expected == NOT_REPRODUCED:
        assert "contradicts Rossi et al." in v.reason
    (v,) = verdict("rossi-width", Run({"barriers": barriers(rows)}, CONFIG, {"base": {}}))
    assert v.verdict == NOT_TESTABLE and "model.hidden" in v.reason


def test_a_one_at_a_time_sweep_reads_each_claim_at_the_others_base_values():
    """Width and prior swept one key at a time: the width trend is read at the base prior only, and the
    prior claim at the base width only, so a variant of one key never enters the other's claim."""
    base = {"model.hidden": [128], "prior.std": 1.0}
    variants = {"model.hidden-32": {"model.hidden": [32], "prior.std": 1.0},
                "model.hidden-128": {"model.hidden": [128], "prior.std": 1.0},
                "model.hidden-512": {"model.hidden": [512], "prior.std": 1.0},
                "prior.std-0.3": {"model.hidden": [128], "prior.std": 0.3}}
    aligned = {"model.hidden-32": 0.04, "model.hidden-128": 0.03, "model.hidden-512": 0.02, "prior.std-0.3": 0.2}
    rows = [(v, "vi", kind, "0-1", aligned[v] if kind == "w2" else 0.5) for v in variants for kind in ("w2", "naive")]
    run = Run({"barriers": barriers(rows)}, CONFIG, variants, base)
    (width,) = verdict("rossi-width", run)
    assert width.verdict == REPRODUCED and "0.2" not in width.reason and width.reason.count("128: ") == 1
    (priors,) = verdict("rossi-priors", run)
    assert priors.verdict == NOT_REPRODUCED and priors.measured == pytest.approx(0.2)
    assert "model.hidden-32" not in priors.reason and "model.hidden-128" in priors.reason


def test_hmcs_aligned_barrier_is_judged_against_the_within_chain_floor():
    rows = [("base", "hmc", "naive", "0-1", 0.45), ("base", "hmc", "weight", "0-1", 0.23),
            ("base", "hmc", "within-chain", "0-0", 0.30)]
    (v,) = verdict("xiao-hmc-one-basin", Run({"barriers": barriers(rows)}, CONFIG, {"base": {}}))
    assert v.verdict == REPRODUCED and v.control_value == 0.30
    rows[1] = ("base", "hmc", "weight", "0-1", 0.33)  # above the floor, within its slack (1.25 x 0.30 + 0.01)
    (v,) = verdict("xiao-hmc-one-basin", Run({"barriers": barriers(rows)}, CONFIG, {"base": {}}))
    assert v.verdict == REPRODUCED
    rows[1] = ("base", "hmc", "weight", "0-1", 0.40)
    (v,) = verdict("xiao-hmc-one-basin", Run({"barriers": barriers(rows)}, CONFIG, {"base": {}}))
    assert v.verdict == NOT_REPRODUCED
    (v,) = verdict("xiao-hmc-one-basin", Run({"barriers": barriers(rows[:2])}, CONFIG, {"base": {}}))
    assert v.verdict == NOT_TESTABLE and "within-chain" in v.reason


def test_one_basin_is_judged_on_the_worst_jointly_aligned_pair_against_the_pairwise_ones():
    pairs = ("0-1", "0-2", "1-2")
    rows = [("base", "ensemble", "joint_weight", p, b) for p, b in zip(pairs, (0.01, 0.02, 0.04))]
    rows += [("base", "ensemble", "weight", p, 0.01) for p in pairs]
    run = Run({"barriers": barriers(rows)}, CONFIG, {"base": {}})
    (v,) = verdict("one-basin", run)
    assert v.verdict == REPRODUCED and v.measured == 0.04 and v.control_value == 0.01
    rows[2] = ("base", "ensemble", "joint_weight", "1-2", 0.2)  # one pair apart under the one labelling
    joint = pd.DataFrame([{"method": "ensemble", "alignment": "weight", "pairwise_cycle_not_per_100_mean": 7.5}])
    (v,) = verdict("one-basin", Run({"barriers": barriers(rows), "joint_alignment_base": joint}, CONFIG,
                                    {"base": {}}))
    assert v.verdict == NOT_REPRODUCED and v.measured == 0.2 and "no one labelling connects them all" in v.reason
    assert "7.5 transpositions per 100 units" in v.reason
    rows += [("base", "ensemble", "weight", "1-2", 0.3)]  # the pair stays apart on its own too
    rows = [r for r in rows if not (r[2] == "weight" and r[3] == "1-2" and r[4] == 0.01)]
    (v,) = verdict("one-basin", Run({"barriers": barriers(rows)}, CONFIG, {"base": {}}))
    assert v.verdict == NOT_REPRODUCED and "even aligned one by one" in v.reason
    # without an ensemble joint alignment, VI's W2 one; with neither, not testable
    vi = [("base", "vi", "joint_w2", p, 0.01) for p in pairs] + [("base", "vi", "w2", p, 0.01) for p in pairs]
    (v,) = verdict("one-basin", Run({"barriers": barriers(vi)}, CONFIG, {"base": {}}))
    assert v.verdict == REPRODUCED and v.reason.startswith("vi (w2)")
    (v,) = verdict("one-basin", Run({"barriers": barriers(rows[3:])}, CONFIG, {"base": {}}))
    assert v.verdict == NOT_TESTABLE and "alignment.joint" in v.reason


def not_k(excess_by_k, units=128):
    return pd.DataFrame([{"k": k, "seed": s, "not_planted": k, "not_found": k + e, "units_total": units,
                          "data_order": "reshuffled"} for k, e in excess_by_k for s in (0, 1)])


def test_the_not_claim_separates_trainings_excess_from_the_matchings_floor():
    (v,) = verdict("xiao-not-training", Run({"not_k_base": not_k([(0, 0), (8, 1), (32, 0)])}, CONFIG, {"base": {}}))
    assert v.verdict == REPRODUCED and v.measured == 0.5
    (v,) = verdict("xiao-not-training", Run({"not_k_base": not_k([(0, 90), (8, 89), (32, 91)]).assign(l2_naive=14.0)},
                                            CONFIG, {"base": {}}))
    assert v.verdict == NOT_REPRODUCED and "a floor set by the training setting" in v.reason and v.control_value == 90
    assert "end L2 14 apart" in v.reason
    (v,) = verdict("xiao-not-training", Run({"not_k_base": not_k([(0, 0), (8, 20), (32, 40)])}, CONFIG,
                                            {"base": {}}))
    assert v.verdict == NOT_REPRODUCED and "training itself moved units" in v.reason


def test_pruning_keeps_accuracy_is_judged_at_the_smallest_fraction_from_one_half():
    rows = []
    for label, crit, accs in (("merged: Ens. mean + HMC sigma", "sigma", (0.97, 0.968, 0.90)),
                              ("Ens. mean by magnitude", "|mu|", (0.97, 0.95, 0.5))):
        rows += [{"label": label, "criterion": crit, "fraction_retained": f, "test_accuracy": a}
                 for f, a in zip((1.0, 0.5, 0.2), accs)]
    (v,) = verdict("xiao-pruning", Run({"pruning_base": pd.DataFrame(rows)}, CONFIG, {"base": {}}))
    assert v.verdict == REPRODUCED and v.measured == pytest.approx(0.2) and v.control_value == pytest.approx(2.0)


def test_every_claim_answers_every_run_and_the_job_writes_both_files(tmp_path):
    from workflow.jobs.claims import claims_job

    b = barriers([("base", "vi", "naive", "0-1", 0.5), ("base", "vi", "w2", "0-1", 0.01)])
    b.to_csv(tmp_path / "barriers.csv", index=False)
    table1(**{"HMC q_d": 0.2, Q_R: 0.8, "VI q": 0.99}).to_csv(tmp_path / "table1_base.csv", index=False)
    claims_job([tmp_path / "barriers.csv", tmp_path / "table1_base.csv"], CONFIG, {"base": {}},
               tmp_path / "claims.csv", tmp_path / "claims.md")
    t = pd.read_csv(tmp_path / "claims.csv")
    assert set(t["claim"]) == {c.key for c in claims.CLAIMS}
    assert set(t["verdict"]) <= set(claims.VERDICTS)
    assert (t.loc[t["verdict"] == NOT_TESTABLE, "reason"].str.len() > 10).all()  # every gap says why
    md = (tmp_path / "claims.md").read_text()
    assert "config sha1" in md and md.count("\n- **") == len(t)
    by = t.set_index("claim")
    assert by.loc["rossi-vi-near-zero", "verdict"] == REPRODUCED and by.loc["xiao-vi-close", "verdict"] == REPRODUCED
    assert by.loc["rossi-resnet-cifar10", "verdict"] == NOT_TESTABLE
    assert math.isnan(by.loc["rossi-resnet-cifar10", "measured"])


def test_a_failed_pruning_names_prior_dominated_sigmas():
    rows = [{"label": "merged: Ens. mean + HMC sigma", "criterion": "sigma", "fraction_retained": f,
             "test_accuracy": a} for f, a in ((1.0, 0.96), (0.5, 0.91))]
    rows += [{"label": "Ens. mean by magnitude", "criterion": "|mu|", "fraction_retained": f, "test_accuracy": a}
             for f, a in ((1.0, 0.96), (0.5, 0.965))]
    sigma = pd.DataFrame([{"label": "HMC q_r (weight, first ref.)", "method": "hmc", "fit": "q_r",
                           "median_sigma": 0.92}])
    cfg = {**CONFIG, "prior": {"std": 1.0}}
    (v,) = verdict("xiao-pruning", Run({"pruning_base": pd.DataFrame(rows), "sigma_base": sigma}, cfg, {"base": {}}))
    assert v.verdict == NOT_REPRODUCED and v.measured == pytest.approx(5.0)
    assert "magnitude pruning keeps more" in v.reason and "prior-dominated" in v.reason
    sigma["median_sigma"] = 0.1
    (v,) = verdict("xiao-pruning", Run({"pruning_base": pd.DataFrame(rows), "sigma_base": sigma}, cfg, {"base": {}}))
    assert "prior-dominated" not in v.reason


def test_an_excess_only_among_units_that_matter_not_is_blamed_on_the_dead_ones():
    t = not_k([(0, 20), (8, 20), (32, 20)])
    t = t.assign(setting="xiao", matching="activation", units_live=100, not_planted_live=t["not_planted"],
                 not_found_live=t["not_planted"], not_residual_live=0)
    (v,) = verdict("xiao-not-training", Run({"not_k_base": t}, CONFIG, {"base": {}}))
    assert v.verdict == NOT_REPRODUCED and "units the data never reach" in v.reason
    assert "setting xiao, activation matching" in v.reason and "over the 100 units that matter" in v.reason


def test_the_results_page_is_the_runs_own_files_under_a_stamp(tmp_path):
    from workflow.jobs.claims import claims_job
    from workflow.jobs.results_doc import results_doc_job

    run = tmp_path / "results" / "t"
    (run / "tables").mkdir(parents=True)
    table1(**{"HMC q_d": 0.2, Q_R: 0.8}).to_csv(run / "tables" / "table1_base.csv", index=False)
    (run / "tables" / "table1_base.md").write_text("| metric | HMC q_d |\n|---|---|\n| agreement with HMC | 0.2 |\n")
    (run / "tables" / "barriers.md").write_text("| variant | method |\n|---|---|\n| base | vi |\n")
    config = tmp_path / "c.yaml"
    config.write_text("name: t\nseeds: [0, 1]\n")
    with pytest.raises(FileNotFoundError, match="snakemake claims"):
        results_doc_job(run, config, tmp_path / "page.md")
    claims_job([run / "tables" / "table1_base.csv"], CONFIG, {"base": {}}, run / "claims.csv", run / "claims.md")
    results_doc_job(run, config, tmp_path / "page.md")
    page = (tmp_path / "page.md").read_text()
    assert page.startswith("# Results of `t`") and "config sha1" in page and "Do not edit by hand" in page
    assert (run / "tables" / "table1_base.md").read_text() in page  # copied, not retyped
    assert (run / "tables" / "barriers.md").read_text() in page
    assert "## NoT study" not in page  # the run has no such table: no section
    assert "name: t\nseeds: [0, 1]" in page and "| **reproduced** |" in page


@pytest.mark.parametrize("q10, q90, expected", [(0.0023, 0.0025, NOT_REPRODUCED), (0.01, 0.3, REPRODUCED)])
def test_vi_that_moved_every_sigma_together_is_not_a_posterior(q10, q90, expected):
    sigma = pd.DataFrame([{"label": "VI q", "median_sigma": (q10 + q90) / 2, "sigma_q10": q10, "sigma_q90": q90,
                           "sigma_init": 0.001, "kl_share": 0.9}])
    (v,) = verdict("vi-learned", Run({"sigma_base": sigma}, CONFIG, {"base": {}}))
    assert v.verdict == expected and v.measured == pytest.approx(q90 / q10) and v.control_value == 0.001
    assert "KL share of the objective 0.9" in v.reason
    (v,) = verdict("vi-learned", Run({}, CONFIG, {"base": {}}))
    assert v.verdict == NOT_TESTABLE


def test_vi_whose_sigmas_went_to_the_prior_is_diagnosed_as_the_prior():
    """At temperature 1 a short-data ResNet's mean-field q can go to the prior: the sigmas spread little
    and sit at the prior's scale, which is not the 'moved together from sigma_init' failure."""
    sigma = pd.DataFrame([{"label": "VI q", "median_sigma": 0.97, "sigma_q10": 0.86, "sigma_q90": 1.0,
                           "sigma_init": 0.01, "kl_share": 0.64, "test_error": 0.87}])
    cfg = {**CONFIG, "prior": {"std": 1.0}}
    (v,) = verdict("vi-learned", Run({"sigma_base": sigma}, cfg, {"base": {}}))
    assert v.verdict == NOT_REPRODUCED and "prior's scale" in v.reason and "test error 0.87" in v.reason
    assert "moved together" not in v.reason
    (v,) = verdict("vi-learned", Run({"sigma_base": sigma}, cfg, {"base": {"prior.std": 10.0}}))
    assert "prior's scale" not in v.reason and "moved together" in v.reason  # a wide prior's scale is far above


def test_the_barrier_ratio_and_prior_claims_are_mlp_claims():
    b = barriers([("base", "vi", "naive", "0-1", 2.0), ("base", "vi", "w2", "0-1", 1.6)])
    cfg = {**CONFIG, "model": {"architecture": "resnet20"}}
    (v,) = verdict("rossi-vi-most", Run({"barriers": b}, cfg, {"base": {}}))
    assert v.verdict == NOT_TESTABLE and "resnet20" in v.reason
    (v,) = verdict("rossi-priors", Run({"barriers": b}, cfg, {"base": {"prior.std": 1.0}}))
    assert v.verdict == NOT_TESTABLE and "resnet20" in v.reason


def test_a_run_whose_naive_barriers_are_zero_is_not_testable_for_the_ratio():
    b = barriers([("base", "vi", "naive", "0-1", 0.0), ("base", "vi", "w2", "0-1", 0.0),
                  ("base", "ensemble", "naive", "0-1", 0.0), ("base", "ensemble", "weight", "0-1", 0.0)])
    (v,) = verdict("rossi-vi-most", Run({"barriers": b}, CONFIG, {"base": {}}))
    assert v.verdict == NOT_TESTABLE


def test_a_sweep_shows_a_claim_untestable_everywhere_once():
    """In a sweep, a claim untestable for one reason in every variant is one row of claims.md; the CSV
    keeps a row per variant, and a verdict that differs between variants keeps its own rows."""
    variants = {"hidden-16": {"model.hidden": 16}, "hidden-32": {"model.hidden": 32}}
    b = barriers([(v, "vi", kind, "0-1", value) for v in variants
                  for kind, value in (("naive", 0.5), ("w2", 0.01 if v == "hidden-16" else 0.2))])
    table = claims.judge(Run({"barriers": b}, CONFIG, variants))
    md = claims.markdown(table, title="t", stamp="s")
    resnet = [line for line in md.splitlines() if line.startswith("| On CIFAR-10,")]
    assert len(resnet) == 1 and "| every variant |" in resnet[0]
    assert (table["claim"] == "rossi-resnet-cifar10").sum() == 2
    near_zero = table[table["claim"] == "rossi-vi-near-zero"]
    assert set(near_zero["verdict"]) == {REPRODUCED, NOT_REPRODUCED}
    assert md.count("**rossi-vi-near-zero** (") == 2 and "every variant, reproduced" not in md


def test_the_readmes_result_is_the_default_pages_claims_with_a_paper_number(tmp_path, monkeypatch):
    """README.md's result block is `python -m workflow readme-result`'s output on the committed page:
    editing the block by hand, or regenerating the page without it, fails here."""
    from pathlib import Path

    from workflow.jobs.results_doc import README_BEGIN, README_END, readme_result, readme_result_job

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    block = readme.split(README_BEGIN, 1)[1].split(README_END, 1)[0]
    monkeypatch.chdir(root)  # the block links the page by its path from the repository's root
    assert README_BEGIN + block + README_END == readme_result("docs/results/digits-default.md")

    page = tmp_path / "page.md"
    page.write_text("Written by `x`; code 0123456789abcdef, config sha1 f.\n\n"
                    "| claim | paper, place | paper | variant | measured | rule | verdict |\n|---|---|---|---|---|---|---|\n"
                    "| A | T1 | 0.8 | base | 0.7 | >= 0.5 | **reproduced** |\n"
                    "| B | Fig | - | base | 0.1 | <= 1 | **reproduced** |\n"
                    "| C | T1 | 0.9 | base | nan | >= 1 | **not testable** |\n"
                    "| D | T2 | 1.0 | base | 2.0 | <= 1 | **not reproduced** |\n\nafter\n")
    block = readme_result(page)
    assert "| A | T1 | 0.8 | 0.7 | >= 0.5 | **reproduced** |" in block and "code 0123456" in block
    assert "| D | T2 | 1.0 | 2.0 | <= 1 | **not reproduced** |" in block
    assert "| B |" not in block and "| C |" not in block and "after" not in block
    target = tmp_path / "README.md"
    target.write_text(f"intro\n{README_BEGIN}\nold\n{README_END}\nrest\n")
    readme_result_job(page, target)
    assert target.read_text() == f"intro\n{block}\nrest\n"
    target.write_text("no markers\n")
    with pytest.raises(ValueError, match="needs exactly one line"):
        readme_result_job(page, target)


def test_the_results_page_says_which_code_wrote_the_runs_artifacts(tmp_path):
    """Snakemake does not rerun a job when only the code changed: a page must say when its numbers
    come from artifacts of other code than the code that judged the claims."""
    import h5py

    from workflow.jobs.claims import claims_job
    from workflow.jobs.results_doc import results_doc_job

    run = tmp_path / "results" / "t"
    (run / "tables").mkdir(parents=True)
    table1(**{"HMC q_d": 0.2, Q_R: 0.8}).to_csv(run / "tables" / "table1_base.csv", index=False)
    claims_job([run / "tables" / "table1_base.csv"], CONFIG, {"base": {}}, run / "claims.csv", run / "claims.md")
    judged_by = pd.read_csv(run / "claims.csv")["code"].iloc[0]
    config = tmp_path / "c.yaml"
    config.write_text("name: t\n")
    posteriors = run / "base" / "posteriors" / "vi"
    posteriors.mkdir(parents=True)
    for seed, revision in enumerate([judged_by, judged_by]):
        with h5py.File(posteriors / f"seed{seed}.h5", "w") as f:
            f.attrs["code_revision"] = revision
    results_doc_job(run, config, tmp_path / "page.md")
    assert "All 2 HDF5 artifacts of the run were written by that same code." in (tmp_path / "page.md").read_text()
    with h5py.File(posteriors / "seed1.h5", "a") as f:
        f.attrs["code_revision"] = "0123abc"
    results_doc_job(run, config, tmp_path / "page.md")
    page = (tmp_path / "page.md").read_text()
    assert f"written by code {judged_by} (1), 0123abc (1)" in page and "not all by the code that judged" in page
