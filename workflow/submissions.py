"""How many scheduler submissions a run makes, read from Snakemake's own dry run.

A dry run with a remote executor (``--profile profiles/slurm -n``) lists every job it would run:
a job as ``rule NAME:``, and the jobs that one submission runs together under a ``Group job NAME``
header, indented. It prints the rules declared ``localrules`` (run on the submitting host, never
submitted) like the others, so those are read from rules/*.smk. Nothing here re-implements
Snakemake's grouping: the counts are the dry run's.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

GROUP = re.compile(r"^\[[^\]]*\] Group job (\S+) ")
JOB = re.compile(r"^(\s*)(local)?rule (\w+):\s*$")
WILDCARDS = re.compile(r"^\s*wildcards: (.*)$")


@dataclass
class Plan:
    """The jobs of a dry run: per rule, submitted alone, run locally, or inside a group job; and
    the group jobs per group."""

    alone: Counter = field(default_factory=Counter)
    local: Counter = field(default_factory=Counter)
    grouped: Counter = field(default_factory=Counter)
    group_jobs: Counter = field(default_factory=Counter)
    # every job's rule and wildcards, in the dry run's order (sizes them: workflow/job_sizes.py)
    job_list: list = field(default_factory=list)

    @property
    def jobs(self) -> int:
        return sum(self.alone.values()) + sum(self.local.values()) + sum(self.grouped.values())

    @property
    def submissions(self) -> int:
        return sum(self.alone.values()) + sum(self.group_jobs.values())

    @property
    def submissions_ungrouped(self) -> int:
        """What the same jobs would cost with one submission each (no groups)."""
        return sum(self.alone.values()) + sum(self.grouped.values())


NO_RUN = {"all"}  # target rules without a command: Snakemake runs nothing for them


def local_rules(rules_dir=None) -> set[str]:
    """The rules the workflow declares ``localrules`` (rules/*.smk), and the target rules that run nothing:
    a dry run prints them like any other job, but they never reach the scheduler."""
    rules_dir = Path(rules_dir or Path(__file__).resolve().parents[1] / "rules")
    found = set(NO_RUN)
    for path in sorted(rules_dir.glob("*.smk")):
        for block in re.findall(r"^localrules:[ \t]*\n((?:[ \t]+\w+,?[ \t]*(?:#[^\n]*)?\n)+)", path.read_text(), flags=re.M):
            found |= {re.match(r"\s*(\w+)", line).group(1) for line in block.splitlines() if line.strip()}
    return found


def parse(text: str, local: set[str] | None = None) -> Plan:
    """The plan of a dry run's output; ``local``: the rules that run on the submitting host."""
    local = local_rules() if local is None else local
    plan = Plan()
    in_group = False
    for line in text.splitlines():
        group = GROUP.match(line)
        if group:
            plan.group_jobs[group.group(1)] += 1
            in_group = True
            continue
        wildcards = WILDCARDS.match(line)
        if wildcards and plan.job_list:
            plan.job_list[-1][1].update(dict(kv.split("=", 1) for kv in re.split(r", (?=\w+=)", wildcards.group(1))))
            continue
        job = JOB.match(line)
        if not job:
            continue
        indent, marked_local, rule = job.groups()
        plan.job_list.append((rule, {}))
        if indent and in_group:
            plan.grouped[rule] += 1
        else:
            in_group = False
            (plan.local if marked_local or rule in local else plan.alone)[rule] += 1
    if not plan.jobs:
        raise ValueError("no job found in the dry run's output (was it a dry run with -n, and did it succeed?)")
    return plan


def dry_run(configfile, profile, workdir, *, snakefile=None, extra=()) -> Plan:
    """The plan of a forced dry run (every job, as on a fresh machine) of ``configfile`` under ``profile``."""
    snakefile = snakefile or Path(__file__).resolve().parents[1] / "Snakefile"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(workdir),
           "--profile", str(profile), "--configfile", str(configfile), "-n", "-F", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise ValueError(f"dry run of {configfile} under {profile} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return parse(proc.stdout)
