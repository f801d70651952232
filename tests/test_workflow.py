"""End-to-end runs of the Snakemake workflow through its command line on a tiny config."""

import base64
import contextlib
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from workflow.evaluation import claims_table as claims_module
from workflow.storage.artifacts import read_alignment, read_posterior
from workflow.tables import TABLE1_METRICS

from .fingerprints import artifact_digests, differing

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "configs" / "tiny.yaml"

pytestmark = pytest.mark.workflow


def snakemake(workdir: Path, *args: str, configfile: Path = TINY, python: Path | None = None,
              env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [str(python or sys.executable), "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
           str(workdir), "--configfile", str(configfile), "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, cwd=workdir)


def deps_only_venv(where: Path) -> Path | None:
    """A venv with this interpreter's packages but not the `workflow` package (as the conda env of
    envs/workflow.yaml), or None where the package is installed in a way it cannot be left out."""
    import sysconfig
    import venv

    venv.create(where, with_pip=False)
    site = next((where / "lib").glob("python*/site-packages"))
    # the packages as a plain path: an editable install's .pth file is not run from there
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = where / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import snakemake, torch; import workflow"], cwd=where,
                           capture_output=True, text=True)
    return python if "No module named 'workflow'" in probe.stderr else None


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """The tiny config, run from a folder outside the checkout, in a venv without the package where
    one can be made: jobs import `workflow` through the Snakefile's PYTHONPATH."""
    workdir = tmp_path_factory.mktemp("run")
    python = deps_only_venv(tmp_path_factory.mktemp("deps-only"))
    env = None
    if python is not None:
        env = {**os.environ, "PATH": f"{python.parent}:{os.environ['PATH']}"}
        env.pop("PYTHONPATH", None)
    start = time.perf_counter()
    proc = snakemake(workdir, python=python, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    RUN_SECONDS["tiny"] = time.perf_counter() - start
    return workdir


RUN_SECONDS = {}  # wall time of the uninterrupted tiny run


def test_workflow_runs_end_to_end_and_alignment_lowers_the_barrier(finished_run):
    results = finished_run / "results" / "tiny"
    table = pd.read_csv(results / "tables" / "barriers.csv")
    control = table[table["alignment"] == "within-chain"]  # HMC's floor: the two halves of each chain
    assert set(control["method"]) == {"hmc"} and set(control["pair"]) == {"0-0", "1-1", "2-2"}
    assert set(control["draws"]) == {5} and set(table.loc[table["method"] == "hmc", "draws"]) == {5, 10}
    repaired = table[table["alignment"].str.endswith("+repair")]  # tiny.yaml turns barrier.repair on
    assert set(zip(repaired["method"], repaired["alignment"])) == {
        (m, f"{k}+repair") for m, ks in (("ensemble", ("naive", "weight", "joint_weight")),
                                         ("vi", ("naive", "weight", "w2", "joint_weight", "joint_w2")),
                                         ("hmc", ("naive", "weight", "joint_weight"))) for k in ks}  # not GLM Laplace
    aligned_halves = table[table["alignment"] == "within-chain weight"]  # the floor: halves matched like chains
    assert set(aligned_halves["pair"]) == {"0-0", "1-1", "2-2"} and aligned_halves["not_total"].notna().all()
    assert (aligned_halves["distance"].to_numpy() <= control["distance"].to_numpy() + 1e-9).all()
    table = table[~table["alignment"].isin(["within-chain", "within-chain weight", "joint_weight", "joint_w2"])
                  & ~table["alignment"].str.endswith("+repair")]
    assert set(table["pair"]) == {"0-1", "0-2", "1-2"}
    assert set(table["variant"]) == {"base"}
    by = table.groupby(["method", "alignment"])["loss_barrier"].mean()
    assert set(by.index) == {("ensemble", "naive"), ("ensemble", "weight"), ("vi", "naive"), ("vi", "weight"),
                             ("vi", "w2"), ("hmc", "naive"), ("hmc", "weight"), ("laplace", "naive"),
                             ("laplace", "weight"), ("laplace", "w2")}
    assert "within-chain" in (results / "tables" / "barriers.md").read_text()
    for method, kind in [("ensemble", "weight"), ("vi", "weight"), ("vi", "w2"), ("laplace", "w2")]:
        assert by[method, kind] < 0.5 * by[method, "naive"], (method, kind)
    aligned = table[table.alignment != "naive"]
    assert (aligned["not_total"] > 0).all() and (aligned["not_total"] < aligned["units_total"]).all()
    vi = table[table.method == "vi"].set_index(["alignment", "pair"])["distance"]
    for pair in ("0-1", "0-2", "1-2"):
        assert vi["w2", pair] < vi["naive", pair]  # alignment lowers the W2 distance
    for method in ("ensemble", "vi", "hmc", "laplace"):
        for ext in ("png", "pdf"):
            assert (results / "figures" / f"barrier_{method}_base.{ext}").stat().st_size > 1000
    assert not list((results / "figures").glob("sweep_*"))  # no sweep, no sweep figure
    curves = pd.read_csv(results / "tables" / "barrier_curves.csv")
    assert {"variant", "pair", "t", "loss", "error", "aligned", "alignment", "distance"} <= set(curves.columns)
    # pairs x points x (2 + 3 + 2 + 3 curves, 1 + 2 + 1 + 2 joint ones, and REPAIRed 3 + 5 + 3 + 0 of those),
    # and HMC's 3 chains halved, once as they are and once weight-matched
    assert len(curves) == 3 * 7 * (10 + 6 + 11) + 2 * 3 * 7
    assert set(curves["device"]) == {"cpu"}  # tables computed with torch name their device
    assert set(pd.read_csv(results / "tables" / "table1_base.csv")["device"]) == {"cpu"}


def test_table1_compares_every_predictive_with_hmc(finished_run):
    tables = finished_run / "results" / "tiny" / "tables"
    t = pd.read_csv(tables / "table1_base.csv").pivot(index="metric", columns="column", values="value")
    assert list(t.columns) == sorted(t.columns)  # pivot sorts; the Markdown keeps the paper's order
    md = (tables / "table1_base.md").read_text().splitlines()[0]
    assert md.index("HMC samples") < md.index("HMC q_d") < md.index("HMC q_r (weight, first ref.)") < md.index("Ens. samples")
    assert md.index("Ens. q_r (activation, iterated ref.)") < md.index("VI q") < md.index("Laplace q")
    agree = t.loc["agreement with HMC"]
    assert agree["HMC samples"] == 1.0 and t.loc["TV to HMC", "HMC samples"] == 0.0
    for m in ("HMC", "Ens."):  # rebasin lifts the fitted Gaussian above the unaligned fit
        assert agree[f"{m} q_r (weight, first ref.)"] > agree[f"{m} q_d"]
        assert t.loc["test accuracy % of mean network", f"{m} q_r (weight, first ref.)"] > \
            t.loc["test accuracy % of mean network", f"{m} q_d"]
    assert (tables / "table1_base.tex").read_text().startswith("\\begin{tabular}")
    diag = pd.read_csv(tables / "chain_diagnostics_base.csv").iloc[0]
    assert diag["chains"] == 3 and diag["draws_per_chain"] == 10
    # the diagnostics are R-hat / ESS of p(y|x) on the test points over the three HMC chains:
    # recomputed here from the posterior files (a wrong chain, split or quantity would differ)
    from workflow.evaluation.mcmc_diagnostics import ess_bulk, ess_tail, rhat, split_rhat
    from workflow.evaluation.predict import sample_label_log_probs
    from workflow.storage.prepared import load_prepared

    data = load_prepared(next((finished_run / "results" / "tiny" / "data").glob("*.npz")))
    posts = [read_posterior(finished_run / "results" / "tiny" / "base" / "posteriors" / "hmc" / f"seed{s}.h5")
             for s in range(3)]
    model, _ = posts[0].build_model()
    chains = np.stack([sample_label_log_probs(model, p.sample_source(0, 0), data["x_test"], data["y_test"])
                       .exp().numpy() for p in posts])
    assert diag["rhat_median"] == pytest.approx(np.nanmedian(rhat(chains)), rel=1e-6)
    assert diag["rhat_max"] == pytest.approx(np.nanmax(rhat(chains)), rel=1e-6)
    assert diag["rhat_classic_max"] == pytest.approx(np.nanmax(split_rhat(chains)), rel=1e-6)
    assert diag["ess_bulk_min"] == pytest.approx(np.nanmin(ess_bulk(chains)), rel=1e-6)
    assert diag["ess_tail_median"] == pytest.approx(np.nanmedian(ess_tail(chains)), rel=1e-6)
    assert diag["acceptance_seed1"] == pytest.approx(posts[1].diagnostic_attrs["acceptance_rate"])
    q_r = read_posterior(finished_run / "results" / "tiny" / "base" / "rebasin" / "hmc" / "weight" / "iterated"
                         / "q_r.h5")
    assert q_r.kind == "gaussian" and q_r.diagnostic_attrs["n_samples"] == 30


def test_rebasin_draws_table_summarises_every_matching_and_reference(finished_run):
    tables = finished_run / "results" / "tiny" / "tables"
    summary = pd.read_csv(tables / "rebasin_draws_base.csv")
    # ensemble and HMC, two matchings, two references, draws of the reference's chain and of the others
    assert len(summary) == 2 * 2 * 2 * 2
    hmc = summary[summary["method"] == "hmc"].set_index(["matching", "reference", "draws_of"])
    assert (hmc["draws"].unstack("draws_of")[["reference chain", "other chains"]] == [10, 20]).all().all()
    draws = pd.read_csv(finished_run / "results" / "tiny" / "base" / "rebasin" / "hmc" / "activation" / "first"
                        / "draws.csv", dtype={"chain": str})
    assert draws.loc[0, "not_to_reference"] == 0  # the first draw is the reference
    assert hmc.loc[("activation", "first", "reference chain"), "not_to_reference_mean"] == pytest.approx(
        draws.loc[draws["chain"] == "0", "not_to_reference"].mean())
    assert (tables / "rebasin_draws_base.md").read_text().startswith("| method | matching |")
    # the first-draw reference has nothing to settle; the ensemble's iterated one reaches MergeMany's fixed
    # point (an HMC chain's may not: the table says so)
    first = summary[summary["reference"] == "first"]
    assert first["reference_settled"].all() and (first["reference_updates"] == 1).all()
    assert summary.loc[summary["method"] == "ensemble", "reference_settled"].all()


def test_joint_alignment_of_all_seeds_sits_beside_the_pairwise_one(finished_run):
    """tiny.yaml turns alignment.joint on: every method with 3 seeds gets joint_<kind> barrier rows
    and a row of the cycle-consistency table, whose joint alignment settled and is cycle-consistent."""
    tables = finished_run / "results" / "tiny" / "tables"
    joint = pd.read_csv(tables / "joint_alignment_base.csv")
    assert set(zip(joint["method"], joint["alignment"])) == {("ensemble", "weight"), ("vi", "weight"), ("vi", "w2"),
                                                             ("hmc", "weight"), ("laplace", "weight"),
                                                             ("laplace", "w2")}
    assert joint["joint_converged"].all() and (joint["joint_cycle_not_per_100_max"] == 0).all()
    assert (joint["triples"] == 1).all() and (joint["pairwise_cycle_not_per_100_mean"] >= 0).all()
    # the merged model of every joint alignment, scored; merging members across basins costs more
    merged = joint.set_index(["method", "alignment"])
    assert merged[["merged_nll", "unaligned_merged_nll", "mixture_nll", "members_nll_mean"]].notna().all().all()
    assert merged.loc[("ensemble", "weight"), "merged_nll"] < merged.loc[("ensemble", "weight"), "unaligned_merged_nll"]
    barriers = pd.read_csv(tables / "barriers.csv")
    rows = barriers[barriers["alignment"].str.startswith("joint_") & ~barriers["alignment"].str.endswith("+repair")]
    assert set(zip(rows["method"], rows["alignment"])) == {(m, f"joint_{k}") for m, k in
                                                           zip(joint["method"], joint["alignment"])}
    assert (rows.groupby(["method", "alignment"]).size() == 3).all()  # every pair of the 3 seeds


def test_the_run_judges_every_claim_from_its_own_tables(finished_run):
    from workflow.evaluation.claims_table import CLAIMS

    results = finished_run / "results" / "tiny"
    t = pd.read_csv(results / "claims.csv").set_index("claim")
    assert set(t.index) == {c.key for c in CLAIMS}
    table1 = pd.read_csv(results / "tables" / "table1_base.csv").pivot(index="metric", columns="column",
                                                                         values="value")
    assert t.loc["xiao-vi-close", "measured"] == pytest.approx(table1.loc["agreement with HMC", "VI q"])
    assert t.loc["xiao-hmc-rebasin", "verdict"] != "not testable"  # the default matchings include Xiao's
    assert t.loc["rossi-width", "verdict"] == "not testable"  # no width sweep in this config
    # every Table 1 cell and the claims read from it carry an interval from the run's own bootstrap
    close = t.loc["xiao-vi-close"]
    assert close["low"] <= close["measured"] <= close["high"] and "bootstrap over test points" in close["interval"]
    assert not math.isnan(t.loc["xiao-hmc-rebasin", "low"])
    diag = pd.read_csv(results / "tables" / "chain_diagnostics_base.csv").iloc[0]
    assert 0 <= diag["rhat_share_1.01"] <= diag["rhat_share_1.1"] <= 1 and diag["points_constant"] >= 0
    assert "HMC reference converged" in t.loc["xiao-vi-close", "preconditions"]
    md = (results / "claims.md").read_text()
    assert md.startswith("# Claims of both papers") and "config sha1" in md


def test_weight_space_studies_write_their_tables_and_figures(finished_run):
    results = finished_run / "results" / "tiny"
    for study in ("sigma", "pruning", "not_k", "not_path"):
        assert not pd.read_csv(results / "tables" / f"{study}_base.csv").empty, study
        for ext in ("png", "pdf"):
            assert (results / "figures" / f"{study}_base.{ext}").stat().st_size > 1000, (study, ext)
    basin = pd.read_csv(results / "tables" / "basin_base.csv").set_index("source")
    assert set(basin.index) == {"ensemble", "vi-seed0", "vi-seed1", "vi-seed2", "laplace-seed0", "laplace-seed1",
                                "laplace-seed2"}
    assert (basin["w2_after"] <= basin["w2_before"]).all()
    assert read_alignment(results / "base" / "basin" / "ensemble.h5").aligned.method == "ensemble"
    not_k = pd.read_csv(results / "tables" / "not_k_base.csv")
    assert sorted(not_k["k"]) == [0, 4, 16] and set(not_k["seed"]) == {0}
    assert (not_k["not_planted"] <= not_k["k"]).all()
    assert (not_k["loss_barrier_aligned"] <= not_k["loss_barrier_naive"] + 1e-6).all()
    pruning = pd.read_csv(results / "tables" / "pruning_base.csv")
    assert {"merged: Ens. mean + HMC sigma", "HMC q_r (weight, iterated ref.)", "VI q (seed 0)",
            "Laplace q (seed 0)"} <= set(pruning["label"])
    path = pd.read_csv(results / "tables" / "not_path_base.csv")
    assert set(path["method"]) == {"ensemble", "vi", "hmc", "laplace"}
    sigma = pd.read_csv(results / "tables" / "sigma_base.csv")
    assert {"VI q", "Laplace q"} <= set(sigma["label"])


def test_artifacts_are_valid_and_carry_provenance(finished_run):
    results = finished_run / "results" / "tiny" / "base"
    post = read_posterior(results / "posteriors" / "ensemble" / "seed1.h5")
    assert post.method == "ensemble" and post.seed == 1 and post.dataset == "digits"
    assert post.samples["hidden.0.weight"].shape == (1, 1, 48, 64)
    assert post.config["model"]["hidden"] == [48] and post.config["name"] == "tiny"
    assert post.diagnostic_attrs["test_error"] < 0.2
    assert post.provenance["compute"]["device"] == "cpu"  # gpu: 0 -> no GPU given -> the CPU
    assert post.provenance["compute"]["torch"] and post.provenance["compute"]["deterministic"] is True
    assert not list((results / "checkpoints").rglob("*.pt"))  # removed once the artifact exists
    al = read_alignment(results / "alignment" / "ensemble" / "weight" / "0-2.h5")
    assert al.seed_a == 0 and al.seed_b == 2 and al.converged
    assert al.aligned.seed == 2
    assert (results.parent / "logs" / "base" / "train" / "ensemble" / "seed0.log").read_text()
    vi = read_posterior(results / "posteriors" / "vi" / "seed0.h5")
    assert vi.kind == "gaussian" and vi.std["out.bias"].min() > 0
    assert {"elbo", "nll", "kl", "loss"} <= set(vi.diagnostics) and len(vi.diagnostics["elbo"]) == 20
    assert vi.diagnostic_attrs["test_error"] < 0.3
    hmc = read_posterior(results / "posteriors" / "hmc" / "seed2.h5")
    assert hmc.samples["out.bias"].shape == (1, 10, 10)  # one chain, 10 kept draws
    assert 0 < hmc.diagnostic_attrs["acceptance_rate"] <= 1 and hmc.diagnostic_attrs["divergences"] >= 0
    assert len(hmc.diagnostics["energy"]) == 10 and len(hmc.diagnostics["accepted"]) == 20
    laplace = read_posterior(results / "posteriors" / "laplace" / "seed1.h5")
    assert laplace.kind == "gaussian" and laplace.diagnostic_attrs["prior_precision"] == 1.0
    for k, v in post.samples.items():  # fitted around the ensemble member of its seed: its mean
        np.testing.assert_array_equal(laplace.mean[k], v[0, 0])
        assert np.all(laplace.std[k] > 0) and np.all(laplace.std[k] <= 1.0)  # at most the prior's
    w2 = read_alignment(results / "alignment" / "vi" / "w2" / "1-2.h5")
    assert w2.distance_kind == "w2" and w2.distance_after < w2.distance_before


def test_every_job_has_a_benchmark_beside_its_log_and_job_resources_reads_them(finished_run):
    """Snakemake's benchmark file of each job mirrors its log (benchmarks/<rule>/<log path>.tsv), and
    `job-resources` turns them into per-rule times, memory and cluster proposals."""
    results = finished_run / "results" / "tiny"
    logs = {p.relative_to(results / "logs").with_suffix("") for p in (results / "logs").rglob("*.log")}
    benches = {p.relative_to(results / "benchmarks") for p in (results / "benchmarks").rglob("*.tsv")}
    assert logs and {Path(*b.parts[1:]).with_suffix("") for b in benches} == logs
    proc = subprocess.run([sys.executable, "-m", "workflow", "job-resources", "--run", str(results), "--out-csv",
                           str(finished_run / "resources.csv"), "--run-config", str(TINY), "--reference-out",
                           str(finished_run / "reference.csv")], capture_output=True, text=True, cwd=finished_run)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # every job's path reads back as its variant and method: each trained method has its own rates
    from workflow.job_resources import load_reference

    ref = load_reference(finished_run / "reference.csv")
    assert set(ref["architecture"]) == {"mlp"} and ref["jobs"].sum() == len(benches)
    trained = set(ref.loc[ref["rule"] == "train_posterior", "method"])
    assert trained == {"ensemble", "vi", "hmc", "laplace"}, trained
    assert (ref["s_per_unit"] > 0).all() and (ref["mb_per_unit"] >= 0).all()
    summary = pd.read_csv(finished_run / "resources.csv")
    assert {"train_posterior", "align_pair", "barrier_curves", "claims"} <= set(summary["rule"])
    assert summary["jobs"].sum() == len(benches) and (summary["wall_s_max"] > 0).all()
    assert "| train_posterior |" in proc.stdout


def test_a_venv_without_the_package_is_what_the_run_used(tmp_path):
    """The end-to-end run's premise: its interpreter cannot import `workflow` by itself."""
    python = deps_only_venv(tmp_path / "deps-only")
    if python is None:
        pytest.skip("the package is installed here in a way a venv cannot leave out (not editable)")
    proc = subprocess.run([str(python), "-c", "import workflow"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0 and "No module named 'workflow'" in proc.stderr


def test_rerun_with_nothing_changed_runs_nothing(finished_run):
    proc = snakemake(finished_run, "-n")
    assert proc.returncode == 0
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_runtime_compute_keys_rerun_nothing_and_mixed_precision_reruns_training(finished_run):
    runtime = snakemake(finished_run, "-n", "--config", "compute={gpu: 1, threads: 2, deterministic: false}")
    assert runtime.returncode == 0 and "Nothing to be done" in runtime.stdout + runtime.stderr
    mixed = snakemake(finished_run, "-n", "--quiet", "rules", "--config", "compute={mixed_precision: bf16}")
    out = mixed.stdout + mixed.stderr
    assert mixed.returncode == 0
    assert re.search(r"train_posterior\s+12\b", out) and re.search(r"not_k\s+1\b", out), out
    assert "prepare_data" not in out


def test_hmc_chains_fitted_together_in_one_job_are_the_chains_of_one_job_each(finished_run, tmp_path):
    """hmc.chains_per_job groups seeds into jobs (a rule per group); every posterior stays the same."""
    cfg = yaml.safe_load(TINY.read_text())
    cfg["hmc"]["chains_per_job"] = 2
    grouped = tmp_path / "grouped.yaml"
    grouped.write_text(yaml.safe_dump(cfg))
    targets = [f"results/tiny/base/posteriors/hmc/seed{s}.h5" for s in (0, 1, 2)]
    proc = snakemake(tmp_path, *targets, configfile=grouped)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    out = proc.stdout + proc.stderr
    # the grouped rules ran, not train_posterior (whose name their benchmark folder keeps: the job kind)
    assert "train_hmc_seeds_0_1" in out and "train_hmc_seeds_2" in out and "rule train_posterior:" not in out
    assert not list((tmp_path / "results").rglob("*.pt"))  # the group's checkpoint is gone with its job
    for target in targets:
        a, b = read_posterior(finished_run / target), read_posterior(tmp_path / target)
        assert a.seed == b.seed
        for k in a.samples:
            np.testing.assert_array_equal(a.samples[k], b.samples[k])
        for k in a.diagnostics:
            np.testing.assert_array_equal(a.diagnostics[k], b.diagnostics[k])
        assert a.diagnostic_attrs == b.diagnostic_attrs


def report_results(html: str) -> dict:
    """The report's results: path -> {caption, mime_type, data_uri, ...} (its embedded JSON)."""
    return json.loads(re.search(r"var results = (\{.*?\});\s*\n", html, re.S).group(1))


def test_report_holds_every_figure_and_table_with_settings_seeds_and_pairs(finished_run):
    proc = snakemake(finished_run, "--report", "report.html")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = report_results((finished_run / "report.html").read_text())
    out = finished_run / "results" / "tiny"
    figures = {f"results/tiny/figures/{p.name}" for p in (out / "figures").glob("*.png")}
    tables = {f"results/tiny/report/{p.stem}.html": p for p in (out / "tables").glob("*.csv")}
    assert len(figures) == 8 and len(tables) == 11  # 4 barrier figures, 4 studies; every CSV table
    assert figures | set(tables) <= set(results), sorted(figures | set(tables) - set(results))
    for path, entry in results.items():
        caption = entry["caption"]
        assert "Settings: data: dataset digits" in caption and "seeds 0, 1, 2" in caption, path
        if "barrier" in path or "not_path" in path:
            assert "seed pairs 0-1, 0-2, 1-2" in caption, path
    for path, csv in tables.items():  # shown as a table: every row of the CSV (Table 1 as printed)
        assert results[path]["mime_type"] == "text/html"
        page = base64.b64decode(results[path]["data_uri"].split(",", 1)[1]).decode()
        rows = len(pd.read_csv(csv)) if "table1" not in path else len(TABLE1_METRICS)
        assert page.count("<tr>") == rows + 1, path


def test_paper_target_redraws_every_figure_and_table_from_the_tables_alone(finished_run, tmp_path):
    """Only the summary tables are copied: `snakemake paper` runs one job, trains nothing, and draws
    the run's figures byte for byte, with its Markdown and LaTeX tables."""
    run = finished_run / "results" / "tiny"
    shutil.copytree(run / "tables", tmp_path / "results" / "tiny" / "tables")
    proc = snakemake(tmp_path, "paper")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert re.search(r"^paper\s+1$", out, re.M) and re.search(r"^total\s+1$", out, re.M), out[-2000:]
    paper = tmp_path / "results" / "tiny" / "paper"
    drawn = {p.name: p for p in paper.rglob("*") if p.is_file()}
    for kind in ("figures", "tables"):
        for original in (run / kind).glob("*"):
            if original.suffix in (".png", ".md", ".tex", ".csv"):
                assert drawn[original.name].read_bytes() == original.read_bytes(), original.name
    assert "table1_base.md" in (paper / "README.md").read_text()
    assert sorted(p.name for p in (tmp_path / "results" / "tiny").iterdir()) == ["benchmarks", "logs", "paper",
                                                                                "tables"]


def kill_tree(pid: int) -> None:
    """SIGKILL a process and every descendant at once (frozen first, so none is started meanwhile)."""
    def children(p):
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(p)], capture_output=True, text=True).stdout
        return [int(c) for c in out.split()]

    frozen, todo = [], [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGSTOP)
            frozen.append(p)
            todo += children(p)
    for p in frozen:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


def test_a_killed_run_is_locked_then_unlocked_resumed_and_identical(finished_run, tmp_path):
    """The whole run SIGKILLed at a random moment (Snakemake and its jobs). A rerun is refused by the
    lock the killed run left; after --unlock, a rerun while another run holds the folder is refused;
    the rerun's artifacts equal the uninterrupted run's, and no half-written file is left."""
    reference = artifact_digests(finished_run / "results")
    seed = int(os.environ.get("FAULT_SEED", random.SystemRandom().randrange(2**31)))
    delay = round(random.Random(seed).uniform(0.1, 0.9) * RUN_SECONDS.get("tiny", 120), 1)
    # the delay comes from the reference run's wall time; on a machine that got less busy since, the
    # run may finish first and nothing is killed: then start afresh in a new folder, sooner
    for attempt in range(6):
        work = tmp_path / f"run{attempt}"
        work.mkdir()
        args = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(work),
                "--configfile", str(TINY), "--cores", "2"]
        run = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
        try:
            run.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            kill_tree(run.pid)
            run.wait()
            break
        delay = round(delay / 2, 1)
    why = f"FAULT_SEED={seed}: the run was killed after {delay} s (attempt {attempt + 1})"
    tmp_path = work

    # (--rerun-incomplete: without it, a run is refused earlier still, for the killed jobs' incomplete files)
    locked = snakemake(tmp_path, "--rerun-incomplete")
    assert locked.returncode != 0 and "cannot be locked" in locked.stdout + locked.stderr, why
    assert snakemake(tmp_path, "--unlock").returncode == 0, why
    rerun = subprocess.Popen([*args, "--rerun-incomplete"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, cwd=tmp_path)
    while rerun.poll() is None and not any((tmp_path / ".snakemake" / "locks").glob("*")):
        time.sleep(0.2)
    second = snakemake(tmp_path, "--rerun-incomplete")
    out, _ = rerun.communicate(timeout=900)
    assert rerun.returncode == 0, why + out[-3000:]
    assert second.returncode != 0 and "cannot be locked" in second.stdout + second.stderr, why

    got = artifact_digests(tmp_path / "results")
    assert not differing(reference, got), why + f": differing artifacts {differing(reference, got)}"
    # no temporary of a killed writer, no checkpoint: every file is a finished artifact or a log
    leftovers = [p for p in (tmp_path / "results").rglob(".*")] + list((tmp_path / "results").rglob("*.pt"))
    assert not leftovers, why + f": {leftovers}"


def test_deleted_output_reruns_only_what_depends_on_it(finished_run):
    (finished_run / "results" / "tiny" / "base" / "alignment" / "ensemble" / "weight" / "0-1.h5").unlink()
    proc = snakemake(finished_run, "alignments", "-n", "--quiet", "rules")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0
    assert "align_pair" in out and "train_posterior" not in out and "prepare_data" not in out


def test_bad_config_is_refused_before_any_job_runs(tmp_path):
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    bad = yaml.safe_load(TINY.read_text())
    bad["model"]["activation"] = "softmax"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    proc = snakemake(tmp_path, configfile=tmp_path / "bad.yaml")
    assert proc.returncode != 0
    err = proc.stdout + proc.stderr
    assert "config key model.activation" in err and "'softmax'" in err and "'relu'" in err
    assert not (tmp_path / "results").exists()


def test_rules_are_snakefmt_formatted():
    """The Snakefile and rules/ in snakefmt's format (pyproject.toml's [tool.snakefmt]): `snakefmt .` fixes it."""
    proc = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "Snakefile", "rules"], capture_output=True,
                          text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_lint_is_clean():
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "--snakefile", str(REPO / "Snakefile")],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_sweep_runs_every_variant_and_draws_the_sweep_figure(tmp_path):
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    cfg = yaml.safe_load(TINY.read_text())
    cfg.update(name="sweep", seeds=[0, 1], methods=["ensemble"], sweep=[{"model.hidden": [[16], [32]]}])
    cfg["alignment"]["kinds"] = ["weight"]
    cfg["ensemble"]["epochs"] = 10
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(cfg))
    # the barrier table and the sweep figure only (the weight-space studies are the tiny run's tests)
    proc = snakemake(tmp_path, "results/sweep/tables/barriers.csv", "results/sweep/figures/sweep_ensemble.png",
                     configfile=tmp_path / "sweep.yaml")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    results = tmp_path / "results" / "sweep"
    table = pd.read_csv(results / "tables" / "barriers.csv")
    assert set(table["variant"]) == {"model.hidden-16", "model.hidden-32"}
    assert sorted(table["model.hidden"].unique()) == [16, 32]
    assert len(list((results / "data").glob("*.npz"))) == 1  # both variants share the prepared data
    assert (results / "figures" / "sweep_ensemble.png").stat().st_size > 1000
    assert read_posterior(results / "model.hidden-32" / "posteriors" / "ensemble" / "seed1.h5").samples[
        "hidden.0.weight"].shape == (1, 1, 32, 64)


