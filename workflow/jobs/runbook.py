"""The cluster runbook (docs/cluster-runbook.md): for every experiment config, its jobs and its SLURM
submissions without and with the job groups of profiles/slurm, counted from Snakemake's own dry run
(workflow/submissions.py), and the command that runs it.

    python -m workflow runbook --out docs/cluster-runbook.md

tests/test_runbook.py dry-runs every config again and compares: a rule or profile change that
moves a count fails there until the page is regenerated.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from .. import submissions
from ..config import load_config, variant_configs
from ..device import GPU_RULES
from ..job_resources import estimate, load_reference, request
from ..job_sizes import sizing_rule
from ..storage.atomic import write_text

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "profiles" / "slurm"
HEADER = "<!-- written by `python -m workflow runbook --out docs/cluster-runbook.md`; do not edit -->"


def configs(repo: Path = REPO) -> list[Path]:
    """The default config and every experiment config, in the page's order."""
    return [repo / "config.yaml", *sorted((repo / "experiments").glob("*.yaml"))]


def count(config: Path, profile: Path = PROFILE) -> dict:
    """One row of the runbook's table: the config's jobs and submissions, from a forced dry run."""
    with tempfile.TemporaryDirectory() as work:
        plan = submissions.dry_run(config, profile, work)
    name = yaml.safe_load(config.read_text())["name"]
    return hours(config, plan) | {"config": str(config.relative_to(REPO)), "name": name, "jobs": plan.jobs,
            "local": sum(plan.local.values()), "before": plan.submissions_ungrouped, "after": plan.submissions,
            "alone": dict(sorted(plan.alone.items())), "groups": dict(sorted(plan.group_jobs.items()))}


def profile_mem_mb(profile: Path = PROFILE) -> int:
    """The per-submission memory limit of the profile (its `resources: mem_mb=N`)."""
    for item in yaml.safe_load((profile / "config.yaml").read_text()).get("resources", []):
        key, _, value = str(item).partition("=")
        if key.strip() == "mem_mb":
            return int(value)
    raise ValueError(f"{profile}/config.yaml sets no resources: mem_mb=N")


