"""Cluster submissions (workflow/submissions.py) and the runbook's counts (docs/cluster-runbook.md),
against Snakemake's own dry runs under profiles/slurm."""

import re
from pathlib import Path

import pytest
import yaml

from workflow import submissions
from workflow.device import GPU_RULES

REPO = Path(__file__).resolve().parents[1]
PROFILE = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())

DRY_RUN = """\
[Sat Dec  5 11:35:00 2026]
rule train_posterior:
    jobid: 3
    wildcards: variant=model.hidden-64x64_prior.std-0.1, method=vi, seed=0
[Sat Dec  5 11:35:00 2026]
rule report_table:
    jobid: 9
[Sat Dec  5 11:35:00 2026] Group job align (jobs in lexicogr. order):

    [Sat Dec  5 11:35:00 2026]
    rule align_pair:
        jobid: 6
    [Sat Dec  5 11:35:00 2026]
    rule align_pair:
        jobid: 7
        wildcards: variant=base, method=vi, kind=w2, a=0, b=1
[Sat Dec  5 11:35:00 2026]
localrule all:
    jobid: 0
"""


def test_a_dry_run_is_read_as_jobs_alone_local_and_in_group_jobs():
    plan = submissions.parse(DRY_RUN, local={"report_table", "all"})
    assert dict(plan.alone) == {"train_posterior": 1} and dict(plan.local) == {"report_table": 1, "all": 1}
    assert dict(plan.grouped) == {"align_pair": 2} and dict(plan.group_jobs) == {"align": 1}
    assert (plan.jobs, plan.submissions, plan.submissions_ungrouped) == (5, 2, 3)
    assert plan.job_list[0] == ("train_posterior", {"variant": "model.hidden-64x64_prior.std-0.1", "method": "vi",
                                                    "seed": "0"})
    assert plan.job_list[3] == ("align_pair", {"variant": "base", "method": "vi", "kind": "w2", "a": "0", "b": "1"})
    assert plan.job_list[2] == ("align_pair", {}) and plan.job_list[1] == ("report_table", {})
    assert [r for r, _ in plan.job_list] == ["train_posterior", "report_table", "align_pair", "align_pair", "all"]
    with pytest.raises(ValueError, match="no job found"):
        submissions.parse("Building DAG of jobs...\nNothing to be done.\n")


def test_the_local_rules_are_the_workflows_localrules_declarations():
    found = submissions.local_rules()
    declared = set()
    for path in (REPO / "rules").glob("*.smk"):
        for block in re.findall(r"^localrules:\n((?:    .*\n)+)", path.read_text(), flags=re.M):
            declared |= {line.split(",")[0].strip() for line in block.splitlines()}
    assert found == declared | {"all"}
    assert {"report_table", "claims", "summarize_joint", "figure_study"} <= found


def test_the_profiles_groups_keep_cpu_and_gpu_rules_apart_and_long_jobs_alone():
    """A group's GPU request is its rules' own only if no group mixes GPU and CPU rules; training,
    HMC chains and the NoT study's retraining stay one submission each; a local rule is never submitted."""
    groups = dict(item.split("=") for item in PROFILE["groups"])
    components = dict(item.split("=") for item in PROFILE["group-components"])
    assert set(groups.values()) == set(components)
    for group in set(groups.values()):
        members = {r for r, g in groups.items() if g == group}
        assert members <= GPU_RULES or not members & GPU_RULES, (group, members)
    assert not {"train_posterior", "not_k", "prepare_data"} & set(groups)
    assert not submissions.local_rules() & set(groups)
    defined = {m for p in (REPO / "rules").glob("*.smk") for m in re.findall(r"^rule (\w+):", p.read_text(), re.M)}
    assert set(groups) <= defined, f"grouped rules the workflow does not define: {set(groups) - defined}"