def test_a_vi_only_run_judges_whether_its_vi_learned(tmp_path):
    """Without a sample method there is no rebasin, yet VI's own sigmas are a table of the run: the
    vi-learned claim (the precondition of Rossi's VI claims) is judged, not left untestable."""
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    cfg = yaml.safe_load(TINY.read_text())
    cfg.update(name="vionly", seeds=[0, 1], methods=["vi"])
    cfg["alignment"]["kinds"] = ["w2"]
    (tmp_path / "vionly.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp_path, "results/vionly/claims.csv", configfile=tmp_path / "vionly.yaml")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    sigma = pd.read_csv(tmp_path / "results" / "vionly" / "tables" / "sigma_base.csv")
    assert set(sigma["label"]) == {"VI q"} and sigma[["sigma_init", "test_error"]].notna().all().all()
    claims = pd.read_csv(tmp_path / "results" / "vionly" / "claims.csv").set_index("claim")
    assert claims.loc["vi-learned", "verdict"] != claims_module.NOT_TESTABLE
    assert claims.loc["rossi-vi-near-zero", "verdict"] != claims_module.NOT_TESTABLE


@pytest.mark.parametrize("config", sorted(p.name for p in (REPO / "experiments").glob("*.yaml")))
def test_experiment_configs_dry_run(config, tmp_path):
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    proc = snakemake(tmp_path, "-n", "--quiet", "rules", configfile=REPO / "experiments" / config)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "train_posterior" in proc.stdout + proc.stderr