def _larger(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else max(a, b)


def hours(config: Path, plan: submissions.Plan) -> dict:
    """Estimated hours of the plan's jobs, one thread each, from the measured rates
    (workflow/measured_resources.csv, scaled by workflow/job_sizes.py): all jobs, those of the GPU
    rules (hours on a GPU at most: the rates are the CPU's), the longest job, and the jobs whose
    rule nothing measured on this architecture (not counted)."""
    validated = load_config(config)
    variants = variant_configs(validated)
    ref = load_reference()
    total = gpu = longest = 0.0
    unsized = over = 0
    cap = profile_mem_mb()
    # rule -> [jobs, largest mem_mb, longest runtime in minutes]; None: the rule's fixed default
    requests: dict = {}
    for rule, wildcards in plan.job_list:
        if rule in submissions.NO_RUN:
            continue
        rule, wildcards = sizing_rule(rule, wildcards)
        cfg = variants.get(wildcards.get("variant"), validated)
        est = estimate(ref, rule, wildcards, cfg)
        mem, runtime = request(rule, cfg, est)
        req = requests.setdefault(rule, [0, mem, runtime])
        req[0] += 1
        req[1], req[2] = _larger(req[1], mem), _larger(req[2], runtime)
        if est is None:
            unsized += 1
            continue
        total += est[0]
        gpu += est[0] if rule in GPU_RULES else 0.0
        longest = max(longest, est[0])
        over += mem > cap
    return {"cpu_h": total / 3600, "gpu_rule_h": gpu / 3600, "longest_h": longest / 3600, "unsized": unsized,
            "over_mem": over, "requests": dict(sorted(requests.items()))}


REQUESTS_SHOWN = ("experiments/mnist-t10k-table1.yaml", "experiments/mnist-t10k-resnet20.yaml",
                  "experiments/rossi-mlp-mnist.yaml", "experiments/rossi-resnet20-cifar10.yaml")


def _or_default(value: int | None) -> str:
    return "fixed default" if value is None else str(value)


def requests_tables(rows: list[dict]) -> str:
    """Per rule, what its jobs ask for (the largest and longest), for the configs of REQUESTS_SHOWN."""
    out = []
    for r in rows:
        if r["config"] not in REQUESTS_SHOWN:
            continue
        out += [f"`{r['config']}`:", "", "| rule | jobs | mem_mb (largest) | runtime, minutes (longest) |",
                "|---|---|---|---|"]
        for rule, (jobs, mem, runtime) in r["requests"].items():
            out.append(f"| {rule} | {jobs} | {_or_default(mem)} | {_or_default(runtime)} |")
        out.append("")
    return "\n".join(out)


def count_all(paths=None, workers: int = 2) -> list[dict]:
    with ThreadPoolExecutor(workers) as pool:  # each dry run is its own process
        return list(pool.map(count, paths or configs()))


def table(rows: list[dict]) -> str:
    lines = ["| config | jobs | run on the login node | submissions, one per job | submissions with groups "
             "| fewer | submitted alone | group jobs |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        alone = ", ".join(f"{k} {v}" for k, v in r["alone"].items()) or "-"
        groups = ", ".join(f"{k} {v}" for k, v in r["groups"].items()) or "-"
        lines.append(f"| `{r['config']}` | {r['jobs']} | {r['local']} | {r['before']} | {r['after']} "
                     f"| {r['before'] / r['after']:.1f}x | {alone} | {groups} |")
    return "\n".join(lines)


def fmt_hours(x: float) -> str:
    """Two significant digits below 10 hours, whole hours above."""
    return f"{x:,.0f}" if x >= 10 else f"{x:.2g}"


def hours_table(rows: list[dict]) -> str:
    lines = ["| config | CPU-hours | of which in GPU rules | longest job (hours) | jobs not sized "
             f"| jobs over the profile's mem_mb ({profile_mem_mb()}) |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r['config']}` | {fmt_hours(r['cpu_h'])} | {fmt_hours(r['gpu_rule_h'])} "
                     f"| {fmt_hours(r['longest_h'])} | {r['unsized']} | {r['over_mem']} |")
    return "\n".join(lines)


def reference_table() -> str:
    """The measured reference every estimate scales from, as the rules read it."""
    ref = load_reference()
    lines = ["| architecture | rule | method | jobs measured | wall s (max) | peak RSS MB | run |",
             "|---|---|---|---|---|---|---|"]
    for r in ref.itertuples():
        lines.append(f"| {r.architecture} | {r.rule} | {r.method} | {r.jobs} | {r.wall_s_max:.1f} | {r.max_rss_mb:.0f} "
                     f"| {r.run} |")
    return "\n".join(lines)


def page(rows: list[dict]) -> str:
    return "\n".join([
        HEADER,
        "# Cluster runbook",
        "",
        "Every experiment config run through `profiles/slurm`. Counts come from Snakemake's own dry run "
        "(`snakemake --profile profiles/slurm --configfile CONFIG -n -F`, read by `workflow/submissions.py`): "
        "the jobs of a fresh run, those that run on the login node (tables, figures, claims: `localrules`), "
        "the submissions with one `sbatch` per remaining job, and with the profile's job groups (its "
        "`groups` and `group-components`: matching, rebasin and NoT paths in group `align`, barriers, "
        "Table 1 and pruning in group `evaluate`). Training, HMC chains and the NoT study's retraining stay "
        "one submission per job.",
        "",
        table(rows),
        "",
        "## Hours",
        "",
        "Estimated from the benchmark files of finished MNIST t10k runs: each rule's measured seconds per "
        "unit of its size (`workflow/measured_resources.csv`, written by `python -m workflow job-resources "
        "--run-config`), times each job's own size in this config (`workflow/job_sizes.py`: data rows, "
        "samples, epochs, multiply-adds of the network), at one CPU thread per job, without head-room. "
        "The same estimate, with `workflow/job_resources.py`'s head-room, is every job's `mem_mb` "
        "request, and its `runtime` request unless it computes on a GPU. GPU rules (training, barriers, "
        "Table 1, pruning, the NoT study) hold a GPU when `compute.gpu` is 1: their hours here are CPU "
        "hours, an upper bound until a GPU table exists. A job whose rule was never measured on its "
        "architecture is not sized (it asks for its rule's fixed default) and not counted. The rates are wall seconds of single-threaded jobs on a "
        "2-core machine shared with other work, and a job's size is proportional to its work, without "
        "its start-up: long jobs come out long (a second MNIST t10k joint run: 2.3x), small ones short "
        "(the digits default run: 0.6x; docs/performance.md). `compute.threads` above 1 is not modelled. "
        "A request above the profile's per-submission `mem_mb` is cut to it by Snakemake, retries "
        "included: raise the profile's `mem_mb` where nodes are larger, or shrink the job (the last "
        "column counts them). A job longer than a partition's time limit (the full-MNIST HMC chains of "
        "`mnist-table1.yaml`: thousands of CPU-hours, as Xiao et al. ran them on GPUs) needs `compute.gpu` "
        "and its own measurement there.",
        "",
        hours_table(rows),
        "",
        "What the jobs ask for, per rule (each job its own `propose()` of its estimate, times the attempt "
        "under `--retries`; rules never measured on the architecture keep their fixed default, and so "
        "does the runtime of a job that computes on a GPU (`compute.gpu` above 0), which no CPU "
        "measurement predicts; its host memory still scales):",
        "",
        requests_tables(rows),
        "The measured reference (`workflow/measured_resources.csv`), per architecture, rule and method: the "
        "finished runs' benchmark files as `python -m workflow job-resources --run-config` read them "
        "(docs/performance.md has the commands):",
        "",
        reference_table(),
        "",
        "## Running one",
        "",
        "From a login node, in the venv with the SLURM plugin (`pip install -e '.[slurm]'`):",
        "",
        "```bash",
        "snakemake --profile profiles/slurm --configfile CONFIG --config 'compute={gpu: 1}'",
        "```",
        "",
        "with CONFIG one of the table's configs (the default run: leave `--configfile` out). "
        "What to change for a cluster, in `profiles/slurm/config.yaml`: `slurm_partition` and "
        "`slurm_account` under `default-resources` (SLURM's defaults otherwise); the per-submission limits "
        "`cores`, `resources: mem_mb` and `resources: gpu`, which must cover one job's request (the "
        "Snakefile refuses `compute.gpu` above the profile's `gpu`); `group-components`, the number of "
        "connected parts of the job graph one submission of a group runs. In the config: `compute.gpu` "
        "(GPUs per GPU job) and `compute.gpu_model` (e.g. `a100`).",
        "",
    ])


def runbook_job(out) -> None:
    write_text(out, page(count_all()))