def test_a_gpu_request_above_the_profiles_limit_is_refused(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                           str(tmp_path), "--profile", str(REPO / "profiles" / "slurm"), "--configfile",
                           str(REPO / "tests" / "configs" / "tiny.yaml"), "-n", "--config", "compute={gpu: 2}"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "compute.gpu: 2 GPUs per GPU job, but the profile allows 1" in proc.stdout + proc.stderr


def runbook_rows():
    counts, _, hours_part = (REPO / "docs" / "cluster-runbook.md").read_text().partition("## Hours")
    rows, hours = {}, {}
    for line in counts.splitlines():
        m = re.match(r"^\| `([^`]+)` \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|", line)
        if m:
            rows[m.group(1)] = tuple(int(x) for x in m.groups()[1:])
    for line in hours_part.splitlines():
        m = re.match(r"^\| `([^`]+)` \| ([\d.,e+-]+) \| ([\d.,e+-]+) \| ([\d.,e+-]+) \| (\d+) \| (\d+) \|$", line)
        if m:
            hours[m.group(1)] = m.groups()[1:]
    return rows, hours


def test_the_runbooks_counts_are_those_of_a_dry_run_of_every_config():
    """Every experiment config is on the page, and its jobs, local jobs and submissions without and with
    groups equal a fresh dry run's (python -m workflow runbook --out docs/cluster-runbook.md)."""
    from workflow.jobs import runbook

    rows, hours = runbook_rows()
    assert set(rows) == set(hours) == {str(p.relative_to(REPO)) for p in runbook.configs()}
    counted = runbook.count_all()
    page = (REPO / "docs" / "cluster-runbook.md").read_text()
    assert runbook.requests_tables(counted) in page and runbook.reference_table() in page
    for r in counted:
        assert rows[r["config"]] == (r["jobs"], r["local"], r["before"], r["after"]), r["config"]
        fmt = runbook.fmt_hours
        assert hours[r["config"]] == (fmt(r["cpu_h"]), fmt(r["gpu_rule_h"]), fmt(r["longest_h"]), str(r["unsized"]),
                                      str(r["over_mem"])), r["config"]
    # the paper-scale MLP sweep: at least 5x fewer submissions with the groups
    jobs, local, before, after = rows["experiments/rossi-mlp-mnist.yaml"]
    assert before >= 5 * after


def test_every_job_asks_for_the_resources_its_measured_size_calls_for(tmp_path):
    """The rules' mem_mb and runtime are propose(estimate(...)) of each job (the shipped reference,
    scaled to the job's config): HMC's chains ask for more than an ensemble member, and a run with
    more data asks for more."""
    import subprocess
    import sys

    from workflow.config import load_config
    from workflow.job_resources import estimate, load_reference, propose

    config = REPO / "experiments" / "mnist-t10k-table1.yaml"

    def asked(*extra):
        proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                               str(tmp_path), "--profile", str(REPO / "profiles" / "slurm"), "--configfile",
                               str(config), "-n", "-F", "posteriors", *extra], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        out = {}
        for block in proc.stdout.split("rule train_posterior:")[1:]:
            method = re.search(r"wildcards: .*method=(\w+)", block).group(1)
            res = re.search(r"resources: .*mem_mb=(\d+),.*runtime=(\d+)", block)
            out[method] = (int(res.group(1)), int(res.group(2)))
        return out

    on_cpu = asked()
    cfg = load_config(config)
    ref = load_reference()
    for method in ("ensemble", "vi", "hmc"):
        seconds, rss = estimate(ref, "train_posterior", {"method": method}, cfg)
        assert on_cpu[method] == propose(rss, seconds), method
    assert on_cpu["hmc"][1] > 5 * on_cpu["ensemble"][1]
    # on a GPU the CPU's rates say nothing of the time: the rule's fixed default; the host memory still
    # scales, less the activations that live on the GPU
    on_gpu = asked("--config", "compute={gpu: 1}")
    gpu_cfg = {**cfg, "compute": {**cfg["compute"], "gpu": 1}}
    for method in ("ensemble", "vi", "hmc"):
        seconds, rss = estimate(ref, "train_posterior", {"method": method}, gpu_cfg)
        assert on_gpu[method] == (propose(rss, seconds)[0], 120) and on_gpu[method][0] <= on_cpu[method][0], method
