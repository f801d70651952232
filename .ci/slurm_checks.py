"""The checks of .ci/slurm-check, on what SLURM and the two runs left behind.

    python .ci/slurm_checks.py gpu-requests JOBS.txt       (`scontrol show job -o` output)
    python .ci/slurm_checks.py same-posteriors LOCAL SLURM  (two results/<name>/<variant>/posteriors)
    python .ci/slurm_checks.py submissions JOBS.txt        (how many sbatch submissions a run made)
    python .ci/slurm_checks.py new-jobs BEFORE AFTER OUT   (the jobs of AFTER that BEFORE does not list)
"""
import collections
import re
import sys
from pathlib import Path

from workflow.device import GPU_RULES  # the rules that compute with torch (the package is installed in CI's venv)


PROFILE = Path(__file__).resolve().parents[1] / "profiles" / "slurm" / "config.yaml"


def profile_groups() -> dict[str, set[str]]:
    """group -> its rules, from profiles/slurm (its `groups` list of RULE=GROUP)."""
    import yaml

    out: dict[str, set[str]] = {}
    for item in yaml.safe_load(PROFILE.read_text()).get("groups", []):
        rule, group = item.split("=")
        out.setdefault(group, set()).add(rule)
    return out


def job_rules(name: str, groups: dict[str, set[str]]) -> tuple[str | None, set[str]]:
    """(group or None, rules) of a SLURM job named by the plugin's comment: rule_RULE[_wildcards_...]
    for a job of its own, rule_GROUP_RULE1_RULE2... for a group job (Snakemake names it by its
    group and its rules, sorted)."""
    for group, members in groups.items():
        rest = name[len(group) + 1:] if name.startswith(f"{group}_") else None
        if rest is None:
            continue
        found = set()
        while rest and rest != "...":  # Snakemake names at most five rules, then "..."
            rule = next((r for r in sorted(members, key=len, reverse=True) if rest == r or rest.startswith(f"{r}_")),
                        None)
            if rule is None:
                break
            found.add(rule)
            rest = rest[len(rule) + 1:]
        if found and rest in ("", "..."):
            return group, found
    rule = re.sub(r"_wildcards_.*$", "", name)
    if re.fullmatch(r"train_\w+_seeds_\w+", rule):  # seeds of a method trained together (rules/train.smk)
        rule = "train_posterior"
    return None, {rule}


def gpu_requests(jobs_file):
    """Every job completed; exactly the jobs that run GPU rules carried a GPU request: a job of its own
    by its rule, a group job by its rules (a group never mixes GPU and CPU rules)."""
    groups = profile_groups()
    jobs = collections.defaultdict(lambda: [0, 0])  # rule, or group job's label -> [jobs, jobs with a GPU]
    seen_rules = set()
    bad = []
    for line in open(jobs_file):
        comment = re.search(r"\bComment=rule_(\S+)", line)
        if not comment:
            continue
        group, rules = job_rules(comment.group(1), groups)
        label = f"group {group}" if group else next(iter(rules))
        state = re.search(r"\bJobState=(\w+)", line).group(1)
        if state != "COMPLETED":
            sys.exit(f"SLURM job of {label} ended {state}")
        gpu = bool(re.search(r"\bTresPerJob=\S*gres[:/]gpu", line) or re.search(r"\bTresPerNode=\S*gpu", line))
        jobs[label][0] += 1
        jobs[label][1] += gpu
        seen_rules |= rules
        if gpu != bool(rules & GPU_RULES) or (group and rules & GPU_RULES and not rules <= GPU_RULES):
            bad.append(f"{label} ({', '.join(sorted(rules))})")
    if not jobs:
        sys.exit("no SLURM job found: nothing was submitted")
    print(f"{'rule or group job':<24} {'jobs':>5} {'with a GPU':>11}")
    for label, (n, with_gpu) in sorted(jobs.items()):
        print(f"{label:<24} {n:>5} {with_gpu:>11}")
    missing = GPU_RULES - seen_rules
    if missing:
        sys.exit(f"GPU rules never submitted: {sorted(missing)}")
    if bad:
        sys.exit(f"wrong GPU requests for: {sorted(set(bad))} (GPU rules: {sorted(GPU_RULES)})")
    print(f"{sum(n for n, _ in jobs.values())} SLURM submissions; the GPU rules' jobs requested a GPU, the others none")


def new_jobs(before_file, after_file, out_file):
    """The lines of AFTER (`scontrol show job -o`) whose JobId is not in BEFORE: the jobs of a later run."""
    def ids(path):
        return {m.group(1) for line in open(path) for m in [re.search(r"\bJobId=(\d+)", line)] if m}

    old = ids(before_file)
    with open(out_file, "w") as out:
        for line in open(after_file):
            m = re.search(r"\bJobId=(\d+)", line)
            if m and m.group(1) not in old:
                out.write(line)


def submissions(jobs_file):
    """How many sbatch submissions a run made (one line per job of `scontrol show job -o`)."""
    n = sum(1 for line in open(jobs_file) if re.search(r"\bComment=rule_", line))
    print(n)


def same_posteriors(local, slurm):
    """The ensemble and VI posteriors of both runs hold the same bytes."""
    import h5py

    local, slurm = Path(local), Path(slurm)
    compared = 0
    for method in ("ensemble", "vi"):
        files = sorted((local / method).glob("*.h5"))
        if not files:
            sys.exit(f"no local {method} posteriors in {local}")
        for path in files:
            with h5py.File(path) as a, h5py.File(slurm / method / path.name) as b:
                for block in ("samples", "mean", "std"):
                    for name in a.get(block, {}):
                        x, y = a[block][name][()], b[block][name][()]
                        if x.shape != y.shape or x.tobytes() != y.tobytes():
                            sys.exit(f"{method}/{path.name} /{block}/{name} differs between the local and the SLURM run")
                        compared += 1
    print(f"{compared} datasets bit-identical (ensemble and VI, every seed)")


if __name__ == "__main__":
    commands = {"gpu-requests": gpu_requests, "same-posteriors": same_posteriors, "submissions": submissions,
                "new-jobs": new_jobs}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: slurm_checks.py {{{'|'.join(commands)}}} ARGS")
    commands[sys.argv[1]](*sys.argv[2:])
