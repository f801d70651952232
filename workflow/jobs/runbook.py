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
    return {"config": str(config.relative_to(REPO)), "name": name, "jobs": plan.jobs,
            "local": sum(plan.local.values()), "before": plan.submissions_ungrouped, "after": plan.submissions,
            "alone": dict(sorted(plan.alone.items())), "groups": dict(sorted(plan.group_jobs.items()))}


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
